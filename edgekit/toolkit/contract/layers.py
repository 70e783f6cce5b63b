"""Which layers a ``--keep-float PATTERN`` names: pure matching over a route's own list of layers.

Each route lists the units its quantizer can leave in float as :class:`Layer` rows in the source model's
vocabulary (an ONNX node with the torch module path it came from, a torch module path inside an exported
program) and maps the matched rows to its backend's own mechanism. A pattern is

- a layer or module path (``enc.fc_in``, ``head``): the layer itself and everything inside that module;
- a glob (``*.attn.*``, ``blocks.[01].*``), matched against the same names;
- an op or module type (``LayerNorm``, ``Softmax``, ``Gemm``): case and ``_`` do not matter
  (``layer_norm`` matches ``LayerNorm``).

A pattern that matches nothing is a usage error naming the nearest names the model has.
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


def _type_key(text: str) -> str:
    return text.replace("_", "").lower()


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _names(layer: Layer) -> tuple[str, ...]:
    return (layer.name, *layer.scopes)


def matches(pattern: str, layer: Layer) -> bool:
    if _is_glob(pattern):
        return any(fnmatch.fnmatchcase(name, pattern) for name in _names(layer))
    if any(name == pattern or name.startswith(pattern + ".") for name in _names(layer)):
        return True
    return any(_type_key(kind) == _type_key(pattern) for kind in layer.kinds)


def nearest(pattern: str, layers: Iterable[Layer], n: int = 5) -> list[str]:
    vocabulary = sorted({name for layer in layers for name in (*_names(layer), *layer.kinds) if name})
    close = difflib.get_close_matches(pattern, vocabulary, n=n, cutoff=0.4)
    return close or vocabulary[:n]


def select(patterns: Sequence[str], layers: Sequence[Layer], *, origin: str) -> list[Layer]:
    """The layers any pattern matches, in the model's order; a pattern matching none is a usage error."""
    chosen: list[Layer] = []
    for pattern in patterns:
        hits = [layer for layer in layers if matches(pattern, layer)]
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
