"""Keeping the terminal for edgekit's own output.

Frameworks talk a lot while they work: absl/TF logs and TF's C++ stderr, torch and tf2onnx warnings, whole
tracebacks that tf2onnx logs while it succeeds, XNNPACK and litert notices. ``framework_output_to_log``
(what the CLI wraps each command's work in) sends all of it to a log file and lets only edgekit's own lines
(``edgekit: …``) through; ``framework_output_to_stderr`` (``--verbose``) keeps it on stderr; both keep stdout
clean for ``--json``. Library callers (``edgekit.api``) get neither unless they ask: their process is theirs.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edgekit.toolkit.contract.errors import InvalidInputError, UsageError

OWN_PREFIX = "edgekit:"  # every line edgekit itself writes to stderr starts so (errors, warnings, notes)
LOG_DIR_ENV = "EDGEKIT_LOG_DIR"
KEEP_LOGS = 50  # per-run logs kept in the log directory; older ones are pruned when a new one is made


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
        log = _create(path, 0o644)
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


def _create(path: str | os.PathLike[str], mode: int) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_APPEND | os.O_CLOEXEC, mode)


# -- the quiet terminal -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogSummary:
    """What a ``framework_output_to_log`` block left: the log (None when nothing was written, so it was
    removed) and how many lines it holds."""

    path: Path | None
    lines: int


class _Router(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` while frameworks are captured: every line goes to the log, except, with a
    ``user`` stream, edgekit's own lines (``edgekit: …``), which go there. Lines are routed whole (``print``
    writes the text and the newline apart). Once the capture ends the router is released and writes through
    to the stream it stood in for: a framework's handler that kept a reference never meets a closed file."""

    def __init__(self, log: TextIO, user: TextIO | None, name: str) -> None:
        super().__init__()
        self._log: TextIO | None = log
        self._user, self._name, self._pending = user, name, ""
        self._lock = threading.Lock()  # frameworks log from their own threads

    def _target(self) -> TextIO:
        """Where the log's share goes: the log, or once released whatever ``sys.<name>`` is now."""
        if self._log is not None:
            return self._log
        current = getattr(sys, self._name)
        return current if current is not self else getattr(sys, f"__{self._name}__")

    def release(self) -> None:
        self.flush()
        with self._lock:
            self._log = self._user = None

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target().encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._target().errors

    @property
    def buffer(self) -> Any:  # a library writing bytes is a framework: the log
        return self._target().buffer

    def fileno(self) -> int:
        return self._target().fileno()

    def isatty(self) -> bool:
        return False if self._log is not None else self._target().isatty()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            while "\n" in self._pending:
                line, self._pending = self._pending.split("\n", 1)
                self._route(line + "\n")
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:  # a partial line (a progress bar's "\r…"): routed by how it starts
                self._route(self._pending)
                self._pending = ""
            self._target().flush()
            if self._user is not None:
                self._user.flush()

    def _route(self, text: str) -> None:
        user = self._user is not None and text.startswith(OWN_PREFIX)
        (self._user if user else self._target()).write(text)  # type: ignore[union-attr]


_user_stream: TextIO | None = None  # the user's stderr while a capture runs (inherited by a forked worker)


@contextlib.contextmanager
def to_user() -> Iterator[None]:
    """Inside ``framework_output_to_log``: what the block prints on stdout reaches the user's stderr (edgekit's
    own progress lines drawn while frameworks work, e.g. ``train``'s epochs). Outside one: stdout to stderr."""
    target = _user_stream if _user_stream is not None else sys.stderr
    with contextlib.redirect_stdout(target):
        yield
    target.flush()


def log_directory() -> Path:
    """Where per-run logs go: ``$EDGEKIT_LOG_DIR``, else ``$XDG_STATE_HOME/edgekit/logs`` (default
    ``~/.local/state/edgekit/logs``)."""
    explicit = os.environ.get(LOG_DIR_ENV)
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "edgekit" / "logs"


def _private_temp_directory() -> Path:
    """A per-user directory in the temp dir, refused when someone else planted it (or a symlink) there."""
    import tempfile

    path = Path(tempfile.gettempdir()) / f"edgekit-logs-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not path.is_dir() or path.is_symlink() or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory of this user's")
    return path


def _open_run_log(command: str) -> tuple[int, Path] | None:
    """A new log file for this run (``<command>-<time>-<pid>.log``), created ``O_EXCL | O_NOFOLLOW`` so it never
    clobbers or writes through a symlink; the state directory, else a private temp directory, else None."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for directory in (log_directory, _private_temp_directory):
        try:
            folder = directory()
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            _prune(folder)
            for attempt in range(100):
                suffix = f"-{attempt}" if attempt else ""
                path = folder / f"{command}-{stamp}-{os.getpid()}{suffix}.log"
                with contextlib.suppress(FileExistsError):
                    return _create(path, 0o600), path
        except OSError:
            continue
    return None


def _prune(folder: Path) -> None:
    """Keep the newest ``KEEP_LOGS - 1`` logs (the one about to be made is the last): the directory never grows
    without bound."""
    logs = []
    for entry in os.scandir(folder):
        with contextlib.suppress(OSError):
            if entry.name.endswith(".log") and entry.is_file(follow_symlinks=False):
                logs.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
    for _, path in sorted(logs, reverse=True)[KEEP_LOGS - 1:]:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _count_lines(path: Path) -> int:
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _user_stderr(saved_err: int) -> TextIO:
    """The stream that reaches the user: the real terminal (the saved fd 2) when ``sys.stderr`` is fd 2,
    else ``sys.stderr`` itself (a test runner's capture, an embedding application's stream)."""
    try:
        real = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    if not real:
        return sys.stderr
    return open(os.dup(saved_err), "w", encoding=sys.stderr.encoding or "utf-8", errors="replace",
                buffering=1, closefd=True)


@contextlib.contextmanager
def framework_output_to_log(command: str, *, verbose: bool = False) -> Iterator[list[LogSummary]]:
    """Run the block with the frameworks' output (fds 1 and 2: Python, C++, forked workers and their
    subprocesses; ``warnings``; ``logging``) in a new per-run log under ``log_directory()``, edgekit's own
    ``edgekit: …`` lines still on stderr. An empty log is removed; one that holds anything is named in one
    line on stderr when the block succeeds, and on an exception that escapes it as ``exc.framework_log``
    instead (the CLI names it in its one error line). ``verbose``: everything stays on stderr instead (stdout
    is kept clean either way). Yields a list that holds the ``LogSummary`` once the block is done."""
    summary: list[LogSummary] = []
    opened = None if verbose else _open_run_log(command)
    if opened is None:  # --verbose, or no writable place for a log: the frameworks talk on stderr
        with framework_output_to_stderr():
            yield summary
        return
    log_fd, path = opened
    try:
        with _captured(log_fd):
            yield summary
    except BaseException as exc:
        summary.append(_summarise(path))
        if summary[0].path is not None:
            exc.framework_log = summary[0].path  # type: ignore[attr-defined]
        raise
    summary.append(_summarise(path))
    if summary[0].path is not None:
        print(f"{OWN_PREFIX} framework output ({_lines(summary[0].lines)}) → {path}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _captured(log_fd: int) -> Iterator[None]:
    """fds 1 and 2 to the log (C++ and child processes); Python's stdout to the log and stderr to a router
    that lets edgekit's own lines through to the user."""
    global _user_stream
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    user = _user_stderr(saved_err)
    log = open(os.dup(log_fd), "w", encoding="utf-8", errors="replace", buffering=1, closefd=True)
    out, err = _Router(log, None, "stdout"), _Router(log, user, "stderr")
    previous = sys.stdout, sys.stderr, _user_stream
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        sys.stdout, sys.stderr, _user_stream = out, err, user
        yield
    finally:
        out.flush()
        err.flush()
        sys.stdout, sys.stderr, _user_stream = previous
        out.release()
        err.release()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, log_fd):
            os.close(fd)
        log.close()
        if user is not previous[1]:
            user.close()


def _lines(count: int) -> str:
    return f"{count} line{'s' if count != 1 else ''}"


def _summarise(path: Path) -> LogSummary:
    """How much the log holds; an empty one is removed."""
    try:
        lines = _count_lines(path) if path.stat().st_size else 0
    except OSError:
        return LogSummary(None, 0)
    if not lines:
        with contextlib.suppress(OSError):
            path.unlink()
        return LogSummary(None, 0)
    return LogSummary(path, lines)
