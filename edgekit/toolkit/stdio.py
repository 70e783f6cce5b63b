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
