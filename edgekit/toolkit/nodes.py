"""Which machine timed a row, and one benchmark at a time on each machine.

Latency measured while another benchmark runs on the same cores is not the model's latency. Cells of a
matrix may run side by side (``--jobs``, Ray), so every benchmark stage takes this node's *bench slot* first:
an exclusive ``flock`` on a per-node lock file (released by the kernel when its holder exits, so a crashed
worker never leaves it taken). A Ray task names its node in ``EDGEKIT_NODE_ID``, so the nodes of a
cluster simulated on one machine keep a slot each; real nodes have their own /tmp anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NODE_ENV = "EDGEKIT_NODE_ID"


@dataclass
class Window:
    """When a benchmark held the slot (``time.time()`` seconds) and on which node."""

    node: str = ""
    started: float = 0.0
    ended: float = 0.0


def node_label() -> str:
    """``hostname · CPU model`` (``· node ID`` inside a Ray task): what the report prints beside a latency."""
    from edgekit.toolkit.sysinfo import cpu_info

    parts = [socket.gethostname(), cpu_info().model]
    node = os.environ.get(NODE_ENV)
    if node:
        parts.append(f"node {node[:12]}")
    return " · ".join(parts)


def _lock_path() -> Path:
    node = re.sub(r"[^A-Za-z0-9_.-]", "_", os.environ.get(NODE_ENV, ""))[:64]
    name = f"edgekit-bench-{os.getuid()}" + (f"-{node}" if node else "") + ".lock"
    return Path(tempfile.gettempdir()) / name


@contextlib.contextmanager
def bench_slot() -> Iterator[Window]:
    """Hold this node's bench slot while the block runs; the window says when and where."""
    path = _lock_path()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        window = Window(node_label(), time.time())
        try:
            yield window
        finally:
            window.ended = time.time()
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
