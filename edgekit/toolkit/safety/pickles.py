"""Classify torch pickles without unpickling them.

Unpickling runs whatever callables the pickle's globals name, so what a file would import has to be read off its
opcodes (``pickletools.genops``) without executing any. ``STACK_GLOBAL`` takes its module and name from the top of
the unpickler's stack, and those items can come from anywhere: a string pushed long before, a memo slot, a ``DUP``,
the result of a call. Guessing them from the strings seen last is what crafted files exploit (push ``"os"
"system"``, then decoy strings that are popped again), so the scan replays the stack, the MARK stack and the memo
symbolically: an item is either the exact text a string opcode pushed or unknown. A global whose module or name is
unknown, or one looked up in the copyreg extension registry, cannot be judged and is refused whatever the policy.
A stream the replay cannot follow (underflow, missing MARK, unset memo slot) would fail in the unpickler as well;
it is reported as malformed rather than guessed at.

A plain tensor container (a state_dict) references only torch's tensor-rebuild helpers, storages, dtypes and a
few builtins. Anything else (a module class, ``os.system``, ``builtins.eval``…) means unpickling runs code chosen by
whoever wrote the file, so it is refused. Names must be plain identifiers: from protocol 4 on, the unpickler follows
dotted names attribute by attribute (``_rebuild_tensor.__builtins__`` is a dict of every builtin).

The scan covers every pickle the loader would read, seen the way torch sees the file: one whose first four bytes
open a zip is an archive, and every ``.pkl`` member is scanned (``zipfile`` also finds a directory appended to a
bare pickle, which torch ignores); anything else torch first tries as a tar archive (its pre-1.0 layout, refused
here), then reads as five pickles in a row, all scanned. A pickle that cannot be read is an error, not the end of
the scan, since the loader may read it differently from pickletools and go on to the next one; only a file already
found importing something disallowed is reported as code-bearing instead, the unpickler having imported it before
failing. ``torch.load(weights_only=True)`` remains the enforcement when the file is actually read; this scan exists
to name the reason up front.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.toolkit.contract.errors import InvalidInputError, first_line
from edgekit.toolkit.contract.formats import ZIP_SIGNATURE, open_zip_names

_ALLOWED_BUILTINS = {"set", "frozenset", "tuple", "list", "dict", "int", "float", "bool", "str", "bytes",
                     "bytearray", "complex", "slice"}
_ALLOWED_TORCH = {"Size", "device", "dtype", "Tensor", "float32", "float16", "bfloat16", "float64", "int8",
                  "uint8", "int16", "int32", "int64", "bool", "complex64", "complex128"}
# What a global is recorded as when the scan cannot tell which one the unpickler will import.
COMPUTED_GLOBAL = ("<computed>", "<computed>")
_EXTENSION_MODULE = "copyreg"
_LEGACY_PICKLES = 5  # legacy torch.save: magic number, protocol version, sys info, the object, its storage keys
_MALFORMED_HINT = "re-save it with torch.save(model.state_dict(), path)"


def is_allowed_global(module: str, name: str) -> bool:
    if not (name.isascii() and name.isidentifier()):
        return False  # a dotted name is an attribute path from protocol 4 on
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


def _unjudgeable(module: str, name: str) -> bool:
    """Globals no policy may allow: the scan could not tell which object the unpickler would import."""
    return module == COMPUTED_GLOBAL[0] or (module == _EXTENSION_MODULE and name.startswith("extension:"))


@dataclass(frozen=True)
class PickleScan:
    globals: tuple[tuple[str, str], ...]
    disallowed: tuple[tuple[str, str], ...]

    @property
    def is_code_bearing(self) -> bool:
        return bool(self.disallowed)


_TEXT_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
# Python 2 strings load as str or bytes depending on the loader's encoding; ASCII text reads the same under all.
_PY2_STRING_OPS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EXT_OPS = frozenset({"EXT1", "EXT2", "EXT4"})


class _Malformed(ValueError):
    """The unpickler itself would reject the stream: its stack, MARKs or memo lack what an opcode needs."""


@dataclass(frozen=True)
class _Effect:
    """An opcode's stack effect, from pickletools' metadata: ``to_mark`` opcodes first pop everything above the
    topmost MARK (at least ``min_slice`` items, e.g. OBJ's class) and the MARK; then ``pops`` items, then
    ``pushes`` unknown items are pushed."""

    pops: int
    to_mark: bool
    min_slice: int
    pushes: int


def _effect(opcode: pickletools.OpcodeInfo) -> _Effect | None:
    before, after = opcode.stack_before, opcode.stack_after
    mark, rest = pickletools.markobject, pickletools.stackslice
    if mark in after:
        return None  # MARK itself, replayed explicitly
    if mark not in before:
        return None if rest in before else _Effect(len(before), False, 0, len(after))
    at = before.index(mark)
    if before[-1] is not rest or before.count(rest) != 1:
        return None
    return _Effect(at, True, len(before) - at - 2, len(after))


_EFFECTS = {op.name: _effect(op) for op in pickletools.opcodes}


class _StackMachine:
    """The unpickler's stack, MARK stack and memo, replayed without building anything. Each item is the str a
    string opcode pushed, or None for anything else (numbers, bytes, containers, results of calls)."""

    def __init__(self, data: bytes, found: list[tuple[str, str]]) -> None:
        self.data = data
        self.found = found
        self.stack: list[str | None] = []
        self.marks: list[int] = []  # stack height at each open MARK; nothing below the top one is reachable
        self.memo: dict[int, str | None] = {}
        self.where = ""

    def run(self, stream: io.BytesIO) -> None:
        """Replays one pickle from the stream's position; leaves the stream after its STOP."""
        for opcode, arg, pos in pickletools.genops(stream):
            self.where = f"{opcode.name} at byte {pos}"
            self.step(opcode.name, arg, pos)

    def step(self, name: str, arg: Any, pos: int) -> None:
        stack = self.stack
        if name in _TEXT_OPS:
            stack.append(arg)
        elif name in _PY2_STRING_OPS:
            stack.append(arg if isinstance(arg, str) and arg.isascii() else None)
        elif name == "MARK":
            self.marks.append(len(stack))
        elif name == "POP":
            if self.marks and self.marks[-1] == len(stack):
                self.marks.pop()  # as CPython's unpickler does: POP straight after MARK discards the MARK
            else:
                self.pop()
        elif name == "DUP":
            stack.append(self.top())
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top()
        elif name in _PUT_OPS:
            if int(arg) < 0:
                raise self.malformed("negative memo slot")
            self.memo[int(arg)] = self.top()
        elif name in _GET_OPS:
            if int(arg) not in self.memo:
                raise self.malformed(f"memo slot {int(arg)} was never written")
            stack.append(self.memo[int(arg)])
        elif name == "STACK_GLOBAL":
            attr, module = self.pop(), self.pop()
            known = isinstance(module, str) and isinstance(attr, str)
            self.found.append((module, attr) if known else COMPUTED_GLOBAL)
            stack.append(None)
        elif name in _EXT_OPS:
            self.found.append((_EXTENSION_MODULE, f"extension:{arg}"))  # a global registered under a number
            stack.append(None)
        else:
            if name in ("GLOBAL", "INST"):
                self.found.append(self.text_global(pos))
            self.generic(name)

    def generic(self, name: str) -> None:
        effect = _EFFECTS.get(name)
        if effect is None:
            raise self.malformed("opcode not modelled by this scan")
        if effect.to_mark:
            if not self.marks:
                raise self.malformed("no MARK to pop to")
            start = self.marks.pop()
            if len(self.stack) - start < effect.min_slice:
                raise self.malformed("stack underflow")
            del self.stack[start:]
        for _ in range(effect.pops):
            self.pop()
        self.stack.extend([None] * effect.pushes)

    def top(self) -> str | None:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise self.malformed("stack underflow")
        return self.stack[-1]

    def pop(self) -> str | None:
        value = self.top()
        self.stack.pop()
        return value

    def text_global(self, pos: int) -> tuple[str, str]:
        """GLOBAL and INST name it in two lines of text, read here as the unpickler reads them (pickletools'
        argument undoes backslash escapes and joins the two with a space, which the unpickler does not)."""
        first = self.data.index(b"\n", pos + 1)
        second = self.data.index(b"\n", first + 1)
        try:
            return self.data[pos + 1:first].decode("utf-8"), self.data[first + 1:second].decode("utf-8")
        except UnicodeDecodeError:
            raise self.malformed("global named in text that is not UTF-8") from None

    def malformed(self, what: str) -> _Malformed:
        return _Malformed(f"{self.where}: {what}")


def _replay(data: bytes, *, origin: str, max_pickles: int, found: list[tuple[str, str]]) -> InvalidInputError | None:
    """Adds the globals of the first pickle in ``data`` and of the ones after it (up to ``max_pickles`` or the end)
    to ``found``; returns the error for a stream that cannot be replayed that far."""
    stream = io.BytesIO(data)
    for index in range(max_pickles):
        if index and stream.tell() >= len(data):
            break
        try:
            _StackMachine(data, found).run(stream)
        except Exception as exc:  # pickletools raises ValueError and others; whatever the cause, the file is refused
            which = f"pickle {index + 1}: " if index else ""
            return InvalidInputError(
                f"{origin}: malformed pickle stream ({which}{first_line(exc)}); the file is probably truncated or "
                "corrupt",
                hint=_MALFORMED_HINT,
            )
    return None


def _verdict(found: list[tuple[str, str]], errors: list[InvalidInputError],
             allowed: Callable[[str, str], bool]) -> PickleScan:
    """The scan, or the first error. What the readable part imports wins over the error: the unpickler runs each
    opcode as it reads it, so those imports happen before it fails, and the file is refused either way."""
    unique = tuple(dict.fromkeys(found))
    scan = PickleScan(unique, tuple(g for g in unique if _unjudgeable(*g) or not allowed(*g)))
    if errors and not scan.is_code_bearing:
        raise errors[0]
    return scan


def scan_pickle_bytes(data: bytes, *, origin: str, max_pickles: int = 1,
                      allowed: Callable[[str, str], bool] = is_allowed_global) -> PickleScan:
    """Scan the pickle at the start of ``data`` and the ones right after it, up to ``max_pickles`` (a loader that
    reads several in turn). Each must be well formed, or InvalidInputError: a scan that stopped at a pickle it
    cannot read would miss the ones after it. ``allowed`` is the policy: which (module, name) may be imported."""
    found: list[tuple[str, str]] = []
    error = _replay(data, origin=origin, max_pickles=max_pickles, found=found)
    return _verdict(found, [error] if error else [], allowed)


def scan_torch_pickle(path: Path) -> PickleScan:
    """Scan a torch.save file: every ``.pkl`` member of a zip archive, or the pickles of a bare (legacy) file."""
    with path.open("rb") as fh:
        is_zip = fh.read(len(ZIP_SIGNATURE)) == ZIP_SIGNATURE  # torch's own test, not zipfile.is_zipfile's
    if is_zip:
        return _scan_zip(path)
    _refuse_tar(path)
    return scan_pickle_bytes(path.read_bytes(), origin=str(path), max_pickles=_LEGACY_PICKLES)


def _scan_zip(path: Path) -> PickleScan:
    members = [name for name in open_zip_names(path) if name.endswith(".pkl")]
    if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in members):
        raise InvalidInputError(f"{path}: torch archive without data.pkl", hint="re-save the file")
    found: list[tuple[str, str]] = []
    errors: list[InvalidInputError] = []
    with zipfile.ZipFile(path) as zf:
        for name in members:
            error = _replay(zf.read(name), origin=f"{path} member {name}", max_pickles=1, found=found)
            errors += [error] if error else []
    return _verdict(found, errors, is_allowed_global)


def _refuse_tar(path: Path) -> None:
    """torch.load first tries a bare file as a tar archive (torch.save's pre-1.0 layout) and, if it opens, unpickles
    the archive's members, which this scan does not read: such a file is refused, even one that starts like a
    pickle."""
    try:
        with tarfile.open(path, mode="r:"):
            pass
    except tarfile.TarError:
        return
    except Exception as exc:  # torch.load would fail the same way: the file is unreadable either way
        raise InvalidInputError(f"{path}: unreadable file ({first_line(exc)})", hint=_MALFORMED_HINT) from None
    raise InvalidInputError(
        f"{path}: tar archive (torch.save's pre-1.0 layout), which torch.load would unpickle member by member; "
        "edgekit does not read it",
        hint="load it in a trusted environment and re-save it with torch.save(model.state_dict(), path)",
    )


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


MAX_TRACED_INPUTS_BYTES = 16 << 20
MAX_MEMO_INDEX = 1 << 20


def _small_memo(data: bytes) -> bool:
    """True when no memo slot index is huge: CPython's unpickler grows its memo array to the index it is
    given (LONG_BINPUT 0xFFFFFFFF asks for ~68 GB), so such a record is left unread, never unpickled."""
    try:
        return all(not (op.name in _PUT_OPS and int(arg) > MAX_MEMO_INDEX) for op, arg, _ in pickletools.genops(data))
    except Exception:  # unreadable: the shapes stay unknown
        return False


def torchscript_traced_inputs(path: Path) -> dict[str, list[TensorShape]]:
    """Shapes of the example inputs ``torch.jit.trace`` stored in the archive, per method; {} if none."""
    entry = next((n for n in open_zip_names(path) if n.endswith("/traced_inputs.pkl")), None)
    if entry is None:
        return {}
    with zipfile.ZipFile(path) as zf:
        if zf.getinfo(entry).file_size > MAX_TRACED_INPUTS_BYTES:
            return {}
        data = zf.read(entry)
    if not _small_memo(data):
        return {}
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
