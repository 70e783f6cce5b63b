"""What crash isolation costs: the same CLI command with the worker (EDGEKIT_ISOLATION=on, the default
from a shell) and in-process (=off), interleaved, plus the bare fork + reply round trip.

    python benchmarks/isolation_overhead.py [--runs 8]

The worker is forked from the CLI process, which has imported no framework, so the framework import
is paid once either way (in the worker instead of the parent): the overhead is the fork, the pipe
and the reply, not a second interpreter start-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(argv: list[str], isolation: str) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "EDGEKIT_ISOLATION": isolation})
    return time.perf_counter() - start


def round_trip(runs: int) -> float:
    code = ("import time; from edgekit.toolkit.safety.isolation import run_isolated\n"
            "run_isolated(lambda: 0, phase_name='warm-up')\n"
            f"t = time.perf_counter(); [run_isolated(lambda: {{'x': 1}}, phase_name='x') for _ in range({runs})]\n"
            f"print((time.perf_counter() - t) / {runs})")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "EDGEKIT_ISOLATION": "on"})
    return float(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    from edgekit.samples import write_sample
    from edgekit.toolkit.contract.formats import Format

    with tempfile.TemporaryDirectory() as scratch:
        onnx = write_sample(Format.ONNX, Path(scratch))
        tflite = write_sample(Format.TFLITE, Path(scratch))
        commands = {
            "inspect tiny .onnx": [sys.executable, "-m", "edgekit", "inspect", str(onnx)],
            "inspect tiny .tflite": [sys.executable, "-m", "edgekit", "inspect", str(tflite)],
            "convert .onnx → fp16": [sys.executable, "-m", "edgekit", "convert", str(onnx), "--to", "onnx",
                                     "--quantize", "fp16", "-o", str(Path(scratch) / "o.onnx"), "--force"],
        }
        print(f"{'command':<24} {'isolated':>10} {'in-process':>11} {'difference':>11} {'ratio':>7}")
        for name, argv in commands.items():
            wall(argv, "on")  # page cache, .pyc
            isolated, inline = [], []
            for _ in range(args.runs):  # interleaved: the VM's drift hits both alike
                isolated.append(wall(argv, "on"))
                inline.append(wall(argv, "off"))
            a, b = statistics.median(isolated), statistics.median(inline)
            print(f"{name:<24} {a * 1e3:>8.0f} ms {b * 1e3:>8.0f} ms {(a - b) * 1e3:>+8.0f} ms {a / b:>6.3f}×")
    print(f"fork + reply round trip (no framework): {round_trip(50) * 1e3:.2f} ms")
    reply_codec(args.runs)
    return 0


def reply_codec(runs: int) -> None:
    """What reading replies as data costs (``replies``: JSON + raw array bytes) next to the pickle it replaced
    (which let a compromised worker run code in the CLI): encode + decode of typical reply contents."""
    import pickle

    import numpy as np

    from edgekit.toolkit.contract.iospec import IOSpec, TensorSpec
    from edgekit.toolkit.safety.replies import decode, encode

    spec = IOSpec(tuple(TensorSpec(f"in{i}", (1, 3, 224, 224), "float32") for i in range(4)),
                  tuple(TensorSpec(f"out{i}", (1, 1000), "float32") for i in range(4)))
    payloads = {"an I/O contract (8 tensors)": spec, "1,000 floats in a dict": {f"k{i}": float(i) for i in range(1000)},
                "a 10 MB array": np.random.default_rng(0).random(10 << 17)}
    print(f"\n{'reply holding':<28} {'data (JSON)':>12} {'pickle':>9} {'ratio':>7}")
    for name, value in payloads.items():
        times: dict[str, list[float]] = {"data": [], "pickle": []}
        for _ in range(max(runs, 5)):  # interleaved
            for label, enc, dec in (("data", encode, decode), ("pickle", pickle.dumps, pickle.loads)):
                start = time.perf_counter()
                dec(enc(value))
                times[label].append(time.perf_counter() - start)
        a, b = statistics.median(times["data"]), statistics.median(times["pickle"])
        print(f"{name:<28} {a * 1e3:>9.2f} ms {b * 1e3:>6.2f} ms {a / b:>6.1f}×")


if __name__ == "__main__":
    sys.exit(main())
