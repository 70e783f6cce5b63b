"""What every converter that writes ONNX shares: the opset asked for is one this onnx knows, and the
sidecar records the opset the file actually has (exporters may write another than the one asked for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.converters.base import StepReport
from edgekit.toolkit.contract.errors import UsageError, option


def check_requested_opset(opset: int | None) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise UsageError(f"{option('opset', opset)}: this onnx {onnx.__version__} writes opsets {MIN_OPSET} to "
                         f"{newest}", hint=f"choose one in {MIN_OPSET}..{newest}, or leave {option('opset')} out for "
                                           "the exporter's default")


def record_opset(out: Path, requested: int | None, report: StepReport) -> None:
    import onnx

    model = onnx.load(str(out), load_external_data=False)
    actual = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)
    report.details["opset"] = actual
    if requested is not None and actual != requested:
        report.warnings.append(f"asked for opset {requested}; the exporter wrote opset {actual}")


MIN_OPSET = 7  # the oldest opset ONNX Runtime still loads


GENERATED = r"^(?P<base>.*?)__\d+$"  # tf2onnx's make_name: "<base>__<process-wide counter>"


GENERATED_DIM = r"^unk__\d+$"  # a symbolic dimension shape inference made up (tf2onnx, onnxruntime's pre-processing)


def canonical_dim_params(path: Path) -> int:
    """Rename made-up symbolic dimensions (``unk__71``) by first appearance (graph inputs, outputs, value
    infos) so they do not carry a process-wide counter into the file; returns how many were renamed."""
    import re

    import onnx

    model = onnx.load(str(path), load_external_data=False)
    count = _rename_dims(model.graph, re.compile(GENERATED_DIM))
    if count:
        onnx.save(model, str(path))
    return count


def _rename_dims(graph: Any, pattern: Any) -> int:
    renamed: dict[str, str] = {}
    for value in (*graph.input, *graph.output, *graph.value_info):
        if not value.type.HasField("tensor_type"):
            continue
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and pattern.match(dim.dim_param):
                dim.dim_param = renamed.setdefault(dim.dim_param, f"unk__{len(renamed) + 1}")
    return len(renamed)


def canonical_generated_names(path: Path) -> int:
    """Rewrite ``path`` so the same model always converts to the same bytes; returns the names renamed.

    tf2onnx numbers the names it makes with a process-wide counter, and its optimisers visit nodes in an
    order that depends on object identity (sets of nodes), so which of two equal constants survives
    deduplication, and every ``__N`` suffix, vary from run to run. Each generated name is renamed by its
    first appearance in graph order (nodes, then their inputs and outputs), constants to ``const__K``,
    others keep their base (the Keras layer path) with a new ``__K``; initializers are ordered by first use.
    Graphs with subgraphs (If/Loop bodies) or local functions are left as written: their names are scoped.
    """
    import re

    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    has_subgraphs = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                        for node in graph.node for a in node.attribute)
    if has_subgraphs or model.functions:
        return 0
    pattern = re.compile(GENERATED)
    initializers = {t.name for t in graph.initializer}
    taken = {n.name for n in graph.node} | {v for n in graph.node for v in (*n.input, *n.output)} | initializers
    renamed: dict[str, str] = {}
    counter = 0

    def fresh(name: str, constant: bool) -> str:
        nonlocal counter
        if not name or name in renamed:
            return renamed.get(name, name)
        value, _, port = name.partition(":")
        match = pattern.match(value)
        if match is None:
            return name
        while True:
            counter += 1
            base = "const" if constant else match["base"]
            candidate = f"{base}__{counter}" + (f":{port}" if port else "")
            if candidate not in taken or candidate == name:
                break
        renamed[name] = candidate
        taken.add(candidate)
        return candidate

    first_use: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        original = node.name
        node.name = fresh(node.name, False)
        for i, value in enumerate(node.input):
            first_use.setdefault(value, index)
            node.input[i] = fresh(value, value in initializers)
        for i, value in enumerate(node.output):
            head, colon, port = value.partition(":")
            if head == original and node.name != original and value not in renamed:  # "<node>:0" follows its node
                renamed[value] = f"{node.name}{colon}{port}"
                taken.add(renamed[value])
            node.output[i] = fresh(value, node.op_type == "Constant")
    for tensor in graph.initializer:
        tensor.name = renamed.get(tensor.name, tensor.name)
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = renamed.get(value.name, value.name)
    dims = _rename_dims(graph, re.compile(GENERATED_DIM))
    if not renamed:
        if dims:
            onnx.save(model, str(path))
        return 0
    inverse = {new: old for old, new in renamed.items()}
    order = sorted(graph.initializer, key=lambda t: (first_use.get(inverse.get(t.name, t.name), len(graph.node)),
                                                     t.name))
    kept = [onnx.TensorProto() for _ in order]
    for target, tensor in zip(kept, order, strict=True):
        target.CopyFrom(tensor)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    infos = sorted(graph.value_info, key=lambda v: v.name)
    kept_infos = [onnx.ValueInfoProto() for _ in infos]
    for target, info in zip(kept_infos, infos, strict=True):
        target.CopyFrom(info)
    del graph.value_info[:]
    graph.value_info.extend(kept_infos)
    onnx.save(model, str(path))
    return len(renamed)
