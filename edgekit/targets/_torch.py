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
