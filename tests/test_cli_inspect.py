"""End to end: ``edgekit inspect`` on a tiny model of every loadable format, and on bad input."""

import os

import numpy as np
import pytest
from conftest import strict_json
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.samples import sample_contract
from edgekit.targets import open_runtime
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.reports import InspectReport

LOADABLE = [f for f in Format if f not in (Format.TORCH_MODULE, Format.TORCH_PICKLE)]
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("fmt", LOADABLE, ids=str)
def test_inspect_json_reports_format_and_true_contract(samples, fmt):
    result = invoke("inspect", samples[fmt], "--json")
    assert result.exit_code == 0, result.output
    report = InspectReport.from_dict(strict_json(result.stdout))
    assert report.format is fmt
    truth = sample_contract(fmt)
    assert [(t.name, t.shape, t.dtype) for t in report.io_spec.inputs] == [
        (t.name, t.shape, t.dtype) for t in truth.inputs
    ]
    assert [(t.name, t.dtype) for t in report.io_spec.outputs] == [(t.name, t.dtype) for t in truth.outputs]
    assert report.smoke_run is not None and report.smoke_run.ok
    assert report.details.ops, "every loadable format exposes an op histogram"


@pytest.mark.parametrize("fmt", LOADABLE, ids=str)
def test_reported_contract_is_what_the_model_really_takes(samples, fmt):
    """Feed the model exactly what inspect says, with sidecars out of the way: it runs and returns the
    declared output shapes; a batch or channel dimension off by one is rejected by the contract."""
    report = InspectReport.from_dict(strict_json(invoke("inspect", samples[fmt], "--json").stdout))
    spec = report.io_spec
    rng = np.random.default_rng(0)
    feeds = {t.name: rng.standard_normal(t.concrete_shape(2 if not t.is_static else 1)).astype(t.dtype)
             for t in spec.inputs}
    with open_runtime(samples[fmt]) as runtime:
        outputs = runtime.run(feeds)
        assert list(outputs) == spec.output_names
        for ts in spec.outputs:
            assert ts.accepts(outputs[ts.name].shape), (ts, outputs[ts.name].shape)
        wrong = {name: np.concatenate([value, value], axis=-1) for name, value in feeds.items()}
        with pytest.raises(Exception, match="shape"):
            runtime.run(wrong)


def test_inspect_human_output_names_contract_and_ops(samples):
    result = invoke("inspect", samples[Format.ONNX])
    assert result.exit_code == 0, result.output
    for fragment in ("format      onnx", "I/O contract", "logits", "Conv", "smoke run   ok"):
        assert fragment in result.stdout


def test_inspect_state_dict_reports_weights_without_contract(samples):
    result = invoke("inspect", samples[Format.TORCH_PICKLE], "--json")
    assert result.exit_code == 0, result.output
    report = InspectReport.from_dict(strict_json(result.stdout))
    assert report.kind == "state_dict" and report.io_spec is None
    assert report.details.parameters == 8 * 9 + 8 + 128 * 10 + 10


def test_inspect_torchscript_without_traced_shapes_takes_input_shape(tmp_path):
    import torch

    from edgekit.samples import torch_cnn

    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch_cnn()), str(path))
    bare = invoke("inspect", path, "--json")
    assert bare.exit_code == 0, bare.output
    assert strict_json(bare.stdout)["io_spec"]["inputs"][0]["shape"] is None
    given = invoke("inspect", path, "--json", "--input-shape", "x=1,1,8,8")
    report = strict_json(given.stdout)
    assert report["io_spec"]["inputs"][0]["shape"] == [1, 1, 8, 8]
    assert report["io_spec"]["outputs"][0]["shape"] == [1, 10]
    assert report["smoke_run"]["ok"]


def test_input_shape_cannot_contradict_the_model(samples):
    result = invoke("inspect", samples[Format.ONNX], "--input-shape", "x=1,3,8,8")
    assert result.exit_code == 2
    assert "contradicts" in result.stderr


def _assert_one_line_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgekit: error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_path_exits_3(tmp_path):
    _assert_one_line_error(invoke("inspect", tmp_path / "nope.onnx"), 3, "nope.onnx", "no such file")


def test_empty_file_exits_3(tmp_path):
    path = tmp_path / "empty.onnx"
    path.touch()
    _assert_one_line_error(invoke("inspect", path), 3, "empty")


@pytest.mark.parametrize("fmt", LOADABLE, ids=str)
def test_file_truncated_to_half_exits_3(samples, tmp_path, fmt):
    source = samples[fmt]
    if fmt is Format.SAVEDMODEL:
        target = tmp_path / source.name
        import shutil

        shutil.copytree(source, target)
        pb = target / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    else:
        target = tmp_path / source.name
        target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    _assert_one_line_error(invoke("inspect", target), 3, str(target))


@pytest.mark.parametrize("suffix", [".onnx", ".tflite", ".pte"])
def test_random_bytes_with_model_extension_exit_3(tmp_path, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(os.urandom(2048))
    _assert_one_line_error(invoke("inspect", path), 3, path.name)


def test_directory_without_saved_model_exits_3(tmp_path):
    _assert_one_line_error(invoke("inspect", tmp_path), 3, "saved_model.pb")


def test_whole_model_pickle_exits_4_with_hint(whole_model_pickle):
    result = invoke("inspect", whole_model_pickle)
    _assert_one_line_error(result, 4, "pickled whole model", "state_dict", "torch.export")


def test_unsafe_torch_environment_is_refused(samples, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    _assert_one_line_error(invoke("inspect", samples[Format.TORCH_EXPORTED]), 4, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["--debug", "inspect", str(tmp_path / "nope.onnx")])
    assert result.exit_code != 0
    assert result.exception is not None and "no such file" in str(result.exception)


def test_delegation_is_reported_where_the_format_has_it(samples):
    def details(fmt):
        return strict_json(invoke("inspect", samples[fmt], "--json").stdout)["details"]

    assert details(Format.TFLITE)["delegation"]["xnnpack_partitions"] >= 1
    pte = details(Format.EXECUTORCH)["delegation"]
    assert pte["delegates"] == ["XnnpackBackend"] and pte["delegate_calls"] >= 1
    assert details(Format.ONNX)["delegation"]["providers"] == ["CPUExecutionProvider"]
