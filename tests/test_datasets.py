import numpy as np
import pytest

from edgekit.toolkit.contract.errors import InvalidInputError
from edgekit.toolkit.contract.options import Layout
from edgekit.toolkit.data.datasets import (
    Preprocessing,
    fit_preprocessing,
    load_digits,
    load_npz,
    stratified_split,
)


def test_digits_are_bundled_and_complete():
    digits = load_digits()
    assert digits.images.shape == (1797, 8, 8)
    assert digits.num_classes == 10 and digits.scale == 1 / 16


def test_split_is_stratified_disjoint_and_seeded():
    digits = load_digits()
    first, again, other = (stratified_split(digits, seed) for seed in (0, 0, 1))
    sizes = [len(part[1]) for part in (first.train, first.calibration, first.test)]
    assert sum(sizes) == 1797 and sizes[2] == 360
    for part in (first.train, first.calibration, first.test):
        shares = np.bincount(part[1], minlength=10) / len(part[1])
        np.testing.assert_allclose(shares, np.bincount(digits.labels) / 1797, atol=0.03)
    np.testing.assert_array_equal(first.test[0], again.test[0])
    assert not np.array_equal(first.test[1], other.test[1])


def test_preprocessing_standardises_resizes_and_orders_channels():
    images = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    prep = fit_preprocessing(images, scale=0.5, layout=Layout.NCHW, size=(8, 8), channels=3)
    x = prep.apply(images)
    assert x.shape == (2, 3, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(), 0, atol=1e-5)
    np.testing.assert_allclose(x[0, 0, :2, :2], x[0, 0, 0, 0])  # nearest-neighbour upsampling
    assert Preprocessing.from_dict(prep.to_dict()) == prep


def test_npz_round_trip_with_labels(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((6, 5, 5), np.uint8), y=np.array([0, 1, 2, 0, 1, 2]), labels=np.array(["a", "b", "c"]))
    dataset = load_npz(path)
    assert dataset.class_names == ("a", "b", "c") and dataset.scale == 1 / 255


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 5, 5))}, "missing array"),
        ({"images": np.zeros((4, 5, 5)), "y": np.zeros(4, int)}, "missing array"),
        ({"x": np.zeros((4, 5)), "y": np.zeros(4, int)}, "x has shape"),
        ({"x": np.zeros((4, 5, 5)), "y": np.zeros(3, int)}, "y has shape"),
        ({"x": np.zeros((4, 5, 5)), "y": np.array([0.0, 1, 0, 1])}, "y has shape"),
        ({"x": np.zeros((4, 5, 5)), "y": np.array([0, 1, 0, 1]), "labels": np.array(["a", "b", "c"])}, "3 labels"),
        ({"x": np.zeros((4, 5, 5)), "y": np.zeros(4, int)}, "at least two class"),
    ],
)
def test_bad_npz_is_invalid_input(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InvalidInputError, match=message):
        load_npz(path)


def test_unreadable_npz(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(InvalidInputError, match="not a readable"):
        load_npz(path)
