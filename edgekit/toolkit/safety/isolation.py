"""Crash isolation: native loading and conversion of untrusted files run in a child process.

The parent forks a worker, which becomes the leader of its own process group (so converters' own
subprocesses are killed with it), runs the work and sends back one message: its result, or its
error. Meanwhile the parent watches it:

- a crash (SIGSEGV, SIGABRT, …) → ``WorkerCrashedError`` (exit 5) naming the signal and the phase
  the worker last reported (``phase("converting …")``);
- ``--timeout`` seconds passed or the worker group's resident memory crossed ``--memory-limit`` →
  ``ResourceLimitError`` (exit 6);
- Ctrl-C in the parent → the worker group is killed and KeyboardInterrupt re-raised.

In every case the worker group is killed and waited for (no orphan, no zombie), and every temp file
the worker announced (``fsutil.atomic_path`` does) and left behind is removed, so a killed worker
never leaves a partial file: the output path keeps its previous content or does not exist.

Why fork: the CLI parent imports no framework (``edgekit --help`` is tested for it), so a fork is
cheap (milliseconds; the worker imports what it needs, as the command would have in-process) and
safe (no framework threads to inherit). When frameworks are already loaded in the caller (library
use, in-process tests), forking would inherit their thread pools, so the work runs in-process
instead; ``EDGEKIT_ISOLATION=off`` forces that, ``=on`` forces the fork.

No orphan, whatever ends the parent: the CLI turns SIGTERM and SIGHUP into the Ctrl-C path (``cli.main``),
and the worker watches for itself (``Guard``: the kernel's parent-death signal, a watchdog thread on a
lifeline pipe and on its limits, a kernel CPU-time limit).

The worker's reply is data, not objects (``replies``: JSON and raw array bytes, no pickle): a compromised
worker can send wrong values, never code the parent runs.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import shutil
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edgekit.toolkit.contract.errors import (
    BackendError,
    EdgekitError,
    ExitCode,
    ResourceLimitError,
    UsageError,
    first_line,
    option,
)

T = TypeVar("T")
ISOLATION_ENV = "EDGEKIT_ISOLATION"
DEFAULT_TIMEOUT = 3600.0
DEFAULT_MEMORY_SHARE = 0.8  # of physical memory: a runaway worker gets exit 6, not the kernel's OOM killer
POLL_SECONDS = 0.05
MEMORY_POLL_SECONDS = 0.5  # a /proc scan costs a few ms: often enough to stop a runaway, rare enough to be free
# Heavy modules whose thread pools a fork would inherit half-initialised.
FRAMEWORKS = ("torch", "tensorflow", "onnxruntime", "executorch", "ai_edge_litert", "jax")
_HEADER = struct.Struct("!I")


class WorkerCrashedError(BackendError):
    """The worker died from a signal (segfault, abort) or exited without replying."""

    exit_code = ExitCode.BACKEND_FAILURE


@dataclass
class Limits:
    """What the worker may spend: ``timeout`` seconds, ``memory_mb`` MiB of resident memory (its process group)."""

    timeout: float | None = DEFAULT_TIMEOUT  # seconds; None: none
    memory_mb: int | None = None  # None: none

    @classmethod
    def defaults(cls, *, timeout: float | None = None, memory_mb: int | None = None) -> Limits:
        """The limits a command runs under: the given ones, else 3600 s and 80% of RAM."""
        if timeout is not None and not timeout > 0:
            raise UsageError(f"{option('timeout')} must be > 0 seconds, got {timeout}")
        if memory_mb is not None and memory_mb < 1:
            raise UsageError(f"{option('memory_limit_mb')} must be ≥ 1 MiB, got {memory_mb}")
        return cls(timeout if timeout is not None else DEFAULT_TIMEOUT,
                   memory_mb if memory_mb is not None else default_memory_mb())


def default_memory_mb() -> int | None:
    """80% of physical memory (None where it cannot be read)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return int(total * DEFAULT_MEMORY_SHARE) >> 20 if total > 0 else None


@dataclass
class _Watch:
    phase: str
    temps: list[str] = field(default_factory=list)
    on_progress: Callable[[Any], None] | None = None


# -- inside the worker ------------------------------------------------------------------------------------

_channel: int | None = None  # the worker's write end of the pipe; None in the parent or in-process
_progress: Callable[[Any], None] | None = None  # where report_progress delivers: see run_isolated's on_progress


def phase(name: str) -> None:
    """Tell the parent what the worker is doing now (named in crash and timeout messages)."""
    if _channel is not None:
        send_message(_channel, ("phase", name))


def report_progress(value: Any) -> None:
    """Hand ``value`` (e.g. one epoch's stats) to the ``on_progress`` of the ``run_isolated`` this work runs
    under: sent to the parent from a worker, called directly in-process; dropped when there is none."""
    if _progress is not None:
        _progress(value)


def announce_temp(path: str | os.PathLike[str]) -> None:
    """A temp file or directory the parent removes if the worker dies before it is renamed into place
    (or removed)."""
    if _channel is not None:
        send_message(_channel, ("temp", os.fspath(path)))


def send_message(fd: int, message: Any) -> None:
    """Worker → parent: ``message`` encoded as data (``replies.encode``), framed by its length."""
    from edgekit.toolkit.safety.replies import encode

    write_frame(fd, encode(message))


def send_task(fd: int, message: Any) -> None:
    """Parent → worker (the trusted direction): pickled, framed by its length."""
    write_frame(fd, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def write_frame(fd: int, data: bytes) -> None:
    if len(data) >= 1 << 32:
        raise ValueError(f"a message of {len(data)} bytes is over the 4 GiB frame limit")
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# -- the parent ------------------------------------------------------------------------------------------


def should_fork() -> bool:
    setting = os.environ.get(ISOLATION_ENV, "auto").strip().lower()
    if setting in ("off", "0", "no"):
        return False
    if setting in ("on", "1", "yes"):
        return True
    return _channel is None and not any(name in sys.modules for name in FRAMEWORKS)


def run_isolated(work: Callable[[], T], *, phase_name: str, limits: Limits | None = None,
                 on_progress: Callable[[Any], None] | None = None) -> T:
    """``work()`` in a forked worker (see the module doc), or in-process when forking is unsafe.
    ``on_progress`` receives, in the caller's process, each value the work passes to ``report_progress``."""
    global _progress
    if not should_fork():
        saved, _progress = _progress, on_progress
        try:
            return work()
        finally:
            _progress = saved
    limits = limits or Limits.defaults()
    read_fd, write_fd = os.pipe()
    lifeline, keep_alive = os.pipe()  # the parent holds keep_alive open until the worker is reaped
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    adopted = adopt_orphans()
    try:
        pid = os.fork()
    except BaseException:
        if adopted:
            release_orphans()
        raise
    if pid == 0:  # the worker
        os.close(read_fd)
        os.close(keep_alive)
        _progress = (lambda value: send_message(write_fd, ("progress", value))) if on_progress else None
        worker_process(write_fd, lambda: reply(write_fd, work),
                       guard=Guard(parent, lifeline, limits, cpu_seconds=cpu_budget(limits)))  # never returns
    os.close(write_fd)
    os.close(lifeline)
    watch = _Watch(phase_name, on_progress=on_progress)
    try:
        return _supervise(pid, read_fd, watch, limits)
    finally:
        os.close(read_fd)
        kill_group(pid)
        reap(pid)
        os.close(keep_alive)
        settle_group(pid)
        if adopted:
            release_orphans()
        for temp in watch.temps:  # what a killed worker could not clean up itself
            remove_temp(temp)


# -- the worker's own guard -------------------------------------------------------------------------------
# The parent enforces the limits and kills the worker's group on every exit path it lives to see (Ctrl-C,
# SIGTERM, SIGHUP: see cli.main). When the parent itself dies at once (SIGKILL, a crash) or stops (SIGSTOP),
# the worker ends itself:
# - a sentinel, a tiny shell in the worker's process group blocked on the lifeline pipe (only the parent holds
#   it open for writing), kills the whole group — converters' subprocesses too, and whatever native code holds
#   Python's lock — as soon as the parent is gone;
# - the kernel sends the worker SIGKILL when the parent dies (PR_SET_PDEATHSIG), where no shell runs;
# - a watchdog thread does the same as the sentinel, and kills the group once a limit has been passed for longer
#   than the parent takes to act on it (the parent, when it can, acts first and reports it: exit 6);
# - a one-shot worker has a kernel CPU-time limit (RLIMIT_CPU), which holds even when the watchdog never runs.

WATCHDOG_SECONDS = 1.0
GRACE_SECONDS = 10.0  # the parent enforces the limits itself; the worker's own checks are a backstop after it
_PR_SET_PDEATHSIG = 1
SENTINEL = ("/bin/sh", "-c", "read -r _; kill -KILL 0")  # EOF on stdin (the lifeline): kill the process group
ORPHANED_EXIT = 137  # a worker that ended itself (its parent is gone, or it passed its limits)
_busy_since: float | None = None  # when the task in hand started (None: idle between a pool's tasks)


@dataclass(frozen=True)
class Guard:
    parent: int  # the pid that forked this worker
    lifeline: int  # read end of a pipe only the parent holds open for writing: EOF means the parent is gone
    limits: Limits
    cpu_seconds: int | None = None  # RLIMIT_CPU for a one-shot worker (a pool's workers outlive many tasks)


def cpu_budget(limits: Limits) -> int | None:
    """The kernel CPU-time limit of a one-shot worker: every usable core busy for the whole --timeout, plus
    a margin, so it only ends a worker whose watchdog and parent both failed to."""
    if not limits.timeout:
        return None
    from edgekit.toolkit.sysinfo import usable_cpu_count

    return int(limits.timeout * max(1, usable_cpu_count()) + 30)


def _guard_worker(guard: Guard) -> None:
    global _busy_since
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != guard.parent:  # the parent died before the death signal was set
        os._exit(ORPHANED_EXIT)
    _start_sentinel(guard.lifeline)
    if guard.cpu_seconds is not None:
        import resource

        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CPU, (guard.cpu_seconds, guard.cpu_seconds + 5))
    _busy_since = time.monotonic()

    threading.Thread(target=_watchdog, args=(guard,), name="edgekit-watchdog", daemon=True).start()


def _start_sentinel(lifeline: int) -> None:
    import subprocess

    with contextlib.suppress(OSError, ValueError):
        subprocess.Popen(SENTINEL, stdin=lifeline, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         close_fds=True)


def _watchdog(guard: Guard) -> None:
    """The worker's own watch: its parent gone → end the group at once; a limit passed for longer than the
    parent takes to act on it (``GRACE_SECONDS``; it polls twice a second, then kills and reports exit 6) → the
    parent is not watching (stopped, starved), so end the group."""
    limits = guard.limits
    over_since: float | None = None  # since when the group's memory has been over the limit
    while True:
        ready, _, _ = select.select([guard.lifeline], [], [], WATCHDOG_SECONDS)
        if ready or os.getppid() != guard.parent:  # EOF (the parent never writes) or re-parented: it is gone
            _end_group()
        now, busy = time.monotonic(), _busy_since
        if limits.timeout and busy is not None and now - busy > limits.timeout + GRACE_SECONDS:
            _end_group()
        if limits.memory_mb is not None and group_rss(os.getpgrp()) > limits.memory_mb << 20:
            over_since = now if over_since is None else over_since
            if now - over_since > GRACE_SECONDS:
                _end_group()
        else:
            over_since = None


def _end_group() -> None:
    with contextlib.suppress(OSError):
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(ORPHANED_EXIT)


def task_started() -> None:
    """A pool worker took a task: the watchdog's --timeout backstop counts from now."""
    global _busy_since
    _busy_since = time.monotonic()


def task_finished() -> None:
    global _busy_since
    _busy_since = None



def worker_process(fd: int, body: Callable[[], None], *, guard: Guard | None = None) -> None:
    """Be a forked worker, then exit (never returns): its own process group (the parent kills converters'
    subprocesses with it), Ctrl-C left to the parent, ``phase``/``announce_temp`` reporting on ``fd``, and
    with ``guard`` the worker's own watch on its parent and limits (see above)."""
    global _channel
    code = 0
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for number in (signal.SIGTERM, signal.SIGHUP):  # the parent's handlers, inherited: back to dying
            signal.signal(number, signal.SIG_DFL)
        if guard is not None:
            _guard_worker(guard)
        _channel = fd
        body()
    except BaseException:
        code = 70
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def reply(fd: int, work: Callable[[], Any]) -> None:
    """Run ``work`` and send its outcome: ("ok", result), ("error", an edgekit error's parts) or ("internal",
    name, first line and traceback of anything else)."""
    try:
        result = work()
    except EdgekitError as exc:
        send_message(fd, ("error", (type(exc).__name__, int(exc.exit_code), exc.message, exc.hint)))
    except MemoryError:
        send_message(fd, ("error", ("ResourceLimitError", int(ExitCode.RESOURCE_LIMIT), "out of memory",
                                    f"use a smaller model or input, or raise {option('memory_limit_mb')}")))
    except BaseException as exc:
        send_internal(fd, exc)
    else:
        try:
            send_message(fd, ("ok", result))
        except (TypeError, ValueError) as exc:  # a result that is not data: a bug, reported as one
            send_internal(fd, exc)


def send_internal(fd: int, exc: BaseException) -> None:
    import traceback

    send_message(fd, ("internal", (type(exc).__name__, first_line(exc), traceback.format_exc())))


def remove_temp(temp: str) -> None:
    """Remove a temp file or directory a dead worker announced (never following a link)."""
    with contextlib.suppress(OSError):
        path = Path(temp)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _supervise(pid: int, fd: int, watch: _Watch, limits: Limits) -> Any:
    deadline = time.monotonic() + limits.timeout if limits.timeout else None
    next_memory_check = time.monotonic()
    buffer = b""
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:  # EOF: the worker exited (or crashed)
                    return _no_reply(pid, watch)
                buffer += chunk
                while True:
                    body, buffer = next_frame(buffer)
                    if body is None:
                        break
                    done, value = _handle(read_message(body), watch)
                    if done:
                        return value
            if deadline is not None and time.monotonic() > deadline:
                kill_group(pid)
                raise ResourceLimitError(f"timed out after {limits.timeout:g} s while {watch.phase}",
                                         hint=f"raise {option('timeout')}, or use a smaller model")
            if limits.memory_mb is not None and time.monotonic() >= next_memory_check:
                next_memory_check = time.monotonic() + MEMORY_POLL_SECONDS
                rss = group_rss(pid)
                if rss > limits.memory_mb << 20:
                    kill_group(pid)
                    raise ResourceLimitError(f"the worker used {rss >> 20} MiB, over the {option('memory_limit_mb')} "
                                             f"of {limits.memory_mb} MiB, while {watch.phase}",
                                             hint=f"raise {option('memory_limit_mb')}, or use a smaller model")
    except KeyboardInterrupt:
        kill_group(pid)
        raise


def _handle(message: Any, watch: _Watch) -> tuple[bool, Any]:
    kind, value = message
    if kind == "phase":
        watch.phase = str(value)
        return False, None
    if kind == "temp":
        watch.temps.append(str(value))
        return False, None
    if kind == "progress":
        if watch.on_progress is not None:
            watch.on_progress(value)
        return False, None
    if kind == "ok":
        return True, value
    if kind == "error":
        name, code, message_text, hint = value
        raise rebuild_error(name, int(code), str(message_text), hint)
    if kind == "internal":
        name, line, trace = value
        raise WorkerInternalError(name, line, trace)
    raise WorkerCrashedError(f"the worker sent an unknown message {kind!r} while {watch.phase}")


class WorkerInternalError(Exception):
    """An unexpected exception in the worker (a bug or an unmapped framework error): the CLI reports it
    as an internal error, with the worker's traceback under --debug."""

    def __init__(self, name: str, line: str, trace: str) -> None:
        super().__init__(f"{name}: {line}")
        self.name, self.line, self.trace = name, line, trace


def rebuild_error(name: str, code: int, message: str, hint: str | None) -> EdgekitError:
    from edgekit.toolkit.contract import errors

    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, EdgekitError)):
        cls = WorkerCrashedError if name == "WorkerCrashedError" else None
    if cls is None:  # a subclass defined elsewhere: keep its exit code
        error = EdgekitError(message, hint=hint)
        error.exit_code = ExitCode(code)
        return error
    return cls(message, hint=hint)


def _no_reply(pid: int, watch: _Watch) -> Any:
    status = reap(pid)
    if status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
        raise ResourceLimitError(f"the worker used up its CPU-time limit while {watch.phase}",
                                 hint=f"raise {option('timeout')}, or use a smaller model")
    message, crashed = death_message(status, watch.phase)
    hint = ("the file or the framework's native code is faulty; nothing was written" if crashed
            else "nothing was written; rerun with --debug")
    raise WorkerCrashedError(message, hint=hint)


def signal_name(number: int) -> str:
    return signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)


def death_message(status: int | None, phase: str) -> tuple[str, bool]:
    """What a worker's wait status says of its end, and whether a signal ended it."""
    if status is not None and os.WIFSIGNALED(status):
        return f"the worker crashed with {signal_name(os.WTERMSIG(status))} while {phase}", True
    code = os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None
    return f"the worker exited (status {code}) without a result while {phase}", False


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


_reaped: dict[int, int] = {}
SETTLE_SECONDS = 2.0
_ADOPT_LOCK = threading.Lock()
_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37
_adopters = 0  # run_isolated calls and pools that hold the setting now (0: this process left it as it was)


def adopt_orphans() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux ``PR_SET_CHILD_SUBREAPER``) while it has
    workers: when a worker group is killed, its orphans (the sentinel, a converter's subprocess) become children
    of this process, and ``settle_group`` reaps them at once. Otherwise init reaps them whenever it gets to
    them: in some containers that is every 2 s, which every command paid while it waited for an empty group.
    True when this call holds the setting: give it back with ``release_orphans`` once the workers are settled
    (the last holder restores the process's own setting, so a library caller is left as it was)."""
    global _adopters
    if not sys.platform.startswith("linux"):
        return False
    with _ADOPT_LOCK:
        if _adopters == 0 and not _subreaper(True):
            return False
        _adopters += 1
        return True


def release_orphans() -> None:
    global _adopters
    with _ADOPT_LOCK:
        _adopters -= 1
        if _adopters == 0:
            _subreaper(False)


_subreaper_was_set = False


def _subreaper(on: bool) -> bool:
    """Take (``on``) or give back the subreaper setting; whether this process now holds it as asked."""
    global _subreaper_was_set
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        if on:
            flag = ctypes.c_int(0)
            prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
            _subreaper_was_set = bool(flag.value)  # set by whoever runs us: left alone
            return _subreaper_was_set or prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        if not _subreaper_was_set:
            prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        return True
    except (OSError, AttributeError):
        return False


def settle_group(pgid: int) -> None:
    """Wait (briefly) until no process of the killed group is left: its members adopted here (see
    ``adopt_orphans``) are reaped here, others by init."""
    deadline = time.monotonic() + SETTLE_SECONDS
    me = os.getpid()
    while True:
        members = _group_scan(pgid, with_parent=True)
        for pid, parent in members:
            if parent == me:  # an adopted orphan, dead or about to be: ours to reap
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
        if not members or time.monotonic() >= deadline:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        time.sleep(0.002)




def next_frame(buffer: bytes) -> tuple[bytes | None, bytes]:
    """The first whole message (``send_message``'s framing) in ``buffer`` and what follows it; ``(None,
    buffer)`` while the message is still incomplete."""
    if len(buffer) < _HEADER.size:
        return None, buffer
    (size,) = _HEADER.unpack_from(buffer)
    end = _HEADER.size + size
    return (buffer[_HEADER.size:end], buffer[end:]) if len(buffer) >= end else (None, buffer)


def has_exited(pid: int) -> bool:
    """Whether the worker has exited, reaping it without waiting if so."""
    if pid in _reaped:
        return True
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    if done:
        _reaped[pid] = status
    return bool(done)


def reap(pid: int) -> int | None:
    """Wait for the worker once; later calls return the recorded status."""
    if pid in _reaped:
        return _reaped[pid]
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    _reaped[pid] = status
    return status


def group_rss(pgid: int) -> int:
    """Resident bytes of every process in the worker's group (its converters' subprocesses included)."""
    return sum(pages for _, pages in _group_scan(pgid)) * os.sysconf("SC_PAGE_SIZE")


def group_members(pgid: int) -> list[int]:
    """The pids whose process group is ``pgid`` (zombies included)."""
    return [pid for pid, _ in _group_scan(pgid)]


def _group_scan(pgid: int, *, with_parent: bool = False) -> list[tuple[int, int]]:
    """(pid, resident pages) of each process in group ``pgid``, from /proc; (pid, parent pid) with
    ``with_parent``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) == pgid:  # fields after ')' start at state: state, ppid, pgrp, … rss is the 22nd
                found.append((int(entry.name), int(fields[1] if with_parent else fields[21])))
        except (OSError, IndexError, ValueError):
            continue
    return found


# -- reading the worker's reply ---------------------------------------------------------------------------


def read_reply(data: bytes) -> Any:
    """A worker's message, decoded as data (``replies.decode``: no pickle); a reply that is not one edgekit writes
    means the worker is not to be trusted: ``WorkerCrashedError``."""
    from edgekit.toolkit.safety.replies import ReplyError, decode

    try:
        return decode(data)
    except ReplyError as exc:
        raise _untrusted(str(exc)) from None


_SHAPES: dict[str, tuple[type | tuple[type, ...], ...] | None] = {
    "phase": (str,), "temp": (str,), "progress": None, "ok": None,
    "error": (str, int, str, (str, type(None))), "internal": (str, str, str),
}


def read_message(data: bytes) -> tuple[str, Any]:
    """``(kind, value)`` of one message from a worker, its shape checked (see ``reply``): anything else is a
    ``WorkerCrashedError``, as an undecodable reply is."""
    message = read_reply(data)
    if not (isinstance(message, tuple) and len(message) == 2 and message[0] in _SHAPES):
        raise _untrusted("not a message edgekit sends")
    kind, value = message
    shape = _SHAPES[kind]
    if shape is not None:
        parts = value if len(shape) > 1 else (value,)
        if not (isinstance(parts, tuple) and len(parts) == len(shape)
                and all(isinstance(part, want) for part, want in zip(parts, shape, strict=True))):
            raise _untrusted(f"a malformed {kind!r} message")
    return kind, value


def _untrusted(detail: str) -> WorkerCrashedError:
    return WorkerCrashedError(f"unreadable reply from the worker ({detail})",
                              hint="the worker may be compromised; nothing it wrote was kept")
