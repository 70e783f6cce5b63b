"""Helpers shared by the torch-family runtimes (TorchScript, ExportedProgram, ExecuTorch)."""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekit.targets.base import Runtime
from edgekit.toolkit.contract.errors import InvalidInputError, UnsafeModelError
from edgekit.toolkit.contract.options import Device

# ExecuTorch reports dtypes as c10::ScalarType codes.
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                7: "float64", 11: "bool"}


FORCE_WEIGHTS_ONLY_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"


class _NoPickle:
    """Stands in for the ``pickle`` module inside torch's .pt2 reader while edgekit loads an archive."""

    def __getattr__(self, name: str) -> Any:
        return getattr(pickle, name)

    @staticmethod
    def loads(*_args: Any, **_kwargs: Any) -> Any:
        raise UnsafeModelError("the archive asked torch to unpickle an object (pickle.loads)",
                               hint="edgekit never unpickles a model; export plain tensors")


@contextlib.contextmanager
def _weights_only() -> Iterator[None]:
    """Every ``torch.load`` in the block is weights-only (torch reads the variable at each call), and the
    .pt2 reader's direct ``pickle.loads`` raises. The loading policy has already refused any archive that
    would reach either; this keeps the promise if a torch release adds a path the policy does not know."""
    from torch.export.pt2_archive import _package

    saved_env = os.environ.get(FORCE_WEIGHTS_ONLY_ENV)
    saved_pickle = getattr(_package, "pickle", None)
    os.environ[FORCE_WEIGHTS_ONLY_ENV] = "1"
    if saved_pickle is not None:
        _package.pickle = _NoPickle()  # type: ignore[assignment]
    try:
        yield
    finally:
        if saved_pickle is not None:
            _package.pickle = saved_pickle  # type: ignore[assignment]
        if saved_env is None:
            os.environ.pop(FORCE_WEIGHTS_ONLY_ENV, None)
        else:
            os.environ[FORCE_WEIGHTS_ONLY_ENV] = saved_env


def load_exported_program(path: str | os.PathLike[str]) -> Any:
    """``torch.export.load`` the way every edgekit path loads a .pt2: after the loading policy, weights-only."""
    with _weights_only():
        return torch.export.load(os.fspath(Path(path)))


def numpy_dtype_name(dtype: torch.dtype) -> str:
    try:
        return np.dtype(torch.empty((), dtype=dtype).numpy().dtype).name
    except TypeError:
        raise InvalidInputError(f"tensor dtype {dtype} has no numpy equivalent", hint="use float32 I/O") from None


def torch_device(device: Device) -> torch.device:
    return torch.device("cuda" if device is Device.CUDA else "cpu")


def set_threads(threads: int | None) -> bool:
    """Apply the intra-op thread count; True when one was given (torch always honours it)."""
    if threads:
        torch.set_num_threads(threads)
        return True
    return False


def prepared_call(module: Any, inputs: list[np.ndarray], device: Device) -> Any:
    """One inference with tensors made once; on CUDA, synchronised so the time is the kernels' time."""
    tensors = to_tensors(inputs, device)
    sync = torch.cuda.synchronize if device is Device.CUDA else None

    def call() -> Any:
        with torch.inference_mode():
            result = module(*tensors)
        if sync is not None:
            sync()
        return result

    return call


def flatten_outputs(result: Any) -> list[np.ndarray]:
    """Tensors of a model's result in order: a tensor, a (nested) tuple/list or a dict."""
    if isinstance(result, torch.Tensor):
        return [result.detach().cpu().numpy()]
    if isinstance(result, Mapping):
        return [x for value in result.values() for x in flatten_outputs(value)]
    if isinstance(result, (tuple, list)):
        return [x for value in result for x in flatten_outputs(value)]
    return [np.asarray(result)]


def to_tensors(inputs: list[np.ndarray], device: Device) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(x)).to(torch_device(device)) for x in inputs]


class TorchModuleRuntime(Runtime):
    """Shared by runtimes that hold a callable torch module in ``self._module`` (TorchScript, .pt2)."""

    devices = (Device.CPU, Device.CUDA)
    _module: Any

    def _prepare_impl(self, inputs: list[np.ndarray]) -> Callable[[], Any]:
        return prepared_call(self._module, inputs, self.options.device)

    def _run_impl(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            return flatten_outputs(self._module(*to_tensors(list(inputs), self.options.device)))


# Ops that keep their first input's values (shape, dtype or view changes): an index walked back through
# them is still the graph input's value.
VALUE_PRESERVING = frozenset({
    "view", "reshape", "_reshape_alias", "unsqueeze", "squeeze", "expand", "_to_copy", "to", "clone", "contiguous",
    "flatten", "permute", "transpose", "t", "slice", "select", "alias", "lift_fresh_copy", "detach", "type_as",
    "_unsafe_view", "repeat", "long", "int",
})


def exported_domains(program: Any, user_inputs: Sequence[str]) -> dict[str, Any]:
    """Domains of a torch.export program's integer inputs: the embedding/index_select tables they index."""
    from edgekit.toolkit.contract.domains import index_domains

    parameters = {**program.graph_signature.inputs_to_parameters, **program.graph_signature.inputs_to_buffers}
    producers: dict[Any, tuple[str, list[Any]]] = {}
    lookups = []
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        op = str(node.target).split(".")
        base = op[1] if len(op) > 2 and op[0] == "aten" else str(node.target)
        producers[node] = (base, [a for a in node.args if isinstance(a, torch.fx.Node)])
        table = indices = None
        if base == "embedding" and len(node.args) >= 2:
            table, indices = node.args[0], node.args[1]
        elif base == "index_select" and len(node.args) >= 3 and node.args[1] == 0:
            table, indices = node.args[0], node.args[2]
        elif base == "index" and len(node.args) >= 2 and node.args[1] and isinstance(node.args[1][0], torch.fx.Node):
            table, indices = node.args[0], node.args[1][0]
        if isinstance(table, torch.fx.Node) and isinstance(indices, torch.fx.Node):
            value = table.meta.get("val")
            if isinstance(value, torch.Tensor) and value.dim() >= 1 and isinstance(value.shape[0], int):
                lookups.append((indices, int(value.shape[0]), repr(parameters.get(table.name, table.name))))
    inputs = {node: node.name for node in program.graph.nodes if node.op == "placeholder" and node.name in user_inputs}
    return index_domains(lookups, inputs=inputs, producers=producers, pass_through=VALUE_PRESERVING)


def torchscript_domains(module: Any, names: Sequence[str]) -> dict[str, Any]:
    """Domains of a TorchScript module's integer inputs: the ``aten::embedding`` tables they index."""
    from edgekit.toolkit.contract.domains import index_domains

    graph = module.inlined_graph
    graph_inputs = list(graph.inputs())[1:]  # the first is self
    inputs = {v.unique(): name for v, name in zip(graph_inputs, names, strict=False)}
    producers: dict[Any, tuple[str, list[Any]]] = {}
    lookups = []
    for node in graph.nodes():
        kind = node.kind()
        base = kind.split("::", 1)[1] if kind.startswith("aten::") else kind
        args = list(node.inputs())
        for out in node.outputs():
            producers[out.unique()] = (base, [a.unique() for a in args[:1]])
        if base == "embedding" and len(args) >= 2:
            path = _attribute_path(args[0])
            table = _attribute(module, path) if path else None
            if isinstance(table, torch.Tensor) and table.dim() >= 1:
                lookups.append((args[1].unique(), int(table.shape[0]), repr(".".join(path))))
    return index_domains(lookups, inputs=inputs, producers=producers, pass_through=VALUE_PRESERVING)


def _attribute_path(value: Any) -> list[str] | None:
    """self.a.b.weight for a value produced by a chain of prim::GetAttr from the graph's self."""
    path: list[str] = []
    for _ in range(32):
        node = value.node()
        if node.kind() != "prim::GetAttr":
            return path[::-1] if node.kind() == "prim::Param" and path else None
        path.append(node.s("name"))
        value = next(iter(node.inputs()))
    return None


def _attribute(module: Any, path: Sequence[str]) -> Any:
    for name in path:
        module = getattr(module, name, None)
        if module is None:
            return None
    return module
