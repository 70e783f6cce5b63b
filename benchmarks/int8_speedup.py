"""What full-int8 buys on this CPU, per runtime, for the MobileNetV2-style model.

Prints, in one run, fp32 vs full-int8 p50 (1 thread) for TFLite (XNNPACK), ONNX Runtime (QDQ) and
ExecuTorch (XNNPACK), the speed-up (target for TFLite: ≥ 1.8× on an AVX-512 VNNI CPU), and the
dynamic-range TFLite variant with its delegation status — it is slower than fp32 on x86 because its
hybrid kernels do not all run on XNNPACK, and edgekit says so.

    python benchmarks/int8_speedup.py [--work DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _models import converted, mobilenet

TFLITE_TARGET = 1.8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgekit-bench-models")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    from edgekit.benchmarking import bench_one
    from edgekit.targets.bench import BenchOptions

    torch_model, keras_model = mobilenet(args.work, "torch"), mobilenet(args.work, "keras")
    pairs = {
        "TFLite (Keras → TFLiteConverter)": (converted(keras_model, "tflite"),
                                             converted(keras_model, "tflite", "int8")),
        "ONNX Runtime (torch → QDQ)": (converted(torch_model, "onnx"), converted(torch_model, "onnx", "int8")),
        "ExecuTorch (torch → XNNPACK)": (converted(torch_model, "executorch"),
                                         converted(torch_model, "executorch", "int8")),
    }
    dynamic = converted(keras_model, "tflite", "dynamic")
    options = BenchOptions(warmup=20, runs=200, min_seconds=args.min_seconds, threads=args.threads)

    def p50(path: Path):
        return bench_one(path, options)

    print(f"MobileNetV2-style 96×96×3, {args.threads} thread(s), p50 of ≥ {options.runs} runs and "
          f"≥ {options.min_seconds:.0f} s")
    print(f"{'runtime':<34} {'fp32 ms':>8} {'int8 ms':>8} {'speed-up':>9}")
    fp32_tflite = None
    for name, (fp32_path, int8_path) in pairs.items():
        fp32, int8 = p50(fp32_path), p50(int8_path)
        fp32_tflite = fp32_tflite or fp32
        speedup = fp32.stats.p50 / int8.stats.p50
        verdict = ""
        if name.startswith("TFLite"):
            verdict = f"  target ≥ {TFLITE_TARGET}×: {'ok' if speedup >= TFLITE_TARGET else 'MISSES'}"
        flags = " (unstable)" if fp32.unstable or int8.unstable else ""
        print(f"{name:<34} {fp32.stats.p50 * 1e3:>8.3f} {int8.stats.p50 * 1e3:>8.3f} {speedup:>8.2f}×{verdict}{flags}")
    dyn = p50(dynamic)
    delegation = dyn.delegation
    slower = dyn.stats.p50 > fp32_tflite.stats.p50
    print(f"\nTFLite dynamic-range int8: p50 {dyn.stats.p50 * 1e3:.3f} ms = "
          f"{dyn.stats.p50 / fp32_tflite.stats.p50:.2f}× the fp32 time"
          f" — {'SLOWER than fp32' if slower else 'not slower than fp32'}")
    print(f"  delegation: {delegation['delegated_operators']}/{delegation['operators']} operators on XNNPACK "
          f"({delegation['xnnpack_partitions']} partitions); on LiteRT's own CPU kernels: "
          f"{', '.join(f'{k}×{v}' for k, v in delegation['cpu_operators'].items()) or 'none'}")
    fp32_delegation = fp32_tflite.delegation
    print(f"  fp32 for comparison: {fp32_delegation['delegated_operators']}/{fp32_delegation['operators']} on XNNPACK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
