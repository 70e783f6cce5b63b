"""Module-level tasks for the worker-pool tests (a task's function is pickled by reference)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from edgekit.toolkit.contract.errors import InvalidInputError
from edgekit.toolkit.safety.isolation import announce_temp, phase


def pid(value: object) -> tuple[object, int]:
    return value, os.getpid()


def pid_after(value: object, seconds: float) -> tuple[object, int]:
    time.sleep(seconds)
    return value, os.getpid()


def refuse(name: str) -> None:
    raise InvalidInputError(f"{name}: refused on purpose", hint="it is a test")


def divide(value: int) -> float:
    return 1 / value


def abort_after_temp(directory: str) -> None:
    """Leave a half-written temp file (announced, as edgekit's atomic writes do), then abort."""
    path = Path(directory) / "half-written.tmp"
    announce_temp(path)
    path.write_bytes(b"partial")
    phase("writing half-written.tmp")
    os.abort()


def sleep(seconds: float) -> None:
    phase(f"sleeping {seconds:g} s")
    time.sleep(seconds)


def grow(megabytes: int) -> int:
    block = bytearray(megabytes << 20)
    for index in range(0, len(block), 4096):
        block[index] = 1
    time.sleep(5)
    return len(block)


def spawn_child_then_sleep(seconds: float) -> int:
    """A converter-like subprocess: killed with the worker's process group."""
    import subprocess

    child = subprocess.Popen(["sleep", str(seconds)])
    time.sleep(seconds)
    return child.pid
