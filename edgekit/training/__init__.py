"""``edgekit train``: a small real model on real data, saved with its data splits and contract.

torch models are saved as a torch.export program (``.pt2``, batch 1, NCHW), Keras models as ``.keras``
(NHWC). Beside the model: ``<model>.data.npz`` (calibration and test inputs, already preprocessed, with
labels) and the sidecar, so later steps (calibration, parity) use real data by default. The three files
appear together or not at all.

Model inputs are made batch by batch from the raw images (``batches.LazyImages``), so memory stays near
one batch of inputs at the training resolution whatever the data set's size. For the same reason the data
file holds at most ``SAVED_SPLIT_BYTES`` of inputs per split (the first samples of the shuffled split;
parity and calibration use at most a few hundred), and the sidecar's preprocessing recipe remakes any
input from a raw image.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.models import Arch, Framework, input_geometry
from edgekit.toolkit.contract.artifact import Artifact, sidecar_path
from edgekit.toolkit.contract.errors import BackendError, UsageError, option
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, Layout
from edgekit.toolkit.data.datasets import Preprocessing, Splits, fit_preprocessing, load_dataset, stratified_split
from edgekit.toolkit.fsutil import atomic_paths, check_writable_target, sha256_of
from edgekit.toolkit.sysinfo import package_versions
from edgekit.training.batches import LazyImages, write_npz
from edgekit.training.types import EpochStats
from edgekit.validators.metrics import top1_accuracy

DEFAULT_EPOCHS = {Arch.MLP: 30, Arch.CNN: 15, Arch.MOBILENETV2: 5}
DEFAULT_LEARNING_RATE = {Arch.MLP: 1e-3, Arch.CNN: 2e-3, Arch.MOBILENETV2: 2e-3}
FORMAT = {Framework.TORCH: Format.TORCH_EXPORTED, Framework.KERAS: Format.KERAS}
LAYOUT = {Framework.TORCH: Layout.NCHW, Framework.KERAS: Layout.NHWC}
# The saved artifact must reproduce the in-memory model on the test images to this tolerance.
SAVE_CHECK_ATOL = 1e-4
# Model inputs kept per split in <model>.data.npz: all 360 digits test images at 224² RGB (216 MB, a few MB
# compressed), while a large data set at that size keeps ~440 (parity uses up to 500, calibration 100).
SAVED_SPLIT_BYTES = 256 << 20


@dataclass(frozen=True)
class TrainOptions:
    framework: Framework
    arch: Arch
    data: str = "digits"
    epochs: int | None = None  # None: the architecture's default
    seed: int = 0
    batch_size: int = 32
    learning_rate: float | None = None
    image_size: int | None = None  # None: the data's own size (MobileNetV2: at least 96)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "image_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{option(name)} must be ≥ 1, got {value}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UsageError(f"{option('learning_rate')} must be > 0, got {self.learning_rate}")

    @property
    def resolved_epochs(self) -> int:
        return self.epochs or DEFAULT_EPOCHS[self.arch]

    @property
    def resolved_learning_rate(self) -> float:
        return self.learning_rate or DEFAULT_LEARNING_RATE[self.arch]


@dataclass(frozen=True)
class TrainResult:
    artifact: Artifact
    test_accuracy: float
    test_samples: int
    history: tuple[EpochStats, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": str(self.artifact.path),
            "data": str(self.artifact.data_path),
            "sidecar": str(sidecar_path(self.artifact.path)),
            "test_accuracy": self.test_accuracy,
            "test_samples": self.test_samples,
            "seconds": self.seconds,
            "history": [h.to_dict() for h in self.history],
        }


def output_paths(out: str | os.PathLike[str], framework: Framework) -> tuple[Path, Path]:
    """The model path (the framework's extension added when missing) and its data file."""
    out = Path(out)
    suffix = FORMAT[framework].spec.suffix
    if not out.suffix:
        out = out.with_suffix(suffix)
    elif out.suffix != suffix:
        raise UsageError(
            f"-o {out}: {framework} models are saved as {suffix}", hint=f"use -o {out.with_suffix(suffix)}"
        )
    # The full name, not the stem: digits.pt2 and digits.keras must not share (and clobber) one data file.
    return out, out.with_name(out.name + ".data.npz")


def train(
    options: TrainOptions,
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    on_epoch: Callable[[EpochStats], None] = lambda stats: None,
) -> TrainResult:
    from edgekit.toolkit.contract import extras

    start = time.perf_counter()
    model_path, data_path = output_paths(out, options.framework)
    for path in (model_path, data_path, sidecar_path(model_path)):
        check_writable_target(path, force=force)  # fail before minutes of training, not after
    needs = ("torch",) if options.framework is Framework.TORCH else ("keras", "tensorflow")
    extras.require((*needs, *(("sklearn",) if options.data == "digits" else ())), f"training in {options.framework}")
    dataset = load_dataset(options.data)
    splits = stratified_split(dataset, options.seed)
    prep = _preprocessing(options, splits, dataset.scale)
    train_part, cal_part, test_part = (LazyImages(*part, prep) for part in (splits.train, splits.calibration,
                                                                             splits.test))
    sample_shape = train_part.sample_shape
    backend = importlib.import_module(f"edgekit.training.{options.framework}_backend")
    zoo = importlib.import_module(f"edgekit.models.{options.framework}_zoo")
    model = zoo.build(options.arch, channels=prep.channels, size=prep.size, classes=dataset.num_classes,
                      seed=options.seed)
    history = backend.fit(
        model, train_part, cal_part, epochs=options.resolved_epochs, batch_size=options.batch_size,
        learning_rate=options.resolved_learning_rate, seed=options.seed, on_epoch=on_epoch,
    )
    test_logits = backend.predict(model, test_part)
    test_accuracy = top1_accuracy(test_logits, splits.test[1])
    saved = {name: part.head(max(1, SAVED_SPLIT_BYTES // train_part.sample_bytes))
             for name, part in (("calibration", cal_part), ("test", test_part))}
    with atomic_paths(model_path, data_path, sidecar_path(model_path), force=force) as (tmp_model, tmp_data, tmp_side):
        backend.save(model, tmp_model, (1, *sample_shape))
        write_npz(tmp_data, {
            "calibration_x": saved["calibration"], "calibration_y": saved["calibration"].labels,
            "test_x": saved["test"], "test_y": saved["test"].labels, "labels": np.array(dataset.class_names),
        })
        io_spec = _check_saved(tmp_model, test_part.take(slice(0, 8)), test_logits[:8], prep.layout)
        artifact = Artifact(
            path=model_path, format=FORMAT[options.framework], io_spec=io_spec, sha256=sha256_of(tmp_model),
            route=("edgekit.train", str(options.framework)),
            options={"framework": str(options.framework), "arch": str(options.arch), "data": options.data,
                     "epochs": options.resolved_epochs, "seed": options.seed, "batch_size": options.batch_size,
                     "learning_rate": options.resolved_learning_rate},
            versions={k: v for k, v in package_versions().items() if v},
            labels=dataset.class_names, preprocessing=prep, data=data_path.name, data_sha256=sha256_of(tmp_data),
            metrics={"test_accuracy": test_accuracy, "test_samples": len(test_part),
                     "calibration_accuracy": history[-1].val_accuracy if history else None},
            extra={"history": [h.to_dict() for h in history],
                   "data_samples": {name: len(part) for name, part in saved.items()}},
        )
        tmp_side.write_text(artifact.sidecar_text())
    return TrainResult(artifact, test_accuracy, len(test_part), tuple(history), time.perf_counter() - start)


def _preprocessing(options: TrainOptions, splits: Splits, scale: float) -> Preprocessing:
    images = splits.train[0]
    native_size = images.shape[1:3]
    native_channels = 1 if images.ndim == 3 else images.shape[3]
    size, channels = input_geometry(options.arch, native_size, native_channels, options.image_size)
    return fit_preprocessing(images, scale=scale, layout=LAYOUT[options.framework], size=size, channels=channels)


def _check_saved(path: Path, images: np.ndarray, expected: np.ndarray, layout: Layout) -> IOSpec:
    """Load the file just written, in its own runtime, and require it to reproduce the trained model."""
    from edgekit.targets import open_runtime

    with open_runtime(path) as runtime:
        spec = runtime.io_spec
        name = spec.input_names[0]
        got = np.concatenate([next(iter(runtime.run({name: image[None]}).values())) for image in images])
    error = float(np.abs(got - expected).max())
    if not error <= SAVE_CHECK_ATOL:
        raise BackendError(f"{path.name}: the saved model differs from the trained one by {error:.3g}")
    inputs = tuple(replace(t, layout=layout) if t.shape is not None and len(t.shape) == 4 else t for t in spec.inputs)
    return IOSpec(inputs, spec.outputs)
