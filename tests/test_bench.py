"""Unit tests of the timing harness and statistics (no framework)."""

import itertools

import numpy as np
import pytest
from conftest import strict_json

from edgekit.targets.bench import (
    MAX_CV,
    BenchOptions,
    BenchReport,
    BenchResult,
    LatencyStats,
    time_inference,
)
from edgekit.targets.profiles import PROFILES, profile
from edgekit.toolkit import jsonio
from edgekit.toolkit.contract import errors
from edgekit.toolkit.contract.errors import UsageError


@pytest.fixture(autouse=True)
def speaks_python(monkeypatch):
    """Library calls: messages name parameters (``runs``), not flags (``--runs``)."""
    monkeypatch.setitem(errors._SPEAKING, "cli", False)


class FakeClock:
    """perf_counter_ns stand-in: each call() advances time by the next scripted duration."""

    def __init__(self, durations_ns):
        self.now = 0
        self.durations = iter(durations_ns)

    def clock(self) -> int:
        return self.now

    def call(self) -> None:
        self.now += next(self.durations)


def test_runs_at_least_n_and_at_least_min_seconds():
    fake = FakeClock(itertools.repeat(1_000_000))  # 1 ms per call
    timing = time_inference(fake.call, BenchOptions(warmup=3, runs=10, min_seconds=0.05), clock=fake.clock)
    assert len(timing.samples) == 50  # 10 runs would take 10 ms; 50 ms needs 50
    assert timing.first_inference == pytest.approx(0.001) and timing.warmup_seconds == pytest.approx(0.003)
    fake = FakeClock(itertools.repeat(1_000_000))
    assert len(time_inference(fake.call, BenchOptions(warmup=0, runs=80, min_seconds=0.01),
                              clock=fake.clock).samples) == 80


def test_max_seconds_caps_a_slow_model():
    fake = FakeClock(itertools.repeat(2_000_000_000))  # 2 s per call
    timing = time_inference(fake.call, BenchOptions(warmup=0, runs=100, min_seconds=0, max_seconds=5),
                            clock=fake.clock)
    assert len(timing.samples) == 3


def test_latency_stats_hand_computed():
    stats = LatencyStats.from_samples(np.array([1.0, 2.0, 3.0, 4.0, 5.0]) * 1e-3)
    assert stats.p50 == pytest.approx(3e-3) and stats.mean == pytest.approx(3e-3)
    assert stats.min == pytest.approx(1e-3) and stats.max == pytest.approx(5e-3)
    assert stats.std == pytest.approx(np.std([1, 2, 3, 4, 5]) * 1e-3)
    assert stats.throughput == pytest.approx(1 / 3e-3)
    assert stats.block_spread == pytest.approx(4.0)  # one sample per block: 5 ms / 1 ms − 1


def test_steady_runtime_is_stable():
    rng = np.random.default_rng(0)
    stats = LatencyStats.from_samples(1e-3 * (1 + 0.01 * rng.standard_normal(1000)))
    assert stats.instability() == []


def test_noisy_runtime_is_flagged_unstable():
    """A deliberately noisy runtime: latency alternates between 1 ms and 3 ms at random."""
    rng = np.random.default_rng(0)
    durations = (rng.choice([1_000_000, 3_000_000], size=2000)).tolist()
    fake = FakeClock(durations)
    timing = time_inference(fake.call, BenchOptions(warmup=0, runs=500, min_seconds=0), clock=fake.clock)
    stats = LatencyStats.from_samples(timing.samples)
    assert stats.cv > MAX_CV
    assert any("coefficient of variation" in reason for reason in stats.instability())


def test_drifting_runtime_is_flagged_by_block_medians():
    """Thermal throttling: every run is steady, but the second half is 30% slower."""
    samples = np.concatenate([np.full(500, 1e-3), np.full(500, 1.3e-3)])
    reasons = LatencyStats.from_samples(samples).instability()
    assert any("block medians" in reason for reason in reasons)


def test_outliers_do_not_dominate_the_cv():
    samples = np.full(1000, 1e-3)
    samples[::200] = 50e-3  # five interrupt-length hiccups
    stats = LatencyStats.from_samples(samples)
    assert stats.cv < MAX_CV and stats.max == pytest.approx(50e-3) and stats.std > 1e-3


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"threads": 0}, "threads must be ≥ 1"), ({"runs": 0}, "^runs must be ≥ 1"), ({"warmup": -1}, "^warmup must"),
     ({"min_seconds": -1}, "^min_seconds must"), ({"cpus": (9999,)}, r"^cpus=\[9999\] is not a subset")],
)
def test_bad_options(kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        BenchOptions(**kwargs)


def test_bad_options_name_flags_under_the_cli(monkeypatch):
    monkeypatch.setitem(errors._SPEAKING, "cli", True)
    for kwargs, flag in (({"runs": 0}, "--runs must"), ({"warmup": -1}, "--warmup must"),
                         ({"min_seconds": -1}, "--min-seconds must"), ({"cpus": (9999,)}, r"--cpus \[9999\]")):
        with pytest.raises(UsageError, match=flag):
            BenchOptions(**kwargs)
    with pytest.raises(UsageError) as caught:
        BenchOptions(threads=0)
    assert caught.value.hint == "e.g. --threads 1,2"


def test_profiles():
    assert PROFILES["mobile-cpu-1t"].threads == 1 and PROFILES["mobile-cpu-4t"].threads == 4
    with pytest.raises(UsageError, match="unknown profile 'raspberry-pi'.*profiles: mobile-cpu-1t"):
        profile("raspberry-pi")
    with pytest.raises(UsageError, match="profile='mcu-int8' runs int8, int8-io models"):
        PROFILES["mcu-int8"].check_precision("m.tflite", "none")
    PROFILES["mcu-int8"].check_precision("m.tflite", "int8")
    PROFILES["mcu-int8"].check_precision("m.tflite", "unknown")


def test_report_json_round_trip():
    stats = LatencyStats.from_samples(np.array([1.0, 1.1, 0.9, 1.0]) * 1e-3)
    result = BenchResult("m.tflite", "tflite", "LiteRTRuntime", "cpu", 2, True, [0], 0.01, 0.002, 10, 0.01, stats,
                         1024, 2048, "int8", "random", {"xnnpack_partitions": 1}, ["noisy"])
    report = BenchReport([result, result], {"cpu": {"model": "x"}}, {"runs": 4}, ["a note"])
    data = strict_json(jsonio.dumps(report.to_dict()))
    assert data["version"] == 1 and data["results"][0]["unstable"] is True and data["notes"] == ["a note"]
    assert data["results"][0]["stats"]["throughput"] == pytest.approx(stats.throughput)
    again = BenchReport.from_dict(data)
    assert again == report and again.speedups() == [1.0, 1.0]
    with pytest.raises(ValueError):
        BenchReport.from_dict({"edgekit_report": "bench", "version": 99})
