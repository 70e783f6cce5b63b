"""What full-int8 buys on this CPU, per runtime, for the MobileNetV2-style model.

Prints, in one run, fp32 vs full-int8 p50 (1 thread) for TFLite (XNNPACK), ONNX Runtime (QDQ U8S8)
and ExecuTorch (XNNPACK), the speed-up (target for TFLite: ≥ 1.8× on an AVX-512 VNNI CPU), and the
dynamic-range TFLite variant with its delegation status — it is slower than fp32 on x86 because its
hybrid kernels do not all run on XNNPACK, and edgekit says so.

The variants of a runtime are timed interleaved — alternating blocks of runs, each model loaded once —
so that a noisy machine (this VM's host steals cycles in bursts) slows both sides alike and the ratio
stays meaningful; each p50 is over all of that model's blocks.

    python benchmarks/int8_speedup.py [--work DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _models import converted, mobilenet

TFLITE_TARGET = 1.8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgekit-bench-models")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20, help="alternating blocks per model")
    parser.add_argument("--runs-per-block", type=int, default=50)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    from edgekit.benchmarking import bench_inputs
    from edgekit.targets import open_runtime
    from edgekit.targets.base import RuntimeOptions
    from edgekit.targets.bench import BenchOptions, LatencyStats, time_inference

    torch_model, keras_model = mobilenet(args.work, "torch"), mobilenet(args.work, "keras")
    pairs = {
        "TFLite (Keras → TFLiteConverter)": (converted(keras_model, "tflite"),
                                             converted(keras_model, "tflite", "int8")),
        "ONNX Runtime (torch → QDQ)": (converted(torch_model, "onnx"), converted(torch_model, "onnx", "int8")),
        "ExecuTorch (torch → XNNPACK)": (converted(torch_model, "executorch"),
                                         converted(torch_model, "executorch", "int8")),
    }
    dynamic = converted(keras_model, "tflite", "dynamic")
    block = BenchOptions(warmup=5, runs=args.runs_per_block, min_seconds=0, threads=args.threads)

    def interleaved(*paths: Path):
        """p50 (and delegation) of each model, timed in alternating blocks."""
        runtimes = [open_runtime(p, options=RuntimeOptions(threads=args.threads)).load() for p in paths]
        calls = [rt.prepare(bench_inputs(rt.io_spec, None, "random")[0]) for rt in runtimes]
        samples: list[list] = [[] for _ in paths]
        for _ in range(args.rounds):
            for index, call in enumerate(calls):
                samples[index].append(time_inference(call, block).samples)
        stats = [LatencyStats.from_samples(np.concatenate(s)) for s in samples]
        return [(st, rt.describe().delegation) for st, rt in zip(stats, runtimes, strict=True)]

    print(f"MobileNetV2-style 96×96×3, {args.threads} thread(s), interleaved: {args.rounds} rounds × "
          f"{args.runs_per_block} runs per model")
    print(f"{'runtime':<34} {'fp32 ms':>8} {'int8 ms':>8} {'speed-up':>9}")
    for name, (fp32_path, int8_path) in pairs.items():
        (fp32, _), (int8, _) = interleaved(fp32_path, int8_path)
        speedup = fp32.p50 / int8.p50
        verdict = ""
        if name.startswith("TFLite"):
            verdict = f"  target ≥ {TFLITE_TARGET}×: {'ok' if speedup >= TFLITE_TARGET else 'MISSES'}"
        print(f"{name:<34} {fp32.p50 * 1e3:>8.3f} {int8.p50 * 1e3:>8.3f} {speedup:>8.2f}×{verdict}")
    (fp32, fp32_delegation), (dyn, delegation) = interleaved(pairs["TFLite (Keras → TFLiteConverter)"][0], dynamic)
    slower = dyn.p50 > fp32.p50
    print(f"\nTFLite dynamic-range int8: p50 {dyn.p50 * 1e3:.3f} ms = {dyn.p50 / fp32.p50:.2f}× the fp32 time"
          f" — {'SLOWER than fp32' if slower else 'not slower than fp32'}")
    print(f"  delegation: {delegation['delegated_operators']}/{delegation['operators']} operators on XNNPACK "
          f"({delegation['xnnpack_partitions']} partitions); on LiteRT's own CPU kernels: "
          f"{', '.join(f'{k}×{v}' for k, v in delegation['cpu_operators'].items()) or 'none'}")
    print(f"  fp32 for comparison: {fp32_delegation['delegated_operators']}/{fp32_delegation['operators']} "
          "on XNNPACK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
