"""File helpers: hashing and atomic writes (temp file in the same directory, fsync, rename)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
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

    The temp name ends with the final name (``.edgekit-4242-9f3c…-model.keras``) because exporters check
    extensions. On any failure (including KeyboardInterrupt) the temp file is removed and ``path`` is
    untouched.
    """
    path = Path(path)
    check_writable_target(path, force=force)
    tmp = _new_temp(path, directory=False)
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
    staging_root = _new_temp(path, directory=True)
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
    scratch = _claim(Path(tempfile.gettempdir()), prefix, "", directory=True)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _new_temp(path: Path, *, directory: bool) -> Path:
    """A fresh temp file or directory beside ``path``, for the write that is renamed onto it."""
    try:
        return _claim(path.parent, TEMP_PREFIX, f"-{path.name}", directory=directory)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot write in {path.parent} ({exc.strerror})",
                                hint="choose a writable -o") from None


def _claim(parent: Path, prefix: str, suffix: str, *, directory: bool) -> Path:
    """Create a new temp file (mode 0666 less the umask, as a normal write) or private directory.

    Its name is announced to an isolating parent *before* it is created: a worker killed between the
    two must not leave a file nobody knows about. The name carries this process's id and 64 random
    bits and is created exclusively, so the parent's clean-up can only ever remove what this process
    made (or a leftover of a dead process with the same id and the same token).
    """
    for _ in range(16):
        candidate = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(8)}{suffix}"
        announce_temp(candidate)
        try:
            if directory:
                os.mkdir(candidate, 0o700)
            else:
                os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, f"no free temp name in {parent}")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
