"""ONNX external data: every location must be a relative path inside the model's directory, reached
without ``..``, absolute paths, symlinks or hardlinks leading out, and ``offset + length`` must lie within
the file. Every place a tensor can live is walked: graph initializers and sparse initializers, tensor and
sparse-tensor attributes (``Constant`` nodes among them), nested subgraphs (``If``/``Loop``/``Scan``
bodies), local functions and their nodes, and training-info graphs. ``--trust`` lifts the containment
rules; a range past the end of the file is corrupt data and is refused even then (exit 3).

The checks are pure functions over parsed data (``external_refs``, ``check_external_data``) so the fuzz
harness can drive them without files or frameworks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from edgekit.toolkit.contract.errors import EdgekitError, InvalidInputError, UnsafeModelError, option
from edgekit.toolkit.safety.policy.trust import trusted


@dataclass(frozen=True)
class ExternalRef:
    tensor: str
    location: str
    offset: int | None = None
    length: int | None = None


def external_refs(entries: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> list[ExternalRef]:
    """(tensor name, [(key, value), …]) as stored in TensorProto.external_data → references; malformed
    numbers are corrupt data (exit 3)."""
    refs = []
    for tensor, pairs in entries:
        values = dict(pairs)
        numbers = {}
        for key in ("offset", "length"):
            text = values.get(key)
            if text in (None, ""):
                numbers[key] = None
                continue
            try:
                numbers[key] = int(text)
            except ValueError:
                raise InvalidInputError(f"tensor {tensor!r}: external data {key} {text!r} is not an integer",
                                        hint="the model file is corrupt; export it again") from None
            if numbers[key] < 0:
                raise InvalidInputError(f"tensor {tensor!r}: external data {key} {text} is negative",
                                        hint="the model file is corrupt; export it again")
        refs.append(ExternalRef(tensor, values.get("location", ""), numbers["offset"], numbers["length"]))
    return refs


def check_external_data(model_dir: Path, refs: Sequence[ExternalRef], *, trust: bool | None = None) -> None:
    """Every external data file inside ``model_dir`` and every byte range inside its file."""
    trust = trusted() if trust is None else trust
    root = Path(os.path.realpath(model_dir))
    for ref in refs:
        location = ref.location
        where = f"tensor {ref.tensor!r}: external data {location!r}"
        if not location or "\x00" in location:
            raise InvalidInputError(f"{where}: empty or invalid location", hint="the model file is corrupt")
        if not trust:
            pure = PurePosixPath(location)
            if pure.is_absolute() or PureWindowsPath(location).is_absolute() or PureWindowsPath(location).drive:
                raise UnsafeModelError(f"{where} is an absolute path, outside the model's directory",
                                       hint=f"keep external data beside the model (or pass {option('trust', True)})")
            if ".." in pure.parts or ".." in PureWindowsPath(location).parts:
                raise UnsafeModelError(f"{where} climbs out of the model's directory with '..'",
                                       hint=f"keep external data beside the model (or pass {option('trust', True)})")
        target = root / location
        try:
            resolved = Path(os.path.realpath(target))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{where}: cannot resolve ({exc})") from None
        if not trust and resolved != root and root not in resolved.parents:
            raise UnsafeModelError(f"{where} resolves to {resolved}, outside the model's directory (symlink)",
                                   hint=f"copy the data beside the model (or pass {option('trust', True)})")
        try:
            info = resolved.stat()
        except OSError:
            raise InvalidInputError(f"{where}: file not found beside the model", hint="copy the data file with it") \
                from None
        if not resolved.is_file():
            raise InvalidInputError(f"{where}: not a regular file")
        if not trust and info.st_nlink > 1:
            raise UnsafeModelError(f"{where} is a hardlink ({info.st_nlink} names): it may be a file from "
                                   "elsewhere", hint=f"copy the data beside the model (or pass "
                                                     f"{option('trust', True)})")
        end = (ref.offset or 0) + (ref.length if ref.length is not None else 0)
        if (ref.offset or 0) > info.st_size or end > info.st_size:
            raise InvalidInputError(f"{where}: bytes {ref.offset or 0}–{end} lie past the end of the "
                                    f"{info.st_size}-byte file", hint="the data file is truncated or not this "
                                                                      "model's")


def check_onnx_file(path: Path) -> None:
    """Parse the graph without loading external data and check every external reference."""
    from edgekit.toolkit.contract import extras

    extras.require(("onnx",), f"reading {path.name}")
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf decode errors have many types
        raise InvalidInputError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})",
                                hint="export it again") from None
    entries = [(t.name, [(e.key, e.value) for e in t.external_data]) for t in _onnx_tensors(model)
               if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data)]
    if entries:
        try:
            check_external_data(path.parent, external_refs(entries))
        except EdgekitError as exc:
            raise type(exc)(f"{path}: {exc.message}", hint=exc.hint) from None
    from edgekit.toolkit.safety.policy.allocations import check_allocations

    check_allocations(model, str(path))


def _onnx_tensors(model: Any) -> Iterator[Any]:
    """Every TensorProto a runtime may read: initializers and sparse initializers of every graph,
    tensor and sparse-tensor attributes of every node (``Constant`` among them), in the main graph, its
    nested subgraphs, the model's local functions (and their subgraphs) and its training-info graphs.
    Iterative, so a deeply nested model cannot exhaust the stack."""
    graphs = [model.graph]
    for info in model.training_info:
        graphs += [info.initialization, info.algorithm]
    node_lists = [function.node for function in model.functions]
    while graphs or node_lists:
        if graphs:
            graph = graphs.pop()
            yield from graph.initializer
            for sparse in graph.sparse_initializer:
                yield sparse.values
                yield sparse.indices
            node_lists.append(graph.node)
            continue
        for node in node_lists.pop():
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                sparse_tensors = [attr.sparse_tensor] if attr.HasField("sparse_tensor") else []
                for sparse in [*sparse_tensors, *attr.sparse_tensors]:
                    yield sparse.values
                    yield sparse.indices
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
