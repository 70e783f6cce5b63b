"""Shared fixtures: tiny seeded models in every format, built once per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# What the commands tests run see of TensorFlow's C++ log level: the suite's, not a value something changed in the
# test process since (it sent 71 commands a run cold). A test that means another value passes it.
PINNED_ENV = {"TF_CPP_MIN_LOG_LEVEL": os.environ["TF_CPP_MIN_LOG_LEVEL"]}
# pytest-xdist runs N workers side by side: each (with the commands it runs) gets its share of the cores as OpenMP
# threads. With torch's default (every core in every process) two workers training at once oversubscribed the CPU and
# OpenMP's spinning threads made both 3.5× slower (two MobileNetV2 trainings at once on 2 cores: 101 s each, 29 s
# with one thread each). A value the caller set is kept.
_XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _XDIST_WORKERS > 1:
    _CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for _name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):  # TensorFlow's pool too (two Keras trainings: 1.3×)
        os.environ.setdefault(_name, str(max(1, _CORES // _XDIST_WORKERS)))
# Framework-output logs of the commands tests run stay out of the user's ~/.local/state/edgekit/logs.
os.environ.setdefault("EDGEKIT_LOG_DIR", tempfile.mkdtemp(prefix="edgekit-test-logs-"))


# Session fixtures too costly to build on both xdist workers: the tests that use one run on one worker.
SHARED_SESSION_FIXTURES = ("default_pipeline",)


# Each test's last measured seconds (setup + call + teardown), written by `benchmarks/suite_profile.py
# --write-durations`: the order work is handed to xdist workers in (LongestFirst).
DURATIONS_FILE = Path(__file__).with_name("durations.json")
UNMEASURED_SECONDS = 0.3  # a test missing from it (new, or under the file's floor)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("dist", "no") == "loadgroup":  # the controller: it schedules what the workers collected
        config.option.loadscopereorder = False  # the queue keeps LongestFirst's order, not "most tests first"
    if getattr(config.option, "loadgroup", False):  # an xdist worker (its dist is "no"): it collects
        config.pluginmanager.register(LongestFirst(), "edgekit-longest-first")


class LongestFirst:
    """Under ``--dist loadgroup`` xdist hands out work units (a group, or one test) in collection order, a unit to
    whichever worker runs dry. Ordered longest first (the group's summed durations), the last units are the short
    ones, so both workers finish together rather than one running the last long test alone."""

    @pytest.hookimpl(trylast=True)  # after the groups are marked
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        import json

        known = json.loads(DURATIONS_FILE.read_text()) if DURATIONS_FILE.exists() else {}

        def unit(item: pytest.Item) -> str:
            groups = sorted({mark.args[0] for mark in item.iter_markers("xdist_group")})
            return "@" + "_".join(groups) if groups else item.nodeid

        def measured(item: pytest.Item) -> float:
            nodeid = item.nodeid
            if nodeid.rfind("@") > nodeid.rfind("]"):  # xdist has appended the group
                nodeid = nodeid[:nodeid.rfind("@")]
            return known.get(nodeid, UNMEASURED_SECONDS)

        total: dict[str, float] = {}
        for item in items:
            total[unit(item)] = total.get(unit(item), 0.0) + measured(item)
        position = {id(item): index for index, item in enumerate(items)}
        items.sort(key=lambda item: (-total[unit(item)], unit(item), position[id(item)]))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``), tests that share a fixture instance built once per module,
    class or (``SHARED_SESSION_FIXTURES``) session go to one worker, so it is built once, not once per worker.
    Tests that share nothing are spread freely; a test with two such fixtures joins their groups."""
    parent: dict[tuple, tuple] = {}

    def find(key: tuple) -> tuple:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    keys_of: dict[pytest.Item, list[tuple]] = {}
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        module = Path(item.nodeid.split("::")[0]).stem
        keys = []
        for name in getattr(info, "names_closure", ()):
            definitions = info.name2fixturedefs.get(name)
            if not definitions:
                continue
            scope = definitions[-1].scope
            if scope == "module":
                keys.append((module, name))
            elif scope == "class" and item.cls is not None:
                keys.append((module, item.cls.__name__, name))
            elif scope == "session" and name in SHARED_SESSION_FIXTURES:
                keys.append((name,))
        keys_of[item] = keys
        for key in keys[1:]:
            parent[find(key)] = find(keys[0])
    for item, keys in keys_of.items():
        if keys and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(".".join(find(keys[0]))))


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Format → path of the tiny CNN written in that format (with sidecars)."""
    from edgekit.samples import WRITERS, write_sample

    out = tmp_path_factory.mktemp("samples")
    return {fmt: write_sample(fmt, out) for fmt in WRITERS}


class Victim:
    """A directory outside the test's tmp_path holding files an attacker would read, write or create."""

    def __init__(self) -> None:
        import hashlib

        self._hash = lambda data: hashlib.sha256(data).hexdigest()
        self.path = Path(tempfile.mkdtemp(prefix="edgekit-victim-"))
        (self.path / "secret.bin").write_bytes(os.urandom(64))
        (self.path / "notes.txt").write_text("keep me\n")
        self.marker = self.path / "MARKER"
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, str]:
        return {p.name: self._hash(p.read_bytes()) for p in sorted(self.path.iterdir())}

    def assert_untouched(self) -> None:
        after = self.snapshot()
        assert after == self.before, f"outside the test directory: {sorted(set(after) ^ set(self.before))} changed"


@pytest.fixture
def victim():
    """A directory outside the test's own that must be unchanged when the test ends (see ``Victim``)."""
    import shutil

    victim = Victim()
    yield victim
    victim.assert_untouched()
    shutil.rmtree(victim.path, ignore_errors=True)


@pytest.fixture(scope="session")
def whole_model_pickle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tiny_models import PickledNet

    path = tmp_path_factory.mktemp("pickles") / "whole_model.pt"
    torch.save(PickledNet(), str(path))
    return path


@pytest.fixture
def console_reads_columns(monkeypatch):
    """edgekit's console, made to read COLUMNS at each print: one built while COLUMNS was set keeps that width
    (pytest-xdist's workers start with COLUMNS set), so ``CliRunner(env={"COLUMNS": …})`` alone would not tell."""
    from edgekit import render

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(render, "console", render.DataConsole(highlight=False, soft_wrap=True))


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


class LazyModule:
    """A module imported on first attribute access, so a test module that names torch or TensorFlow at its top
    does not pay the import while pytest collects (``pytest --collect-only`` stays fast)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str):
        import importlib

        if attribute.startswith("_"):  # what pytest probes while collecting (``__test__``, ``_pytestfixturefunction``)
            raise AttributeError(attribute)
        return getattr(importlib.import_module(self._name), attribute)


def strict_json(text: str | bytes):
    """Parse what edgekit wrote as RFC 8259 JSON: ``Infinity``/``NaN`` literals (Python's extension, which
    JavaScript, Go and Rust parsers reject) fail the test."""
    import json

    def refuse(literal: str):
        raise AssertionError(f"edgekit wrote {literal}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


def _command(args, cwd, env_extra, cold):
    """A command's argv, directory and environment, and the warm server that can run it (None: run it cold)."""
    env = {**os.environ, **PINNED_ENV, **(env_extra or {})}
    args = [str(arg) for arg in args]
    cwd = os.path.abspath(cwd or os.getcwd())
    if cold or os.environ.get("EDGEKIT_TEST_COLD_CLI", "") not in ("", "0"):
        return args, cwd, env, None
    from warm_cli import WARM

    WARM.pinned_env = PINNED_ENV  # the server starts with them too
    return args, cwd, env, WARM if WARM.accepts(env) else None


def run_edgekit(*args, cwd=None, timeout=900, env_extra=None, cold=False):
    """``python -m edgekit ARGS`` as a process of its own: exit status, stdout and stderr as
    ``subprocess.run(capture_output=True, text=True)`` returns them.

    It runs warm (``warm_cli``: forked from a server that imported the frameworks once) unless ``cold`` or the
    environment differs from the server's beyond ``warm_cli.RUN_TIME_ENV``; ``cold=True`` is for what happens while a
    process starts and imports (startup time, lazy imports, import-time output, signals to a fresh process)."""
    import subprocess
    import sys

    args, cwd, env, warm = _command(args, cwd, env_extra, cold)
    if warm is not None:
        return warm.run(args, cwd=cwd, env=env, timeout=timeout)
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def start_edgekit(*args, cwd=None, env_extra=None):
    """``python -m edgekit ARGS`` started, as ``subprocess.Popen(stdout=PIPE, stderr=PIPE, text=True)`` gives it:
    warm where ``run_edgekit`` would be (see there), its pid the command's own."""
    import subprocess
    import sys

    args, cwd, env, warm = _command(args, cwd, env_extra, False)
    if warm is not None:
        return warm.start(args, cwd=cwd, env=env)
    return subprocess.Popen([sys.executable, "-m", "edgekit", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)


@pytest.fixture(scope="session")
def default_pipeline(tmp_path_factory: pytest.TempPathFactory):
    """The embedded default `edgekit pipeline` (digits CNN in PyTorch and Keras, every route), run once."""
    out = tmp_path_factory.mktemp("pipeline") / "out"
    result = run_edgekit("pipeline", "--out", out)
    return out, result


def route_matrix(source) -> list[tuple[str, str]]:
    """Every (format, quant mode) edgekit converts ``source`` to, from the registry and the two tables: the
    test matrices follow what is registered instead of a hand-kept copy."""
    from edgekit.converters.planning import plan
    from edgekit.toolkit.contract.errors import UsageError
    from edgekit.toolkit.contract.formats import output_formats
    from edgekit.toolkit.contract.options import QuantMode

    found = []
    for fmt in output_formats():
        for quant in QuantMode:
            try:
                plan(source, fmt, quant)
            except UsageError:
                continue
            found.append((fmt.value, quant.value))
    return found
