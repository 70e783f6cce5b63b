"""Every class of the red-team run against the loading policy, as a test through the real CLI: the attack
file is built here, every command that loads it exits with the documented code and one error line, no
marker appears, and nothing outside the test's directory changes (a victim directory elsewhere is
snapshotted before and compared after). ``--trust`` is tested both ways where it applies."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from conftest import Victim, run_edgekit  # noqa: F401 (Victim: imported from here by other modules)
from redteam import keras_pickle_layers, onnx_hidden_escapes, pickle_evasions, pt2_attacks, torchscript_attacks

from edgekit.toolkit.contract.formats import Format


def _all(commands: list[tuple]) -> list:
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(lambda args: run_edgekit(*args, timeout=600), commands))


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


@pytest.mark.slow
def test_pt2_attacks_are_refused_by_every_command(samples, tmp_path, victim):
    cases = pt2_attacks(samples[Format.TORCH_EXPORTED], tmp_path / "pt2", victim.marker)
    assert len(cases) == 11
    commands = []
    for case in cases:
        stem = case.path.stem
        commands += [("inspect", case.path), ("convert", case.path, "--to", "onnx", "-o", tmp_path / f"{stem}.onnx"),
                     ("import", case.path, "-o", tmp_path / f"imported-{stem}"),
                     ("validate", case.path, samples[Format.TORCH_EXPORTED])]
    results = _all(commands)
    for command, result in zip(commands, results, strict=True):
        assert result.returncode == 4, (command, result.stderr[-1500:])
        assert command[1].name in _one_error_line(result)
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob("imported-*"))
    assert not victim.marker.exists()


@pytest.mark.slow
def test_pt2_pickles_and_native_code_stay_refused_with_trust(samples, tmp_path, victim):
    cases = {c.path.stem: c.path for c in pt2_attacks(samples[Format.TORCH_EXPORTED], tmp_path, victim.marker)}
    never = {"pt2-sample-inputs": "even with --trust", "pt2-stealth-parameter": "even with --trust",
             "pt2-opaque-object": "even with --trust", "pt2-aotinductor": "native code"}
    results = _all([("--trust", "inspect", cases[stem]) for stem in never])
    for (stem, reason), result in zip(never.items(), results, strict=True):
        assert result.returncode == 4, (stem, result.stderr[-800:])
        assert reason in _one_error_line(result)
    assert not victim.marker.exists()


@pytest.mark.slow
def test_pt2_code_findings_are_lifted_by_trust_loudly(samples, tmp_path):
    marker = tmp_path / "RAN"  # inside the test directory: --trust is meant to let this code run
    guards = next(c.path for c in pt2_attacks(samples[Format.TORCH_EXPORTED], tmp_path / "a", marker)
                  if c.path.stem == "pt2-guards-code")
    refused = run_edgekit("inspect", guards)
    assert refused.returncode == 4 and "guard" in _one_error_line(refused) and not marker.exists()
    trusted = run_edgekit("--trust", "inspect", guards)
    assert "edgekit: warning: --trust:" in trusted.stderr and "guard" in trusted.stderr
    assert marker.exists(), "with --trust the guard ran (the user vouched for the file)"


@pytest.mark.slow
def test_torchscript_that_writes_files_is_refused(tmp_path, victim):
    cases = torchscript_attacks(tmp_path / "ts", victim.marker)
    assert len(cases) == 5
    commands = [("inspect", c.path, "--input-shape", "x=1,4") for c in cases]
    commands += [("convert", c.path, "--to", "onnx", "-o", tmp_path / f"{c.path.stem}.onnx") for c in cases[:2]]
    for command, result in zip(commands, _all(commands), strict=True):
        assert result.returncode == 4, (command, result.stderr[-1500:])
        assert command[1].name in _one_error_line(result)
    assert not list(victim.path.glob("MARKER*")) and not list(tmp_path.glob("*.onnx"))


@pytest.mark.slow
def test_torchscript_trust_lifts_the_refusal_loudly(tmp_path):
    marker = tmp_path / "MARKER"
    load, run = (c.path for c in torchscript_attacks(tmp_path / "ts", marker)[:2])
    result = run_edgekit("--trust", "inspect", load, "--input-shape", "x=1,4")
    assert result.returncode == 0, result.stderr[-1500:]
    assert "edgekit: warning: --trust:" in result.stderr and "from_file" in result.stderr
    assert Path(str(marker) + ".load").exists(), "the user vouched for it: its __setstate__ ran"


@pytest.mark.slow
def test_keras_pickle_layers_stay_refused_with_trust(tmp_path, victim):
    cases = keras_pickle_layers(tmp_path / "keras", victim.marker)
    commands = [(*trust, "inspect", c.path) for c in cases for trust in ((), ("--trust",))]
    commands.append(("--trust", "convert", cases[0].path, "--to", "tflite", "-o", tmp_path / "x.tflite"))
    for command, result in zip(commands, _all(commands), strict=True):
        assert result.returncode == 4, (command, result.stderr[-1500:])
        line = _one_error_line(result)
        assert "TorchModuleWrapper" in line and "never unpickles" in line
    assert not victim.marker.exists() and not (tmp_path / "x.tflite").exists()


@pytest.mark.slow
def test_onnx_external_data_hidden_in_functions_and_attributes(tmp_path, victim):
    cases = onnx_hidden_escapes(tmp_path / "onnx", victim.path / "secret.bin")
    results = _all([("inspect", c.path) for c in cases])
    for case, result in zip(cases, results, strict=True):
        assert result.returncode == 4, (case.kind, result.stderr[-1500:])
        assert "hardlink" in _one_error_line(result)
    trusted = run_edgekit("--trust", "inspect", cases[0].path)  # lifted: edgekit's containment no longer refuses
    assert trusted.returncode in (0, 3) and "hardlink" not in trusted.stderr


@pytest.mark.slow
def test_pickles_hiding_globals_from_a_last_two_strings_scan(tmp_path, victim):
    cases = pickle_evasions(tmp_path / "pickles", victim.marker)
    commands = [("inspect", c.path) for c in cases] + [("--trust", "inspect", cases[0].path)]
    for command, result in zip(commands, _all(commands), strict=True):
        assert result.returncode == 4, (command, result.stderr[-1500:])
        assert "os.system" in _one_error_line(result)
    assert not victim.marker.exists()


def test_zip_with_two_members_of_one_name_is_refused(samples, tmp_path):
    """zipfile reads the last of two same-named members, torch the first: a scan could pass one and the
    framework load the other. The archive is malformed (exit 3) before any scan or load."""
    import zipfile

    path = tmp_path / "twice.pt"
    with zipfile.ZipFile(samples[Format.TORCH_PICKLE]) as original, zipfile.ZipFile(path, "w") as copy:
        for info in original.infolist():
            copy.writestr(info, original.read(info))
        data_pkl = next(n for n in original.namelist() if n.endswith("data.pkl"))
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name: that is the attack
            copy.writestr(data_pkl, b"\x80\x02c__builtin__\nexec\nq\x00.")
    result = run_edgekit("inspect", path)
    assert result.returncode == 3 and "appears twice" in _one_error_line(result)


@pytest.mark.slow
def test_bundle_carrying_a_malicious_pt2_as_its_model(samples, tmp_path, victim):
    """The red-team bundle: a crafted .pt2 (the stealth variant, which loaded and exited 0 before) stored as
    model.tflite with every sha256 rewritten. --verify refuses it from its bytes, before any runtime."""
    from test_bundle_security import forge

    genuine = tmp_path / "genuine.zip"
    assert run_edgekit("package", samples[Format.TFLITE], "-o", genuine, "--bench-seconds", "0").returncode == 0
    stealth = next(c.path for c in pt2_attacks(samples[Format.TORCH_EXPORTED], tmp_path / "pt2", victim.marker)
                   if c.path.stem == "pt2-stealth-parameter")
    bundle = forge(genuine, tmp_path / "evil.zip", replace={"model.tflite": stealth.read_bytes()})
    for args in ((), ("--trust",)):
        result = run_edgekit(*args, "package", "--verify", bundle)
        assert result.returncode == 4 and "holds a torch-exported program" in _one_error_line(result)
    deep = forge(genuine, tmp_path / "deep.zip", manifest_edit=lambda m: m.update(nest=_nested(500)))
    result = run_edgekit("package", "--verify", deep)
    assert result.returncode == 3 and "nested deeper" in _one_error_line(result)
    assert not victim.marker.exists()


def _nested(levels: int) -> dict:
    node: dict = {}
    for _ in range(levels):
        node = {"a": node}
    return node
