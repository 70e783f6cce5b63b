"""One reading of a bundle zip: its local headers, in file order, are exactly its central directory.

A zip can be read two ways: through the central directory at its end (Python's ``zipfile``, Java's
``java.util.zip.ZipFile``, unzip) or by streaming the local headers from its start (Java's
``ZipInputStream``, many app loaders). Bytes the directory does not list (a second local header before a
member, data under a directory entry, a zip comment, bytes appended after the end record) are seen by one
reader and not the other, so a signed bundle could show ``--verify`` one model and an app another.
``zip_layout_problem`` refuses every such zip; the bundle writer (``bundle.package``: ``zipfile.writestr``
to a seekable file, so no data descriptors) makes none.

Pure and total: any bytes in, a problem sentence (the end of "BUNDLE: ...") or None out, never an
exception, so the fuzz harness drives it with bytes alone.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import NamedTuple

from edgekit.packaging.names import extra_field_problem

ZipBytes = bytes | bytearray | memoryview | mmap.mmap  # anything struct.unpack_from and slicing read

_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # central directory entry
_END = struct.Struct("<4sHHHHIIH")  # end of central directory record
_LOCATOR = struct.Struct("<4sIQI")  # zip64 end of central directory locator
_END64 = struct.Struct("<4sQHHIIQQQQ")  # zip64 end of central directory record, without extensible data
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
_LOCATOR_SIG, _END64_SIG = b"PK\x06\x07", b"PK\x06\x06"
_DATA_DESCRIPTOR = 0x0008  # general purpose flag bit 3: sizes and CRC follow the data, not in the header
_UTF8_NAME = 0x0800
_ZIP64_EXTRA = 0x0001
_MAX_COMMENT = 0xFFFF
_TAIL_CANDIDATES = 16  # end-record signatures examined to name what follows the real one


class _Member(NamedTuple):
    """A central directory entry, its zip64 values resolved."""

    name: str  # for messages
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


def zip_layout_problem(data: ZipBytes) -> str | None:
    """Why ``data`` is not a zip that reads one way only, or None when it is.

    The file ends with an end-of-central-directory record without a comment (nothing appended); a zip64
    end record, when a locator says there is one, lies directly before its locator, itself directly before
    the end record; otherwise the central directory ends at the end record. The first local header is at
    offset 0, each next one where the previous member's data ends, each agrees with its directory entry
    (signature, flags, method, CRC, sizes, name bytes; no data descriptor), and the directory starts where
    the last member's data ends. A directory entry (name ending in '/') holds no data. No directory entry
    carries a comment, and no local header a second (Unicode Path) name.
    """
    span = _directory_span(data)
    if isinstance(span, str):
        return span
    start, size, count, end = span
    if start + size != end:
        if start + size < end:
            if data[end - size:end - size + 4] == _CENTRAL_SIG:
                return (f"{end - start - size} bytes at offset 0 before the first member belong to no listed member "
                        "(the zip's offsets do not count them)")
            return (f"{end - start - size} bytes at offset {start + size} between the central directory and "
                    "the end record belong to no listed member")
        return f"the central directory at offset {start} ({size} bytes) runs past the end record at offset {end}"
    expected, previous, at = 0, None, start  # where the next local header must be; the member before it
    for index in range(count):  # each entry takes at least 46 bytes: at most len(data) / 46 rounds
        member = _central_entry(data, at, end)
        if isinstance(member, str):
            return f"central directory entry {index + 1} of {count} at offset {at} {member}"
        member, at = member
        problem = _local_problem(data, member, expected, previous, start)
        if isinstance(problem, str):
            return problem
        expected, previous = problem, member.name
    if at != end:
        return f"the central directory holds {end - at} bytes at offset {at} after its {count} entries"
    if expected != start:
        where = f"after {previous!r}" if previous is not None else "before the central directory"
        return (f"{start - expected} bytes at offset {expected} {where} belong to no listed member"
                f"{_hidden_header(data, expected, start)}")
    return None


def file_layout_problem(path: str | os.PathLike[str]) -> str | None:
    """``zip_layout_problem`` of the file at ``path``, mapped rather than read into memory. OSError when it
    cannot be read, ValueError when it is empty (an empty file cannot be mapped)."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
        return zip_layout_problem(view)


def _unpack(layout: struct.Struct, data: ZipBytes, at: int) -> tuple | None:
    if at < 0 or at + layout.size > len(data):
        return None
    return layout.unpack_from(data, at)


def _shown(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8" if flags & _UTF8_NAME else "cp437", errors="replace")


def _directory_span(data: ZipBytes) -> str | tuple[int, int, int, int]:
    """(directory offset, directory size, entry count, offset where the directory must end), from the end
    record (and the zip64 one), or why they cannot be had."""
    at = len(data) - _END.size
    record = _unpack(_END, data, at)
    if record is None or record[0] != _END_SIG:
        return _tail_problem(data)
    _, disk, directory_disk, on_disk, entries, size, offset, comment = record
    if comment:
        return f"the end record at offset {at} claims a comment of {comment} bytes past the end of the file"
    if disk or directory_disk or on_disk != entries:
        return f"the end record at offset {at} describes a zip split over several disks"
    locator = _unpack(_LOCATOR, data, at - _LOCATOR.size)
    if locator is None or locator[0] != _LOCATOR_SIG:
        return offset, size, entries, at
    return _zip64_span(data, at - _LOCATOR.size, locator, (entries, size, offset))


def _zip64_span(data: ZipBytes, locator_at: int, locator: tuple, plain: tuple[int, int, int]
                ) -> str | tuple[int, int, int, int]:
    _, record_disk, record_at, disks = locator
    if record_disk or disks > 1:
        return f"the zip64 locator at offset {locator_at} describes a zip split over several disks"
    record = _unpack(_END64, data, record_at)
    if record is None or record[0] != _END64_SIG:
        return f"the zip64 locator at offset {locator_at} points to offset {record_at}, where no zip64 end record is"
    _, record_size, _, _, disk, directory_disk, on_disk, entries, size, offset = record
    if record_size != _END64.size - 12:  # the size counts what follows its own field: no extensible data
        return f"the zip64 end record at offset {record_at} declares {record_size} bytes, not {_END64.size - 12}"
    if record_at + _END64.size != locator_at:
        if record_at + _END64.size < locator_at:
            return (f"{locator_at - record_at - _END64.size} bytes at offset {record_at + _END64.size} between the "
                    "zip64 end record and its locator belong to no listed member")
        return f"the zip64 end record at offset {record_at} overlaps its locator at offset {locator_at}"
    if disk or directory_disk or on_disk != entries:
        return f"the zip64 end record at offset {record_at} describes a zip split over several disks"
    for field, narrow, wide, unset in (("entry count", plain[0], entries, 0xFFFF),
                                       ("directory size", plain[1], size, 0xFFFFFFFF),
                                       ("directory offset", plain[2], offset, 0xFFFFFFFF)):
        if narrow not in (wide, unset):
            return f"the end record and the zip64 end record disagree on the {field} ({narrow} ≠ {wide})"
    return offset, size, entries, record_at


def _tail_problem(data: ZipBytes) -> str:
    """What follows the last end record in the file: a zip comment or appended bytes."""
    size = len(data)
    window_at = max(0, size - _END.size - _MAX_COMMENT)
    window = bytes(data[window_at:size])
    found, stop = None, len(window)
    for _ in range(_TAIL_CANDIDATES):  # the last signature may lie inside a comment: look a little further back
        position = window.rfind(_END_SIG, 0, stop)
        if position < 0:
            break
        record = _unpack(_END, window, position)
        if record is not None:
            found = found if found is not None else window_at + position
            if record[-1] and position + _END.size + record[-1] == len(window):
                return (f"the end record at offset {window_at + position} is followed by a zip comment of "
                        f"{record[-1]} bytes, which belongs to no listed member")
        stop = position + len(_END_SIG) - 1
    if found is None:
        return "no end-of-central-directory record ends the file (not a zip, or truncated)"
    return (f"{size - found - _END.size} bytes at offset {found + _END.size} after the end record belong to no "
            "listed member (appended to the zip)")


def _zip64_values(extra: bytes, values: tuple[int, ...], widths: tuple[int, ...]) -> tuple[int, ...] | None:
    """``values`` with each one at its all-ones sentinel (``widths``: its header width in bytes) read in turn
    from the zip64 extra field as 8 bytes (4 for a disk number); None when the field lacks one."""
    needed = [i for i, (value, width) in enumerate(zip(values, widths, strict=True)) if value == (1 << 8 * width) - 1]
    if not needed:
        return values
    field = _extra_field(extra, _ZIP64_EXTRA)
    if field is None:
        return None
    resolved, pos = list(values), 0
    for i in needed:
        width = 8 if widths[i] == 4 else 4
        if pos + width > len(field):
            return None
        resolved[i] = int.from_bytes(field[pos:pos + width], "little")
        pos += width
    return tuple(resolved)


def _extra_field(extra: bytes, kind: int) -> bytes | None:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == kind:
            return extra[pos + 4: pos + 4 + size]
        pos += 4 + size
    return None


def _central_entry(data: ZipBytes, at: int, end: int) -> str | tuple[_Member, int]:
    """The directory entry at ``at`` and where the next one starts, or why there is none (a sentence end)."""
    entry = _unpack(_CENTRAL, data, at)
    if entry is None or at + _CENTRAL.size > end or entry[0] != _CENTRAL_SIG:
        return "is not a directory entry header"
    (_, _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length, comment_length, disk, _, _,
     offset) = entry
    name_at = at + _CENTRAL.size
    following = name_at + name_length + extra_length + comment_length
    if following > end:
        return "runs past the end of the central directory"
    raw_name = bytes(data[name_at:name_at + name_length])
    name = _shown(raw_name, flags)
    if comment_length:
        return f"({name!r}) carries a comment of {comment_length} bytes, which belongs to no listed member"
    extra = bytes(data[name_at + name_length:following])
    wide = _zip64_values(extra, (size, compressed, offset, disk), (4, 4, 4, 2))
    if wide is None:
        return f"({name!r}) lacks the zip64 field its sizes or offset refer to"
    size, compressed, offset, disk = wide
    if disk:
        return f"({name!r}) starts on disk {disk}: a zip split over several disks"
    if raw_name.endswith(b"/") and (size or compressed):
        return (f"({name!r}) is a directory but carries data ({size} bytes, {compressed} compressed), an extra "
                "member no listed file accounts for")
    return _Member(name, raw_name, flags, method, crc, compressed, size, offset), following


def _local_problem(data: ZipBytes, member: _Member, expected: int, previous: str | None,
                   directory_at: int) -> str | int:
    """Why ``member``'s local header is not at ``expected`` or disagrees with its directory entry; else the
    offset where its data ends."""
    name = member.name
    if member.offset != expected:
        if member.offset < expected:
            return (f"member {name!r}'s local header at offset {member.offset} overlaps what comes before it "
                    f"(up to offset {expected})")
        where = f"between {previous!r} and {name!r}" if previous is not None else f"before {name!r}"
        return (f"{member.offset - expected} bytes at offset {expected} {where} belong to no listed member"
                f"{_hidden_header(data, expected, member.offset)}")
    header = _unpack(_LOCAL, data, member.offset)
    if header is None or header[0] != _LOCAL_SIG:
        return f"member {name!r} has no local header at offset {member.offset}"
    _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length = header
    data_at = member.offset + _LOCAL.size + name_length + extra_length
    if data_at > directory_at:
        return f"member {name!r}'s local header at offset {member.offset} runs into the central directory"
    if (flags | member.flags) & _DATA_DESCRIPTOR:
        return f"member {name!r} puts its sizes after its data (a data descriptor), which edgekit never writes"
    local_name = bytes(data[member.offset + _LOCAL.size:member.offset + _LOCAL.size + name_length])
    if local_name != member.raw_name:
        return f"member {name!r}'s local header at offset {member.offset} names it {_shown(local_name, flags)!r}"
    extra = bytes(data[member.offset + _LOCAL.size + name_length:data_at])
    wide = _zip64_values(extra, (size, compressed), (4, 4))
    if wide is None:
        return f"member {name!r}'s local header lacks the zip64 field its sizes refer to"
    for field, local, central in (("flags", flags, member.flags), ("compression method", method, member.method),
                                  ("CRC", crc, member.crc), ("size", wide[0], member.size),
                                  ("compressed size", wide[1], member.compressed)):
        if local != central:
            return (f"member {name!r}'s local header at offset {member.offset} gives {field} {local}, the "
                    f"central directory {central}")
    problem = extra_field_problem(extra)
    if problem is not None:
        return f"member {name!r}'s local header {problem}"
    if data_at + member.compressed > directory_at:
        return f"member {name!r}'s data at offset {data_at} runs into the central directory at offset {directory_at}"
    return data_at + member.compressed


def _hidden_header(data: ZipBytes, start: int, stop: int) -> str:
    """What the unlisted bytes at ``start`` hold, when they begin with a local header: the usual way to hide a
    member from the directory while a streaming reader still returns it."""
    header = _unpack(_LOCAL, data, start)
    if header is None or header[0] != _LOCAL_SIG:
        return ""
    name_at = start + _LOCAL.size
    raw = bytes(data[name_at:min(name_at + header[9], stop)])
    return f"; they hold a local header for {_shown(raw, header[2])!r} that the central directory does not list"
