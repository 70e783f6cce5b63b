"""The I/O contract: what a model takes and returns, independent of the framework.

Shapes hold ints for fixed dimensions and strings for symbolic ones ("batch", "s0", "?"). dtypes are
numpy dtype names. Quantized tensors carry scale/zero-point so validators can dequantize.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgekit.toolkit.contract.domains import Domain, default_domain, stated_domain
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError, option
from edgekit.toolkit.contract.options import Layout

MAX_TENSOR_ELEMENTS = 2**31 - 1  # the int32 index limit of the mobile runtimes; past it a declared shape is corrupt

Dim = int | str
__all__ = [
    "Dim", "Domain", "IOSpec", "Layout", "QuantParams", "TensorSpec", "apply_input_shapes", "example_feeds",
    "cast_checked", "dtype_adaptations", "guess_layout", "parse_input_shapes", "tensor", "with_domains",
]


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point); per-axis when ``axis`` is set."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        scale = np.asarray(self.scale, dtype=np.float32)
        zero = np.asarray(self.zero_point, dtype=np.float32)
        if self.axis is not None and scale.size > 1:
            shape = [1] * values.ndim
            shape[self.axis] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return (values.astype(np.float32) - zero) * scale

    def to_dict(self) -> dict[str, Any]:
        return {"scale": list(self.scale), "zero_point": list(self.zero_point), "axis": self.axis}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantParams:
        return cls(tuple(float(s) for s in data["scale"]), tuple(int(z) for z in data["zero_point"]), data.get("axis"))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[Dim, ...] | None  # None: rank unknown
    dtype: str
    layout: Layout = Layout.UNKNOWN
    quant: QuantParams | None = None
    domain: Domain | None = None  # inputs: the values the model accepts (edgekit.toolkit.contract.domains)

    @property
    def value_domain(self) -> Domain:
        """The domain synthetic feeds are drawn from: the known one, else the default for the dtype."""
        return self.domain or default_domain(self.name, self.dtype)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def concrete_shape(self, symbolic: int = 1) -> tuple[int, ...]:
        if self.shape is None:
            raise UsageError(
                f"input {self.name!r} has no known shape",
                hint=f"give it with {option('input_shapes')} {self.name}=1,3,224,224",
            )
        shape = tuple(d if isinstance(d, int) else symbolic for d in self.shape)
        self.check_size(shape)
        return shape

    def check_size(self, shape: Sequence[int] | None = None, *, where: str = "") -> None:
        """A declared shape past ``MAX_TENSOR_ELEMENTS`` is a corrupt or hostile contract (exit 3), not an
        allocation to attempt."""
        shape = shape if shape is not None else [d for d in (self.shape or ()) if isinstance(d, int)]
        elements = math.prod(shape)
        if elements > MAX_TENSOR_ELEMENTS:
            raise InvalidInputError(f"{where}input {self.name!r} declares shape {list(self.shape or shape)}: "
                                    f"{elements:.3g} elements, more than the {MAX_TENSOR_ELEMENTS:,} edgekit will "
                                    "allocate", hint="the model's contract is corrupt, or give "
                                                     f"{option('input_shapes')} with real sizes")

    def accepts(self, shape: Sequence[int]) -> bool:
        if self.shape is None:
            return True
        if len(shape) != len(self.shape):
            return False
        return all(not isinstance(want, int) or want == got for want, got in zip(self.shape, shape, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape) if self.shape is not None else None,
            "dtype": self.dtype,
            "layout": self.layout.value,
            "quant": self.quant.to_dict() if self.quant else None,
            **({"domain": self.domain.to_dict()} if self.domain is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        """From a sidecar or a bundle's model.json (files edgekit did not necessarily write): every field is
        type-checked, a bad one is a ValueError."""
        shape = data.get("shape")
        if shape is not None and (not isinstance(shape, list) or not all(
                isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape)):
            raise ValueError(f"tensor shape {str(shape)[:80]} is not a list of sizes and names")
        if not isinstance(data["name"], str) or not isinstance(data["dtype"], str):
            raise ValueError("tensor name and dtype must be strings")
        np.dtype(data["dtype"])  # a TypeError for a dtype numpy does not know
        return cls(
            name=data["name"],
            shape=tuple(shape) if shape is not None else None,
            dtype=data["dtype"],
            layout=Layout(data.get("layout") or ""),
            quant=QuantParams.from_dict(data["quant"]) if data.get("quant") else None,
            domain=Domain.from_dict(data["domain"]) if data.get("domain") else None,
        )


@dataclass(frozen=True)
class IOSpec:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default=())

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [s.to_dict() for s in self.inputs], "outputs": [s.to_dict() for s in self.outputs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IOSpec:
        return cls(
            tuple(TensorSpec.from_dict(d) for d in data.get("inputs", ())),
            tuple(TensorSpec.from_dict(d) for d in data.get("outputs", ())),
        )


def guess_layout(shape: Sequence[Dim] | None) -> Layout:
    """NCHW or NHWC for a rank-4 image-like shape when the channel axis is unambiguous."""
    if shape is None or len(shape) != 4:
        return Layout.UNKNOWN
    channels = {1, 3, 4}
    first, last = shape[1], shape[3]
    first_is_c = isinstance(first, int) and first in channels
    last_is_c = isinstance(last, int) and last in channels
    if first_is_c and not last_is_c:
        return Layout.NCHW
    if last_is_c and not first_is_c:
        return Layout.NHWC
    return Layout.UNKNOWN


def tensor(name: str, shape: Iterable[Dim] | None, dtype: Any, quant: QuantParams | None = None) -> TensorSpec:
    """Build a TensorSpec with a normalised dtype name and a guessed layout."""
    dims = None if shape is None else tuple(_normalise_dim(d) for d in shape)
    return TensorSpec(name, dims, np.dtype(dtype).name, guess_layout(dims), quant)


def _normalise_dim(dim: Any) -> Dim:
    if dim is None:
        return "?"
    if isinstance(dim, (int, np.integer)):
        return int(dim) if dim >= 0 else "?"
    return str(dim)


_SHAPE_ARG = re.compile(r"^(?:(?P<name>[^=]+)=)?(?P<dims>[^=]+)$")


def parse_input_shapes(values: Sequence[str]) -> dict[str, tuple[Dim, ...]]:
    """Parse repeated ``--input-shape name=1,3,32,32`` values (the name may be left out for one input).

    Dimensions are positive ints or symbolic names (``batch,3,224,224``).
    """
    shapes: dict[str, tuple[Dim, ...]] = {}
    for raw in values:
        match = _SHAPE_ARG.match(raw.strip())
        if not match:
            raise UsageError(f"{option('input_shapes')} {raw!r} is not NAME=D1,D2,…",
                             hint=f"e.g. {option('input_shapes')} x=1,3,32,32")
        name = (match.group("name") or "").strip() or "*"
        dims: list[Dim] = []
        for part in match.group("dims").split(","):
            part = part.strip()
            if re.fullmatch(r"[0-9]{1,12}", part) and int(part) > 0:  # ASCII: str.isdigit() accepts "²"
                dims.append(int(part))
            elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
                dims.append(part)
            else:
                raise UsageError(
                    f"{option('input_shapes')} {raw!r}: dimension {part!r} is neither a positive integer nor a name",
                    hint=f"e.g. {option('input_shapes')} x=1,3,32,32 or x=batch,3,32,32",
                )
        if name in shapes:
            raise UsageError(f"{option('input_shapes')} given twice for {name!r}", hint="give each input once")
        shapes[name] = tuple(dims)
    if "*" in shapes and len(shapes) > 1:
        raise UsageError(f"{option('input_shapes')} without a name is only allowed for a single input",
                         hint="use NAME=D1,D2,…")
    return shapes


def apply_input_shapes(spec: IOSpec, shapes: Mapping[str, tuple[Dim, ...]]) -> IOSpec:
    """Fill in or narrow input shapes from the user's ``--input-shape`` values.

    A given shape may replace an unknown or symbolic dimension but never contradict a fixed one.
    """
    if not shapes:
        return spec
    if "*" in shapes:
        if len(spec.inputs) != 1:
            names = ", ".join(spec.input_names)
            raise UsageError(
                f"the model has {len(spec.inputs)} inputs ({names}); {option('input_shapes')} needs a name",
                hint=f"use {option('input_shapes')} NAME=D1,D2,…",
            )
        shapes = {spec.inputs[0].name: shapes["*"]}
    unknown = set(shapes) - set(spec.input_names)
    if unknown:
        raise UsageError(
            f"{option('input_shapes')} names unknown input(s) {sorted(unknown)}; the model's inputs are "
            f"{spec.input_names}",
            hint="use one of the model's input names",
        )
    inputs = []
    for ts in spec.inputs:
        given = shapes.get(ts.name)
        if given is None:
            inputs.append(ts)
            continue
        if ts.shape is not None:
            conflict = len(given) != len(ts.shape) or any(
                isinstance(have, int) and have != want for have, want in zip(ts.shape, given, strict=True)
            )
            if conflict:
                raise UsageError(
                    f"{option('input_shapes')} {ts.name}={_fmt(given)} contradicts the model's shape {_fmt(ts.shape)}",
                    hint="only unknown or symbolic dimensions can be set",
                )
        inputs.append(replace(ts, shape=tuple(given), layout=guess_layout(given)))
    return IOSpec(tuple(inputs), spec.outputs)


def _fmt(shape: Sequence[Dim]) -> str:
    return ",".join(str(d) for d in shape)


def example_feeds(spec: IOSpec, *, seed: int = 0, symbolic: int = 1) -> dict[str, np.ndarray]:
    """Seeded inputs shaped by the contract (symbolic dims set to ``symbolic``), drawn from each input's
    value domain, for smoke runs, parity without data, random calibration and benchmarks."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for ts in spec.inputs:
        shape = ts.concrete_shape(symbolic)
        dtype = np.dtype(ts.dtype)
        if dtype.kind not in "fiub":
            raise InvalidInputError(
                f"input {ts.name!r} has dtype {ts.dtype}, which edgekit cannot generate data for",
                hint=f"supply data with {option('data')}",
            )
        domain = ts.value_domain
        if dtype.kind in "iu" and ts.quant is not None and domain.assumed:
            info = np.iinfo(dtype)  # a quantized tensor: any code of its dtype is a valid value
            feeds[ts.name] = rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=shape).astype(dtype)
        else:
            feeds[ts.name] = domain.sample(rng, shape, dtype)
    return feeds


def cast_checked(value: np.ndarray, dtype: Any, *, name: str, origin: str) -> np.ndarray:
    """``value`` in ``dtype`` where a runtime takes another integer width than the source (litert-torch and
    TFLite narrow int64 to int32): the values are checked to fit, so nothing wraps silently."""
    value, dtype = np.asarray(value), np.dtype(dtype)
    if value.dtype == dtype:
        return value
    kinds = value.dtype.kind + dtype.kind
    if all(k in "iub" for k in kinds):
        low, high = (0, 1) if dtype.kind == "b" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
        if value.size and (value.min() < low or value.max() > high):
            raise InvalidInputError(
                f"{origin}: input {name!r} holds {value.dtype} values {value.min()}..{value.max()}, which do not "
                f"fit the {dtype} the model takes", hint=f"give values in [{low}, {high}]")
        return value.astype(dtype)
    if value.dtype.kind == "f" and dtype.kind == "f":
        return value.astype(dtype)
    raise InvalidInputError(f"{origin}: input {name!r} is {value.dtype}, the model takes {dtype}",
                            hint="give data of the model's dtype (edgekit narrows integers, never casts across kinds)")


def dtype_adaptations(source: IOSpec, target: IOSpec) -> list[str]:
    """The dtype changes between a model's contract and its conversion's, tensor by tensor in order
    (names may differ: litert-torch renames inputs to args_N)."""
    steps = []
    for kind, ours, theirs in (("input", source.inputs, target.inputs), ("output", source.outputs, target.outputs)):
        for a, b in zip(ours, theirs, strict=False):
            if a.dtype != b.dtype and b.quant is None and np.dtype(a.dtype).kind in "iub" \
                    and np.dtype(b.dtype).kind in "iub":
                steps.append(f"{kind} {b.name}: {a.dtype} → {b.dtype} (range-checked)")
    return steps


def with_domains(spec: IOSpec, found: Mapping[str, Domain], *, hint: IOSpec | None = None,
                 ranges: Mapping[str, tuple[float, float]] | None = None, origin: str = "") -> IOSpec:
    """The contract with each input's domain: what the model's graph shows (``found``), else what the
    artifact's sidecar recorded (``hint``), then the user's ``--input-range`` values, checked against both."""
    ranges = dict(ranges or {})
    if "*" in ranges:
        if len(spec.inputs) != 1:
            raise UsageError(f"{origin}: the model has {len(spec.inputs)} inputs ({', '.join(spec.input_names)}); "
                             f"{option('input_ranges')} needs a name",
                             hint=f"use {option('input_ranges')} NAME=LOW:HIGH")
        ranges = {spec.inputs[0].name: ranges["*"]}
    unknown = sorted(set(ranges) - set(spec.input_names))
    if unknown:
        raise UsageError(f"{origin}: {option('input_ranges')} names unknown input(s) {unknown}; the model's inputs "
                         f"are {spec.input_names}", hint="use one of the model's input names")
    recorded = {t.name: t.domain for t in hint.inputs if t.domain is not None} if hint is not None else {}
    inputs = []
    for ts in spec.inputs:
        domain = found.get(ts.name) or ts.domain or recorded.get(ts.name)
        if ts.name in ranges:
            domain = stated_domain(ts.name, ts.dtype, *ranges[ts.name], found=domain, origin=origin)
        if domain is None and not ts.value_domain.assumed and np.dtype(ts.dtype).kind in "iu":
            domain = ts.value_domain  # a mask, by its name: recorded so the contract shows it
        inputs.append(replace(ts, domain=domain) if domain is not None else ts)
    return IOSpec(tuple(inputs), spec.outputs)
