"""Models the benchmark scripts share, built or trained once into a work directory and reused.

Each cached file carries a stamp: a fingerprint of the edgekit code that made it (training and model
code for a trained model; converter, calibration and quantization code for a converted one, plus its
source's stamp). A stale file — made by older code, or from a source trained since — is rebuilt, so a
converter change is never measured with the previous converter's output.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MOBILENET_EPOCHS = 2
PACKAGE = Path(__file__).resolve().parent.parent / "edgekit"
TRAINING_CODE = ("training", "models", "toolkit/data/datasets.py")
CONVERSION_CODE = ("converters", "conversion.py", "toolkit/data/calibration.py", "toolkit/contract/options.py")


def code_fingerprint(parts: Iterable[str], *extra: str) -> str:
    """sha256 over the edgekit sources under ``parts`` (files or packages) and ``extra`` strings."""
    digest = hashlib.sha256()
    for part in parts:
        root = PACKAGE / part
        for file in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            digest.update(file.relative_to(PACKAGE).as_posix().encode() + b"\0" + file.read_bytes())
    for value in extra:
        digest.update(b"\0" + value.encode())
    return digest.hexdigest()[:16]


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".stamp")


def _current(path: Path, fingerprint: str) -> bool:
    stamp = _stamp(path)
    return path.exists() and stamp.is_file() and stamp.read_text() == fingerprint


def mobilenet(work: Path, framework: str, size: int | None = None) -> Path:
    """The MobileNetV2-style model of `edgekit train --arch mobilenetv2` (size×size×3 digits, default the
    architecture's default input), trained briefly so its activations are healthy for int8 calibration;
    reused when already in ``work``. The size is part of the file name, so a cache built for another
    resolution is never timed by mistake (a speed-up measured at 64² is not the one at 96²)."""
    from edgekit.models import MOBILENET_DEFAULT_SIZE, Arch, Framework
    from edgekit.training import TrainOptions, train

    size = size or MOBILENET_DEFAULT_SIZE
    suffix = ".pt2" if framework == "torch" else ".keras"
    path = work / f"mobilenetv2-{size}px{suffix}"
    fingerprint = code_fingerprint(TRAINING_CODE, str(MOBILENET_EPOCHS))
    if not _current(path, fingerprint):
        from edgekit.toolkit.stdio import framework_output_to_stderr

        print(f"training MobileNetV2 {size}×{size} ({framework}, {MOBILENET_EPOCHS} epochs) …", file=sys.stderr)
        with framework_output_to_stderr():
            train(TrainOptions(Framework(framework), Arch.MOBILENETV2, epochs=MOBILENET_EPOCHS, image_size=size),
                  path, force=True)
        _stamp(path).write_text(fingerprint)
    return path


def converted(source: Path, target: str, quant: str = "none", quantizer: str | None = None) -> Path:
    from edgekit.conversion import convert, default_output
    from edgekit.converters.base import ConvertOptions
    from edgekit.toolkit.contract.formats import Format
    from edgekit.toolkit.contract.options import QuantMode
    from edgekit.toolkit.stdio import framework_output_to_stderr

    out = default_output(source, Format(target), QuantMode(quant))
    # the Keras and torch twins of a model share a stem: their artifacts must not share a file
    out = out.with_name(f"{source.stem}.{source.suffix.lstrip('.')}{out.name.removeprefix(source.stem)}")
    if quantizer is not None:  # another tool's model of the same mode is another file
        out = out.with_name(f"{out.stem}.{quantizer}{out.suffix}")
    fingerprint = code_fingerprint(CONVERSION_CODE, _stamp(source).read_text(), target, quant, quantizer or "")
    if not _current(out, fingerprint):
        print(f"converting {source.name} → {target} ({quant}) …", file=sys.stderr)
        with framework_output_to_stderr():
            convert(source, Format(target), ConvertOptions(quantize=QuantMode(quant), validate=False,
                                                           quantizer=quantizer), output=out, force=True)
        _stamp(out).write_text(fingerprint)
    return out
