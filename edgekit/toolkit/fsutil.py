"""File helpers: hashing and atomic writes (temp file in the same directory, fsync, rename)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgekit.toolkit.errors import InvalidInputError, UsageError
from edgekit.toolkit.isolation import announce_temp

TEMP_PREFIX = ".edgekit-"


def sha256_of(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, or of a directory's files in sorted relative-path order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_writable_target(path: Path, *, force: bool) -> None:
    if path.exists() and not force:
        raise UsageError(f"{path}: already exists", hint="pass --force to replace it, or choose another -o")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidInputError(f"{path}: directory {parent} does not exist", hint="create it first")
    if not os.access(parent, os.W_OK):
        raise InvalidInputError(f"{path}: directory {parent} is not writable", hint="choose a writable -o")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it is fsynced and renamed onto ``path``.

    The temp name ends with the final name (``.edgekit-k3j2-model.keras``) because exporters check
    extensions. On any failure (including KeyboardInterrupt) the temp file is removed and ``path`` is
    untouched.
    """
    path = Path(path)
    check_writable_target(path, force=force)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=f"-{path.name}", dir=path.parent)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot write in {path.parent} ({exc.strerror})",
                                hint="choose a writable -o") from None
    os.close(fd)
    tmp = Path(tmp_name)
    announce_temp(tmp)
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; a normal write honours the umask
    try:
        yield tmp
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike[str], force: bool = False) -> Iterator[list[Path]]:
    """Temp paths for several outputs that appear together: all are renamed into place only after the
    body succeeded, and none is left behind when it fails."""
    for path in paths:
        check_writable_target(Path(path), force=force)
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(p, force=force)) for p in paths]


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a not-yet-existing staging path beside ``path`` for a directory output (a SavedModel);
    on success it replaces ``path`` (removing an old one only with ``force``), on failure it is removed."""
    path = Path(path)
    check_writable_target(path, force=force)
    try:
        staging_root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, suffix=f"-{path.name}", dir=path.parent))
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot write in {path.parent} ({exc.strerror})",
                                hint="choose a writable -o") from None
    announce_temp(staging_root)
    try:
        staged = staging_root / path.name
        yield staged
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(staged, path)
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, force: bool = False) -> Path:
    with atomic_path(path, force=force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def scratch_directory(prefix: str) -> Iterator[Path]:
    """A temporary directory removed afterwards, also when an isolated worker is killed."""
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        announce_temp(scratch)
        yield Path(scratch)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
