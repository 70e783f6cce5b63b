"""Persistent crash-isolated workers: many tasks, each framework imported once per worker, one crash one task.

``isolation.run_isolated`` forks one worker per command. A matrix of rows (``pipeline``, ``check``) needs
more: rows that run one after another in a process that keeps torch, TensorFlow and ExecuTorch imported
(re-importing them per row would cost seconds each), yet a segfault or an ``abort()`` in one converter must
end only its own row. ``WorkerPool`` forks up to ``jobs`` workers from the (framework-free) parent; each
serves tasks until it dies or the pool closes. A task goes to an idle worker that last ran a task of the
same ``family`` (its imports are warm), else to any idle one, else to a new worker.

A worker that dies (signal, exit) or passes the task's limits (``timeout`` seconds, ``memory_mb`` of its
process group's resident memory) is killed with its process group, its announced temp files are removed,
the task's outcome is a ``Crashed`` naming the signal (or limit) and the phase the work last reported, and
the next task gets a fresh worker. ``close()`` (also on Ctrl-C and on leaving the ``with`` block) ends every
worker and waits for it: no orphan, no zombie.

Replies are data, read as for a single isolated command (``replies``: no pickle). Tasks are sent to the
worker with plain pickle: the parent is the trusted side, and ``call`` is a module-level function pickled by
reference (the worker is a fork of the parent, so it has the same code and registries). Each worker guards
itself as a one-shot worker does (``isolation.Guard``), so none outlives a parent killed outright.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import select
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edgekit.toolkit.contract.errors import EdgekitError, option
from edgekit.toolkit.safety import isolation
from edgekit.toolkit.safety.isolation import (
    _HEADER,
    MEMORY_POLL_SECONDS,
    POLL_SECONDS,
    Guard,
    Limits,
    WorkerInternalError,
    adopt_orphans,
    death_message,
    group_rss,
    has_exited,
    kill_group,
    next_frame,
    read_message,
    reap,
    rebuild_error,
    release_orphans,
    remove_temp,
    reply,
    send_task,
    settle_group,
    task_finished,
    task_started,
    worker_process,
)


@dataclass(frozen=True)
class Task:
    """One unit of work: ``call(*args)`` in a worker."""

    key: Hashable  # the caller's name for it
    call: Callable[..., Any]  # a module-level function
    args: tuple[Any, ...] = ()
    family: str = ""  # tasks of one family prefer the worker that ran that family last
    phase: str = "working"  # named in a crash message until the work reports its own phase


@dataclass(frozen=True)
class Crashed:
    """How a worker ended while it ran a task."""

    message: str  # one line: "the worker crashed with SIGABRT while converting …"
    kind: str  # signal | exit | timeout | memory
    phase: str
    signal: str | None = None


@dataclass(frozen=True)
class Outcome:
    """A task's end: exactly one of ``value`` (returned), ``error`` (an edgekit error it raised), ``internal``
    (any other exception) or ``crash`` (the worker died or was killed)."""

    task: Task
    value: Any = None
    error: EdgekitError | None = None
    internal: WorkerInternalError | None = None
    crash: Crashed | None = None
    worker: int | None = None  # the worker's pid


@dataclass
class _Worker:
    pid: int
    tasks_fd: int  # parent → worker
    results_fd: int  # worker → parent
    keep_alive: int  # the parent's end of the worker's lifeline (isolation.Guard), closed when it is reaped
    family: str = ""
    task: Task | None = None
    phase: str = ""
    started: float = 0.0
    next_memory_check: float = 0.0
    buffer: bytes = b""
    temps: list[str] = field(default_factory=list)


class WorkerPool:
    """Up to ``jobs`` persistent workers (see the module doc). Use as a context manager."""

    def __init__(self, jobs: int = 1, limits: Limits | None = None) -> None:
        if jobs < 1:
            raise ValueError("jobs must be ≥ 1")
        self.jobs = jobs
        self.limits = limits or Limits.defaults()
        self.on_start: Callable[[Task], None] | None = None  # called as each task goes to a worker
        self._workers: list[_Worker] = []
        self.started = 0  # workers forked so far (a crash costs one more)
        self._adopted = False  # holds isolation.adopt_orphans from its first worker until close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the parent's loop -------------------------------------------------------------------------------

    def run(self, tasks: Iterable[Task]) -> Iterator[Outcome]:
        """Each task's outcome, as tasks finish (not in order)."""
        pending = list(tasks)
        try:
            while pending or any(w.task is not None for w in self._workers):
                self._assign(pending)
                yield from self._wait()
        except BaseException:  # Ctrl-C or the consumer stopped: no worker outlives the run
            self.close()
            raise

    def _assign(self, pending: list[Task]) -> None:
        while pending:
            idle = [w for w in self._workers if w.task is None]
            warm = next(((w, t) for w in idle for t in pending if w.family and t.family == w.family), None)
            if warm is not None:  # its imports are loaded already
                worker, task = warm
            elif len(self._workers) < self.jobs:  # a family no idle worker knows: a worker of its own
                worker, task = self._fork(), pending[0]
            elif idle:
                worker, task = idle[0], pending[0]
            else:
                return
            pending.remove(task)
            self._start(worker, task)

    def _start(self, worker: _Worker, task: Task) -> None:
        worker.task, worker.family, worker.phase = task, task.family, task.phase
        worker.started = worker.next_memory_check = time.monotonic()
        worker.temps = []
        if self.on_start is not None:
            self.on_start(task)
        try:
            send_task(worker.tasks_fd, (task.call, task.args))
        except OSError:  # it died while idle; the read side reports it as this task's crash
            pass

    def _wait(self) -> Iterator[Outcome]:
        busy = [w for w in self._workers if w.task is not None]
        if not busy:
            return
        ready, _, _ = select.select([w.results_fd for w in busy], [], [], POLL_SECONDS)
        for worker in busy:
            if worker.results_fd in ready:
                outcome = self._read(worker)
                if outcome is not None:
                    yield outcome
                    continue
            if worker.task is not None:
                outcome = self._check_limits(worker)
                if outcome is not None:
                    yield outcome

    def _read(self, worker: _Worker) -> Outcome | None:
        chunk = os.read(worker.results_fd, 1 << 20)
        if not chunk:
            return self._lost(worker, None)
        worker.buffer += chunk
        while True:
            body, worker.buffer = next_frame(worker.buffer)
            if body is None:
                break
            try:
                kind, value = read_message(body)
            except EdgekitError as exc:  # a reply the allow-list refuses: the worker is not to be trusted
                return self._lost(worker, Crashed(exc.message, "exit", worker.phase))
            outcome = self._message(worker, kind, value)
            if outcome is not None:
                return outcome
        return None

    def _message(self, worker: _Worker, kind: str, value: Any) -> Outcome | None:
        task = worker.task
        assert task is not None
        if kind == "phase":
            worker.phase = str(value)
            return None
        if kind == "temp":
            worker.temps.append(str(value))
            return None
        if kind == "progress":
            return None
        worker.task = None
        if kind == "ok":
            return Outcome(task, value=value, worker=worker.pid)
        if kind == "error":
            name, code, text, hint = value
            return Outcome(task, error=rebuild_error(name, int(code), str(text), hint), worker=worker.pid)
        if kind == "internal":
            name, line, trace = value
            return Outcome(task, internal=WorkerInternalError(name, line, trace), worker=worker.pid)
        return self._lost(worker, Crashed(f"the worker sent an unknown message {kind!r}", "exit", worker.phase),
                          task=task)

    def _check_limits(self, worker: _Worker) -> Outcome | None:
        now = time.monotonic()
        limits = self.limits
        if limits.timeout and now - worker.started > limits.timeout:
            return self._lost(worker, Crashed(f"timed out after {limits.timeout:g} s while {worker.phase}",
                                              "timeout", worker.phase))
        if limits.memory_mb is not None and now >= worker.next_memory_check:
            worker.next_memory_check = now + MEMORY_POLL_SECONDS
            rss = group_rss(worker.pid)
            if rss > limits.memory_mb << 20:
                return self._lost(worker, Crashed(
                    f"the worker used {rss >> 20} MiB, over the {option('memory_limit_mb')} of "
                    f"{limits.memory_mb} MiB, while {worker.phase}", "memory", worker.phase))
        return None

    def _lost(self, worker: _Worker, crash: Crashed | None, task: Task | None = None) -> Outcome:
        """The worker is gone (or is killed now): its task's outcome is a crash; clean up after it."""
        task = task or worker.task
        kill_group(worker.pid)
        status = reap(worker.pid)
        settle_group(worker.pid)
        if crash is None:
            message, signalled = death_message(status, worker.phase)
            number = os.WTERMSIG(status) if signalled and status is not None else None
            crash = Crashed(message, "signal" if signalled else "exit", worker.phase,
                            isolation.signal_name(number) if number is not None else None)
        self._discard(worker)
        assert task is not None
        return Outcome(task, crash=crash, worker=worker.pid)

    def _discard(self, worker: _Worker) -> None:
        for fd in (worker.tasks_fd, worker.results_fd, worker.keep_alive):
            with contextlib.suppress(OSError):
                os.close(fd)
        for temp in worker.temps:
            remove_temp(temp)
        worker.temps = []
        with contextlib.suppress(ValueError):
            self._workers.remove(worker)

    def close(self) -> None:
        """End every worker: EOF on its task pipe, a short grace to exit, then its group is killed and reaped."""
        workers, self._workers = list(self._workers), []
        for worker in workers:
            with contextlib.suppress(OSError):
                os.close(worker.tasks_fd)
        deadline = time.monotonic() + 2.0
        for worker in workers:
            while worker.task is None and time.monotonic() < deadline and not has_exited(worker.pid):
                time.sleep(0.01)
            kill_group(worker.pid)
            reap(worker.pid)
            settle_group(worker.pid)
            for fd in (worker.results_fd, worker.keep_alive):
                with contextlib.suppress(OSError):
                    os.close(fd)
            for temp in worker.temps:
                remove_temp(temp)
        if self._adopted:
            self._adopted = False
            release_orphans()

    # -- a worker ----------------------------------------------------------------------------------------

    def _fork(self) -> _Worker:
        tasks_read, tasks_write = os.pipe()
        results_read, results_write = os.pipe()
        lifeline, keep_alive = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        if not self._adopted:
            self._adopted = adopt_orphans()
        pid = os.fork()
        if pid == 0:
            for fd in (tasks_write, results_read, keep_alive):
                os.close(fd)
            for other in self._workers:  # a sibling's pipe held open here would hide its death from the parent
                for fd in (other.tasks_fd, other.results_fd, other.keep_alive):
                    with contextlib.suppress(OSError):
                        os.close(fd)
            _serve(tasks_read, results_write, Guard(parent, lifeline, self.limits))  # never returns
        for fd in (tasks_read, results_write, lifeline):
            os.close(fd)
        worker = _Worker(pid, tasks_write, results_read, keep_alive)
        self._workers.append(worker)
        self.started += 1
        return worker


def _serve(tasks_fd: int, results_fd: int, guard: Guard) -> None:
    def loop() -> None:
        while True:
            message = _read_message(tasks_fd)
            if message is None:  # the pool closed our task pipe
                return
            call, args = message
            task_started()
            reply(results_fd, functools.partial(call, *args))
            task_finished()

    worker_process(results_fd, loop, guard=guard)


def _read_message(fd: int) -> Any:
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _read_exactly(fd, size)
    return None if body is None else pickle.loads(body)


def _read_exactly(fd: int, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
