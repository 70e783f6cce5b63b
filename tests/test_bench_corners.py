"""Bench corners: a given device against a profile's, and OSes without CPU-affinity calls."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console

import edgekit.render as render
import edgekit.targets.bench as bench_module
from edgekit.targets.bench import BenchOptions, BenchReport, LatencyStats, bench, pinned, resolve_device
from edgekit.targets.profiles import PROFILES
from edgekit.toolkit import sysinfo
from edgekit.toolkit.contract import errors
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.options import Device
from edgekit.toolkit.sysinfo import CudaInfo, cpu_info, usable_cpu_count

QUICK = BenchOptions(warmup=1, runs=5, min_seconds=0)
OVERRIDE_NOTE = "profile='cuda' asks for device cuda; device='cpu' was given and is used"


@pytest.fixture(autouse=True)
def speaks_python(monkeypatch):
    """These tests call the library: messages name parameters, not flags (whatever ran before)."""
    monkeypatch.setitem(errors._SPEAKING, "cli", False)


@pytest.fixture
def recorded(monkeypatch):
    """bench() with bench_one replaced by a recorder of the options each model would run with (and the profile's
    compat check, which would read the models, by nothing)."""
    calls = []

    def fake_bench_one(path, options, *, data=None, profile=None, input_ranges=None, ranges_used=None):
        calls.append(options)
        stats = LatencyStats.from_samples(np.full(4, 1e-3))
        return bench_module.BenchResult(str(path), "onnx", "Fake", options.device.value, options.threads, True,
                                        None, 0.0, 0.0, 0, 0.0, stats, 0, 0, "none", "seeded random")

    monkeypatch.setattr(bench_module, "bench_one", fake_bench_one)
    monkeypatch.setattr(bench_module, "profile_compat", lambda models, profile: {})
    return calls


def _cuda(monkeypatch, usable: bool) -> None:
    info = CudaInfo(True, 1, "12.4", names=("Fake GPU",)) if usable else CudaInfo(False, reason="no GPU (faked)")
    monkeypatch.setattr(bench_module, "cuda_info", lambda: info)


# -- a given device against the profile's ------------------------------------------------------------------

def test_given_device_beats_the_profile_and_is_noted(recorded, monkeypatch):
    _cuda(monkeypatch, usable=False)  # never consulted: the given device is CPU
    report = bench(["m.onnx"], options=QUICK, profile=PROFILES["cuda"], device="cpu")
    assert [o.device for o in recorded] == [Device.CPU]
    assert report.notes == [OVERRIDE_NOTE]
    assert report.options["device"] == "cpu" and report.options["target"] == "cuda"
    assert report.results[0].device == "cpu"


def test_profile_device_applies_without_a_given_device(recorded, monkeypatch):
    _cuda(monkeypatch, usable=True)
    report = bench(["m.onnx"], options=QUICK, profile=PROFILES["cuda"])
    assert [o.device for o in recorded] == [Device.CUDA] and report.notes == []
    assert report.options["device"] == "cuda"


def test_profile_cuda_without_cuda_says_so_in_profile_terms(recorded, monkeypatch):
    _cuda(monkeypatch, usable=False)
    with pytest.raises(InvalidInputError, match=r"profile='cuda' benches on CUDA, .*no GPU \(faked\)") as caught:
        bench(["m.onnx"], options=QUICK, profile=PROFILES["cuda"])
    assert "device='cpu'" in caught.value.hint and recorded == []


def test_same_device_as_the_profile_is_not_noted(recorded, monkeypatch):
    _cuda(monkeypatch, usable=True)
    assert bench(["m.onnx"], options=QUICK, profile=PROFILES["cuda"], device=Device.CUDA).notes == []
    assert bench(["m.onnx"], options=QUICK, profile=PROFILES["mobile-cpu-4t"], device="cpu").notes == []
    assert [o.device for o in recorded] == [Device.CUDA, Device.CPU]


def test_given_device_without_a_profile_replaces_the_options_device(recorded):
    bench(["m.onnx"], options=QUICK, device="cuda")
    bench(["m.onnx"], options=BenchOptions(device=Device.CUDA, min_seconds=0))
    bench(["m.onnx"], options=QUICK)
    assert [o.device for o in recorded] == [Device.CUDA, Device.CUDA, Device.CPU]


def test_cpu_profile_overridden_to_cuda_is_noted():
    options, notes = resolve_device(QUICK, PROFILES["mobile-cpu-4t"], Device.CUDA)
    assert options.device is Device.CUDA
    assert notes == ["profile='mobile-cpu-4t' asks for device cpu; device='cuda' was given and is used"]


def test_unknown_device_is_a_usage_error(recorded):
    with pytest.raises(UsageError, match="device='tpu' is not a device") as caught:
        bench(["m.onnx"], device="tpu")
    assert caught.value.hint == "devices: cpu, cuda" and recorded == []


def test_the_note_names_flags_under_the_cli(monkeypatch):
    monkeypatch.setitem(errors._SPEAKING, "cli", True)
    _options, notes = resolve_device(QUICK, PROFILES["cuda"], Device.CPU)
    assert notes == ["--target cuda asks for device cuda; --device cpu was given and is used"]


def test_real_onnx_bench_on_cpu_under_the_cuda_profile(samples):
    report = bench([samples[Format.ONNX]], options=QUICK, profile=PROFILES["cuda"], device="cpu")
    (only,) = report.results
    assert only.device == "cpu" and only.stats.runs >= 5 and report.notes == [OVERRIDE_NOTE]


def test_notes_round_trip_and_older_reports_load():
    stats = LatencyStats.from_samples(np.full(4, 1e-3))
    result = bench_module.BenchResult("m.onnx", "onnx", "OnnxRuntime", "cpu", 1, True, None, 0.01, 0.002, 1, 0.0,
                                      stats, 0, 10, "none", "seeded random")
    report = BenchReport([result], {}, {"runs": 4}, [OVERRIDE_NOTE])
    data = report.to_dict()
    assert data["notes"] == [OVERRIDE_NOTE] and BenchReport.from_dict(data) == report
    del data["notes"]  # a version-1 report written before notes existed
    assert BenchReport.from_dict(data).notes == []


def test_render_bench_prints_each_note(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=out, width=200, highlight=False, soft_wrap=True))
    stats = LatencyStats.from_samples(np.full(4, 1e-3))
    result = bench_module.BenchResult("m.onnx", "onnx", "OnnxRuntime", "cpu", 1, True, None, 0.01, 0.002, 1, 0.0,
                                      stats, 0, 10, "none", "seeded random")
    render.render_bench(BenchReport([result], {}, {}, [OVERRIDE_NOTE, "second [bracketed] note"]))
    lines = [line.strip() for line in out.getvalue().splitlines()]
    assert f"note: {OVERRIDE_NOTE}" in lines and "note: second [bracketed] note" in lines


# -- OSes without sched_getaffinity / sched_setaffinity (macOS) ------------------------------------------

def test_usable_cpus_fall_back_to_cpu_count(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert sysinfo.usable_cpus() is None
    assert usable_cpu_count() == (os.cpu_count() or 1)
    assert cpu_info("").usable_cores == (os.cpu_count() or 1)
    assert not sysinfo.can_pin_cpus()


def test_usable_cpus_follow_the_affinity_mask_where_there_is_one():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("this OS has no sched_getaffinity")
    assert usable_cpu_count() == len(os.sched_getaffinity(0)) == cpu_info("").usable_cores
    assert PROFILES["desktop-cpu"].threads == usable_cpu_count()


@pytest.mark.parametrize("missing", ["sched_setaffinity", "sched_getaffinity"])
def test_pinning_without_the_affinity_api_is_a_usage_error(monkeypatch, missing):
    monkeypatch.delattr(os, missing, raising=False)
    with pytest.raises(UsageError, match=r"cpus: CPU pinning needs sched_setaffinity \(Linux\)"):
        BenchOptions(cpus=(0,))
    with pytest.raises(UsageError, match="CPU pinning needs sched_setaffinity"), pinned((0,)):
        pass
    BenchOptions(cpus=None)  # no pinning asked: nothing to refuse
    with pinned(None):
        pass


def test_profiles_import_without_sched_getaffinity():
    """The desktop-cpu profile is built at import time: it must not need the Linux-only call."""
    code = ("import os; del os.sched_getaffinity; del os.sched_setaffinity\n"
            "from edgekit.targets.profiles import PROFILES\n"
            "print(PROFILES['desktop-cpu'].threads, os.cpu_count())")
    if not hasattr(os, "sched_getaffinity"):
        code = code.replace("del os.sched_getaffinity; del os.sched_setaffinity", "pass")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    threads, count = done.stdout.split()
    assert threads == count
