"""Peak resident memory of `edgekit train` ÷ the bytes of its data set at the training resolution.

For each framework (torch, keras) and image size (96, 224), one `edgekit train --arch mobilenetv2` run
on the digits (1,797 images) in a fresh process, 1 epoch by default. The peak is the process's own
(`os.wait4` reports the maximum RSS of the CLI process and of the isolated worker it forked and reaped).
Dataset bytes = images × size² × 3 channels × 4 (float32): what one full upsampled copy would take.
Target: ≤ 3×. Beside it, the floor: the same command on 100 of the digits (10 a class, the same batch size
and resolution), i.e. the framework, the model and one batch's activations with next to no data; (peak −
floor) ÷ dataset bytes is then what the data itself costs (one full copy would be 1.0×).

    python benchmarks/train_memory.py [--sizes 96 224] [--frameworks torch keras] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHANNELS = 3  # MobileNetV2 takes RGB: the grey digits are repeated across channels
FLOAT32_BYTES = 4
TARGET_RATIO = 3.0
FLOOR_PER_CLASS = 10  # the smallest stratified split of 10 classes: 70 train, 10 calibration, 20 test images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    parser.add_argument("--frameworks", nargs="+", default=["torch", "keras"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        images, few = digits(Path(tmp))
        print(f"edgekit train --arch mobilenetv2 --epochs {args.epochs} on digits ({images} images), "
              f"{args.repeats} run(s) each, peak RSS of a fresh process; floor: {FLOOR_PER_CLASS * 10} images")
        print(f"{'framework':<9} {'size':>4} {'data MB':>7} {'peak MB':>11} {'peak/data':>11} {'floor MB':>11} "
              f"{'(peak-floor)/data':>17} {'seconds':>9}")
        worst = 0.0
        for framework in args.frameworks:
            for size in args.sizes:
                data_bytes = images * size * size * CHANNELS * FLOAT32_BYTES
                runs = [train_once(framework, size, args.epochs, "digits") for _ in range(args.repeats)]
                floors = [train_once(framework, size, args.epochs, str(few))[0] for _ in range(args.repeats)]
                peaks = [peak for peak, _seconds in runs]
                ratios = [peak / data_bytes for peak in peaks]
                worst = max(worst, *ratios)
                data_cost = [(peak - min(floors)) / data_bytes for peak in peaks]
                print(f"{framework:<9} {size:>4} {data_bytes / 1e6:>7.0f} {span([p / 1e6 for p in peaks], '.0f'):>11} "
                      f"{span(ratios, '.2f') + '×':>11} {span([f / 1e6 for f in floors], '.0f'):>11} "
                      f"{span(data_cost, '.2f') + '×':>17} {span([s for _p, s in runs], '.0f'):>9}")
    print(f"worst peak/data: {worst:.2f}× (target ≤ {TARGET_RATIO:g}×)")
    return 0


def digits(directory: Path) -> tuple[int, Path]:
    """The digits' image count, and a .npz of FLOOR_PER_CLASS of them a class for the floor runs."""
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = np.concatenate([np.flatnonzero(bunch.target == c)[:FLOOR_PER_CLASS] for c in range(10)])
    path = directory / "few.npz"
    np.savez(path, x=bunch.images[keep].astype(np.float32) / 16, y=bunch.target[keep])
    return len(bunch.target), path


def train_once(framework: str, size: int, epochs: int, data: str) -> tuple[int, float]:
    """(peak RSS in bytes, wall seconds) of one CLI training run in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "edgekit", "train", "--framework", framework, "--arch", "mobilenetv2",
                   "--image-size", str(size), "--epochs", str(epochs), "--data", data,
                   "-o", str(Path(tmp) / "model"), "--json"]
        start = time.perf_counter()
        with open(Path(tmp) / "log", "wb") as log:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
            _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        if process.returncode != 0:
            tail = (Path(tmp) / "log").read_text(errors="replace").strip().splitlines()[-3:]
            raise SystemExit(f"{framework} at {size}: exit {process.returncode}: {' | '.join(tail)}")
    return usage.ru_maxrss * 1024, seconds  # Linux reports kilobytes


def span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if format(low, fmt) == format(high, fmt) else f"{low:{fmt}}–{high:{fmt}}"


if __name__ == "__main__":
    sys.exit(main())
