"""pytest plugin behind ``suite_profile.py``: where each test's time goes, written as it goes.

Each test's setup, call and teardown are timed, and inside them the time spent in a few known-expensive things
is attributed to a cost class (innermost wins, so a conversion inside an in-process CLI call counts as a
conversion, not as CLI):

- ``import``: the first import of a framework in the test process (torch, TensorFlow, ONNX Runtime, …), and
  the warm CLI server's start (``tests/warm_cli.py``), which imports them all once;
- ``cli-cold``: a ``python -m edgekit`` child process (its imports and its work: another process);
- ``cli-warm``: a command forked from the warm CLI server (its work only);
- ``browser``: headless Chromium;
- ``subprocess``: any other child process started with ``subprocess.run``;
- ``training``, ``conversion``, ``parity``, ``localize``, ``bench``: edgekit's own entry points, in process;
- ``other``: the rest (building test models, in-process framework work, assertions).

One JSON line per test phase goes to ``$EDGEKIT_SUITE_PROFILE_DIR/<worker>.jsonl`` (one file per xdist worker).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

DIR_ENV = "EDGEKIT_SUITE_PROFILE_DIR"
FRAMEWORKS = ("torch", "tensorflow", "keras", "onnxruntime", "onnx", "executorch", "ai_edge_litert", "litert_torch",
              "tf2onnx", "jax", "transformers", "ray", "ai_edge_quantizer", "onnxscript")
# (module, attribute, class): edgekit's entry points, wrapped where callers look them up at call time
ENTRY_POINTS = (
    ("edgekit.training", "train", "training"),
    ("edgekit.conversion", "convert", "conversion"),
    ("edgekit.validators.parity", "validate", "parity"),
    ("edgekit.localization", "localize", "localize"),
    ("edgekit.targets.bench", "bench", "bench"),
    ("warm_cli", "WarmCli.run", "cli-warm"),
    ("warm_cli", "WarmCli._start", "import"),
)


class _Clock:
    """Exclusive time per class: a stack of open intervals, time goes to the innermost."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.since = time.perf_counter()
        self.totals: dict[str, float] = {}

    def _switch(self) -> None:
        now = time.perf_counter()
        top = self.stack[-1] if self.stack else "other"
        self.totals[top] = self.totals.get(top, 0.0) + now - self.since
        self.since = now

    def enter(self, kind: str) -> None:
        self._switch()
        self.stack.append(kind)

    def leave(self) -> None:
        self._switch()
        self.stack.pop()

    def reset(self) -> dict[str, float]:
        self._switch()
        totals, self.totals = self.totals, {}
        return totals


CLOCK = _Clock()


def timed(kind: str, function: Any) -> Any:
    if getattr(function, "_suite_timed", False):
        return function

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        CLOCK.enter(kind)
        try:
            return function(*args, **kwargs)
        finally:
            CLOCK.leave()

    wrapper._suite_timed = True  # type: ignore[attr-defined]
    return wrapper


def _subprocess_kind(argv: Any) -> str:
    words = [str(word) for word in (argv if isinstance(argv, (list, tuple)) else [argv])]
    text = " ".join(words)
    if "-m edgekit" in text or (words and os.path.basename(words[0]) == "edgekit"):
        return "cli-cold"
    if "chrom" in text:
        return "browser"
    return "subprocess"


_run = subprocess.run


def _timed_run(*args: Any, **kwargs: Any) -> Any:
    argv = args[0] if args else kwargs.get("args")
    CLOCK.enter(_subprocess_kind(argv))
    try:
        return _run(*args, **kwargs)
    finally:
        CLOCK.leave()


class _ImportTimer(importlib.abc.MetaPathFinder):
    """Times the first import of each framework (its exec_module, nested imports included)."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in FRAMEWORKS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader.exec_module = timed("import", spec.loader.exec_module)  # type: ignore[union-attr]
        return spec


def _wrap_entry_points() -> None:
    import importlib

    for module_name, attribute, kind in ENTRY_POINTS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        owner: Any = module
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, timed(kind, getattr(owner, name)))


def pytest_configure(config: pytest.Config) -> None:
    sys.meta_path.insert(0, _ImportTimer())
    subprocess.run = _timed_run
    _wrap_entry_points()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any):
    CLOCK.reset()
    yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    directory = os.environ.get(DIR_ENV)
    if not directory or getattr(report, "node", None) is not None:  # an xdist worker's report, seen by the controller
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    record = {"test": report.nodeid, "when": report.when, "seconds": round(report.duration, 4),
              "outcome": report.outcome, "classes": {k: round(v, 4) for k, v in CLOCK.reset().items() if v > 0},
              "worker": worker}
    with open(os.path.join(directory, f"{worker}.jsonl"), "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Which environment variables sent commands cold (``warm_cli``), per worker."""
    directory = os.environ.get(DIR_ENV)
    warm = sys.modules.get("warm_cli")
    if directory and warm is not None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        summary = {"warm_commands": warm.WARM.commands, "cold_because": dict(warm.WARM.cold_because),
                   "seconds_by_command": {k: round(v, 2) for k, v in warm.WARM.seconds.items()}}
        with open(os.path.join(directory, f"{worker}.warm.json"), "w", encoding="utf-8") as out:
            json.dump(summary, out)
