"""End to end: `edgekit bench` on every runtime, side by side, JSON, and bad input."""

import os

import pytest
from conftest import strict_json
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.targets.bench import BenchReport
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.sysinfo import cuda_info

runner = CliRunner()
QUICK = ["--warmup", "2", "--runs", "20", "--min-seconds", "0"]
RUNNABLE = [f for f in Format if f not in (Format.TORCH_MODULE, Format.TORCH_PICKLE)]


def bench(*args):
    return runner.invoke(app, ["bench", *map(str, args), *QUICK])


@pytest.mark.parametrize("fmt", RUNNABLE, ids=str)
def test_every_runtime_benches_a_tiny_model(samples, tmp_path, fmt):
    report_file = tmp_path / "bench.json"
    result = bench(samples[fmt], "--threads", "1", "--json-out", report_file)
    assert result.exit_code == 0, result.output
    report = BenchReport.from_dict(strict_json(report_file.read_text()))
    (only,) = report.results
    assert only.format == fmt.value and only.stats.runs >= 20 and only.stats.p50 > 0
    assert only.load_seconds > 0 and only.first_inference_seconds > 0 and only.file_size_bytes > 0
    assert only.stats.min <= only.stats.p50 <= only.stats.p90 <= only.stats.p99 <= only.stats.max
    assert report.environment["cpu"]["isa_flags"] is not None and report.environment["versions"]["edgekit"]
    assert "Latency" in result.stdout


def test_side_by_side_with_speedup_and_thread_counts(samples, tmp_path):
    report_file = tmp_path / "bench.json"
    result = bench(samples[Format.TFLITE], samples[Format.ONNX], "--threads", "1,2", "--json-out", report_file)
    assert result.exit_code == 0, result.output
    data = strict_json(report_file.read_text())
    assert [(r["format"], r["threads"]) for r in data["results"]] == [
        ("tflite", 1), ("tflite", 2), ("onnx", 1), ("onnx", 2)]
    assert data["speedup_vs_first"][0] == 1.0 and len(data["speedup_vs_first"]) == 4
    assert all(r["threads_applied"] for r in data["results"])
    tflite = data["results"][0]["delegation"]
    assert tflite["xnnpack_partitions"] >= 1 and 0 < tflite["delegated_share"] <= 1
    assert data["results"][2]["delegation"]["nodes_per_provider"]["CPUExecutionProvider"] >= 1


def test_real_data_is_preferred(tmp_path):
    out = tmp_path / "m.pt2"
    trained = runner.invoke(app, ["train", "--framework", "torch", "--arch", "mlp", "--epochs", "1", "-o", str(out)])
    assert trained.exit_code == 0, trained.output
    report_file = tmp_path / "b.json"
    assert bench(out, "--json-out", report_file).exit_code == 0
    assert strict_json(report_file.read_text())["results"][0]["input_source"] == "test_x[0] of m.pt2.data.npz"


def test_target_profile_applies_threads(samples, tmp_path):
    report_file = tmp_path / "b.json"
    assert bench(samples[Format.TFLITE], "--target", "mobile-cpu-1t", "--json-out", report_file).exit_code == 0
    data = strict_json(report_file.read_text())
    assert data["options"]["target"] == "mobile-cpu-1t" and data["results"][0]["threads"] == 1


@pytest.mark.parametrize("fmt", [Format.ONNX, Format.TFLITE], ids=str)
def test_given_device_beats_the_profile(samples, tmp_path, fmt):
    report_file = tmp_path / "b.json"
    result = bench(samples[fmt], "--target", "cuda", "--device", "cpu", "--json-out", report_file)
    assert result.exit_code == 0, result.output
    note = "--target cuda asks for device cuda; --device cpu was given and is used"
    assert f"note: {note}" in result.stdout
    data = strict_json(report_file.read_text())
    assert data["notes"] == [note] and data["options"]["device"] == "cpu" and data["options"]["target"] == "cuda"
    assert [r["device"] for r in data["results"]] == ["cpu"]


def test_no_note_without_a_profile(samples, tmp_path):
    report_file = tmp_path / "b.json"
    result = bench(samples[Format.ONNX], "--device", "cpu", "--json-out", report_file)
    assert result.exit_code == 0, result.output
    assert "note:" not in result.stdout and strict_json(report_file.read_text())["notes"] == []


@pytest.mark.skipif(cuda_info().usable, reason="CUDA is usable here")
def test_cuda_profile_without_gpu_exits_3(samples):
    """Without --device the profile's device applies: CUDA, which is not usable here."""
    _refused(bench(samples[Format.ONNX], "--target", "cuda"), 3, "--target cuda benches on CUDA, which is not usable")
    assert "add --device cpu" in bench(samples[Format.ONNX], "--target", "cuda").stderr


def test_cpu_pinning(samples, tmp_path):
    report_file = tmp_path / "b.json"
    assert bench(samples[Format.ONNX], "--cpus", "0", "--json-out", report_file).exit_code == 0
    assert strict_json(report_file.read_text())["results"][0]["cpus"] == [0]


def test_cpu_pinning_without_sched_setaffinity_is_a_usage_error(samples, monkeypatch):
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    _refused(bench(samples[Format.ONNX], "--cpus", "0"), 2, "--cpus: CPU pinning needs sched_setaffinity (Linux)")


def _refused(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_unknown_profile(samples):
    _refused(bench(samples[Format.ONNX], "--target", "toaster"), 2, "unknown --target 'toaster'")


@pytest.mark.parametrize("threads", ["0", "-1", "1,0"])
def test_threads_must_be_positive(samples, threads):
    _refused(bench(samples[Format.ONNX], "--threads", threads), 2, "threads must be ≥ 1")


def test_model_that_cannot_load(tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    _refused(bench(broken), 3, "broken.tflite")


def test_profile_refuses_a_precision_it_does_not_run(samples, tmp_path):
    converted = runner.invoke(app, ["convert", str(samples[Format.KERAS]), "--to", "tflite", "-o",
                                    str(tmp_path / "f.tflite")])
    assert converted.exit_code == 0, converted.output
    _refused(bench(tmp_path / "f.tflite", "--target", "mcu-int8"), 2, "mcu-int8 runs int8, int8-io models")


def test_existing_report_needs_force(samples, tmp_path):
    report_file = tmp_path / "b.json"
    report_file.write_text("keep me")
    _refused(bench(samples[Format.ONNX], "--json-out", report_file), 2, "already exists")
    assert report_file.read_text() == "keep me"


@pytest.mark.skipif(cuda_info().usable, reason="CUDA is usable here")
def test_cuda_without_gpu_exits_3(samples):
    _refused(bench(samples[Format.TORCHSCRIPT], "--device", "cuda"), 3, "CUDA is not usable here")


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_info().usable, reason="needs CUDA")
def test_cuda_bench(samples, tmp_path):
    report_file = tmp_path / "b.json"
    result = bench(samples[Format.TORCHSCRIPT], samples[Format.TORCH_EXPORTED], "--device", "cuda",
                   "--json-out", report_file)
    assert result.exit_code == 0, result.output
    assert all(r["device"] == "cuda" for r in strict_json(report_file.read_text())["results"])


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_info().usable, reason="needs CUDA")
def test_cuda_profile_benches_onnx_with_io_binding(samples, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)")
    report_file = tmp_path / "b.json"
    result = bench(samples[Format.ONNX], "--target", "cuda", "--json-out", report_file)
    assert result.exit_code == 0, result.output
    data = strict_json(report_file.read_text())
    assert data["notes"] == [] and data["results"][0]["device"] == "cuda"
    assert "CUDAExecutionProvider" in data["results"][0]["delegation"]["providers"]
