"""Classify torch pickles without unpickling them.

``pickletools.genops`` walks the opcodes; every global the pickle would import is collected. A plain
tensor container (a state_dict) references only torch's tensor-rebuild helpers, storages, dtypes and a
few builtins. Anything else (a module class, ``os.system``, ``builtins.eval``…) means unpickling runs
code chosen by whoever wrote the file, so it is refused. ``torch.load(weights_only=True)`` remains the
enforcement when the file is actually read; this scan exists to name the reason up front.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.toolkit.errors import InvalidInputError, first_line

_ALLOWED_BUILTINS = {"set", "frozenset", "tuple", "list", "dict", "int", "float", "bool", "str", "bytes",
                     "bytearray", "complex", "slice"}
_ALLOWED_TORCH = {"Size", "device", "dtype", "Tensor", "float32", "float16", "bfloat16", "float64", "int8",
                  "uint8", "int16", "int32", "int64", "bool", "complex64", "complex128"}
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def is_allowed_global(module: str, name: str) -> bool:
    if module == "collections" and name == "OrderedDict":
        return True
    if module in ("builtins", "__builtin__"):
        return name in _ALLOWED_BUILTINS
    if module == "torch._utils":
        return name.startswith("_rebuild_")
    if module == "torch._tensor":
        return name == "_rebuild_from_type_v2"
    if module == "torch.storage":
        return name in ("UntypedStorage", "TypedStorage", "_load_from_bytes")
    if module == "torch":
        return name in _ALLOWED_TORCH or name.endswith("Storage")
    return False


@dataclass(frozen=True)
class PickleScan:
    globals: tuple[tuple[str, str], ...]
    disallowed: tuple[tuple[str, str], ...]

    @property
    def is_code_bearing(self) -> bool:
        return bool(self.disallowed)


def _globals_of_one_pickle(stream: io.BytesIO) -> list[tuple[str, str]]:
    """Globals referenced by the pickle starting at the stream's position; leaves it after STOP."""
    found: list[tuple[str, str]] = []
    strings: list[str] = []
    memo: dict[int, str] = {}
    for opcode, arg, _pos in pickletools.genops(stream):
        name = opcode.name
        if name in _STRING_OPS:
            strings.append(arg if isinstance(arg, str) else str(arg))
        elif name == "MEMOIZE" and strings:
            memo[len(memo)] = strings[-1]
        elif name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
            memo[int(arg)] = strings[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
            strings.append(memo[int(arg)])
        elif name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append((module, attr))
        elif name == "STACK_GLOBAL":
            found.append((strings[-2], strings[-1]) if len(strings) >= 2 else ("?", "?"))
    return found


def scan_pickle_bytes(data: bytes, *, origin: str, max_pickles: int = 1) -> PickleScan:
    """Scan up to ``max_pickles`` consecutive pickles (legacy torch.save writes five, then raw bytes)."""
    stream = io.BytesIO(data)
    found: list[tuple[str, str]] = []
    for index in range(max_pickles):
        if stream.tell() >= len(data):
            break
        try:
            found += _globals_of_one_pickle(stream)
        except Exception as exc:  # pickletools raises ValueError and others on malformed input
            if index == 0:
                raise InvalidInputError(
                    f"{origin}: malformed pickle stream ({first_line(exc)}); the file is probably truncated or corrupt",
                    hint="re-save it with torch.save(model.state_dict(), path)",
                ) from None
            break  # past the pickles: the raw storage bytes of a legacy torch.save file
    unique = tuple(dict.fromkeys(found))
    return PickleScan(unique, tuple(g for g in unique if not is_allowed_global(*g)))


def scan_torch_pickle(path: Path) -> PickleScan:
    """Scan a torch.save file: a zip archive holding ``<name>/data.pkl`` or a bare (legacy) pickle."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            entry = next((n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if entry is None:
                raise InvalidInputError(f"{path}: torch archive without data.pkl", hint="re-save the file")
            data = zf.read(entry)
        return scan_pickle_bytes(data, origin=str(path))
    return scan_pickle_bytes(path.read_bytes(), origin=str(path), max_pickles=5)


_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool",
}


@dataclass(frozen=True)
class TensorShape:
    shape: tuple[int, ...]
    dtype: str


class _ShapeOnlyUnpickler(pickle.Unpickler):
    """Reads tensor shapes/dtypes out of a TorchScript pickle: every global is replaced by an inert
    stand-in, no storage bytes are read, and anything unexpected stops the read."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, _offset, size, *_rest: TensorShape(tuple(int(s) for s in size), storage)
        if (module, name) == ("torch.jit._pickle", "restore_type_tag"):
            return lambda value, _type: value
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed here")

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "storage" and isinstance(pid[1], str):
            return pid[1]  # the dtype name find_class gave for the storage type
        raise pickle.UnpicklingError("unexpected persistent id")


def torchscript_traced_inputs(path: Path) -> dict[str, list[TensorShape]]:
    """Shapes of the example inputs ``torch.jit.trace`` stored in the archive, per method; {} if none."""
    with zipfile.ZipFile(path) as zf:
        entry = next((n for n in zf.namelist() if n.endswith("/traced_inputs.pkl")), None)
        if entry is None:
            return {}
        data = zf.read(entry)
    try:
        stored = _ShapeOnlyUnpickler(io.BytesIO(data)).load()
    except Exception:  # an unreadable record only means the shapes stay unknown
        return {}
    if not isinstance(stored, dict):
        return {}
    return {
        str(method): list(values)
        for method, values in stored.items()
        if isinstance(values, list) and all(isinstance(v, TensorShape) for v in values)
    }
