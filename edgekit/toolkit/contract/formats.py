"""Model formats, recognised from their bytes, never from the extension alone.

Sniffing reads at most the file's header, its zip directory or its top-level protobuf fields: it
imports no framework and runs no code, so it is safe on untrusted files and cheap enough for
``--help``-time paths. A sniff that succeeds also checks the structure it can see cheaply (zip
directory, protobuf field lengths, ExecuTorch segment sizes), so truncated files fail here with a
clear message instead of deep inside a native loader.
"""

from __future__ import annotations

import mmap
import os
import struct
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgekit.toolkit.contract.errors import InvalidInputError, first_line
from edgekit.toolkit.contract.tables import OpenValue


class Format(OpenValue):
    """A model format: one row of ``FORMAT_SPECS`` (``Format.ONNX``, ``Format("onnx")``)."""

    kind = "model format"


@dataclass(frozen=True)
class FormatSpec:
    """Everything edgekit knows about a format, in one row."""

    name: str
    label: str  # what a file of it is, in messages: "a TFLite model"
    extensions: tuple[str, ...] = ()  # the first is the one edgekit writes; () for no file, ("",) a directory
    converts_to: bool = False  # a conversion can write it (edgekit convert --to, pipeline rows)
    bundle_member: str | None = None  # the member a mobile bundle holds it as (None: not bundled)
    magic: bytes | None = None  # a plug-in format's first bytes (the built-ins are sniffed by the code below)

    @property
    def suffix(self) -> str:
        return self.extensions[0] if self.extensions else ""


FORMAT_SPECS = (  # sources first, then what conversions write, in the order reports list them
    FormatSpec("torch-module", "an in-memory torch module (a factory)"),
    FormatSpec("torch-exported", "a torch-exported program", (".pt2",)),
    FormatSpec("torch-pickle", "a torch pickle", (".pt", ".pth", ".bin", ".ckpt", ".pkl")),
    FormatSpec("keras", "a Keras model", (".keras",)),
    FormatSpec("keras-h5", "a Keras HDF5 model", (".h5", ".hdf5")),
    FormatSpec("savedmodel", "a SavedModel", ("",)),
    FormatSpec("tflite", "a TFLite model", (".tflite", ".lite"), converts_to=True, bundle_member="model.tflite"),
    FormatSpec("onnx", "an ONNX model", (".onnx",), converts_to=True, bundle_member="model.onnx"),
    FormatSpec("torchscript", "a TorchScript program", (".pt", ".pth", ".ts", ".torchscript", ".jit"),
               converts_to=True),
    FormatSpec("executorch", "an ExecuTorch program", (".pte",), converts_to=True, bundle_member="model.pte"),
)
for _spec in FORMAT_SPECS:
    Format.register(_spec)


def output_formats() -> tuple[Format, ...]:
    """What a conversion can write (``--to``), in table order."""
    return tuple(f for f in Format if f.spec.converts_to)


def extensions() -> dict[Format, tuple[str, ...]]:
    """Format → the extensions it is usually saved with; used only to warn about disagreement and to name
    the format a broken file probably meant to be."""
    return {f: f.spec.extensions for f in Format if f.spec.extensions}


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
# ModelProto field numbers with their protobuf wire types (onnx.proto3).
_ONNX_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
_ONNX_GRAPH_FIELD = 7
_ONNX_IR_VERSION_FIELD = 1


@dataclass(frozen=True)
class Sniffed:
    """What the bytes say a model is. ``kind`` refines the format (e.g. state_dict vs whole model)."""

    path: Path
    format: Format
    kind: str = ""
    extension_warning: str | None = None


def expected_formats_for(path: Path) -> list[Format]:
    suffix = path.suffix.lower()
    if not suffix:
        return []
    return [fmt for fmt, exts in extensions().items() if suffix in exts]


def sniff(path: str | os.PathLike[str]) -> Sniffed:
    """Recognise the model format of ``path`` from its content.

    Raises InvalidInputError (exit 3) for a missing path, an empty, truncated or unrecognised file.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or directory", hint="check the path")
    if path.is_dir():
        return _sniff_directory(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: not a regular file", hint="pass a model file or a SavedModel directory")
    size = path.stat().st_size
    if size == 0:
        raise InvalidInputError(f"{path}: file is empty (0 bytes)", hint="re-export or re-download the model")
    with path.open("rb") as fh:
        head = fh.read(64)
    fmt, kind = _sniff_bytes(path, head, size)
    if fmt is None:
        raise InvalidInputError(f"{path}: {_unrecognised_reason(path, head)}", hint=_supported_hint())
    return Sniffed(path, fmt, kind, _extension_warning(path, fmt))


def _sniff_bytes(path: Path, head: bytes, size: int) -> tuple[Format | None, str]:
    plugged = next((f for f in Format if f.spec.magic and head.startswith(f.spec.magic)), None)
    if plugged is not None:
        return plugged, ""
    if head.startswith(ZIP_SIGNATURE):
        return _sniff_zip(path)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        _check_flatbuffer_root(path, head, size, "TFLite")
        return Format.TFLITE, ""
    if len(head) >= 8 and head[4:6] == b"ET" and head[6:8].isdigit():
        _check_pte(path, head, size)
        return Format.EXECUTORCH, ""
    if head.startswith(HDF5_SIGNATURE):
        return Format.KERAS_H5, ""
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        # A bare pickle (legacy torch.save): refused as code-bearing by the loader.
        return Format.TORCH_PICKLE, "legacy-pickle"
    if _looks_like_onnx(path, size):
        return Format.ONNX, ""
    if _is_text_protocol_pickle(path, head, size):
        return Format.TORCH_PICKLE, "legacy-pickle"
    return None, ""


_PROTOCOL0_FIRST = b"(}]cNITFLSVPdlt"  # opcodes a protocol 0/1 pickle can start with
MAX_TEXT_PICKLE = 64 << 20


def _is_text_protocol_pickle(path: Path, head: bytes, size: int) -> bool:
    """A protocol 0/1 pickle has no header: it is one when its opcodes parse to a STOP at the very end
    (pickletools only reads opcodes; nothing is constructed or run)."""
    import pickletools

    if not head or head[0] not in _PROTOCOL0_FIRST or size > MAX_TEXT_PICKLE:
        return False
    data = path.read_bytes()
    try:
        last = None
        for opcode, _arg, pos in pickletools.genops(data):
            last = (opcode.name, pos)
    except (ValueError, EOFError, UnicodeDecodeError, KeyError, IndexError, struct.error):
        return False
    return last is not None and last[0] == "STOP" and last[1] == len(data) - 1


def _sniff_directory(path: Path) -> Sniffed:
    if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
        return Sniffed(path, Format.SAVEDMODEL)
    raise InvalidInputError(
        f"{path}: directory has no saved_model.pb, so it is not a TensorFlow SavedModel",
        hint="pass the SavedModel directory itself (the one holding saved_model.pb) or a model file",
    )


_ZIP_CHECKED: dict[tuple[str, int, int], list[str]] = {}
_EOCD = struct.Struct("<4s4H2LH")  # signature, disk numbers, entries on disk, entries, size, offset, comment
MAX_ZIP_MEMBERS = 100_000


def open_zip_names(path: Path) -> list[str]:
    """The member names of a zip edgekit will let a framework read, checked strictly (exit 3 otherwise):
    the directory is consistent with the file, the first member starts it, every member passes its CRC
    (zip readers silently recover from a wrong directory offset or count; frameworks then read garbage),
    no member is encrypted, and no name appears twice (``zipfile`` reads the last of two same-named
    members, torch's reader and Java's ``ZipInputStream`` the first, so a scan could pass one and the
    framework load the other)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _ZIP_CHECKED:
        return _ZIP_CHECKED[key]
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if not infos or min(info.header_offset for info in infos) != 0:
                # A truncated .pt2 ends inside a nested, uncompressed archive whose directory zip readers
                # then take for the file's own: the first member must start the file.
                raise zipfile.BadZipFile("the directory found does not describe this file (nested or shifted)")
            if len(infos) > MAX_ZIP_MEMBERS:
                raise zipfile.BadZipFile(f"{len(infos)} members (at most {MAX_ZIP_MEMBERS})")
            names = [info.filename for info in infos]
            _check_zip_directory(path, len(names))
            encrypted = next((info.filename for info in infos if info.flag_bits & 0x1), None)
            if encrypted is not None:
                raise zipfile.BadZipFile(f"member {encrypted!r} is encrypted")
            twice = next((name for name, count in Counter(names).items() if count > 1), None)
            if twice is not None:
                raise zipfile.BadZipFile(f"member {twice!r} appears twice (readers disagree on which one counts)")
            bad = zf.testzip()  # reads every member through its local header: CRC and name must match
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad!r} fails its CRC check")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error,
            UnicodeDecodeError, struct.error, RuntimeError) as exc:
        raise InvalidInputError(
            f"{path}: broken zip archive ({first_line(exc)}); the file is truncated, corrupt or crafted",
            hint="re-export or re-download the model",
        ) from None
    _ZIP_CHECKED[key] = names
    return names


def _check_zip_directory(path: Path, count: int) -> None:
    """The end-of-central-directory record must agree with the directory actually there."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - (1 << 16) - _EOCD.size))
        tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0:
        raise zipfile.BadZipFile("no end-of-central-directory record")
    _, _, _, on_disk, entries, dir_size, dir_offset, _ = _EOCD.unpack_from(tail, at)
    eocd_position = size - len(tail) + at
    locator = tail[at - 20: at] if at >= 20 else b""
    if locator.startswith(b"PK\x06\x07"):  # zip64 (torch.save always writes one): its record comes first
        (zip64_offset,) = struct.unpack_from("<Q", locator, 8)
        directory_end = zip64_offset
        if 0xFFFF in (on_disk, entries) or 0xFFFFFFFF in (dir_size, dir_offset):
            return  # the real values live in the zip64 record, which zipfile has read and checked
    else:
        directory_end = eocd_position
    if entries != count or on_disk != count:
        raise zipfile.BadZipFile(f"the directory record claims {entries} entries, the directory holds {count}")
    if dir_offset + dir_size != directory_end:
        raise zipfile.BadZipFile(f"the directory record places the directory at {dir_offset}+{dir_size}, "
                                 f"but it ends at {directory_end}")


def _sniff_zip(path: Path) -> tuple[Format | None, str]:
    names = open_zip_names(path)
    top = set(names)
    if {"metadata.json", "config.json"} <= top:
        return Format.KERAS, ""
    # torch archives put every entry under one top-level folder named after the file. A member beside that
    # folder is not torch's: torch.export.load falls back to reading top-level members of an older layout
    # (unpickling them), so such a file is not recognised at all.
    prefixes = {n.split("/", 1)[0] if "/" in n else "" for n in names}
    if len(prefixes) == 1 and "" not in prefixes:
        prefix = prefixes.pop() + "/"
        rel = {n[len(prefix):] for n in names if n.startswith(prefix)}
        if "models/model.json" in rel or any(r.startswith("models/") and r.endswith(".json") for r in rel):
            return Format.TORCH_EXPORTED, ""
        if "constants.pkl" in rel and any(r.startswith("code/") for r in rel):
            return Format.TORCHSCRIPT, ""
        if "data.pkl" in rel:
            return Format.TORCH_PICKLE, "zip-pickle"
    raise InvalidInputError(
        f"{path}: zip archive is neither a Keras .keras file nor a PyTorch archive",
        hint=_supported_hint(),
    )


def _check_flatbuffer_root(path: Path, head: bytes, size: int, what: str) -> None:
    (root,) = struct.unpack_from("<I", head, 0)
    if root < 8 or root + 4 > size:
        raise InvalidInputError(
            f"{path}: {what} flatbuffer root offset {root} lies outside the {size}-byte file (truncated or corrupt)",
            hint="re-export the model",
        )


def _check_pte(path: Path, head: bytes, size: int) -> None:
    _check_flatbuffer_root(path, head, size, "ExecuTorch")
    # The extended header ("eh00") records the program size and where the segment data ends, so a
    # truncated .pte is recognised without loading it.
    if head[8:12] != b"eh00" or len(head) < 40:
        return
    _header_len, program_size, segment_base, segment_size = struct.unpack_from("<IQQQ", head, 12)
    needed = max(program_size, segment_base + segment_size if segment_size else 0)
    if needed > size:
        raise InvalidInputError(
            f"{path}: ExecuTorch program needs {needed} bytes but the file has {size} (truncated)",
            hint="re-export the .pte",
        )


def _read_varint(buf: bytes | mmap.mmap, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _looks_like_onnx(path: Path, size: int) -> bool:
    """Walk the top-level protobuf fields of a ModelProto: every tag must be a ModelProto field with
    the right wire type, every length must fit in the file, and ir_version and graph must be there."""
    if size > 2**31:  # protobuf's own limit; larger ONNX models keep weights as external data
        return False
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _walk_model_proto(data)


def _walk_model_proto(data: bytes | mmap.mmap) -> bool:
    pos, seen = 0, set()
    try:
        while pos < len(data):
            tag, pos = _read_varint(data, pos)
            field, wire = tag >> 3, tag & 7
            if _ONNX_MODEL_FIELDS.get(field) != wire:
                return False
            if wire == 0:
                _, pos = _read_varint(data, pos)
            else:
                length, pos = _read_varint(data, pos)
                pos += length
                if pos > len(data):
                    return False
            seen.add(field)
    except ValueError:
        return False
    return {_ONNX_IR_VERSION_FIELD, _ONNX_GRAPH_FIELD} <= seen


def _unrecognised_reason(path: Path, head: bytes) -> str:
    expected = expected_formats_for(path)
    if expected:
        names = " or ".join(str(f) for f in expected)
        return f"content is not a valid {names} model (unrecognised, truncated or corrupt bytes)"
    return "unrecognised model format"


def _supported_hint() -> str:
    named = [f"{f.value} ({'a directory' if f.spec.extensions == ('',) else '/'.join(f.spec.extensions)})"
             for f in Format if f.spec.extensions]
    return "supported: " + ", ".join(named)


def _extension_warning(path: Path, fmt: Format) -> str | None:
    expected = expected_formats_for(path)
    if not expected or fmt in expected:
        return None
    return f"{path.name}: extension {path.suffix!r} suggests {expected[0]}, but the content is {fmt}"
