"""The library seam: the README's Python chain runs, errors speak in parameter names, trust and limits are
parameters, results map to exit codes from one place, and --json means one thing everywhere."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import run_edgekit, strict_json

import edgekit
from edgekit.toolkit.contract.errors import ExitCode, UnsafeModelError, UsageError
from edgekit.toolkit.contract.formats import Format


def test_the_readme_chain_runs_in_python(samples, tmp_path):
    """What the README's Python section shows, in a fresh interpreter (no framework imported beforehand, so
    the calls run in the isolated worker as the CLI's do)."""
    script = textwrap.dedent(f"""
        import edgekit
        result = edgekit.convert({str(samples[Format.TORCH_EXPORTED])!r}, to="onnx",
                                 output={str(tmp_path / "tiny.onnx")!r})
        report = edgekit.validate({str(samples[Format.TORCH_EXPORTED])!r}, result.artifact.path, data="random")
        bench = edgekit.bench([result.artifact.path], threads=[1], min_seconds=0.05, runs=5)
        print(result.passed, report.passed, report.verdict, bench.results[0].stats.p50 > 0,
              edgekit.exit_code(report))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-5:] == ["True", "True", "PASS", "True", "0"]


def test_library_errors_name_parameters_not_flags(samples, tmp_path):
    with pytest.raises(UsageError, match=r"^to='keras': not one of tflite, onnx"):
        edgekit.convert(samples[Format.ONNX], to="keras")
    with pytest.raises(UsageError, match="quantize='int3'"):
        edgekit.convert(samples[Format.ONNX], to="onnx", quantize="int3")
    with pytest.raises(UsageError, match=r"^warmup must be ≥ 0"):
        edgekit.bench([samples[Format.ONNX]], warmup=-1)
    with pytest.raises(UsageError, match=r"atol must be a finite number"):
        edgekit.validate(samples[Format.ONNX], samples[Format.ONNX], atol=-1.0)
    with pytest.raises(UsageError, match=r"timeout must be > 0"):
        edgekit.inspect_model(samples[Format.ONNX], timeout=0)
    # the same mistake on the command line names the flag
    result = run_edgekit("bench", samples[Format.ONNX], "--warmup", "-1")
    assert result.returncode == 2 and "--warmup must be ≥ 0" in result.stderr


@pytest.mark.slow
def test_trust_is_a_parameter(tmp_path):
    import keras

    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(UnsafeModelError, match="Lambda layer 'double'"):
        edgekit.inspect_model(path, isolate=False)
    report = edgekit.inspect_model(path, trust=True, isolate=False)
    assert report.passed and report.io_spec.inputs[0].name == "x"
    with pytest.raises(UnsafeModelError):  # trust does not stick after the call
        edgekit.inspect_model(path, isolate=False)


def test_exit_codes_come_from_one_place():
    from edgekit.api import exit_code
    from edgekit.toolkit.reports import InspectReport

    class Verdict:
        def __init__(self, passed: bool) -> None:
            self.passed = passed

    assert exit_code(Verdict(True)) == 0 and exit_code(Verdict(False)) == ExitCode.CHECK_FAILED
    assert InspectReport.failure_exit_code is ExitCode.BACKEND_FAILURE


def test_json_prints_and_json_out_writes(samples, tmp_path):
    onnx = samples[Format.ONNX]
    printed = run_edgekit("validate", onnx, onnx, "--data", "random", "--samples", "4", "--json")
    assert printed.returncode == 0, printed.stderr[-1500:]
    assert strict_json(printed.stdout)["verdict"] == "PASS"
    written = tmp_path / "bench.json"
    result = run_edgekit("bench", onnx, "--min-seconds", "0.05", "--runs", "5", "--json-out", written)
    assert result.returncode == 0 and strict_json(written.read_text())["results"]
    printed = run_edgekit("bench", onnx, "--min-seconds", "0.05", "--runs", "5", "--json")
    assert result.returncode == 0 and strict_json(printed.stdout)["results"]


def test_the_old_json_file_spelling_still_works_with_a_deprecation_line(samples, tmp_path):
    onnx = samples[Format.ONNX]
    report = tmp_path / "parity.json"
    result = run_edgekit("validate", onnx, onnx, "--data", "random", "--samples", "4", "--json", report)
    assert result.returncode == 0, result.stderr[-1500:]
    assert "deprecated: use --json-out FILE" in result.stderr and strict_json(report.read_text())["verdict"] == "PASS"


def test_the_public_names_resolve_lazily():
    code = ("import sys, edgekit; names = [getattr(edgekit, n) for n in edgekit.__all__]; "
            "print([m for m in ('torch', 'tensorflow', 'onnxruntime', 'executorch') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == "[]"
