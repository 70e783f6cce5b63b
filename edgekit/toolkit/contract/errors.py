"""One error tree: every user-facing failure carries a message, a hint and an exit code.

Bugs are not in this tree: anything else that escapes is an internal error (exit 70) and is reported
as such, with the traceback shown only under ``--debug``.

Errors name what the caller typed: ``option("min_seconds")`` is ``min_seconds`` for a Python caller and
``--min-seconds`` while a CLI command runs (``speaking_as_cli()`` around it; a forked worker inherits it),
so the library never tells a Python user about flags they never saw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import IntEnum
from typing import Any

_SPEAKING = {"cli": False}  # process-wide: threads and forked workers of the CLI name flags too
# Parameters whose command-line spelling is not ``--`` + the name with dashes.
FLAGS = {"input_shapes": "--input-shape", "input_ranges": "--input-range", "json_file": "--json-out",
         "junit_file": "--junit", "sign_key": "--sign", "to": "--to", "via": "--via", "threads": "--threads",
         "profile": "--target", "calibration_samples": "--calibration-samples", "output": "-o",
         "memory_limit_mb": "--memory-limit"}
_UNSET: Any = object()


@contextlib.contextmanager
def speaking_as_cli() -> Iterator[None]:
    """While the block runs (in this process and the workers it forks), errors name command-line flags."""
    before = _SPEAKING["cli"]
    _SPEAKING["cli"] = True
    try:
        yield
    finally:
        _SPEAKING["cli"] = before


def option(name: str, value: Any = _UNSET) -> str:
    """How a message names the parameter ``name`` (with ``value``: how to pass that value): ``opset`` /
    ``force=True`` for the library, ``--opset`` / ``--force`` for the CLI."""
    if not _SPEAKING["cli"]:
        return name if value is _UNSET else f"{name}={value!r}"
    flag = FLAGS.get(name, "--" + name.replace("_", "-"))
    if value is _UNSET or value is True:
        return flag
    return f"{flag} {value}"


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    INVALID_INPUT = 3
    REFUSED_UNSAFE = 4
    BACKEND_FAILURE = 5
    RESOURCE_LIMIT = 6
    INTERNAL = 70


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached the CLI (``timeout``, a CI runner's cancel, ``docker stop``, a closed
    terminal): raised like Ctrl-C's KeyboardInterrupt, so the same clean-up runs (workers killed, partial
    outputs removed), and the command exits 128 + the signal's number (143, 129)."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class EdgekitError(Exception):
    """Base of all user-facing errors. ``str(err)`` is the one line shown to the user: message and fix."""

    exit_code: ExitCode = ExitCode.BACKEND_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} (fix: {self.hint})"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


class CheckFailedError(EdgekitError):
    """A check ran and its verdict is negative (parity, thresholds)."""

    exit_code = ExitCode.CHECK_FAILED


class UsageError(EdgekitError):
    """The command line or options are wrong (unknown option value, unsupported pair)."""

    exit_code = ExitCode.USAGE


class InvalidInputError(EdgekitError):
    """A model or data file is missing, malformed, truncated or of an unsupported kind."""

    exit_code = ExitCode.INVALID_INPUT


class UnsafeModelError(EdgekitError):
    """The file is code-bearing (e.g. a whole-model pickle) and loading it would run code."""

    exit_code = ExitCode.REFUSED_UNSAFE


class BackendError(EdgekitError):
    """A framework failed while converting or running a valid input."""

    exit_code = ExitCode.BACKEND_FAILURE


class MissingDependencyError(BackendError):
    """A backend package is not installed; the hint says what to install. Nothing installs at run time."""


class ResourceLimitError(EdgekitError):
    """A timeout or memory limit was hit."""

    exit_code = ExitCode.RESOURCE_LIMIT


def first_line(exc: BaseException, limit: int = 240) -> str:
    """The first non-empty line of an exception's text, for one-line messages from framework errors."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return type(exc).__name__
