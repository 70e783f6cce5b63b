"""File helpers: hashing and atomic writes (temp file in the same directory, fsync, rename)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgekit.toolkit.contract.errors import InvalidInputError, UsageError
from edgekit.toolkit.safety.isolation import announce_temp

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


NAME_MAX = 255  # bytes in one path component, on every file system edgekit writes to
MAX_LABELS_BYTES = 64 << 20  # a labels file (one label per line) is far smaller


def read_regular_file(path: str | os.PathLike[str], *, what: str, limit: int | None = None,
                      follow_symlinks: bool = True) -> bytes:
    """The bytes of a file the user named (a config, baseline, recipe, labels): it must be a regular file.

    Opened with ``O_NONBLOCK`` and checked with ``fstat`` on the open descriptor before a byte is read: a FIFO
    would otherwise block the open (and then the read) until some writer came, past ``--timeout`` (the parent reads
    these before any worker runs), and ``/dev/zero`` would never end. Anything but a regular file is exit 3
    naming the file; ``follow_symlinks=False`` refuses a symlink too (``O_NOFOLLOW``). OSErrors of the open itself
    (missing, unreadable) are the caller's to word. ``limit``: at most this many bytes (exit 3 past it)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_symlinks and exc.errno == errno.ELOOP:
            raise InvalidInputError(f"{path}: the {what} is a symbolic link", hint="name the file itself") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidInputError(f"{path}: the {what} is {_file_kind(mode)}, not a regular file",
                                    hint=f"give the {what} as a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        data = fh.read() if limit is None else fh.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise InvalidInputError(f"{path}: the {what} is over {limit} bytes",
                                hint=f"check the path: a {what} is far smaller")
    return data


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISDIR, "a directory"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def check_writable_target(path: Path, *, force: bool, directory: bool = False) -> None:
    """Fail before any work (exit 2/3) when ``path`` cannot become an output: it exists and ``--force`` was
    not given (a dangling symlink counts: writing through it would create a file elsewhere), it is a
    directory where a file goes, its name is longer than the file system allows, or its directory is
    missing or read-only."""
    size = len(os.fsencode(path.name))
    if size > NAME_MAX:
        raise UsageError(f"{str(path)[:80]}…: the file name is {size} bytes, over the file system's {NAME_MAX}",
                         hint="choose a shorter -o")
    if os.path.lexists(path):
        if not force:
            raise UsageError(f"{path}: already exists", hint="pass --force to replace it, or choose another -o")
        if not directory and path.is_dir() and not path.is_symlink():
            raise UsageError(f"{path}: is a directory, and the output is a file",
                             hint="choose a file path for -o (edgekit never replaces a directory with a file)")
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
    untouched. A symlink at ``path`` is replaced, never written through.
    """
    with atomic_paths(path, force=force) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike[str], force: bool = False) -> Iterator[list[Path]]:
    """Temp paths for several outputs that appear together or not at all: after the body succeeded they
    are renamed into place in the order given (the primary artifact first, its sidecar after), and if a
    later rename fails the earlier ones are rolled back (the previous file restored from a hard link).
    A worker killed between two renames leaves the new artifact beside the old sidecar, which the sidecar
    reader ignores (its sha256 no longer matches)."""
    targets = [Path(p) for p in paths]
    for target in targets:
        check_writable_target(target, force=force)
    temps: list[Path] = []
    try:
        for target in targets:
            temps.append(_new_temp(target, directory=False))
        yield temps
        for tmp in temps:
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
        _commit(list(zip(temps, targets, strict=True)))
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def _commit(pairs: list[tuple[Path, Path]]) -> None:
    placed: list[tuple[Path, Path | None]] = []  # replaced targets, with a hard link to what each held before
    backups: list[Path] = []
    try:
        for tmp, target in pairs:
            previous = _hard_link_backup(target)
            if previous is not None:
                backups.append(previous)
            os.replace(tmp, target)
            placed.append((target, previous))
    except BaseException:
        for target, previous in reversed(placed):
            with contextlib.suppress(OSError):
                if previous is not None:
                    os.replace(previous, target)
                else:
                    target.unlink()
        raise
    finally:
        for backup in backups:
            with contextlib.suppress(OSError):
                backup.unlink(missing_ok=True)
        for directory in {target.parent for _, target in pairs}:
            _fsync_dir(directory)


def _hard_link_backup(target: Path) -> Path | None:
    """A second name for the file at ``target`` (announced, so a killed worker's parent removes it; the
    file itself stays at ``target``), or None when there is nothing to keep or no hard link is possible."""
    if not os.path.lexists(target) or (target.is_dir() and not target.is_symlink()):
        return None
    for _ in range(16):
        candidate = _temp_name(target.parent, TEMP_PREFIX, f"-{target.name}")
        announce_temp(candidate)
        try:
            os.link(target, candidate, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError:
            return None  # no hard links here: the rename below stays atomic, only the roll-back is lost
        return candidate
    return None


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a not-yet-existing staging path beside ``path`` for a directory output (a SavedModel);
    on success it replaces ``path`` (removing an old one only with ``force``), on failure it is removed."""
    path = Path(path)
    check_writable_target(path, force=force, directory=True)
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


def _temp_name(parent: Path, prefix: str, suffix: str) -> Path:
    """``<prefix><pid>-<64 random bits><suffix>``, the suffix cut from the left to fit ``NAME_MAX`` (its end,
    the extension exporters check, is kept)."""
    head = f"{prefix}{os.getpid()}-{secrets.token_hex(8)}"
    room = NAME_MAX - len(os.fsencode(head))
    while len(os.fsencode(suffix)) > room:
        suffix = "-" + suffix[2:]
    return parent / f"{head}{suffix}"


def _claim(parent: Path, prefix: str, suffix: str, *, directory: bool) -> Path:
    """Create a new temp file (mode 0666 less the umask, as a normal write) or private directory.

    Its name is announced to an isolating parent *before* it is created: a worker killed between the
    two must not leave a file nobody knows about. The name carries this process's id and 64 random
    bits and is created exclusively, so the parent's clean-up can only ever remove what this process
    made (or a leftover of a dead process with the same id and the same token).
    """
    for _ in range(16):
        candidate = _temp_name(parent, prefix, suffix)
        announce_temp(candidate)
        try:
            if directory:
                os.mkdir(candidate, 0o700)
            else:
                os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666))
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
