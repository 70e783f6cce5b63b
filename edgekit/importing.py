"""``edgekit import``: bring any model in and normalise it into an artifact with a sidecar.

SOURCE is one of:
- ``package.module:callable``: a factory returning a torch ``nn.Module`` or a ``keras.Model`` (the
  user named the code, so running it is their choice); torch needs ``--input-shape``; ``--weights``
  loads a torch state_dict (``weights_only=True``) or Keras weights into it;
- ``keras:<Application>``: a ``keras.applications`` architecture with seeded random weights (never a
  download);
- a model file or SavedModel directory of any format edgekit loads.

torch models become a ``.pt2`` (torch.export), Keras ``.keras``/``.h5`` become ``.keras``; SavedModel,
ONNX, TFLite, TorchScript and ``.pte`` are copied. The result is loaded and run once before the
artifact and its sidecar appear, together.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.toolkit.contract.artifact import Artifact, sidecar_path
from edgekit.toolkit.contract.errors import (
    BackendError,
    EdgekitError,
    InvalidInputError,
    UsageError,
    first_line,
    option,
)
from edgekit.toolkit.contract.formats import Format, sniff
from edgekit.toolkit.contract.iospec import Dim, IOSpec, Layout, guess_layout
from edgekit.toolkit.data.datasets import Preprocessing
from edgekit.toolkit.fsutil import atomic_directory, atomic_path, sha256_of
from edgekit.toolkit.sysinfo import package_versions

FACTORY = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_]\w*)$")
KERAS_BUILTIN = re.compile(r"^keras:(?P<name>[A-Za-z_]\w*)$")
SOURCE_FORMS = "a model file, a SavedModel directory, package.module:factory, or keras:<Application>"


@dataclass(frozen=True)
class ImportOptions:
    input_shapes: dict[str, tuple[Dim, ...]] = field(default_factory=dict)
    weights: Path | None = None
    labels: Path | None = None
    scale: float = 1.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: Layout | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise UsageError(f"{option('mean')} and {option('std')} go together",
                             hint=f"give both, e.g. {option('mean')} 0.5 {option('std')} 0.25")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise UsageError(f"{option('std')} values must be > 0, got {list(self.std)}")
        if not self.scale > 0:
            raise UsageError(f"{option('scale')} must be > 0, got {self.scale}")


@dataclass(frozen=True)
class ImportResult:
    artifact: Artifact
    source_kind: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": str(self.artifact.path), "sidecar": str(sidecar_path(self.artifact.path)),
                "format": self.artifact.format.value, "source_kind": self.source_kind, "seconds": self.seconds,
                "io_spec": self.artifact.io_spec.to_dict(), "labels": list(self.artifact.labels)}


def import_model(source: str, out: str | os.PathLike[str], options: ImportOptions | None = None, *,
                 force: bool = False) -> ImportResult:
    start = time.perf_counter()
    options = options or ImportOptions()
    labels = read_labels(options.labels) if options.labels else ()
    job = _Job(Path(out), options, labels, force)
    if Path(source).exists():
        kind, artifact = _import_file(Path(source), job)
    elif match := KERAS_BUILTIN.match(source):
        kind, artifact = "keras-builtin", _save_keras(_keras_builtin(match["name"], options, labels), job, source)
    elif match := FACTORY.match(source):
        kind, artifact = _import_factory(match["module"], match["attr"], job)
    else:
        raise InvalidInputError(
            f"{source}: no such file, and not a factory reference", hint=f"SOURCE is {SOURCE_FORMS}"
        )
    return ImportResult(artifact, kind, time.perf_counter() - start)


@dataclass(frozen=True)
class _Job:
    out: Path
    options: ImportOptions
    labels: tuple[str, ...]
    force: bool


def read_labels(path: Path) -> tuple[str, ...]:
    """One label per line, or a JSON list."""
    from edgekit.toolkit.fsutil import MAX_LABELS_BYTES, read_regular_file

    try:
        text = read_regular_file(path, what="labels file", limit=MAX_LABELS_BYTES).decode("utf-8")
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read labels ({exc.strerror})", hint="check the path") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: labels are not UTF-8 text", hint="one label per line, UTF-8") from None
    if path.suffix == ".json":
        try:
            labels = json.loads(text)
        except ValueError as exc:
            raise InvalidInputError(f"{path}: not valid JSON ({exc})", hint="give a JSON list of strings") from None
        if not isinstance(labels, list):
            raise InvalidInputError(f"{path}: expected a JSON list of labels", hint='e.g. ["cat", "dog"]')
        labels = [str(label) for label in labels]
    else:
        labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise InvalidInputError(f"{path}: no labels found", hint="one label per line")
    return tuple(labels)


# -- sources ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def _cwd_importable() -> Iterator[None]:
    """Factories usually live beside the user: make the working directory importable meanwhile."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)


def _call_factory(module_name: str, attr: str) -> Any:
    reference = f"{module_name}:{attr}"
    with _cwd_importable():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise InvalidInputError(f"{reference}: cannot import {module_name} ({first_line(exc)})",
                                    hint=f"check the module path; SOURCE is {SOURCE_FORMS}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise InvalidInputError(f"{reference}: {module_name} has no callable {attr!r}",
                                hint="name a function or class that returns the model")
    try:
        return factory()
    except Exception as exc:
        raise InvalidInputError(f"{reference}: the factory raised {type(exc).__name__}: {first_line(exc)}",
                                hint="the factory must build the model when called with no arguments") from None


def _framework_of(model: Any) -> str | None:
    if "torch" in sys.modules:
        import torch

        if isinstance(model, torch.nn.Module):
            return "torch"
    if "keras" in sys.modules:
        import keras

        if isinstance(model, keras.Model):
            return "keras"
    return None


def _import_factory(module_name: str, attr: str, job: _Job) -> tuple[str, Artifact]:
    reference = f"{module_name}:{attr}"
    model = _call_factory(module_name, attr)
    framework = _framework_of(model)
    if framework == "torch":
        return "torch-factory", _save_torch(model, job, reference)
    if framework == "keras":
        if job.options.weights:
            _load_keras_weights(model, job.options.weights)
        return "keras-factory", _save_keras(model, job, reference)
    raise InvalidInputError(f"{reference}: returned {type(model).__name__}, not a torch nn.Module or keras.Model",
                            hint="return the model object itself")


def _keras_builtin(name: str, options: ImportOptions, labels: Sequence[str]) -> Any:
    from edgekit.toolkit.contract import extras

    extras.require(("keras", "tensorflow"), f"building keras:{name}")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    builder = getattr(keras.applications, name, None)
    if builder is None or not callable(builder) or not name[:1].isupper():
        available = sorted(n for n in dir(keras.applications) if n[:1].isupper())
        raise InvalidInputError(f"keras:{name}: not a keras.applications architecture",
                                hint=f"one of {', '.join(available)}")
    kwargs: dict[str, Any] = {"weights": None}
    if options.input_shapes:
        (shape,) = options.input_shapes.values() if len(options.input_shapes) == 1 else (None,)
        if shape is None or len(shape) not in (3, 4) or not all(isinstance(d, int) for d in shape[-3:]):
            raise UsageError(f"keras applications take one {option('input_shapes')} H,W,C (or 1,H,W,C)",
                             hint=f"e.g. {option('input_shapes')} 96,96,3")
        kwargs["input_shape"] = tuple(shape[-3:])
    if labels:
        kwargs["classes"] = len(labels)
    keras.utils.set_random_seed(options.seed)
    try:
        model = builder(**kwargs)
    except Exception as exc:
        raise InvalidInputError(f"keras:{name}: {first_line(exc)}", hint=f"check {option('input_shapes')} and "
                                                                         f"{option('labels')}") from None
    if options.weights:
        _load_keras_weights(model, options.weights)
    return model


def _load_keras_weights(model: Any, weights: Path) -> None:
    try:
        model.load_weights(str(weights))
    except Exception as exc:
        raise InvalidInputError(f"{weights}: cannot load these weights into the model ({first_line(exc)})",
                                hint="give a .weights.h5 saved from the same architecture") from None


def _import_file(path: Path, job: _Job) -> tuple[str, Artifact]:
    from edgekit.toolkit.safety.policy import check_torch_environment, check_torch_pickle

    sniffed = sniff(path)
    if job.options.weights:
        raise UsageError(f"{option('weights')} goes with a factory or keras:<Application>, not a model file",
                         hint="a model file already holds its weights")
    if sniffed.format is Format.TORCH_PICKLE:
        check_torch_environment()
        check_torch_pickle(sniffed.path)
        raise InvalidInputError(f"{path}: holds weights only (a state_dict); edgekit needs the architecture too",
                                hint=f"edgekit import package.module:factory {option('weights')} {path} "
                                     f"{option('input_shapes')} …")
    if sniffed.format is Format.KERAS_H5:
        from edgekit.targets import open_runtime

        with open_runtime(path, sniffed=sniffed) as runtime:  # loads in safe mode
            model = runtime.model
        return "keras-h5", _save_keras(model, job, str(path), source=path)
    target = _output_path(job.out, sniffed.format, path)
    with _outputs(target, sniffed.format, job.force) as (staged, staged_sidecar):
        copy = shutil.copytree if sniffed.format is Format.SAVEDMODEL else shutil.copyfile
        copy(path, staged)
        artifact = _finish(staged, staged_sidecar, target, sniffed.format, job, route=str(path), source=path,
                           input_shapes=job.options.input_shapes)
    return f"{sniffed.format.value}-file", artifact


# -- normalised outputs -----------------------------------------------------------------------------
def _output_path(out: Path, fmt: Format, source: Path | None = None) -> Path:
    natural = source.suffix if source is not None and source.suffix in fmt.spec.extensions else fmt.spec.suffix
    if not out.suffix:
        return out.with_suffix(natural) if natural else out
    if fmt is Format.SAVEDMODEL or out.suffix not in fmt.spec.extensions:
        expected = ("a directory name without extension" if fmt is Format.SAVEDMODEL
                    else " or ".join(fmt.spec.extensions))
        raise UsageError(f"-o {out}: {fmt.value} artifacts are saved as {expected}",
                         hint=f"use -o {out.with_suffix(natural)}")
    return out


@contextlib.contextmanager
def _outputs(target: Path, fmt: Format, force: bool) -> Iterator[tuple[Path, Path]]:
    """Staging paths for the artifact and its sidecar; both appear only if the whole import succeeds."""
    with contextlib.ExitStack() as stack:
        staged_sidecar = stack.enter_context(atomic_path(sidecar_path(target), force=force))
        writer = atomic_directory if fmt is Format.SAVEDMODEL else atomic_path
        yield stack.enter_context(writer(target, force=force)), staged_sidecar


def _save_torch(model: Any, job: _Job, route: str) -> Artifact:
    import torch

    from edgekit.toolkit.safety.policy import check_torch_environment, check_torch_pickle

    options = job.options

    names = [p for p in inspect.signature(model.forward).parameters if p not in ("self",)]
    if not options.input_shapes:
        raise UsageError(f"{route}: a torch model records no input shape",
                         hint=f"give {option('input_shapes')} {names[0] if names else 'x'}=1,3,224,224")
    shapes = dict(options.input_shapes)
    if "*" in shapes:
        if len(names) != 1:
            raise UsageError(f"{route}: forward takes {names}; name each {option('input_shapes')}", hint="NAME=D1,D2,…")
        shapes = {names[0]: shapes["*"]}
    if set(shapes) != set(names) or any(not isinstance(d, int) for s in shapes.values() for d in s):
        raise UsageError(f"{route}: {option('input_shapes')} must give fixed sizes for exactly {names}, got "
                         f"{sorted(shapes)}",
                         hint="e.g. " + " ".join(f"{option('input_shapes')} {n}=1,3,224,224" for n in names))
    if options.weights:
        check_torch_environment()
        check_torch_pickle(sniff(options.weights).path)
        try:
            state = torch.load(str(options.weights), map_location="cpu", weights_only=True)
            model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        except Exception as exc:
            raise InvalidInputError(f"{options.weights}: does not fit {route} ({first_line(exc)})",
                                    hint="give the state_dict saved from this architecture") from None
    example = tuple(torch.zeros(shapes[n], dtype=torch.float32) for n in names)
    try:
        program = torch.export.export(model.eval(), example)
    except Exception as exc:
        raise BackendError(f"{route}: torch.export failed: {first_line(exc)}",
                           hint="the model must be exportable with torch.export at these shapes") from None
    target = _output_path(job.out, Format.TORCH_EXPORTED)
    with _outputs(target, Format.TORCH_EXPORTED, job.force) as (staged, staged_sidecar):
        torch.export.save(program, str(staged))
        source = options.weights
        return _finish(staged, staged_sidecar, target, Format.TORCH_EXPORTED, job, route=route, source=source)


def _save_keras(model: Any, job: _Job, route: str, *, source: Path | None = None) -> Artifact:
    from edgekit.training.keras_backend import save

    if not getattr(model, "inputs", None):
        raise UsageError(f"{route}: the Keras model has no defined input",
                         hint="build it with keras.Input(shape) so its input shape is known")
    target = _output_path(job.out, Format.KERAS)
    with _outputs(target, Format.KERAS, job.force) as (staged, staged_sidecar):
        save(model, staged)
        return _finish(staged, staged_sidecar, target, Format.KERAS, job, route=route,
                       source=source or job.options.weights)


def _finish(staged: Path, staged_sidecar: Path, target: Path, fmt: Format, job: _Job, *, route: str,
            source: Path | None = None, input_shapes: dict[str, tuple[Dim, ...]] | None = None) -> Artifact:
    """Load the staged artifact in its runtime, run it once, check the labels against it, and write the
    sidecar, all before either file is renamed into place."""
    from edgekit.targets import open_runtime
    from edgekit.toolkit.contract.iospec import example_feeds

    with open_runtime(staged, input_shapes=input_shapes) as runtime:
        spec = runtime.io_spec
        if all(ts.shape is not None for ts in spec.inputs):
            try:
                runtime.run(example_feeds(spec))
            except EdgekitError as exc:
                raise InvalidInputError(f"{route}: the imported model does not run: {exc}") from None
    _check_labels(spec, job)
    if job.options.layout is not None:
        spec = IOSpec(
            tuple(replace(t, layout=job.options.layout) if t.shape and len(t.shape) == 4 else t for t in spec.inputs),
            spec.outputs,
        )
    options = job.options
    wants_preprocessing = options.mean is not None or options.layout is not None or options.scale != 1.0
    artifact = Artifact(
        path=target, format=fmt, io_spec=spec, sha256=sha256_of(staged), route=("edgekit.import", fmt.value),
        source_sha256=sha256_of(source) if source is not None else None,
        options={"source": route, "weights": str(options.weights) if options.weights else None},
        versions={k: v for k, v in package_versions().items() if v},
        labels=job.labels, preprocessing=_preprocessing(spec, options) if wants_preprocessing else None,
    )
    staged_sidecar.write_text(artifact.sidecar_text())
    return artifact


def _check_labels(spec: IOSpec, job: _Job) -> None:
    if not job.labels or not spec.outputs:
        return
    shape = spec.outputs[0].shape
    classes = shape[-1] if shape else None
    if isinstance(classes, int) and classes != len(job.labels):
        raise InvalidInputError(
            f"{job.options.labels}: {len(job.labels)} labels, but output {spec.outputs[0].name!r} "
            f"has {classes} classes",
            hint="give exactly one label per class",
        )


def _preprocessing(spec: IOSpec, options: ImportOptions) -> Preprocessing:
    first = spec.inputs[0]
    layout = options.layout or first.layout or guess_layout(first.shape)
    if first.shape is None or len(first.shape) != 4 or layout is Layout.UNKNOWN:
        raise UsageError(f"{option('mean')}/{option('std')}/{option('scale')}/{option('layout')} describe image "
                         "inputs (rank 4, NCHW or NHWC)",
                         hint=f"give {option('layout')} nchw|nhwc for an image model")
    h, w, c = (first.shape[2], first.shape[3], first.shape[1]) if layout is Layout.NCHW else first.shape[1:4]
    if not all(isinstance(d, int) for d in (h, w, c)):
        raise UsageError(f"input {first.name!r} has symbolic spatial dims {list(first.shape)}",
                         hint=f"give {option('input_shapes')} with fixed sizes")
    mean, std = options.mean or (0.0,), options.std or (1.0,)
    for name, values in ((f"{option('mean')}", mean), (f"{option('std')}", std)):
        if len(values) not in (1, c):
            raise UsageError(f"{name} has {len(values)} values for {c} channels", hint="give 1 or one per channel")
    return Preprocessing(layout, options.scale, tuple(mean) * (c if len(mean) == 1 else 1),
                         tuple(std) * (c if len(std) == 1 else 1), (h, w), c)
