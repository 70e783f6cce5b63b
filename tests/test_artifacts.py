import os
import stat
from pathlib import Path

import pytest
from conftest import strict_json

from edgekit.toolkit import fsutil
from edgekit.toolkit.contract.artifact import Artifact, read_sidecar, sidecar_path
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, tensor
from edgekit.toolkit.fsutil import atomic_directory, atomic_path, scratch_directory, sha256_of, write_bytes_atomic


def test_atomic_write_refuses_to_replace_without_force(tmp_path):
    target = tmp_path / "model.bin"
    write_bytes_atomic(target, b"old")
    with pytest.raises(UsageError, match="already exists"):
        write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    write_bytes_atomic(target, b"new", force=True)
    assert target.read_bytes() == b"new"


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target, force=True) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("converter crashed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


def test_interrupted_write_cleans_up(tmp_path):
    target = tmp_path / "model.bin"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_temps_are_announced_before_they_exist(tmp_path, monkeypatch):
    """An isolated worker killed between creating a temp and announcing it would leave a file its parent
    does not know about: every temp (file, staging directory, scratch directory) is announced first."""
    announced: list[tuple[str, bool]] = []
    monkeypatch.setattr(fsutil, "announce_temp", lambda p: announced.append((str(p), os.path.lexists(p))))
    with atomic_path(tmp_path / "model.onnx") as tmp:
        tmp.write_bytes(b"x")
    with atomic_directory(tmp_path / "saved_model") as staged:
        staged.mkdir()
    with scratch_directory("edgekit-test-") as scratch:
        assert scratch.is_dir()
    assert len(announced) == 3 and [existed for _, existed in announced] == [False] * 3
    assert all(f"-{os.getpid()}-" in Path(name).name for name, _ in announced)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "saved_model"]


def test_atomic_write_honours_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_bytes_atomic(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_missing_or_unwritable_directory(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        write_bytes_atomic(tmp_path / "nodir" / "a.bin", b"x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that can write anywhere (root)")
        with pytest.raises(InvalidInputError, match="not writable"):
            write_bytes_atomic(locked / "a.bin", b"x")
    finally:
        locked.chmod(0o700)


def test_sha256_of_directory_depends_on_names_and_content(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"1")
    first = sha256_of(tmp_path / "a")
    (tmp_path / "a" / "x").write_bytes(b"2")
    assert sha256_of(tmp_path / "a") != first


def _artifact(path):
    return Artifact(
        path=path, format=Format.ONNX, sha256=sha256_of(path),
        io_spec=IOSpec((tensor("x", (1, 3), "float32"),), (tensor("y", (1, 2), "float32"),)),
        route=("torch-exported", "onnx"), source_sha256="ab" * 32, options={"quantize": "none"},
        versions={"onnx": "1.23.2"},
    )


def test_sidecar_round_trip_and_stale_sidecar_is_ignored(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"first")
    artifact = _artifact(model)
    artifact.write_sidecar()
    assert sidecar_path(model).name == "m.onnx.edgekit.json"
    assert strict_json(sidecar_path(model).read_text())["edgekit_sidecar_version"] == 1
    assert read_sidecar(model) == artifact
    model.write_bytes(b"second")  # the file changed: its old sidecar no longer describes it
    assert read_sidecar(model) is None


def test_corrupt_sidecar_is_a_clear_error(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    sidecar_path(model).write_text("{not json")
    with pytest.raises(InvalidInputError, match="unreadable edgekit sidecar"):
        read_sidecar(model)
