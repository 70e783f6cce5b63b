import numpy as np
import pytest
from PIL import Image

from edgekit.toolkit.contract.errors import InvalidInputError, UsageError
from edgekit.toolkit.contract.iospec import IOSpec, tensor
from edgekit.toolkit.data.calibration import resolve

NCHW = IOSpec((tensor("image", (1, 1, 8, 8), "float32"),), (tensor("logits", (1, 10), "float32"),))
NHWC_RGB = IOSpec((tensor("image", (1, 16, 16, 3), "float32"),), (tensor("logits", (1, 10), "float32"),))


def test_nothing_named_and_no_own_data_gives_none():
    assert resolve(None, NCHW, sidecar=None, samples=10) is None


def test_digits_through_default_preprocessing():
    found = resolve("digits", NCHW, sidecar=None, samples=12)
    assert found.real and len(found.feeds) == 12
    sample = found.feeds[0]["image"]
    assert sample.shape == (1, 1, 8, 8) and sample.dtype == np.float32 and 0 <= sample.min() and sample.max() <= 1


def test_random_is_seeded_and_marked_unreal():
    first, again = (resolve("random", NCHW, sidecar=None, samples=3) for _ in range(2))
    assert not first.real and np.array_equal(first.feeds[2]["image"], again.feeds[2]["image"])


def test_npz_with_model_ready_inputs(tmp_path):
    np.savez(tmp_path / "c.npz", calibration_x=np.ones((5, 1, 8, 8), np.float32))
    found = resolve(str(tmp_path / "c.npz"), NCHW, sidecar=None, samples=100)
    assert len(found.feeds) == 5 and found.feeds[0]["image"].shape == (1, 1, 8, 8)


def test_npz_with_raw_images_is_resized_to_the_model(tmp_path):
    np.savez(tmp_path / "raw.npz", x=np.full((4, 32, 32), 255, np.uint8))
    found = resolve(str(tmp_path / "raw.npz"), NHWC_RGB, sidecar=None, samples=10)
    assert found.feeds[0]["image"].shape == (1, 16, 16, 3)
    assert np.allclose(found.feeds[0]["image"], 1.0)  # 255 × 1/255


def test_image_directory(tmp_path):
    for index in range(3):
        Image.fromarray(np.full((20, 30, 3), index * 100, np.uint8)).save(tmp_path / f"{index}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    found = resolve(str(tmp_path), NHWC_RGB, sidecar=None, samples=10)
    assert len(found.feeds) == 3 and found.feeds[2]["image"].shape == (1, 16, 16, 3)
    assert found.feeds[1]["image"].mean() == pytest.approx(100 / 255, abs=1e-6)


def test_bad_sources(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        resolve(str(tmp_path / "missing"), NCHW, sidecar=None, samples=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match="no .png"):
        resolve(str(empty), NCHW, sidecar=None, samples=1)
    np.savez(tmp_path / "wrong.npz", calibration_x=np.ones((2, 3, 8, 8), np.float32))
    with pytest.raises(InvalidInputError, match=r"shape \[3, 8, 8\]"):
        resolve(str(tmp_path / "wrong.npz"), NCHW, sidecar=None, samples=1)
    with pytest.raises(UsageError, match="calibration_samples must be ≥ 1"):
        resolve("random", NCHW, sidecar=None, samples=0)
