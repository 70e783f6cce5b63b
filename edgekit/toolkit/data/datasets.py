"""Datasets for training and for the real-data steps after it (calibration, parity).

Sources: scikit-learn's bundled digits (1,797 8×8 images, shipped inside the package: no download)
or the user's ``.npz`` with ``x`` (N,H,W) or (N,H,W,C) channels-last images, ``y`` integer class ids
and optional ``labels``. Splits are stratified and fixed by the seed. Arrays handed to models are
already preprocessed (scaled, resized, normalised, in the model's layout): the recipe is recorded in
a ``Preprocessing`` so an app can reproduce it on device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.toolkit.contract.errors import InvalidInputError, option
from edgekit.toolkit.contract.iospec import Layout

DIGITS = "digits"
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # train, calibration, test


@dataclass(frozen=True)
class Preprocessing:
    """raw image → model input: ``x * scale``, resize to ``size`` (nearest), repeat to ``channels``,
    ``(x - mean) / std`` per channel, then arrange in ``layout``."""

    layout: Layout
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: tuple[int, int]
    channels: int

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout.value, "scale": self.scale, "mean": list(self.mean), "std": list(self.std),
                "size": list(self.size), "channels": self.channels}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(Layout(data["layout"]), float(data["scale"]), tuple(data["mean"]), tuple(data["std"]),
                   tuple(data["size"]), int(data["channels"]))

    def apply(self, images: np.ndarray) -> np.ndarray:
        """(N,H,W) or (N,H,W,C) raw images → float32 model inputs."""
        x = images.astype(np.float32) * self.scale
        if x.ndim == 3:
            x = x[..., None]
        x = _resize_nearest(x, self.size)
        if x.shape[-1] != self.channels:
            if x.shape[-1] != 1:
                raise InvalidInputError(
                    f"images have {x.shape[-1]} channels, the model takes {self.channels}",
                    hint="give images with 1 channel or the model's channel count",
                )
            x = np.repeat(x, self.channels, axis=-1)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout is Layout.NCHW:
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # raw, (N,H,W) or (N,H,W,C)
    labels: np.ndarray  # int64 class ids 0..K-1
    class_names: tuple[str, ...]
    source: str
    scale: float  # raw values × scale lie in [0, 1]: digits 1/16, 8-bit images 1/255

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class Splits:
    train: tuple[np.ndarray, np.ndarray]
    calibration: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def load_digits() -> Dataset:
    from edgekit.toolkit.contract import extras

    extras.require(("sklearn",), "the digits data set")
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = bunch.images.astype(np.float32)  # values 0..16
    return Dataset(images, bunch.target.astype(np.int64), tuple(str(i) for i in range(10)), DIGITS, 1.0 / 16)


def load_npz(path: str | os.PathLike[str]) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such data file", hint="give a .npz with arrays x and y, or --data digits")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as exc:
        raise InvalidInputError(f"{path}: not a readable .npz ({exc})", hint="save it with numpy.savez") from None
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise InvalidInputError(
            f"{path}: missing array(s) {missing} (has {sorted(arrays)})",
            hint="save images as x (N,H,W[,C]) and integer class ids as y (N,)",
        )
    return _validated(path, arrays["x"], arrays["y"], arrays.get("labels"))


def _validated(path: Path, images: np.ndarray, targets: np.ndarray, names: np.ndarray | None) -> Dataset:
    if images.ndim not in (3, 4) or images.dtype.kind not in "fiu":
        raise InvalidInputError(
            f"{path}: x has shape {images.shape} and dtype {images.dtype}",
            hint="x must be numeric images (N,H,W) or channels-last (N,H,W,C)",
        )
    if targets.ndim != 1 or targets.dtype.kind not in "iu" or len(targets) != len(images):
        raise InvalidInputError(
            f"{path}: y has shape {targets.shape} and dtype {targets.dtype} for {len(images)} images",
            hint="y must hold one integer class id per image",
        )
    classes = np.unique(targets)
    if classes[0] < 0 or len(classes) < 2:
        raise InvalidInputError(f"{path}: y must hold at least two class ids ≥ 0", hint="check y")
    num_classes = int(classes[-1]) + 1
    if names is None:
        class_names = tuple(str(i) for i in range(num_classes))
    else:
        class_names = tuple(str(n) for n in np.asarray(names).ravel())
        if len(class_names) != num_classes:
            raise InvalidInputError(
                f"{path}: {len(class_names)} labels for {num_classes} classes (y ranges 0..{num_classes - 1})",
                hint="give exactly one label per class id",
            )
    scale = 1.0 / 255 if images.dtype == np.uint8 else 1.0
    return Dataset(images, targets.astype(np.int64), class_names, str(path), scale)


def load_dataset(spec: str) -> Dataset:
    return load_digits() if spec == DIGITS else load_npz(spec)


def stratified_split(dataset: Dataset, seed: int) -> Splits:
    """Train/calibration/test split with every class in the same proportion in each part."""
    from edgekit.toolkit.contract import extras

    extras.require(("sklearn",), "a stratified train/calibration/test split")
    from sklearn.model_selection import train_test_split

    _train_frac, calib_frac, test_frac = SPLIT_FRACTIONS
    counts = np.bincount(dataset.labels, minlength=dataset.num_classes)
    if counts.min() < 3:
        raise InvalidInputError(
            f"{dataset.source}: class {int(counts.argmin())} has {int(counts.min())} image(s)",
            hint="a stratified train/calibration/test split needs at least 3 images of every class",
        )
    x, y = dataset.images, dataset.labels
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test_frac, stratify=y, random_state=seed)
    calib_of_rest = calib_frac / (1 - test_frac)
    x_train, x_cal, y_train, y_cal = train_test_split(
        x_rest, y_rest, test_size=calib_of_rest, stratify=y_rest, random_state=seed
    )
    return Splits((x_train, y_train), (x_cal, y_cal), (x_test, y_test))


def fit_preprocessing(
    train_images: np.ndarray, *, scale: float, layout: Layout, size: tuple[int, int], channels: int
) -> Preprocessing:
    """Scale to [0, 1] and standardise per channel with the training split's statistics."""
    scaled = train_images.astype(np.float32) * scale
    if scaled.ndim == 3:
        scaled = scaled[..., None]
    mean = scaled.mean(axis=(0, 1, 2))
    std = scaled.std(axis=(0, 1, 2)) + 1e-6
    if scaled.shape[-1] == 1 and channels > 1:
        mean, std = np.repeat(mean, channels), np.repeat(std, channels)
    return Preprocessing(layout, scale, tuple(float(m) for m in mean), tuple(float(s) for s in std), size, channels)


def _resize_nearest(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = x.shape[1:3]
    if (height, width) == tuple(size):
        return x
    rows = (np.arange(size[0]) * height // size[0]).astype(np.int64)
    cols = (np.arange(size[1]) * width // size[1]).astype(np.int64)
    return x[:, rows][:, :, cols]


INPUT_KEYS = {"test_x": "test_y", "x": "y", "calibration_x": "calibration_y"}  # in order of preference


def model_inputs_from_npz(path: Path, limit: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Model-ready inputs (and their labels, if any) from an edgekit data file or a user's .npz: test_x
    first, then x, then calibration_x. Returns (inputs, labels or None, the key used)."""
    if not path.is_file():
        raise InvalidInputError(f"{option('data', path)}: no such file",
                                hint="give a .npz with test_x (and test_y), or random")
    try:
        with np.load(path, allow_pickle=False) as archive:
            key = next((k for k in INPUT_KEYS if k in archive.files), None)
            if key is None:
                raise InvalidInputError(f"{path}: has none of {', '.join(INPUT_KEYS)}", hint="save inputs as x")
            inputs = archive[key][:limit]
            labels = archive[INPUT_KEYS[key]][:limit] if INPUT_KEYS[key] in archive.files else None
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(f"{path}: not a readable .npz ({exc})", hint="save it with numpy.savez") from None
    return inputs, labels, key
