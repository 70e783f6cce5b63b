"""Models the benchmark scripts share, built or trained once into a work directory and reused."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MOBILENET_EPOCHS = 2


def mobilenet(work: Path, framework: str) -> Path:
    """The MobileNetV2-style model of `edgekit train --arch mobilenetv2` (96×96×3 digits), trained briefly
    so its activations are healthy for int8 calibration; reused when already in ``work``."""
    from edgekit.models import Arch, Framework
    from edgekit.training import TrainOptions, train

    suffix = ".pt2" if framework == "torch" else ".keras"
    path = work / f"mobilenetv2{suffix}"
    if not path.exists():
        from edgekit.toolkit.stdio import framework_output_to_stderr

        print(f"training MobileNetV2 ({framework}, {MOBILENET_EPOCHS} epochs) …", file=sys.stderr)
        with framework_output_to_stderr():
            train(TrainOptions(Framework(framework), Arch.MOBILENETV2, epochs=MOBILENET_EPOCHS), path)
    return path


def converted(source: Path, target: str, quant: str = "none") -> Path:
    from edgekit.conversion import convert, default_output
    from edgekit.converters.base import ConvertOptions
    from edgekit.toolkit.formats import Format
    from edgekit.toolkit.options import QuantMode
    from edgekit.toolkit.stdio import framework_output_to_stderr

    out = default_output(source, Format(target), QuantMode(quant))
    if not out.exists():
        with framework_output_to_stderr():
            convert(source, Format(target), ConvertOptions(quantize=QuantMode(quant), validate=False), output=out)
    return out
