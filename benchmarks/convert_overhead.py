"""What edgekit adds on top of the raw converter calls, and what quantization buys in size.

Prints, side by side in one run:
- `edgekit convert` time ÷ the raw converter call (same model, same process, imports warmed up) for
  Keras→TFLite fp32, Keras→TFLite int8 and torch→ExecuTorch (target ≤ 1.10 each). edgekit's time
  includes planning, calibration loading, atomic writes, the sidecar and loading + running the
  artifact once; the raw call is load model → convert → write bytes.
- The size of the MobileNetV2-style model as TFLite int8 ÷ fp32 (target ≤ 0.30) and fp16 ÷ fp32
  (target ≤ 0.52).

    python benchmarks/convert_overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: imports, kernels, caches
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from edgekit.toolkit.stdio import framework_output_to_stderr

    # Frameworks print progress to stdout; this script's stdout is its report, printed at the end.
    with framework_output_to_stderr():
        report = measure(args.repeats)
    print("\n".join(report))
    return 0


def measure(repeats: int) -> list[str]:
    lines: list[str] = []

    import keras
    import numpy as np
    import tensorflow as tf
    import torch

    from edgekit.conversion import convert
    from edgekit.converters.base import ConvertOptions
    from edgekit.models import Arch, Framework
    from edgekit.toolkit.formats import Format
    from edgekit.toolkit.options import QuantMode
    from edgekit.training import TrainOptions, train

    work = Path(tempfile.mkdtemp(prefix="edgekit-bench-"))
    print("training the digits CNN in Keras and torch (the models converted below) …", file=sys.stderr)
    keras_model = train(TrainOptions(Framework.KERAS, Arch.CNN, epochs=3), work / "cnn.keras").artifact.path
    torch_model = train(TrainOptions(Framework.TORCH, Arch.CNN, epochs=3), work / "cnn.pt2").artifact.path
    with np.load(work / "cnn.keras.data.npz") as data:
        calibration = data["calibration_x"][:100]

    def raw_keras(int8: bool) -> None:
        model = keras.saving.load_model(str(keras_model), compile=False, safe_mode=True)
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([x[None]] for x in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        (work / "raw.tflite").write_bytes(converter.convert())

    def raw_executorch() -> None:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        program = torch.export.load(str(torch_model))
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
        (work / "raw.pte").write_bytes(lowered.buffer)

    def edgekit(source: Path, target: Format, quant: QuantMode, name: str):
        return lambda: convert(source, target, ConvertOptions(quantize=quant), output=work / name, force=True)


    cases = [
        ("Keras→TFLite fp32", edgekit(keras_model, Format.TFLITE, QuantMode.NONE, "e.tflite"),
         lambda: raw_keras(False)),
        ("Keras→TFLite int8", edgekit(keras_model, Format.TFLITE, QuantMode.INT8, "e8.tflite"),
         lambda: raw_keras(True)),
        ("torch→ExecuTorch", edgekit(torch_model, Format.EXECUTORCH, QuantMode.NONE, "e.pte"), raw_executorch),
    ]
    lines.append(f"{'conversion':<20} {'edgekit s':>10} {'raw s':>8} {'ratio':>7}  target ≤ 1.10")
    for name, ours, raw in cases:
        mine, theirs = median_seconds(ours, repeats), median_seconds(raw, repeats)
        lines.append(f"{name:<20} {mine:>10.3f} {theirs:>8.3f} {mine / theirs:>7.2f}  "
                     f"{'ok' if mine / theirs <= 1.10 else 'MISSES'}")

    from edgekit.models import keras_zoo
    from edgekit.training.keras_backend import save

    mobilenet = work / "mobilenetv2.keras"
    save(keras_zoo.build(Arch.MOBILENETV2, channels=3, size=(96, 96), classes=10, seed=0), mobilenet)
    sizes = {}
    for quant in (QuantMode.NONE, QuantMode.FP16, QuantMode.INT8):
        options = ConvertOptions(quantize=quant, calibration="random" if quant is QuantMode.INT8 else None,
                                 calibration_samples=16)
        result = convert(mobilenet, Format.TFLITE, options, output=work / f"mnv2.{quant.value}.tflite", force=True)
        sizes[quant] = result.artifact.path.stat().st_size
    fp32 = sizes[QuantMode.NONE]
    lines.append(f"\nMobileNetV2-style (96×96×3, 10 classes) TFLite: fp32 {fp32 / 1e6:.2f} MB")
    for quant, target in ((QuantMode.INT8, 0.30), (QuantMode.FP16, 0.52)):
        ratio = sizes[quant] / fp32
        lines.append(f"  {quant.value:<5} {sizes[quant] / 1e6:.2f} MB  ratio {ratio:.3f}  target ≤ {target:.2f}  "
                     f"{'ok' if ratio <= target else 'MISSES'}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
