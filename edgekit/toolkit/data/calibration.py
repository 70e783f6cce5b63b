"""Representative inputs for quantization calibration (and, later, parity), real data first.

Sources, in order of preference:
- the model's own data (``<model>.data.npz`` named in its sidecar, written by ``edgekit train``);
- ``digits``: scikit-learn's digits, through the model's recorded preprocessing;
- ``FILE.npz``: one array per input name (``edgekit.toolkit.data.feeds``, any model), or for single-input
  models ``calibration_x`` (model-ready, as edgekit writes it) or ``x`` (raw images);
- ``IMAGE_DIR``: .png/.jpg/.bmp images, resized to the model's input;
- ``random``: seeded normal noise shaped by the I/O contract, only when asked for by name.
Every sample is returned as a batch-1 feed dict in the model's input layout and dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.toolkit.contract.artifact import Artifact
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError, option
from edgekit.toolkit.contract.iospec import IOSpec, Layout, TensorSpec, example_feeds
from edgekit.toolkit.data.datasets import DIGITS, Preprocessing, load_digits
from edgekit.toolkit.data.feeds import named_feeds, names_inputs, read_npz

RANDOM = "random"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


@dataclass(frozen=True)
class CalibrationSet:
    feeds: tuple[dict[str, np.ndarray], ...]
    source: str  # what the samples are, in words, for reports and sidecars
    real: bool  # False for random data: accuracy after quantization is then unknown


def resolve(
    spec: str | None,
    io_spec: IOSpec,
    *,
    sidecar: Artifact | None,
    samples: int,
    seed: int = 0,
) -> CalibrationSet | None:
    """The calibration set ``spec`` names, or the model's own data when ``spec`` is None.

    Returns None when nothing was named and the model has no data of its own.
    """
    if samples < 1:
        raise UsageError(f"{option('calibration_samples')} must be ≥ 1, got {samples}")
    if spec is None:
        data = sidecar.data_path if sidecar is not None else None
        if data is None or not data.is_file():
            return None
        return _from_npz(data, io_spec, sidecar, samples)
    if spec == RANDOM:
        feeds = tuple(example_feeds(io_spec, seed=seed + i) for i in range(samples))
        return CalibrationSet(feeds, f"{samples} seeded random samples", real=False)
    if spec == DIGITS:
        dataset = load_digits()
        return _from_images(dataset.images[:samples], io_spec, sidecar, "digits", dataset.scale)
    path = Path(spec)
    if path.is_dir():
        return _from_directory(path, io_spec, sidecar, samples)
    if path.suffix == ".npz" or path.is_file():
        return _from_npz(path, io_spec, sidecar, samples)
    raise InvalidInputError(f"{option('calibration', spec)}: no such file or directory",
                            hint="give digits, FILE.npz, an image directory, or random")


def is_named_set(spec: str | None) -> bool:
    """Whether a calibration spec names no file: None (the model's own data), ``digits`` or ``random``."""
    return spec is None or spec in (RANDOM, DIGITS)


def pinned(spec: str | None, artifact_dir: Path) -> dict[str, str]:
    """What a sidecar records of a calibration file or image directory so that ``--recipe`` may read it again:
    its path relative to the artifact's directory and its sha256 (``calibration_sha256``). A recipe's calibration
    path is read only inside the recipe's directory or when it is the very file recorded
    (:func:`edgekit.budget.read_recipe`). Empty for the named sets and for a path that is not there."""
    import os

    from edgekit.toolkit.fsutil import sha256_of

    if is_named_set(spec):
        return {}
    path = Path(spec).absolute()  # type: ignore[arg-type]
    if not (path.is_file() or path.is_dir()):
        return {}
    return {"calibration": Path(os.path.relpath(path, artifact_dir.absolute())).as_posix(),
            "calibration_sha256": sha256_of(path)}


def _single_input(io_spec: IOSpec, what: str) -> TensorSpec:
    if len(io_spec.inputs) != 1:
        raise UsageError(f"{what} calibration feeds single-input models; this one takes {io_spec.input_names}",
                         hint="give a .npz with calibration_x, or --calibration random")
    return io_spec.inputs[0]


def _from_npz(path: Path, io_spec: IOSpec, sidecar: Artifact | None, samples: int) -> CalibrationSet:
    arrays = read_npz(path)
    if names_inputs(arrays, io_spec, legacy_keys=("calibration_x", "x")):
        found = named_feeds(path, io_spec, limit=samples, arrays=arrays, purpose="calibration")
        return CalibrationSet(found.feeds, found.source, real=True)
    ts = io_spec.inputs[0]
    if "calibration_x" in arrays:
        inputs = arrays["calibration_x"][:samples]
        return CalibrationSet(_feeds(inputs, ts, path), f"{len(inputs)} samples from {path.name}", real=True)
    if "x" not in arrays:
        raise InvalidInputError(f"{path}: has neither calibration_x nor x", hint="save inputs as x (N, …)")
    raw = arrays["x"][:samples]
    model_shape = ts.concrete_shape()[1:]
    if raw.shape[1:] == tuple(model_shape):  # already model-ready
        return CalibrationSet(_feeds(raw.astype(np.float32), ts, path), f"{len(raw)} samples from {path.name}", True)
    dataset_scale = 1.0 / 255 if raw.dtype == np.uint8 else 1.0
    return _from_images(raw, io_spec, sidecar, path.name, dataset_scale)


def _from_images(images: np.ndarray, io_spec: IOSpec, sidecar: Artifact | None, name: str,
                 scale: float) -> CalibrationSet:
    ts = _single_input(io_spec, name)
    prep = sidecar.preprocessing if sidecar is not None and sidecar.preprocessing else _default_prep(ts, scale)
    if len(ts.concrete_shape()) != 4:
        raise InvalidInputError(f"{name}: images cannot feed input {ts.name!r} of shape {list(ts.shape or [])}",
                                hint="give a .npz whose x matches the model's input")
    return CalibrationSet(_feeds(prep.apply(images), ts, Path(name)), f"{len(images)} images from {name}", True)


def _default_prep(ts: TensorSpec, scale: float) -> Preprocessing:
    shape = ts.concrete_shape()
    layout = ts.layout if ts.layout is not Layout.UNKNOWN else Layout.NCHW
    height, width, channels = (shape[2], shape[3], shape[1]) if layout is Layout.NCHW else shape[1:4]
    return Preprocessing(layout, scale, (0.0,) * channels, (1.0,) * channels, (height, width), channels)


def _from_directory(directory: Path, io_spec: IOSpec, sidecar: Artifact | None, samples: int) -> CalibrationSet:
    from PIL import Image

    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:samples]
    if not files:
        raise InvalidInputError(f"{directory}: no .png/.jpg/.bmp images", hint="give a directory of images")
    ts = _single_input(io_spec, directory.name)
    shape = ts.concrete_shape()
    layout = ts.layout if ts.layout is not Layout.UNKNOWN else Layout.NCHW
    size = (shape[3], shape[2]) if layout is Layout.NCHW else (shape[2], shape[1])
    channels = shape[1] if layout is Layout.NCHW else shape[3]
    mode = "L" if channels == 1 else "RGB"
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                images.append(np.asarray(image.convert(mode).resize(size), dtype=np.uint8))
        except Exception as exc:
            raise InvalidInputError(f"{file}: not a readable image ({exc})", hint="remove or fix it") from None
    return _from_images(np.stack(images), io_spec, sidecar, directory.name, 1.0 / 255)


def _feeds(inputs: np.ndarray, ts: TensorSpec, origin: Path) -> tuple[dict[str, np.ndarray], ...]:
    want = ts.concrete_shape()[1:]
    if tuple(inputs.shape[1:]) != tuple(want) and ts.accepts((1, *inputs.shape[1:])) is False:
        raise InvalidInputError(
            f"{origin}: calibration samples have shape {list(inputs.shape[1:])}, "
            f"input {ts.name!r} takes {list(ts.shape or [])[1:]} per sample",
            hint="give data preprocessed for this model (e.g. the <model>.data.npz edgekit train wrote)",
        )
    inputs = inputs.astype(ts.dtype, copy=False)
    return tuple({ts.name: inputs[i: i + 1]} for i in range(len(inputs)))
