"""Models are programs: the loading policy, proven on generated corpora through the real CLI.

Malformed files (≥ 500 across the nine formats) → exit 3 (or 5 when a worker crashed) with one error
line and no traceback; malicious canaries (≥ 40: the first corpus plus every class of the red-team run,
tests/redteam.py) → exit 4 and their marker file never appears.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
from pathlib import Path

import pytest
from conftest import run_edgekit
from corpora import canaries, malformed_corpus, onnx_escapes, onnx_past_end
from redteam import keras_pickle_layers, onnx_hidden_escapes, pickle_evasions, pt2_attacks, torchscript_attacks

from edgekit.toolkit.contract.errors import InvalidInputError, UnsafeModelError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.safety.policy import ExternalRef, check_external_data, check_keras_config, external_refs


def _inspect_all(paths: list[Path], *extra: str) -> dict[Path, object]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(paths, pool.map(lambda p: run_edgekit(*extra, "inspect", p, timeout=600), paths),
                        strict=True))


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("edgekit:")]


@pytest.mark.slow
def test_malformed_corpus_exits_3_with_one_line_and_no_traceback(samples, tmp_path):
    cases = malformed_corpus(samples, tmp_path / "malformed")
    assert len(cases) >= 500
    assert {c.path.name.split(".")[0] for c in cases} >= {f.value for f in Format if f is not Format.TORCH_MODULE}
    results = _inspect_all([c.path for c in cases])
    exits = collections.Counter()
    problems = []
    for case in cases:
        result = results[case.path]
        exits[result.returncode] += 1
        lines = _error_lines(result.stderr)
        if result.returncode not in (3, 5) or len(lines) != 1 or "Traceback" in result.stderr \
                or case.path.name not in lines[0]:
            problems.append((case.path.name, case.kind, result.returncode, lines[:2]))
    print(f"malformed corpus: {len(cases)} files, exits {dict(exits)}")
    assert not problems, problems[:10]


@pytest.mark.slow
def test_canaries_are_refused_and_never_run(samples, tmp_path):
    marker = tmp_path / "MARKER"
    outside = tmp_path / "secret" / "data.bin"
    outside.parent.mkdir()
    outside.write_bytes(os.urandom(64))
    cases = canaries(tmp_path / "canaries", marker)
    cases += onnx_escapes(tmp_path / "onnx", outside)
    cases += pt2_attacks(samples[Format.TORCH_EXPORTED], tmp_path / "pt2", marker)
    cases += torchscript_attacks(tmp_path / "torchscript", marker)
    cases += keras_pickle_layers(tmp_path / "keras-pickles", marker)
    cases += onnx_hidden_escapes(tmp_path / "onnx-hidden", outside)
    cases += pickle_evasions(tmp_path / "pickles", marker)
    assert len(cases) >= 40
    results = _inspect_all([c.path for c in cases])
    problems = [(c.path.name, results[c.path].returncode, _error_lines(results[c.path].stderr)[:1])
                for c in cases if results[c.path].returncode != 4 or len(_error_lines(results[c.path].stderr)) != 1]
    assert not problems, problems
    assert not list(tmp_path.glob("MARKER*")), "a canary's code ran"
    # converting or validating them is refused the same way
    keras_lambda = next(c.path for c in cases if c.path.name == "keras-lambda.keras")
    assert run_edgekit("convert", keras_lambda, "--to", "tflite", "-o", tmp_path / "x.tflite").returncode == 4
    pickle_case = next(c.path for c in cases if c.path.name == "pickle-exec-p2.pt")
    assert run_edgekit("validate", pickle_case, pickle_case).returncode == 4
    assert not marker.exists() and not (tmp_path / "x.tflite").exists()
    print(f"canaries: {len(cases)} files, all exit 4, marker absent")


@pytest.mark.slow
def test_trust_lifts_the_keras_refusal_for_a_benign_lambda(tmp_path):
    import keras

    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    refused = run_edgekit("inspect", path)
    assert refused.returncode == 4 and "Lambda layer 'double'" in refused.stderr and "--trust" in refused.stderr
    trusted = run_edgekit("--trust", "inspect", path)
    assert trusted.returncode == 0, trusted.stderr[-1500:]


@pytest.mark.slow
def test_onnx_escape_with_trust_and_past_end_even_with_trust(tmp_path):
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"\0" * 64)
    dotdot = next(c.path for c in onnx_escapes(tmp_path / "onnx", outside) if c.path.parent.name == "dotdot")
    assert run_edgekit("inspect", dotdot).returncode == 4
    trusted = run_edgekit("--trust", "inspect", dotdot)
    # edgekit's refusal is lifted; ONNX Runtime has its own containment check and refuses the file (exit 3)
    assert trusted.returncode in (0, 3) and "climbs out" not in trusted.stderr
    past_end = onnx_past_end(tmp_path / "past").path
    for args in ((), ("--trust",)):
        result = run_edgekit(*args, "inspect", past_end)
        assert result.returncode == 3 and "past the end" in result.stderr


def test_torch_force_no_weights_only_load_is_refused(samples, monkeypatch):
    result = run_edgekit("inspect", samples[Format.TORCH_EXPORTED],
                         env_extra={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert result.returncode == 4 and "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in result.stderr


# -- pure policy functions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("node", "found"), [
    ({"class_name": "Lambda", "config": {"name": "f"}}, "Lambda layer 'f'"),
    ({"class_name": "Dense", "module": "os", "config": {"name": "d"}}, "from module 'os'"),
    ({"class_name": "X", "registered_name": "Custom>X"}, "custom object 'Custom>X'"),
    ({"class_name": "__lambda__", "config": {"code": "AAAA"}}, "serialised Python function"),
])
def test_keras_config_findings(node, found):
    config = {"class_name": "Functional", "module": "keras", "config": {"layers": [{"nested": [node]}]}}
    findings = check_keras_config(config)
    assert len(findings) == 1 and found in findings[0]


def test_plain_keras_config_has_no_findings():
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None, "config": {"layers": [
        {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
         "config": {"name": "d", "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                                        "config": {"seed": None}, "registered_name": None}}}]}}
    assert check_keras_config(config) == []


def test_external_refs_parse_and_reject_bad_numbers():
    (ref,) = external_refs([("w", [("location", "w.bin"), ("offset", "4"), ("length", "8")])])
    assert ref == ExternalRef("w", "w.bin", 4, 8)
    for bad in ("-1", "x", "1e3"):
        with pytest.raises(InvalidInputError):
            external_refs([("w", [("location", "w.bin"), ("offset", bad)])])


def test_external_data_containment(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "w.bin").write_bytes(b"\0" * 32)
    (tmp_path / "outside.bin").write_bytes(b"\0" * 32)
    (model_dir / "link.bin").symlink_to(tmp_path / "outside.bin")
    (model_dir / "inner").mkdir()
    (model_dir / "inner" / "ok.bin").write_bytes(b"\0" * 8)
    check_external_data(model_dir, [ExternalRef("w", "w.bin", 0, 32), ExternalRef("v", "inner/ok.bin")],
                        trust=False)
    refused = {"../outside.bin": "'..'", str(tmp_path / "outside.bin"): "absolute", "link.bin": "symlink",
               "inner/../../outside.bin": "'..'", "C:\\\\evil.bin": "absolute"}
    for location, reason in refused.items():
        with pytest.raises(UnsafeModelError, match=reason):
            check_external_data(model_dir, [ExternalRef("w", location)], trust=False)
    os.link(tmp_path / "outside.bin", model_dir / "hard.bin")
    with pytest.raises(UnsafeModelError, match="hardlink"):
        check_external_data(model_dir, [ExternalRef("w", "hard.bin")], trust=False)
    for ref in (ExternalRef("w", "w.bin", 30, 8), ExternalRef("w", "w.bin", 64, None), ExternalRef("w", "nope.bin"),
                ExternalRef("w", "")):
        with pytest.raises(InvalidInputError):
            check_external_data(model_dir, [ref], trust=True)
    check_external_data(model_dir, [ExternalRef("w", "link.bin", 0, 32)], trust=True)
