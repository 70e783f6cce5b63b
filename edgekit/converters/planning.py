"""Route planning over the converter registry: the shortest chain of edges from a source format to the
format asked for (``to``) whose last edge supports the requested quantization (framework-free, pure data)."""

from __future__ import annotations

from collections import deque

from edgekit.toolkit.contract.errors import UsageError, option
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.contract.registry import CONVERTERS, QUANTIZERS, ConverterSpec, Registry

MAX_HOPS = 3
# Re-importing ONNX into torch is a route's first hop only (the source is ONNX): a Keras or TFLite model is not
# sent through ONNX and back into torch unless the user asks with --via onnx, which plans from ONNX.
FIRST_HOP_ONLY = frozenset({(Format.ONNX, Format.TORCH_EXPORTED)})


def supported_summary(source: Format, registry: Registry[ConverterSpec] = CONVERTERS) -> str:
    """'tflite (none, …); onnx (none, fp16, dynamic, int8)' for the formats reachable from ``source``."""
    reachable: dict[Format, list[QuantMode]] = {}
    for to in Format:
        for quant in QuantMode:
            if _search(source, to, quant, registry) is not None:
                reachable.setdefault(to, []).append(quant)
    if not reachable:
        return "none"
    return "; ".join(f"{fmt.value} ({', '.join(q.value for q in quants)})" for fmt, quants in reachable.items())


def plan(
    source: Format,
    to: Format,
    quant: QuantMode = QuantMode.NONE,
    *,
    via: Format | None = None,
    quantizer: str | None = None,
    registry: Registry[ConverterSpec] = CONVERTERS,
) -> list[ConverterSpec]:
    """The converters to run in order. Intermediate steps are float; only the last one quantizes, with
    ``quantizer`` (a spec's ``quantizer``) where one is asked for, else the edge's default for ``quant`` (a spec
    whose ``default_for`` has it, else the first the registry lists)."""
    if via is not None:
        if via in (source, to):
            raise UsageError(f"{option('via', via.value)} must differ from the source format and the one asked for")
        return _require(source, via, QuantMode.NONE, registry) + _require(via, to, quant, registry, quantizer)
    return _require(source, to, quant, registry, quantizer)


def _require(
    source: Format, to: Format, quant: QuantMode, registry: Registry[ConverterSpec], quantizer: str | None = None
) -> list[ConverterSpec]:
    if quantizer is not None:
        if quant is QuantMode.NONE:
            raise UsageError(f"{option('quantizer', quantizer)} picks a quantization tool, and nothing is quantized",
                             hint=f"add {option('quantize', 'int8')} (or another mode)")
        if quantizer not in QUANTIZERS:
            raise UsageError(f"{option('quantizer', quantizer)}: no such quantizer",
                             hint=f"one of: {', '.join(QUANTIZERS)}")
        route = _search(source, to, quant, registry, quantizer)
        if route is None:
            offered = [f"{name} ({', '.join(modes)})" for name in QUANTIZERS
                       if (modes := [m.value for m in QuantMode if m is not QuantMode.NONE
                                     and _search(source, to, m, registry, name) is not None])]
            raise UsageError(f"{option('quantizer', quantizer)} does not make {to.value} from {source.value} in "
                             f"{option('quantize', quant.value)}",
                             hint=f"{to.value} from {source.value} is quantized by: {'; '.join(offered) or 'none'}")
        return route
    route = _search(source, to, quant, registry)
    if route is None:
        raise UsageError(
            f"no route converts {source.value} to {to.value} with {option('quantize', quant.value)}",
            hint=f"from {source.value} edgekit reaches: {supported_summary(source, registry)}"
                 + "".join(f"; {option('via', via.value)} reaches {to.value} too"
                           for via in _vias(source, to, quant, registry)),
        )
    return route


def _vias(source: Format, to: Format, quant: QuantMode, registry: Registry[ConverterSpec]) -> list[Format]:
    """The formats a ``--via`` route goes through where no route of its own reaches ``to`` (e.g. Keras → ONNX →
    the ONNX importer → ExecuTorch, which the first-hop rule keeps out of the automatic search)."""
    return [via for via in Format if via not in (source, to)
            and _search(source, via, QuantMode.NONE, registry) is not None
            and _search(via, to, quant, registry) is not None]


def _search(source: Format, to: Format, quant: QuantMode, registry: Registry[ConverterSpec],
            quantizer: str | None = None) -> list[ConverterSpec] | None:
    """Breadth-first over formats; a same-format edge (e.g. onnx→onnx quantization) may close a route; with
    ``quantizer``, a quantizing last edge is one of that tool's."""
    edges: dict[Format, list[ConverterSpec]] = {}
    for spec in registry:
        edges.setdefault(spec.source, []).append(spec)
    queue: deque[tuple[Format, list[ConverterSpec]]] = deque([(source, [])])
    seen = {source}
    while queue:
        here, route = queue.popleft()
        candidates = [spec for spec in edges.get(here, [])
                      if not route or (spec.source, spec.to) not in FIRST_HOP_ONLY]
        candidates.sort(key=lambda spec: quant not in spec.default_for)  # stable: else the registry's order
        for spec in candidates:
            # A route never comes back to its source format through others (onnx → torch → onnx).
            tool_ok = quantizer is None or quant is QuantMode.NONE or spec.quantizer == quantizer
            if spec.to is to and quant in spec.quant_modes and tool_ok and (
                    route or spec.source is not spec.to or quant is not QuantMode.NONE) and (
                    not route or to is not source):
                return [*route, spec]
        if len(route) >= MAX_HOPS:
            continue
        for spec in candidates:
            if spec.source is spec.to or spec.to in seen or QuantMode.NONE not in spec.quant_modes:
                continue
            seen.add(spec.to)
            queue.append((spec.to, [*route, spec]))
    return None
