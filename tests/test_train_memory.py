"""Training makes model inputs batch by batch (never a full split at the training resolution), writes its
data file from those batches, and runs in an isolated worker: a memory limit exits 6, epoch progress still
reaches the caller."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import run_edgekit, strict_json

from edgekit.toolkit.contract.iospec import Layout
from edgekit.toolkit.data.datasets import Preprocessing


def shapes_npz(path, per_class: int = 20):
    """Three classes of 8×8 grey images that differ in brightness: learnable in one epoch."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), per_class)
    x = (rng.random((len(y), 8, 8)) * 40 + y[:, None, None] * 80).astype(np.uint8)
    np.savez(path, x=x, y=y)
    return path


def test_write_npz_streams_lazy_images_that_numpy_reads_back(tmp_path):
    from edgekit.training.batches import LazyImages, write_npz

    raw = np.random.default_rng(1).random((11, 4, 4)).astype(np.float32)
    prep = Preprocessing(Layout.NCHW, 1.0, (0.5,) * 3, (0.25,) * 3, (12, 12), 3)
    images = LazyImages(raw, np.arange(11), prep)
    write_npz(tmp_path / "d.npz", {"test_x": images, "test_y": images.labels, "labels": np.array(["a", "b"])})
    with np.load(tmp_path / "d.npz", allow_pickle=False) as data:
        assert data["test_x"].shape == (11, 3, 12, 12) and data["test_x"].dtype == np.float32
        np.testing.assert_array_equal(data["test_x"], prep.apply(raw))
        assert list(data["test_y"]) == list(range(11)) and list(data["labels"]) == ["a", "b"]


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_training_preprocesses_batch_by_batch(tmp_path, monkeypatch, framework):
    """Every preprocessing call — training, validation, test predictions, the data file, the save check —
    sees at most one batch; the data file holds what the recipe makes of the raw split, capped by bytes."""
    from edgekit import training
    from edgekit.models import Arch, Framework
    from edgekit.toolkit.data.datasets import load_npz, stratified_split
    from edgekit.training import batches

    data = shapes_npz(tmp_path / "shapes.npz")
    calls: list[int] = []
    apply = Preprocessing.apply
    monkeypatch.setattr(Preprocessing, "apply", lambda self, images: calls.append(len(images)) or apply(self, images))
    monkeypatch.setattr(batches, "PREDICT_CHUNK_BYTES", 4 * 32 * 32 * 4)  # 4 images a prediction chunk
    monkeypatch.setattr(training, "SAVED_SPLIT_BYTES", 5 * 32 * 32 * 4)  # 5 images a split in the data file
    options = training.TrainOptions(Framework(framework), Arch.CNN, data=str(data), epochs=1, batch_size=8,
                                    image_size=32)
    result = training.train(options, tmp_path / "m")
    assert calls and max(calls) <= 8, calls
    assert result.test_samples == 12 and len(result.history) == 1
    test_split = stratified_split(load_npz(data), 0).test
    with np.load(result.artifact.data_path) as saved:
        assert saved["test_x"].shape[0] == saved["test_y"].shape[0] == saved["calibration_x"].shape[0] == 5
        np.testing.assert_array_equal(saved["test_x"], result.artifact.preprocessing.apply(test_split[0][:5]))
        np.testing.assert_array_equal(saved["test_y"], test_split[1][:5])
    assert result.artifact.extra["data_samples"] == {"calibration": 5, "test": 5}


def test_memory_limit_stops_training_with_exit_6(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = run_edgekit("--memory-limit", "100", "train", "--framework", "torch", "--arch", "mlp", "--data",
                         shapes_npz(tmp_path / "shapes.npz"), "-o", out / "m", timeout=300,
                         cold=True)  # a worker's resident memory, as a cold process's is (see warm_cli)
    assert result.returncode == 6, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "over the --memory-limit of 100 MiB, while training mlp in torch" in lines[0], lines
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_epoch_progress_reaches_the_terminal_from_the_worker(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = run_edgekit("train", "--framework", "torch", "--arch", "mlp", "--data",
                         shapes_npz(tmp_path / "shapes.npz"), "--epochs", "2", "-o", out / "m", timeout=300,
                         env_extra={"EDGEKIT_ISOLATION": "on"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "epoch   1/2" in result.stderr and "epoch   2/2" in result.stderr, result.stderr
    assert "test accuracy" in result.stdout


PROGRESS_PROBE = textwrap.dedent("""
    import os, sys
    from edgekit.toolkit.safety.isolation import report_progress, run_isolated
    seen = []
    def work():
        for value in range(3):
            report_progress({"step": value, "pid": os.getpid()})
        return os.getpid()
    worker = run_isolated(work, phase_name="probing", on_progress=seen.append)
    run_isolated(lambda: report_progress("dropped"), phase_name="probing")  # no on_progress: nothing to call
    print([s["step"] for s in seen], worker != os.getpid(), all(s["pid"] == worker for s in seen))
""")


def test_report_progress_reaches_the_parent_from_a_forked_worker():
    import os

    env = {**os.environ, "EDGEKIT_ISOLATION": "on"}
    out = subprocess.run([sys.executable, "-c", PROGRESS_PROBE], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.strip() == "[0, 1, 2] True True", (out.stdout, out.stderr[-2000:])


def test_report_progress_in_process_calls_the_callback(monkeypatch):
    from edgekit.toolkit.safety.isolation import report_progress, run_isolated

    monkeypatch.setenv("EDGEKIT_ISOLATION", "off")
    seen: list[int] = []
    assert run_isolated(lambda: [report_progress(v) for v in (1, 2)] and "done", phase_name="x",
                        on_progress=seen.append) == "done"
    report_progress(3)  # outside any run_isolated: dropped
    assert seen == [1, 2]


@pytest.mark.slow
def test_keras_mobilenetv2_at_224_under_300_mib_exits_6(tmp_path):
    """The command that met the OOM killer at 24 GB: a runaway now ends as exit 6 with one line."""
    out = tmp_path / "out"
    out.mkdir()
    result = run_edgekit("--memory-limit", "300", "train", "--framework", "keras", "--arch", "mobilenetv2",
                         "--image-size", "224", "-o", out / "m", "--json", timeout=300,
                         cold=True)  # a worker's resident memory, as a cold process's is (see warm_cli)
    assert result.returncode == 6, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: the worker used"), lines
    assert result.stdout == "" and list(out.iterdir()) == []


@pytest.mark.slow
def test_mobilenetv2_at_96_trains_in_the_worker(tmp_path):
    """MobileNetV2 at its default resolution, in Keras, through the worker: 8×8 images resized batch by batch to
    96×96×3 (a small set: what costs here is the network, not the data; digits' accuracy is test_cli_train's)."""
    out = tmp_path / "out"
    out.mkdir()
    result = run_edgekit("train", "--framework", "keras", "--arch", "mobilenetv2", "--image-size", "96",
                         "--data", shapes_npz(tmp_path / "shapes.npz", per_class=40), "--epochs", "1",
                         "-o", out / "m", "--json", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    run = strict_json(result.stdout)
    assert run["test_samples"] == 24 and len(run["history"]) == 1
    with np.load(run["data"]) as data:
        assert data["test_x"].shape == (24, 96, 96, 3) and data["test_x"].dtype == np.float32
