"""Timing helpers the benchmark scripts share: edgekit's prepared call for a model, a bare timing loop (the
native tools' way), and alternating blocks, so that what a script compares sees the same host noise."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def prepared(model: Path, threads: int) -> tuple[Any, Callable[[], object], dict[str, np.ndarray]]:
    """edgekit's runtime for ``model`` with ``threads``, loaded; its call prepared on seeded random input
    (outside any timed region, as `edgekit bench` does); and that input. Close the runtime when done."""
    from edgekit.targets import open_runtime
    from edgekit.targets.base import RuntimeOptions
    from edgekit.targets.bench import bench_inputs

    runtime = open_runtime(model, options=RuntimeOptions(threads=threads)).load()
    feeds, _ = bench_inputs(runtime.io_spec, None, "random")
    return runtime, runtime.prepare(feeds), feeds


def bare_block(call: Callable[[], object], runs: int) -> np.ndarray:
    """Seconds of ``runs`` calls, each timed with nothing but `perf_counter_ns` around it."""
    samples = np.empty(runs)
    for index in range(runs):
        start = time.perf_counter_ns()
        call()
        samples[index] = time.perf_counter_ns() - start
    return samples / 1e9


def alternating(timers: Sequence[Callable[[], np.ndarray]], rounds: int,
                pause: float = 0.0) -> list[list[np.ndarray]]:
    """Each timer's blocks, one per round, the timers taking turns for ``rounds`` rounds (a timer times one
    block and returns its seconds). ``pause`` seconds before each block let the previous side's
    thread pool stop spinning (ONNX Runtime's workers spin after a run), so at 2 threads one side's idle
    workers do not steal the other's cores."""
    blocks: list[list[np.ndarray]] = [[] for _ in timers]
    for _ in range(rounds):
        for timer, into in zip(timers, blocks, strict=True):
            if pause:
                time.sleep(pause)
            into.append(timer())
    return blocks


RESULT = "TRIAL "  # the line a benchmark's worker mode prints its measurement on


def fresh_trials(command: list[str], trials: int) -> list[dict]:
    """``trials`` runs of ``command`` (a benchmark script in its worker mode, printing one ``RESULT`` line of
    JSON), each in a fresh process; framework chatter passes to stderr."""
    found = []
    for number in range(1, trials + 1):
        print(f"trial {number}/{trials} …", file=sys.stderr, flush=True)
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        (line,) = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
        found.append(json.loads(line.removeprefix(RESULT)))
    return found
