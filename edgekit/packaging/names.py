"""Bundle member names that mean the same file to every extractor on every system.

Checked by ``--verify`` before anything in a bundle is read (``verify._read_bundle``); pure, so the fuzz
harness drives them with names alone."""

from __future__ import annotations

import re
import struct
import unicodedata
from collections.abc import Sequence

_WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                              *(f"lpt{i}" for i in range(10))})
_UNICODE_PATH_EXTRA = 0x7075  # Info-ZIP's second name for a member, which Info-ZIP and 7-Zip prefer


def member_name_problem(name: str) -> str | None:
    """Why a bundle member name is refused, as the end of a sentence ("member 'x' …"); None when it is fine.

    A name must mean the same file to every extractor on every system: Windows ones take ``\\`` for a
    separator, ``C:`` for a drive and ``name:stream`` for an NTFS stream, drop a trailing dot or space, and
    open a device for ``CON``/``NUL``/``COM1``…; zip readers cut a name at a NUL. A directory entry ends
    in one ``/``.
    """
    if not name or name == "/":
        return "has an empty name"
    odd = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf")), None)
    if odd == "\0":
        return "contains a NUL byte (zip readers cut the name there, so they disagree on it)"
    if odd is not None:
        return f"contains the control or invisible character U+{ord(odd):04X}"
    if name.startswith(("/", "\\")):
        return "points outside the bundle (an absolute path)"
    if re.match(r"[A-Za-z]:", name):
        return f"points outside the bundle (it names the Windows drive {name[:2]!r})"
    parts = re.split(r"[/\\]", name[:-1] if name.endswith("/") else name)
    if ".." in parts:
        return "points outside the bundle ('..' where '/' or '\\' separates folders)"
    if "\\" in name:
        return "contains '\\', which Windows extractors take for a folder separator"
    if ":" in name:
        return "contains ':', which Windows takes for a drive or an NTFS stream"
    if "" in parts or "." in parts:
        return "has an empty or '.' path component"
    for part in parts:
        if part[-1] in ". ":
            return f"has a component ending in {part[-1]!r} ({part!r}), which Windows drops"
        if part.split(".", 1)[0].rstrip(" ").lower() in _WINDOWS_DEVICES:
            return f"uses {part!r}, a reserved device name on Windows"
    return None


def member_name_collision(names: Sequence[str]) -> tuple[str, str] | None:
    """The first name (with why) that another one would overwrite on some extractor: an exact duplicate,
    two names (or folders) equal once case is ignored and Unicode normalised (Windows, macOS), or a file
    that is also a folder of another member. None when every name is distinct everywhere."""
    seen: set[str] = set()
    spelled: dict[str, str] = {}  # case-folded path → its first spelling
    folders: set[str] = set()
    files: dict[str, str] = {}
    for name in names:
        if name in seen:
            return name, "appears twice (zip readers disagree on which one counts)"
        seen.add(name)
        is_dir = name.endswith("/")
        parts = (name[:-1] if is_dir else name).split("/")
        for depth in range(1, len(parts) + 1):
            path = "/".join(parts[:depth])
            key = unicodedata.normalize("NFC", path).casefold()
            first = spelled.setdefault(key, path)
            if first != path:
                return name, (f"collides with {first!r} where case is ignored (Windows and macOS extractors "
                              "overwrite one with the other)")
            if depth < len(parts) or is_dir:
                folders.add(key)
            else:
                files[key] = name
    clash = next((name for key, name in files.items() if key in folders), None)
    return (clash, "is both a file and a folder of other members") if clash is not None else None


def extra_field_problem(extra: bytes) -> str | None:
    pos = 0
    while pos + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, pos)
        if kind == _UNICODE_PATH_EXTRA:
            return "carries a second name (a Unicode Path field) that some extractors use instead of this one"
        pos += 4 + size
    return None
