"""What row isolation costs, and what the executors buy on a many-model matrix, in one run.

1. The default `edgekit pipeline` (digits CNN in PyTorch and Keras, every route × mode, benched) with
   `--executor process` (crash-isolated persistent workers, the default) and `--executor serial` (every
   cell in the CLI process, as before isolation), interleaved, in fresh processes: wall time of each and
   process ÷ serial (target ≤ 1.15×).
2. A many-model matrix (``--models`` copies of the sample ONNX and .pt2 CNNs → ONNX and TorchScript at every
   mode, benched): serial, process with ``--jobs``, and ray (a local Ray, ``--jobs`` CPUs), interleaved;
   throughput as serial ÷ executor (higher is faster). On this 2-core VM the cells share two cores, and
   the benchmarks on one machine always take turns, so the ceiling is well under ``--jobs``×.

    python benchmarks/matrix_executors.py [--repeats 2] [--models 6] [--jobs 2] [--skip-default]

Timing noise on a VM is 10–30%: each cell is run ``--repeats`` times, alternating, and printed as a range.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.15


def edgekit(*args: object) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"edgekit {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds


def span(values: list[float], fmt: str = ".1f") -> str:
    low, high = min(values), max(values)
    return f"{low:{fmt}}" if len(values) == 1 or f"{low:{fmt}}" == f"{high:{fmt}}" else f"{low:{fmt}}–{high:{fmt}}"


def default_pipeline(tmp: Path, repeats: int) -> None:
    print("1. the default pipeline (both digits CNNs, every route × mode, benched)")
    times: dict[str, list[float]] = {"serial": [], "process": []}
    for index in range(repeats):
        for executor in ("process", "serial") if index % 2 else ("serial", "process"):
            times[executor].append(edgekit("pipeline", "--executor", executor, "--out", tmp / f"d-{executor}",
                                           "--force"))
    ratios = [p / s for p, s in zip(times["process"], times["serial"], strict=True)]
    print(f"   serial {span(times['serial'])} s   process {span(times['process'])} s   "
          f"process ÷ serial {span(ratios, '.3f')}× (target ≤ {TARGET}×)")


def many_models(tmp: Path, repeats: int, count: int, jobs: int) -> None:
    from edgekit.samples import write_sample
    from edgekit.toolkit.contract.formats import Format

    models = tmp / "models"
    models.mkdir(exist_ok=True)
    (tmp / "samples").mkdir(exist_ok=True)
    written = {fmt: write_sample(fmt, tmp / "samples", force=True) for fmt in (Format.ONNX, Format.TORCH_EXPORTED)}
    paths = []
    for index in range(count):
        source = written[Format.ONNX if index % 2 else Format.TORCH_EXPORTED]
        target = models / f"m{index}{source.suffix}"
        shutil.copy(source, target)
        paths.append(target)
    executors = {"serial": [], f"process --jobs {jobs}": ["--jobs", str(jobs)]}
    if importlib.util.find_spec("ray") is not None:
        executors[f"ray --jobs {jobs}"] = ["--jobs", str(jobs)]
    else:
        print("   (ray is not installed: pip install 'edgekit[ray]' to time it)")
    print(f"2. {count} models (half ONNX, half .pt2) → onnx, torchscript at every mode, benched")
    times: dict[str, list[float]] = {name: [] for name in executors}
    for index in range(repeats):
        order = list(executors) if index % 2 == 0 else list(reversed(executors))
        for name in order:
            kind = name.split()[0]
            times[name].append(edgekit("pipeline", *paths, "--to", "onnx,torchscript", "--calibration", "random",
                                       "--executor", kind, *executors[name], "--min-seconds", "0.1",
                                       "--out", tmp / f"m-{kind}", "--force"))
    serial = times["serial"]
    for name, values in times.items():
        speed = [s / v for s, v in zip(serial, values, strict=True)]
        print(f"   {name:<18} {span(values):>12} s   throughput vs serial {span(speed, '.2f')}×")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-default", action="store_true", help="only the many-model matrix")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if not args.skip_default:
            default_pipeline(tmp, args.repeats)
        many_models(tmp, args.repeats, args.models, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
