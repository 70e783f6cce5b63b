"""Where the pipeline's cells run: ``serial`` (this process), ``process`` (crash-isolated persistent workers,
the default) or ``ray`` (one Ray task per cell, on a local Ray or an existing cluster).

Every executor takes the same ``Task`` list (``toolkit.safety.pool``) and yields one ``Outcome`` per task, so
the pipeline builds the same rows whichever ran them. Framework-free: nothing here imports a framework, and
Ray is imported only by the ``ray`` executor.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgekit.toolkit.contract.errors import EdgekitError, UsageError, first_line, option
from edgekit.toolkit.safety.isolation import FRAMEWORKS, Limits, WorkerInternalError, should_fork
from edgekit.toolkit.safety.pool import Outcome, Task, WorkerPool

OnStart = Callable[[Task], None]


class ExecutorKind(StrEnum):
    SERIAL = "serial"  # in this process, one cell after another (debugging; a native crash ends the run)
    PROCESS = "process"  # persistent forked workers: a crash ends one row, imports stay warm across rows
    RAY = "ray"  # one Ray task per cell (local Ray started for the run, or --ray-address)


@dataclass(frozen=True)
class ExecutorOptions:
    kind: ExecutorKind = ExecutorKind.PROCESS
    jobs: int | None = None  # process: workers (default 1); ray: CPUs of the local Ray (default: all usable)
    ray_address: str | None = None  # ray: an existing cluster; None: a local Ray for this run only
    timeout: float | None = None  # seconds per cell (default 3600)
    memory_mb: int | None = None  # resident MiB per worker (default 80% of RAM)

    def __post_init__(self) -> None:
        if self.jobs is not None and not 1 <= self.jobs <= 1024:
            raise UsageError(f"{option('jobs', self.jobs)} must be from 1 to 1024")
        if self.ray_address is not None and self.kind is not ExecutorKind.RAY:
            raise UsageError(f"{option('ray_address', self.ray_address)} needs {option('executor', 'ray')}",
                             hint=f"add {option('executor', 'ray')}, or drop {option('ray_address')}")
        if self.ray_address is not None and not self.ray_address.strip():
            raise UsageError(f"{option('ray_address')} is empty", hint="e.g. --ray-address ray://head:10001")
        if self.kind is ExecutorKind.RAY:  # before any work: a missing extra is one line naming it
            from edgekit.toolkit.contract.extras import require

            require(["ray"], option("executor", "ray"))

    @classmethod
    def parse(cls, kind: str | ExecutorKind | None, **values: Any) -> ExecutorOptions:
        text = str(kind or ExecutorKind.PROCESS)
        if text not in tuple(ExecutorKind):
            raise UsageError(f"{option('executor', text)}: not one of {', '.join(ExecutorKind)}",
                             hint=f"e.g. {option('executor', 'process')}")
        return cls(ExecutorKind(text), **values)

    def limits(self) -> Limits:
        return Limits.defaults(timeout=self.timeout, memory_mb=self.memory_mb)

    def to_dict(self) -> dict[str, Any]:
        return {"executor": self.kind.value, "jobs": self.jobs, "ray_address": self.ray_address}


class Executor:
    """Runs tasks; ``description`` says what ran them (it goes into the report)."""

    kind: ExecutorKind
    description: str = ""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self, out: Path) -> None:
        """Called once with the run's output directory before any task."""
        return None

    def run(self, tasks: Iterable[Task], on_start: OnStart | None = None) -> Iterator[Outcome]:
        raise NotImplementedError

    def close(self) -> None:
        return None


class SerialExecutor(Executor):
    """Each task in this process, in order: what a debugger wants; a native crash ends the run."""

    kind = ExecutorKind.SERIAL

    def __init__(self, description: str = "serial: in this process") -> None:
        self.description = description

    def run(self, tasks: Iterable[Task], on_start: OnStart | None = None) -> Iterator[Outcome]:
        for task in tasks:
            if on_start is not None:
                on_start(task)
            try:
                value = task.call(*task.args)
            except EdgekitError as exc:
                yield Outcome(task, error=exc, worker=os.getpid())
                continue
            except Exception as exc:
                yield Outcome(task, internal=WorkerInternalError(type(exc).__name__, first_line(exc),
                                                                 traceback.format_exc()), worker=os.getpid())
                continue
            yield Outcome(task, value=value, worker=os.getpid())


class ProcessExecutor(Executor):
    """``WorkerPool`` workers forked from this (framework-free) process; see ``toolkit.safety.pool``."""

    kind = ExecutorKind.PROCESS

    def __init__(self, options: ExecutorOptions) -> None:
        self.jobs = options.jobs or 1
        self.pool = WorkerPool(self.jobs, options.limits())
        self.description = f"process: {self.jobs} crash-isolated worker(s)"

    def run(self, tasks: Iterable[Task], on_start: OnStart | None = None) -> Iterator[Outcome]:
        self.pool.on_start = on_start
        yield from self.pool.run(tasks)

    def close(self) -> None:
        self.pool.close()
        self.description = f"process: {self.jobs} crash-isolated worker(s), {self.pool.started} started"


def open_executor(options: ExecutorOptions) -> Executor:
    """The executor ``options`` ask for. ``process`` falls back to ``serial`` (said in ``description``) when a
    framework is loaded in this process already: a fork would inherit its thread pools half-initialised."""
    if options.kind is ExecutorKind.SERIAL:
        return SerialExecutor()
    if options.kind is ExecutorKind.RAY:
        from edgekit.pipeline.ray_executor import RayExecutor

        return RayExecutor(options)
    if not should_fork():
        loaded = [name for name in FRAMEWORKS if name in sys.modules]
        return SerialExecutor(f"serial: process was asked for, but {', '.join(loaded) or 'isolation is off'} "
                              "is loaded in this process (a fork would inherit its threads)")
    return ProcessExecutor(options)
