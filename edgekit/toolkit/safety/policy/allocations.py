"""Allocation bombs: a model whose constant shapes ask for a tensor no machine here can hold (a
``ConstantOfShape`` of 2^40 floats, a ``Tile`` or ``Range`` to match) is refused before any runtime allocates it,
naming the node (exit 6, a resource limit, like ``--memory-limit``), and an allocator's failure inside a framework
reads the same way instead of as a conversion failure (exit 5).

``check_allocations`` runs with the loading policy on every ONNX file (``policy.onnx.check_onnx_file``), so
``inspect``, ``convert``, ``validate`` and the rest refuse the same files; the ONNX importer also sizes what its
operators would allocate from values only known at run time (``converters.onnx_torch``).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

FALLBACK_TENSOR_BUDGET = 1 << 36  # bytes, where physical memory cannot be read
SMALL_INITIALIZER = 4096  # elements: initializers up to this size keep their values for shape inference
_ALLOCATION_TEXT = re.compile(r"can't allocate memory|cannot allocate memory|not enough memory|bad_alloc|"
                              r"failed to allocate memory|AllocateRawInternal|Unable to allocate|out of memory",
                              re.IGNORECASE)
_ORT_NODE = re.compile(r"running (\w+) node\. Name:'([^']*)'")


@functools.cache
def tensor_budget() -> int:
    """The most bytes one tensor may take: the memory a worker may use (80% of physical memory). A graph whose
    constant shapes ask for more (a ``ConstantOfShape`` of 2^40 floats) can never run here, and allocating it
    fails inside a framework as an opaque error: refused before, naming the node."""
    from edgekit.toolkit.safety.isolation import default_memory_mb

    memory_mb = default_memory_mb()
    return memory_mb << 20 if memory_mb else FALLBACK_TENSOR_BUDGET


def allocation_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocator's failure: Python's MemoryError (numpy's ``_ArrayMemoryError`` is one), or
    torch's ``DefaultCPUAllocator: can't allocate memory``, onnxruntime's ``Failed to allocate memory`` /
    ``bad_alloc`` raised as the framework's own exception types."""
    return isinstance(exc, MemoryError) or bool(_ALLOCATION_TEXT.search(str(exc)))


def allocation_error(origin: str, exc: BaseException, node: str | None = None) -> Any:
    """The ResourceLimitError (exit 6) for an allocator's failure, naming the node where known (given, or the one
    onnxruntime's message names)."""
    from edgekit.toolkit.contract.errors import ResourceLimitError, first_line

    where = node
    if where is None and (match := _ORT_NODE.search(str(exc))):
        where = f"{match[1]} node {match[2]!r}"
    detail = "" if isinstance(exc, MemoryError) else f" ({first_line(exc, 160)})"
    return ResourceLimitError(f"{origin}: out of memory{' at ' + where if where else ''}{detail}",
                              hint="the model asks for more memory than this machine has: use a smaller model or "
                                   "input, or free memory")


def _bytes_text(size: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.1f} {unit}"
    return f"{size} bytes"


def oversized(origin: str, where: str, shape: Any, itemsize: int, budget: int | None = None) -> Any:
    """The ResourceLimitError for a tensor of ``shape`` over ``budget``, or None when it fits."""
    from edgekit.toolkit.contract.errors import ResourceLimitError

    budget = tensor_budget() if budget is None else budget
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        return None
    size = math.prod(dims) * itemsize
    if size <= budget:
        return None
    return ResourceLimitError(f"{origin}: {where} would make a tensor of {_bytes_text(size)} (shape {dims}), over the "
                              f"{_bytes_text(budget)} one tensor may take here",
                              hint="an allocation bomb or a corrupt model: export it again with its real shapes")


def check_allocations(model: Any, origin: str, budget: int | None = None) -> None:
    """Refuse (exit 6, naming the node) a graph whose constant shapes make a tensor over ``budget`` bytes: ONNX's
    own shape inference (run on the graph with its small initializers only, without data propagation, which
    itself materialises a ``Range``) gives every value's shape that the constants fix, ``ConstantOfShape``,
    ``Tile``, ``Expand``, ``Range``, ``Pad``, ``Resize`` and ``Reshape`` outputs among them. A symbolic dimension
    counts as 1 (the least it can be). A graph shape inference cannot read is left to the runtime, and so is one
    whose declared inputs are over the budget themselves: that is a malformed contract, which the I/O contract
    check refuses as invalid input (exit 3), not a bomb."""
    import onnx
    from onnx import helper

    budget = tensor_budget() if budget is None else budget
    graph = model.graph
    declared = {i.name for i in graph.input}
    if any(_declared_bytes(value) > budget for value in graph.input):
        return
    kept, standins = [], []
    for tensor in graph.initializer:
        small = math.prod(tensor.dims) <= SMALL_INITIALIZER and tensor.data_location != onnx.TensorProto.EXTERNAL
        if small:
            kept.append(tensor)
        elif tensor.name not in declared:
            standins.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    light = helper.make_model(
        helper.make_graph(list(graph.node), graph.name or "g", [*graph.input, *standins], list(graph.output),
                          kept, sparse_initializer=list(graph.sparse_initializer)),
        opset_imports=list(model.opset_import), functions=list(model.functions))
    light.ir_version = model.ir_version
    try:
        inferred = onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=False, data_prop=False)
    except Exception:  # the runtime reports a graph ONNX cannot read
        return
    graphs = [inferred.graph]
    while graphs:
        current = graphs.pop()
        producer = {out: node for node in current.node for out in node.output if out}
        for node in current.node:
            graphs += [a.g for a in node.attribute if a.HasField("g")] + [g for a in node.attribute for g in a.graphs]
        for value in (*current.value_info, *current.output):
            node = producer.get(value.name)
            if node is None or not value.type.HasField("tensor_type"):
                continue
            tensor = value.type.tensor_type
            if not tensor.HasField("shape"):
                continue
            dims = [d.dim_value if d.HasField("dim_value") else 1 for d in tensor.shape.dim]
            refusal = oversized(origin, f"{node.op_type} node {node.name or value.name!r}", dims,
                                _itemsize(tensor.elem_type), budget)
            if refusal is not None:
                raise refusal


def _declared_bytes(value: Any) -> int:
    """The bytes a graph input declares (symbolic dimensions as 1)."""
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return 0
    tensor = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tensor.shape.dim]
    return math.prod(dims) * _itemsize(tensor.elem_type)


def _itemsize(elem_type: int) -> int:
    from onnx import helper

    try:
        return max(helper.tensor_dtype_to_np_dtype(elem_type).itemsize, 1)
    except (KeyError, ValueError, TypeError):
        return 1
