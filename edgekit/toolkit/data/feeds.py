"""Model inputs from the user's own data: one documented format for any model.

``FILE.npz`` holds one array per input, named after the input, with the samples stacked along the
batch axis: shape ``(N, *input shape without its batch dimension)`` (an input without a batch
dimension takes ``(N, *input shape)``). An optional ``labels`` array, ``(N,)`` integer class ids, lets
parity measure accuracy. For a BERT-style model::

    numpy.savez("inputs.npz", input_ids=ids, attention_mask=mask)   # ids, mask: (N, 16) int64

Values are checked against the model before anything runs: a missing input, a dtype of another kind
(float data for an integer input), a shape that does not fit, too few samples, or values outside the
input's domain (token ids past the vocabulary) is one error naming the array and what the model
expects (exit 3). Integers of another width are narrowed range-checked (int64 data for an int32
input) and image data in the other layout is transposed; both are stated as adaptations.

edgekit's own data files (``test_x``/``x``/``calibration_x`` for single-input models, written by
``edgekit train``) are still read by the modules that read them before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.toolkit.contract.artifact import Artifact
from edgekit.toolkit.contract.errors import InvalidInputError
from edgekit.toolkit.contract.iospec import IOSpec, TensorSpec, cast_checked

LABELS = "labels"
EXAMPLE = "save one array per input name, samples first: numpy.savez(FILE, {names})"


@dataclass(frozen=True)
class FeedSet:
    feeds: tuple[dict[str, np.ndarray], ...]  # batch-1 feeds in the model's dtypes and layout
    labels: np.ndarray | None
    source: str  # in words, for reports
    adaptations: tuple[str, ...] = ()


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of a .npz (never unpickled); an unreadable file is an InvalidInputError."""
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such data file", hint="give a .npz with one array per input name")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception as exc:
        raise InvalidInputError(f"{path}: not a readable .npz ({exc})", hint="save it with numpy.savez") from None


def source_names(sidecar: Artifact | None) -> dict[str, str]:
    """Input name → the name it had in the model it was converted from (litert-torch renames inputs to
    args_N, ExecuTorch to input_N): data saved for the original feeds its conversions too."""
    names = (sidecar.extra.get("source_input_names") if sidecar is not None else None) or {}
    return {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}


def names_inputs(arrays: dict[str, np.ndarray], spec: IOSpec, aliases: dict[str, str] | None = None, *,
                 legacy_keys: Iterable[str] = ()) -> bool:
    """Whether the arrays are read in the one-array-per-input format: some array is named after an input, or
    the model is not one that edgekit's single-input files (``legacy_keys``: test_x, x, …) can feed."""
    aliases = aliases or {}
    if any(name in arrays or aliases.get(name) in arrays for name in spec.input_names):
        return True
    return len(spec.inputs) != 1 or not set(legacy_keys) & set(arrays)


def named_feeds(path: Path, spec: IOSpec, *, limit: int, minimum: int = 1, purpose: str = "",
                arrays: dict[str, np.ndarray] | None = None, aliases: dict[str, str] | None = None) -> FeedSet:
    """Batch-1 feeds for every input of ``spec`` from a one-array-per-input .npz (the first ``limit``
    samples); ``minimum``: how many samples ``purpose`` needs; ``aliases``: input → array name to use
    when no array has the input's own name (``source_names``)."""
    arrays = dict(read_npz(path) if arrays is None else arrays)
    for name, alias in (aliases or {}).items():
        if name not in arrays and alias in arrays:
            arrays[name] = arrays[alias]
    expected = ", ".join(f"{t.name} {list(t.shape or [])} {t.dtype}" for t in spec.inputs)
    missing = [name for name in spec.input_names if name not in arrays]
    if missing:
        raise InvalidInputError(
            f"{path}: no array for input(s) {', '.join(missing)} (it has {', '.join(sorted(arrays)) or 'none'}); "
            f"the model takes {expected}", hint=EXAMPLE.format(names=", ".join(f"{n}=…" for n in spec.input_names)))
    counts = {name: len(arrays[name]) if arrays[name].ndim else 0 for name in spec.input_names}
    count = min(counts.values())
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} {n}" for name, n in counts.items())
        raise InvalidInputError(f"{path}: inputs hold different sample counts ({listed})",
                                hint="stack the same N samples in every array")
    if count < minimum:
        raise InvalidInputError(f"{path}: {count} samples; {purpose or 'this'} needs at least {minimum}",
                                hint="give more samples (stacked along the first axis)")
    adaptations: list[str] = []
    columns = {}
    for ts in spec.inputs:
        columns[ts.name], steps = _column(path, arrays[ts.name][:limit], ts)
        adaptations += steps
    labels = _labels(path, arrays, count, limit)
    used = min(count, limit)
    feeds = tuple({name: values[i] for name, values in columns.items()} for i in range(used))
    return FeedSet(feeds, labels, f"{used} samples of {', '.join(spec.input_names)} from {path.name}",
                   tuple(adaptations))


def _column(path: Path, values: np.ndarray, ts: TensorSpec) -> tuple[list[np.ndarray], list[str]]:
    """One input's samples as batch-1 arrays in the model's dtype and layout."""
    where = f"{path}: array {ts.name!r}"
    steps: list[str] = []
    batched = ts.shape is None or (len(ts.shape) > 0 and (not isinstance(ts.shape[0], int) or ts.shape[0] == 1))
    sample = (1, *values.shape[1:]) if batched else tuple(values.shape[1:])
    if not ts.accepts(sample):
        swapped = _layout_swap(sample, ts)
        if swapped is None:
            per_sample = list(ts.shape[1:] if batched and ts.shape else ts.shape or [])
            raise InvalidInputError(f"{where} has samples of shape {list(values.shape[1:])}; input {ts.name!r} "
                                    f"takes {per_sample} per sample (model shape {list(ts.shape or [])})",
                                    hint="stack samples along the first axis: shape (N, *input shape without batch)")
        values = np.ascontiguousarray(values.transpose(0, *[a + 1 for a in swapped]))
        steps.append(f"{ts.name}: transposed to the model's layout")
    values = _dtype(where, values, ts, steps)
    if ts.domain is not None and not ts.domain.assumed:
        ts.domain.check(ts.name, values, str(path))
    if batched:
        return [values[i: i + 1] for i in range(len(values))], steps
    return [values[i] for i in range(len(values))], steps


def _layout_swap(sample: tuple[int, ...], ts: TensorSpec) -> tuple[int, ...] | None:
    """The per-sample axis order (NCHW ↔ NHWC) that makes a 4-d image sample fit, if one does."""
    if len(sample) != 4:
        return None
    for order in ((1, 2, 0), (2, 0, 1)):  # CHW → HWC, HWC → CHW
        if ts.accepts((1, *(sample[1:][a] for a in order))):
            return order
    return None


def _dtype(where: str, values: np.ndarray, ts: TensorSpec, steps: list[str]) -> np.ndarray:
    want = np.dtype(ts.dtype)
    if values.dtype == want:
        return values
    if want.kind in "iu" and ts.quant is not None and values.dtype.kind == "f":
        info = np.iinfo(want)  # float data for a quantized input: quantize with its scale/zero-point
        steps.append(f"{ts.name}: quantized to {want} (scale {ts.quant.scale[0]:.6g}, zp {ts.quant.zero_point[0]})")
        return np.clip(np.round(values / ts.quant.scale[0] + ts.quant.zero_point[0]), info.min, info.max).astype(want)
    same_kind = (values.dtype.kind == "f") == (want.kind == "f")
    if not same_kind:
        raise InvalidInputError(f"{where} is {values.dtype}; input {ts.name!r} takes {want}",
                                hint=f"save {ts.name} as {want} (edgekit never casts between integers and floats)")
    steps.append(f"{ts.name}: {values.dtype} → {want}" + (" (range-checked)" if want.kind in "iub" else ""))
    return cast_checked(values, want, name=ts.name, origin=where)


def _labels(path: Path, arrays: dict[str, np.ndarray], count: int, limit: int) -> np.ndarray | None:
    labels = arrays.get(LABELS)
    if labels is None:
        return None
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != count:
        raise InvalidInputError(f"{path}: labels has shape {list(labels.shape)} and dtype {labels.dtype} for "
                                f"{count} samples", hint="labels must hold one integer class id per sample")
    return labels[:limit].astype(np.int64)
