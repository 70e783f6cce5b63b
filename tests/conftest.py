"""Shared fixtures: tiny seeded models in every format, built once per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Framework-output logs of the commands tests run stay out of the user's ~/.local/state/edgekit/logs.
os.environ.setdefault("EDGEKIT_LOG_DIR", tempfile.mkdtemp(prefix="edgekit-test-logs-"))


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
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def strict_json(text: str | bytes):
    """Parse what edgekit wrote as RFC 8259 JSON: ``Infinity``/``NaN`` literals (Python's extension, which
    JavaScript, Go and Rust parsers reject) fail the test."""
    import json

    def refuse(literal: str):
        raise AssertionError(f"edgekit wrote {literal}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


def run_edgekit(*args, cwd=None, timeout=900, env_extra=None):
    """`python -m edgekit ARGS` in a child process (commands that redirect fds 1/2, isolate work in a
    worker or may crash are tested this way)."""
    import subprocess
    import sys

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


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
