"""Keeping stdout for edgekit's own output."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from edgekit.toolkit.contract.errors import InvalidInputError, UsageError


@contextlib.contextmanager
def framework_output_to_stderr() -> Iterator[None]:
    """Frameworks print progress to stdout (torch.onnx, litert-torch, tf2onnx; some from C++). Send it
    to stderr while they run, so stdout carries only edgekit's own output (e.g. clean --json)."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (embedded use): Python-level redirect only
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def framework_output_to_file(path: str | os.PathLike[str], *, replace: bool = False) -> Iterator[tuple[int, int]]:
    """Send everything written to fd 1 and 2 (Python and C++ alike) to ``path`` while the block runs;
    yields duplicates of the original stdout and stderr so the caller can keep talking to the user
    (``edgekit pipeline`` draws its progress there and keeps the frameworks' chatter in a log).

    The log is created new (``O_EXCL | O_NOFOLLOW``): an existing file is an error unless ``replace``,
    which unlinks it first — a symlink planted at ``path`` is removed, never written through."""
    if replace and os.path.lexists(path):
        os.unlink(path)
    try:
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_APPEND, 0o644)
    except FileExistsError:
        raise UsageError(f"{path}: already exists", hint="pass --force to replace it") from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot create the log ({exc.strerror})", hint="choose a writable --out") \
            from None
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        yield saved_out, saved_err
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, log):
            os.close(fd)
