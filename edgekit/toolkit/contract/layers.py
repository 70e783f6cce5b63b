"""Which layers a ``--keep-float PATTERN`` names: pure matching over a route's own list of layers.

Each route lists the units its quantizer can leave in float as :class:`Layer` rows in the source model's
vocabulary (an ONNX node with the torch module path it came from, a torch module path inside an exported
program) and maps the matched rows to its backend's own mechanism. A pattern is

- a layer or module path (``enc.fc_in``, ``head``): the layer itself and everything inside that module;
- a glob (``*.attn.*``, ``blocks.[01].*``), matched against the same names;
- an op or module type (``LayerNorm``, ``Softmax``, ``Gemm``): case and ``_`` do not matter
  (``layer_norm`` matches ``LayerNorm``). A pattern that names a layer is taken as that name, not as a type
  (a Keras layer named ``conv2d`` is that layer, not every ``Conv2D``).

A pattern that matches nothing is a usage error naming the nearest names the model has; one naming a layer the
conversion folded into others (a BatchNorm into its convolution) says so.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edgekit.toolkit.contract.errors import UsageError, option


@dataclass(frozen=True)
class Layer:
    name: str  # the unit's own name: an ONNX node name, a torch module path
    kinds: tuple[str, ...] = ()  # its op type and the module classes around it (short names: "Linear", "Gemm")
    scopes: tuple[str, ...] = ()  # enclosing module paths, outermost first ("enc", "enc.fc_in")


def units(layers: Iterable[Layer], weighted: Iterable[Layer] = ()) -> list[str]:
    """The names one ``--keep-float`` pattern takes a single layer by, in the model's order: each layer's innermost
    module path where it has one, and the name of each of ``weighted`` (operators with weights outside any
    module). What an accuracy budget reverts, one at a time."""
    heavy = {id(layer) for layer in weighted}
    return list(dict.fromkeys(unit_name(layer) for layer in layers
                              if layer.scopes or id(layer) in heavy))


def unit_name(layer: Layer) -> str:
    """The name ``--keep-float`` takes ``layer``'s unit by: its innermost module path, else its own name."""
    return layer.scopes[-1] if layer.scopes else layer.name


def _type_key(text: str) -> str:
    return text.replace("_", "").lower()


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _names(layer: Layer) -> tuple[str, ...]:
    return (layer.name, *layer.scopes)


def _by_name(pattern: str, layer: Layer) -> bool:
    if _is_glob(pattern):
        return any(fnmatch.fnmatchcase(name, pattern) for name in _names(layer))
    return any(name == pattern or name.startswith(pattern + ".") for name in _names(layer))


def _by_type(pattern: str, layer: Layer) -> bool:
    return not _is_glob(pattern) and any(_type_key(kind) == _type_key(pattern) for kind in layer.kinds)


def matches(pattern: str, layer: Layer) -> bool:
    return _by_name(pattern, layer) or _by_type(pattern, layer)


def nearest(pattern: str, layers: Iterable[Layer], n: int = 5) -> list[str]:
    vocabulary = sorted({name for layer in layers for name in (*_names(layer), *layer.kinds) if name})
    close = difflib.get_close_matches(pattern, vocabulary, n=n, cutoff=0.4)
    return close or vocabulary[:n]


def select(patterns: Sequence[str], layers: Sequence[Layer], *, origin: str,
           folded: Sequence[str] = ()) -> list[Layer]:
    """The layers any pattern matches, in the model's order; a pattern matching none is a usage error.
    ``folded``: names of the source's layers that own no unit of their own (the conversion folded them)."""
    chosen: list[Layer] = []
    for pattern in patterns:
        hits = ([layer for layer in layers if _by_name(pattern, layer)]
                or [layer for layer in layers if _by_type(pattern, layer)])
        if not hits and pattern in folded:
            raise UsageError(f"{origin}: {option('keep_float', pattern)}: that layer has no operator of its own in the "
                             "converted graph (the converter folded it into its neighbours)",
                             hint="keep the layer it was folded into (the one before it, e.g. its convolution)")
        if not hits:
            near = ", ".join(nearest(pattern, layers)) or "none"
            raise UsageError(f"{origin}: {option('keep_float', pattern)} matches no layer of the model",
                             hint=f"nearest names: {near}")
        chosen.extend(hits)
    wanted = {id(layer) for layer in chosen}
    return [layer for layer in layers if id(layer) in wanted]


def check_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """The patterns as given, stripped; an empty one is a usage error."""
    cleaned = tuple(p.strip() for p in patterns)
    if any(not p for p in cleaned):
        raise UsageError(f"{option('keep_float')} needs a layer name, a glob or an op type",
                         hint="e.g. --keep-float head or --keep-float LayerNorm")
    return cleaned
