"""Outputs never follow a symlink out of place or truncate without --force, multi-file outputs appear
together or not at all, and the bad inputs the red-team run found exit 2 or 3 with one line (they were
internal errors, exit 70, or silently accepted)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from conftest import run_edgekit
from test_redteam import Victim, _one_error_line

from edgekit.toolkit import fsutil
from edgekit.toolkit.contract.artifact import sidecar_path
from edgekit.toolkit.contract.errors import UsageError
from edgekit.toolkit.contract.formats import Format


@pytest.fixture
def victim():
    victim = Victim()
    yield victim
    victim.assert_untouched()


# -- outputs ----------------------------------------------------------------------------------------------


def test_pipeline_log_symlink_and_existing_log(samples, tmp_path, victim):
    out = tmp_path / "out"
    out.mkdir()
    (out / "pipeline.log").symlink_to(victim.path / "notes.txt")
    refused = run_edgekit("pipeline", samples[Format.TFLITE], "--out", out, "--no-bench")
    assert refused.returncode == 2 and "pipeline.log: already exists" in _one_error_line(refused)
    # with --force the planted link is removed and a real log created in its place (how the run itself ends
    # does not matter here, only that it was not a crash and the log exists)
    forced = run_edgekit("pipeline", samples[Format.TFLITE], "--out", out, "--no-bench", "--force")
    assert forced.returncode != 70, forced.stderr[-1500:]
    assert not (out / "pipeline.log").is_symlink() and (out / "pipeline.log").is_file()


def test_pipeline_refuses_symlinked_directories_inside_out(samples, tmp_path, victim):
    out = tmp_path / "out"
    out.mkdir()
    (out / "artifacts").symlink_to(victim.path, target_is_directory=True)
    result = run_edgekit("pipeline", samples[Format.ONNX], "--out", out, "--no-bench", "--force")
    assert result.returncode == 2 and "artifacts is a symbolic link" in _one_error_line(result)


def test_report_symlink_is_replaced_not_written_through(tmp_path, victim):
    report = tmp_path / "report.json"
    report.symlink_to(victim.path / "notes.txt")
    with pytest.raises(UsageError):
        fsutil.write_bytes_atomic(report, b"{}")
    fsutil.write_bytes_atomic(report, b"{}", force=True)
    assert not report.is_symlink() and report.read_bytes() == b"{}"


def test_dangling_symlink_output_needs_force(tmp_path, victim):
    link = tmp_path / "model.onnx"
    link.symlink_to(victim.path / "created-through-the-link.onnx")
    with pytest.raises(UsageError, match="already exists"):
        fsutil.check_writable_target(link, force=False)


def test_output_directory_is_a_usage_error_before_any_work(samples, tmp_path):
    target = tmp_path / "existing_dir.onnx"
    target.mkdir()
    result = run_edgekit("convert", samples[Format.ONNX], "--to", "onnx", "--quantize", "fp16", "-o", target,
                         "--force")
    assert result.returncode == 2 and "is a directory" in _one_error_line(result)
    assert target.is_dir() and not sidecar_path(target).exists(), "no orphan sidecar"


def test_multi_file_output_rolls_back_when_a_later_rename_fails(tmp_path, monkeypatch):
    artifact, sidecar = tmp_path / "model.onnx", tmp_path / "model.onnx.edgekit.json"
    artifact.write_bytes(b"old artifact")
    sidecar.write_bytes(b"old sidecar")
    real_replace, calls = os.replace, []

    def failing_second_rename(src, dst):
        calls.append(Path(dst).name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", failing_second_rename)
    with pytest.raises(OSError), fsutil.atomic_paths(artifact, sidecar, force=True) as (new_artifact, new_sidecar):
        new_artifact.write_bytes(b"new artifact")
        new_sidecar.write_bytes(b"new sidecar")
    monkeypatch.undo()
    assert calls[:2] == ["model.onnx", "model.onnx.edgekit.json"], "the primary artifact is renamed first"
    assert artifact.read_bytes() == b"old artifact" and sidecar.read_bytes() == b"old sidecar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.edgekit.json"]


def test_rollback_removes_a_first_output_that_did_not_exist_before(tmp_path, monkeypatch):
    artifact, sidecar = tmp_path / "new.onnx", tmp_path / "new.onnx.edgekit.json"
    real_replace = os.replace
    seen = []

    def failing_second(src, dst):
        seen.append(dst)
        if len(seen) == 2:
            raise OSError(5, "I/O error")
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", failing_second)
    with pytest.raises(OSError), fsutil.atomic_paths(artifact, sidecar) as (a, b):
        a.write_bytes(b"x")
        b.write_bytes(b"y")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_long_output_names(samples, tmp_path):
    fits = tmp_path / ("m" * 235 + ".onnx")  # 240 bytes: the old temp name (+34 bytes) overflowed NAME_MAX
    result = run_edgekit("convert", samples[Format.ONNX], "--to", "onnx", "--quantize", "fp16", "-o", fits)
    assert result.returncode == 0, result.stderr[-1500:]
    assert fits.is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".edgekit-")]
    too_long = tmp_path / ("m" * 300 + ".onnx")
    result = run_edgekit("convert", samples[Format.ONNX], "--to", "onnx", "--quantize", "fp16", "-o", too_long)
    assert result.returncode == 2 and "over the file system's 255" in _one_error_line(result)


# -- bad input ----------------------------------------------------------------------------------------------


def _onnx_with_dims(path: Path, dims: list) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # what ONNX Runtime 1.31 loads: the refusal must be edgekit's, not a version error
    path.write_bytes(model.SerializeToString())
    return path


def test_absurd_declared_dimension(tmp_path):
    result = run_edgekit("inspect", _onnx_with_dims(tmp_path / "huge.onnx", [1, 2**63 - 1]))
    line = _one_error_line(result)
    assert result.returncode == 3 and "elements" in line and "huge.onnx" in line


def _deep(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


def test_deeply_nested_json_everywhere(samples, tmp_path):
    import h5py

    keras = tmp_path / "deep.keras"
    with zipfile.ZipFile(keras, "w") as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("config.json", _deep(100_000))
        archive.writestr("model.weights.h5", b"")
    h5 = tmp_path / "deep.h5"
    with h5py.File(h5, "w") as handle:
        handle.attrs["model_config"] = _deep(5000)
    model = tmp_path / "tiny.onnx"
    model.write_bytes(samples[Format.ONNX].read_bytes())
    sidecar_path(model).write_text(_deep(20_000))
    for path, named in ((keras, "config.json"), (h5, "model_config"), (model, "sidecar")):
        result = run_edgekit("inspect", path)
        assert result.returncode == 3, result.stderr[-1500:]
        line = _one_error_line(result)
        assert "nested deeper" in line and (named in line or path.name in line)


def test_encrypted_zip_member(samples, tmp_path):
    from corpora import flag_encrypted

    path = tmp_path / "encrypted.pt2"
    path.write_bytes(flag_encrypted(samples[Format.TORCH_EXPORTED].read_bytes()))
    result = run_edgekit("inspect", path)
    assert result.returncode == 3 and "encrypted" in _one_error_line(result)


def _check_config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "edgekit.toml"
    config.write_text(text)
    return config


@pytest.mark.parametrize(("text", "named"), [
    ("thresholds = 5\n", "[thresholds] must be a table"),
    ("[thresholds]\nmax_size_bytes = nan\n", "finite number"),
    ("[thresholds]\nmin_accuracy = inf\n", "finite number"),
    ('[thresholds."onnx"]\nmax_p50_ratio = -inf\n', "finite number"),
    ("[pipeline]\nthreads = 100000000000\n", "integer from 1 to 1024"),
    ("[pipeline]\nmin_seconds = nan\n", "finite number"),
    ("[pipeline]\nmodels = [" + "[" * 3000 + "]" * 3000 + "]\n", "not valid TOML"),
])
def test_check_config_values_are_type_checked(tmp_path, text, named):
    result = run_edgekit("check", "--config", _check_config(tmp_path, text))
    assert result.returncode in (2, 3) and named in _one_error_line(result), result.stderr[-800:]


@pytest.mark.parametrize(("args", "named"), [
    (("bench", "{onnx}", "--threads", "1,a"), "--threads"),
    (("bench", "{onnx}", "--cpus", "0,x"), "--cpus"),
    (("inspect", "{onnx}", "--input-shape", "x=1,1,8,²"), "dimension '²'"),
    (("convert", "{pt2}", "--to", "onnx", "--opset", "-1", "-o", "{out}"), "--opset -1"),
    (("convert", "{pt2}", "--to", "onnx", "--opset", "99", "-o", "{out}"), "--opset 99"),
    (("import", "{onnx}", "-o", "{out}", "--mean", "0.5,x", "--std", "1"), "--mean"),
])
def test_bad_option_values_are_usage_errors(samples, tmp_path, args, named):
    values = {"{onnx}": samples[Format.ONNX], "{pt2}": samples[Format.TORCH_EXPORTED], "{out}": tmp_path / "x.onnx"}
    result = run_edgekit(*(values.get(a, a) for a in args))
    assert result.returncode == 2 and named in _one_error_line(result), result.stderr[-1500:]
    assert not (tmp_path / "x.onnx").exists()


def test_sidecar_data_path_cannot_leave_the_model_directory(samples, tmp_path, victim):
    """A crafted sidecar naming someone else's data set (absolute, or climbing out) must not get it packaged
    into a bundle's goldens: absolute paths are malformed, and a path leaving the artifact's directory
    must be the file the sidecar recorded (its sha256), which the attacker cannot know."""
    import numpy as np

    private = victim.path / "private.npz"
    np.savez(private, test_x=np.ones((4, 8, 8, 1), np.float32), test_y=np.zeros(4, np.int64))
    victim.before = victim.snapshot()
    model = tmp_path / "tiny.tflite"
    model.write_bytes(samples[Format.TFLITE].read_bytes())
    record = json.loads(sidecar_path(samples[Format.TFLITE]).read_text())
    for data, named in ((str(private), "not a path relative"),
                        (os.path.relpath(private, tmp_path), "not the file this sidecar recorded")):
        sidecar_path(model).write_text(json.dumps({**record, "data": data}))
        result = run_edgekit("package", model, "-o", tmp_path / "b.zip", "--bench-seconds", "0")
        assert result.returncode == 3 and named in _one_error_line(result), result.stderr[-1500:]
        assert not (tmp_path / "b.zip").exists()


def test_traced_input_record_with_a_huge_memo_index_is_left_unread(samples, tmp_path):
    """CPython's unpickler grows its memo to the index a LONG_BINPUT names (0xFFFFFFFF: ~68 GB); the
    traced-input shapes are then simply unknown, never unpickled."""
    from redteam import rewrite_zip

    from edgekit.toolkit.safety.pickles import torchscript_traced_inputs

    sample = samples[Format.TORCHSCRIPT]
    assert torchscript_traced_inputs(sample), "the sample records its traced input shapes"
    crafted = rewrite_zip(sample, tmp_path / "memo.pt", replace={"traced_inputs.pkl": b"\x80\x02}r\xff\xff\xff\xff."})
    assert torchscript_traced_inputs(crafted) == {}
