"""``edgekit bench``: latency of one or more models, per thread count, with the facts that explain it.

Each model is loaded in its own runtime (the framework is imported before the load is timed), its
input prepared once (real data first: the model's own test split, else ``--data``, else seeded
random), then timed by ``edgekit.targets.bench.time_inference``. Reported with each result: load
time, first inference, percentiles, CV and stability, RSS increase, file size and delegation.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgekit.targets.bench import (
    BenchOptions,
    BenchReport,
    BenchResult,
    LatencyStats,
    current_rss_bytes,
    pinned,
    time_inference,
)
from edgekit.targets.profiles import DeviceProfile
from edgekit.toolkit.artifact import Artifact, read_sidecar
from edgekit.toolkit.datasets import model_inputs_from_npz
from edgekit.toolkit.errors import InvalidInputError, UsageError
from edgekit.toolkit.formats import sniff
from edgekit.toolkit.iospec import IOSpec, TensorSpec, example_feeds
from edgekit.toolkit.sysinfo import environment_fingerprint

RANDOM = "random"


def bench(
    models: list[str | os.PathLike[str]],
    *,
    options: BenchOptions | None = None,
    threads: list[int | None] | None = None,
    profile: DeviceProfile | None = None,
    data: str | None = None,
) -> BenchReport:
    options = options or BenchOptions()
    if profile is not None:
        options = replace(options, device=profile.device)
        threads = threads or [profile.threads]
    thread_counts = threads or [options.threads]
    for count in thread_counts:
        replace(options, threads=count)  # validates each count before any model loads
    results = [
        bench_one(Path(model), replace(options, threads=count), data=data, profile=profile)
        for model in models
        for count in thread_counts
    ]
    recorded = {"warmup": options.warmup, "runs": options.runs, "min_seconds": options.min_seconds,
                "threads": thread_counts, "device": options.device.value, "cpus": options.cpus,
                "target": profile.name if profile else None, "data": data}
    return BenchReport(results, environment_fingerprint(), recorded)


def bench_one(path: Path, options: BenchOptions, *, data: str | None = None,
              profile: DeviceProfile | None = None) -> BenchResult:
    from edgekit.targets import open_runtime
    from edgekit.targets.base import RuntimeOptions
    from edgekit.toolkit.registry import runtime_for

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
        feeds, source = bench_inputs(runtime.io_spec, sidecar, data)
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


def bench_inputs(spec: IOSpec, sidecar: Artifact | None, data: str | None) -> tuple[dict[str, np.ndarray], str]:
    """One batch-1 input per model input: the model's own test data first, else ``data``, else random."""
    if data == RANDOM or (data is None and (sidecar is None or sidecar.data_path is None)):
        return example_feeds(spec), "seeded random"
    path = Path(data) if data is not None else sidecar.data_path
    if len(spec.inputs) != 1:
        raise UsageError(f"{path.name} feeds single-input models; this one takes {spec.input_names}",
                         hint="use --data random")
    sample, _labels, key = model_inputs_from_npz(path, 1)
    return {spec.inputs[0].name: to_model_input(sample, spec.inputs[0], path)}, f"{key}[0] of {path.name}"


def to_model_input(sample: np.ndarray, ts: TensorSpec, origin: Path) -> np.ndarray:
    """A float sample in the tensor's dtype: quantized with its scale/zero-point for integer inputs."""
    if not ts.accepts(sample.shape):
        raise InvalidInputError(f"{origin}: sample shape {list(sample.shape)} does not fit input {ts.name!r} "
                                f"{list(ts.shape or [])}", hint="give data for this model, or --data random")
    dtype = np.dtype(ts.dtype)
    if dtype.kind in "iu" and ts.quant is not None and sample.dtype.kind == "f":
        info = np.iinfo(dtype)
        scale, zero = ts.quant.scale[0], ts.quant.zero_point[0]
        return np.clip(np.round(sample / scale + zero), info.min, info.max).astype(dtype)
    return sample.astype(dtype)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
