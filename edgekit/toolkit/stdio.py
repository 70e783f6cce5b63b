"""Keeping stdout for edgekit's own output."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


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
def framework_output_to_file(path: str | os.PathLike[str]) -> Iterator[tuple[int, int]]:
    """Send everything written to fd 1 and 2 (Python and C++ alike) to ``path`` while the block runs;
    yields duplicates of the original stdout and stderr so the caller can keep talking to the user
    (``edgekit pipeline`` draws its progress there and keeps the frameworks' chatter in a log)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
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
