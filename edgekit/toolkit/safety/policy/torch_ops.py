"""Which torch operators a program from an untrusted file may call: shared by the ``.pt2`` and the
TorchScript policies (both name operators as ``namespace::name``).

A namespace allowlist keeps out whole families that reach outside the tensor world — ``_c10d_functional``
and ``symm_mem`` (collectives over the network), ``profiler``, ``debugprims`` (``load_tensor`` reads files)
and any custom namespace an installed package registers (torchvision's ``image::read_file``, for one).
Inside the allowed namespaces a short denylist names the operators that touch the file system; each
entry carries its reason, which the refusal quotes. Found by listing every registered schema that takes
a file name or path (``torch._C._jit_get_all_schemas()``, torch 2.13).
"""

from __future__ import annotations

import ast

OP_NAMESPACES = frozenset({
    "aten", "prim", "prims", "quantized", "_quantized", "quantized_decomposed", "higher_order", "torchao",
})
SIDE_EFFECT_OPS = {
    "from_file": "maps a file named in the model into memory (shared=True writes through to it)",
    "save": "writes a file named in the model",
    "load": "reads a file named in the model",
    "_save_for_mobile": "writes a file named in the model",
    "_load_for_mobile": "reads a file named in the model",
}
# TorchBind classes (C++ objects with their own pickling) that torch itself ships for quantized and
# mobile-optimised modules; any other namespace is a custom extension whose __setstate__ runs C++ code.
TORCHBIND_NAMESPACES = frozenset({"quantized", "xnnpack"})


def op_refusal(namespace: str, name: str) -> str | None:
    """Why ``namespace::name`` may not run from an untrusted file (None: it may)."""
    if namespace not in OP_NAMESPACES:
        return f"{namespace}::{name} (namespace {namespace!r} is outside {', '.join(sorted(OP_NAMESPACES))})"
    reason = SIDE_EFFECT_OPS.get(name)
    return f"{namespace}::{name} ({reason})" if reason else None


def dotted_name(node: ast.AST) -> str | None:
    """``torch.ops.aten.add`` for an ``Attribute`` chain ending in a ``Name`` (None for anything else, such as
    a method of a computed value): how both policies name what a piece of code refers to."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None
