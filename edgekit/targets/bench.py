"""``edgekit bench``: on-device-style latency of one or more models, per thread count, with the facts that
explain it — and the timing loop it runs.

Each model is loaded in its own runtime (the framework is imported before the load is timed), its input
prepared once, outside the timed region (real data first: the model's own test split, else ``data``, else
seeded random), warmed up, then timed for at least N runs and at least S seconds (as TFLite's
benchmark_model does), perf_counter_ns per call. Reported with each result: load time, first inference,
percentiles, CV and stability, RSS increase, file size and delegation.

Stability: a result is flagged unstable when the coefficient of variation exceeds ``MAX_CV`` or, with
the timed runs cut into ``BLOCKS`` consecutive blocks, the slowest block median exceeds the fastest by
more than ``MAX_BLOCK_SPREAD`` (thermal throttling, a noisy neighbour, frequency scaling). The CV is
computed over the runs between the 1st and 99th percentile: at microsecond latencies a few interrupts
otherwise dominate the standard deviation. p99, max and the plain std are still reported.

Device: an explicitly given ``device`` wins over a ``profile``'s (the report carries a note saying so);
without one the profile's device applies, and without a profile CPU. CPU pinning (``cpus``) needs
``sched_setaffinity`` (Linux); elsewhere it is a usage error, and the usable-CPU count is ``os.cpu_count()``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.targets.profiles import DeviceProfile
from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.artifact import Artifact, read_sidecar
from edgekit.toolkit.contract.errors import EdgekitError, InvalidInputError, UsageError, option
from edgekit.toolkit.contract.formats import sniff
from edgekit.toolkit.contract.iospec import IOSpec, TensorSpec, example_feeds, with_domains
from edgekit.toolkit.contract.options import Device
from edgekit.toolkit.data.datasets import INPUT_KEYS, model_inputs_from_npz
from edgekit.toolkit.data.feeds import named_feeds, names_inputs, read_npz, source_names
from edgekit.toolkit.sysinfo import can_pin_cpus, cuda_info, environment_fingerprint

MAX_CV = 0.10
MAX_BLOCK_SPREAD = 0.10
BLOCKS = 5
BENCH_REPORT_VERSION = 1


@dataclass(frozen=True)
class BenchOptions:
    warmup: int = 10
    runs: int = 100
    min_seconds: float = 1.0
    max_seconds: float = 60.0  # a cap so a slow model cannot run for ever to satisfy --runs
    threads: int | None = 1
    device: Device = Device.CPU
    cpus: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise UsageError(f"{option('warmup')} must be ≥ 0, got {self.warmup}")
        if self.runs < 1:
            raise UsageError(f"{option('runs')} must be ≥ 1, got {self.runs}")
        if self.min_seconds < 0:
            raise UsageError(f"{option('min_seconds')} must be ≥ 0, got {self.min_seconds}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"threads must be ≥ 1, got {self.threads}", hint=f"e.g. {option('threads', '1,2')}")
        if self.cpus is not None:
            require_pinning()
            usable = os.sched_getaffinity(0)
            if not self.cpus or any(c not in usable for c in self.cpus):
                raise UsageError(f"{option('cpus', list(self.cpus))} is not a subset of the usable CPUs "
                                 f"{sorted(usable)}")


@dataclass(frozen=True)
class LatencyStats:
    """Seconds per inference over the timed runs."""

    runs: int
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    min: float
    max: float
    cv: float  # std ÷ mean over the runs within [p1, p99]
    block_spread: float  # slowest block median ÷ fastest − 1

    @property
    def throughput(self) -> float:
        return 1.0 / self.mean if self.mean > 0 else float("inf")

    @classmethod
    def from_samples(cls, seconds: np.ndarray) -> LatencyStats:
        seconds = np.asarray(seconds, dtype=np.float64)
        mean = float(seconds.mean())
        blocks = [b for b in np.array_split(seconds, min(BLOCKS, len(seconds))) if len(b)]
        medians = [float(np.median(b)) for b in blocks]
        spread = max(medians) / min(medians) - 1 if min(medians) > 0 else 0.0
        p1, p50, p90, p99 = (float(v) for v in np.percentile(seconds, [1, 50, 90, 99]))
        core = seconds[(seconds >= p1) & (seconds <= p99)]
        core = core if len(core) > 1 else seconds
        cv = float(core.std() / core.mean()) if core.mean() > 0 else 0.0
        return cls(len(seconds), p50, p90, p99, mean, float(seconds.std()), float(seconds.min()),
                   float(seconds.max()), cv, spread)

    def instability(self) -> list[str]:
        reasons = []
        if self.cv > MAX_CV:
            reasons.append(f"coefficient of variation {self.cv:.1%} > {MAX_CV:.0%}")
        if self.block_spread > MAX_BLOCK_SPREAD:
            reasons.append(f"block medians differ by {self.block_spread:.1%} > {MAX_BLOCK_SPREAD:.0%}")
        return reasons


@dataclass(frozen=True)
class BenchResult:
    model: str
    format: str
    runtime: str
    device: str
    threads: int | None
    threads_applied: bool
    cpus: list[int] | None
    load_seconds: float
    first_inference_seconds: float
    warmup_runs: int
    warmup_seconds: float
    stats: LatencyStats
    rss_increase_bytes: int
    file_size_bytes: int
    precision: str
    input_source: str
    delegation: dict[str, Any] = field(default_factory=dict)
    unstable_reasons: list[str] = field(default_factory=list)

    @property
    def unstable(self) -> bool:
        return bool(self.unstable_reasons)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stats"] = {**asdict(self.stats), "throughput": self.stats.throughput}
        data["unstable"] = self.unstable
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        values = {k: v for k, v in jsonio.revive(cls, data).items() if k not in ("unstable", "stats")}
        stats = {k: v for k, v in data["stats"].items() if k != "throughput"}
        return cls(**values, stats=LatencyStats(**jsonio.revive(LatencyStats, stats)))


@dataclass(frozen=True)
class BenchReport:
    results: list[BenchResult]
    environment: dict[str, Any]
    options: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # facts about the run as a whole (e.g. a device override)
    # model → compat target → {"support", "summary"}: the --target profile's compatibility targets
    compat: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def speedups(self) -> list[float]:
        """p50 of the first result ÷ p50 of each (how many times faster than the first)."""
        if not self.results:
            return []
        base = self.results[0].stats.p50
        return [base / r.stats.p50 if r.stats.p50 > 0 else float("inf") for r in self.results]

    def to_dict(self) -> dict[str, Any]:
        return {"edgekit_report": "bench", "version": BENCH_REPORT_VERSION, "environment": self.environment,
                "options": self.options, "notes": list(self.notes), "results": [r.to_dict() for r in self.results],
                "speedup_vs_first": self.speedups(), "compat": self.compat}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchReport:
        if data.get("edgekit_report") != "bench" or data.get("version") != BENCH_REPORT_VERSION:
            raise ValueError("not an edgekit bench report of a supported version")
        return cls([BenchResult.from_dict(r) for r in data["results"]], data["environment"], data["options"],
                   list(data.get("notes", [])),  # reports written before notes existed have none
                   dict(data.get("compat", {})))


@dataclass(frozen=True)
class Timing:
    first_inference: float
    warmup_seconds: float
    samples: np.ndarray


def time_inference(call: Callable[[], object], options: BenchOptions,
                   clock: Callable[[], int] = time.perf_counter_ns) -> Timing:
    """First call, warm-up, then at least ``runs`` timed calls and at least ``min_seconds`` of them."""
    start = clock()
    call()
    first = (clock() - start) / 1e9
    start = clock()
    for _ in range(options.warmup):
        call()
    warmup = (clock() - start) / 1e9
    samples: list[int] = []
    budget_start = clock()
    min_ns, max_ns = options.min_seconds * 1e9, options.max_seconds * 1e9
    while True:
        t0 = clock()
        call()
        t1 = clock()
        samples.append(t1 - t0)
        elapsed = t1 - budget_start
        if (len(samples) >= options.runs and elapsed >= min_ns) or elapsed >= max_ns:
            break
    return Timing(first, warmup, np.asarray(samples, dtype=np.float64) / 1e9)


def current_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def require_pinning() -> None:
    """Refuse CPU pinning where the OS has no affinity API (macOS, Windows) with a usage error."""
    if not can_pin_cpus():
        raise UsageError(f"{option('cpus')}: CPU pinning needs sched_setaffinity (Linux), which this OS "
                         f"({platform.system() or 'unknown'}) lacks", hint=f"run without {option('cpus')}")


@contextlib.contextmanager
def pinned(cpus: tuple[int, ...] | None) -> Iterator[None]:
    """Run the block on the given CPUs (the process's affinity is restored afterwards)."""
    if not cpus:
        yield
        return
    require_pinning()
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


# -- the bench command ----------------------------------------------------------------------------------

RANDOM = "random"


def bench(
    models: list[str | os.PathLike[str]],
    *,
    options: BenchOptions | None = None,
    threads: list[int | None] | None = None,
    profile: DeviceProfile | None = None,
    data: str | None = None,
    device: Device | str | None = None,
    input_ranges: dict[str, tuple[float, float]] | None = None,
) -> BenchReport:
    """Bench each model at each thread count. ``device``: None means not given — the profile's device
    applies, else ``options.device`` (CPU by default); a given device wins over the profile's, with a note."""
    options = options or BenchOptions()
    given = _device(device)
    options, notes = resolve_device(options, profile, given)
    if profile is not None:
        if profile.elsewhere:
            raise UsageError(f"{option('profile', profile.name)} runs on {profile.elsewhere}, which edgekit cannot "
                             "drive from this machine", hint=f"check whether a model runs there: edgekit compat MODEL "
                                                             f"--target {profile.name}")
        if given is None:
            check_profile_device(profile)
        threads = threads or [profile.threads]
    thread_counts = threads or [options.threads]
    for count in thread_counts:
        replace(options, threads=count)  # validates each count before any model loads
    used: set[str] = set()
    results = [
        bench_one(Path(model), replace(options, threads=count), data=data, profile=profile,
                  input_ranges=input_ranges, ranges_used=used)
        for model in models
        for count in thread_counts
    ]
    unused = sorted(set(input_ranges or {}) - used)
    if unused:
        raise UsageError(f"{option('input_ranges')} names {unused}, an input of none of the models",
                         hint="name the inputs as the models (or the model they were converted from) call them")
    recorded = {"warmup": options.warmup, "runs": options.runs, "min_seconds": options.min_seconds,
                "threads": thread_counts, "device": options.device.value, "cpus": options.cpus,
                "target": profile.name if profile else None, "data": data}
    return BenchReport(results, environment_fingerprint(), recorded, notes, profile_compat(models, profile))


def profile_compat(models: list[str | os.PathLike[str]],
                   profile: DeviceProfile | None) -> dict[str, dict[str, dict[str, str]]]:
    """Each artifact's verdict on the compatibility targets ``profile`` implies for its format."""
    from edgekit.toolkit.contract.compat import targets_for

    if profile is None or not profile.compat:
        return {}
    from edgekit.targets.compat import check_compat

    found = {}
    for model in dict.fromkeys(str(m) for m in models):
        fmt = sniff(model).format
        targets = targets_for(fmt, profile.compat)
        if not targets:
            continue
        try:
            found[model] = check_compat(model, targets).cells()
        except Exception as exc:  # the latency stands without it: a check that cannot run is unknown, and says why
            reason = exc.one_line() if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {exc}"
            found[model] = {t: {"support": "unknown", "summary": f"the check did not run: {reason}"} for t in targets}
    return found


def resolve_device(options: BenchOptions, profile: DeviceProfile | None,
                   given: Device | None) -> tuple[BenchOptions, list[str]]:
    """The options with the device that applies, and the notes to report: a given device wins over the
    profile's (noted when they differ); without one, the profile's; without a profile, ``options.device``."""
    if given is None:
        return (replace(options, device=profile.device) if profile is not None else options), []
    notes = []
    if profile is not None and profile.device is not given:
        notes.append(f"{option('profile', profile.name)} asks for device {profile.device.value}; "
                     f"{option('device', given.value)} was given and is used")
    return replace(options, device=given), notes


def check_profile_device(profile: DeviceProfile) -> None:
    """A profile that benches on CUDA, where CUDA is not usable: say so in the profile's terms (the user
    gave no device), with the way to bench on CPU instead."""
    if profile.device is not Device.CUDA:
        return
    info = cuda_info()
    if not info.usable:
        raise InvalidInputError(f"{option('profile', profile.name)} benches on CUDA, which is not usable here: "
                                f"{info.reason}", hint=f"add {option('device', Device.CPU.value)} to bench on CPU")


def _device(value: Device | str | None) -> Device | None:
    if value is None or isinstance(value, Device):
        return value
    try:
        return Device(value)
    except ValueError:
        raise UsageError(f"{option('device', value)} is not a device",
                         hint=f"devices: {', '.join(d.value for d in Device)}") from None


def bench_one(path: Path, options: BenchOptions, *, data: str | None = None,
              profile: DeviceProfile | None = None, input_ranges: dict[str, tuple[float, float]] | None = None,
              ranges_used: set[str] | None = None) -> BenchResult:
    from edgekit.targets import open_runtime
    from edgekit.targets.base import RuntimeOptions
    from edgekit.toolkit.contract.registry import runtime_for

    sniffed = sniff(path)
    sidecar = read_sidecar(path) if path.is_file() else None
    precision = str(sidecar.options.get("quantize", "none")) if sidecar else "unknown"
    if profile is not None:
        profile.check_precision(str(path), precision)
    runtime_for(sniffed.format).load()  # import the framework now, so the load below times only the load
    rss_before = current_rss_bytes()
    runtime = open_runtime(path, options=RuntimeOptions(options.threads, options.device),
                           io_hint=sidecar.io_spec if sidecar else None, sniffed=sniffed)
    start = time.perf_counter()
    runtime.load()
    load_seconds = time.perf_counter() - start
    try:
        spec = _stated_ranges(runtime.io_spec, sidecar, input_ranges or {}, path, ranges_used)
        feeds, source = bench_inputs(spec, sidecar, data)
        with pinned(options.cpus):
            call = runtime.prepare(feeds)
            timing = time_inference(call, options)
        rss_increase = current_rss_bytes() - rss_before
        delegation = dict(runtime.describe().delegation)
    finally:
        runtime.close()
    if sidecar is not None and "delegation" in sidecar.extra:
        delegation.setdefault("at_conversion", sidecar.extra["delegation"])
    stats = LatencyStats.from_samples(timing.samples)
    return BenchResult(
        model=str(path), format=sniffed.format.value, runtime=type(runtime).__name__,
        device=options.device.value, threads=options.threads, threads_applied=runtime.threads_applied,
        cpus=list(options.cpus) if options.cpus else None, load_seconds=load_seconds,
        first_inference_seconds=timing.first_inference, warmup_runs=options.warmup,
        warmup_seconds=timing.warmup_seconds, stats=stats, rss_increase_bytes=rss_increase,
        file_size_bytes=_size(path), precision=precision, input_source=source, delegation=delegation,
        unstable_reasons=stats.instability(),
    )


def _stated_ranges(spec: IOSpec, sidecar: Artifact | None, ranges: dict[str, tuple[float, float]], path: Path,
                   used: set[str] | None) -> IOSpec:
    """The contract with the ``--input-range`` values that name this model's inputs (by their own name or the
    name they had before conversion); models compared side by side need not share input names."""
    aliases = {alias: name for name, alias in source_names(sidecar).items()}
    mine = {aliases.get(name, name): bounds for name, bounds in ranges.items()
            if aliases.get(name, name) in spec.input_names or (name == "*" and len(spec.inputs) == 1)}
    if used is not None:
        used.update(name for name in ranges if aliases.get(name, name) in spec.input_names or name == "*")
    return with_domains(spec, {}, ranges=mine, origin=str(path)) if mine else spec


def bench_inputs(spec: IOSpec, sidecar: Artifact | None, data: str | None) -> tuple[dict[str, np.ndarray], str]:
    """One batch-1 input per model input: the model's own test data first, else ``data``, else random."""
    if data == RANDOM or (data is None and (sidecar is None or sidecar.data_path is None)):
        return example_feeds(spec), "seeded random"
    path = Path(data) if data is not None else sidecar.data_path
    arrays, aliases = read_npz(path), source_names(sidecar)
    if names_inputs(arrays, spec, aliases, legacy_keys=INPUT_KEYS):
        found = named_feeds(path, spec, limit=1, arrays=arrays, purpose="a benchmark", aliases=aliases)
        return found.feeds[0], f"sample 0 of {path.name}"
    sample, _labels, key = model_inputs_from_npz(path, 1)
    return {spec.inputs[0].name: to_model_input(sample, spec.inputs[0], path)}, f"{key}[0] of {path.name}"


def to_model_input(sample: np.ndarray, ts: TensorSpec, origin: Path) -> np.ndarray:
    """A float sample in the tensor's dtype: quantized with its scale/zero-point for integer inputs."""
    if not ts.accepts(sample.shape):
        raise InvalidInputError(f"{origin}: sample shape {list(sample.shape)} does not fit input {ts.name!r} "
                                f"{list(ts.shape or [])}",
                                hint=f"give data for this model, or {option('data', RANDOM)}")
    dtype = np.dtype(ts.dtype)
    if dtype.kind in "iu" and ts.quant is not None and sample.dtype.kind == "f":
        info = np.iinfo(dtype)
        scale, zero = ts.quant.scale[0], ts.quant.zero_point[0]
        return np.clip(np.round(sample / scale + zero), info.min, info.max).astype(dtype)
    return sample.astype(dtype)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
