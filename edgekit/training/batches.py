"""Model inputs made on the fly: raw images plus the ``Preprocessing`` that turns them into model inputs.

Upsampled, the digits are large (1,797 images at 224² × 3 channels are 1.1 GB of float32) while the raw
8×8 images are 460 KB. Training, prediction and the data file written beside the model therefore keep
the raw images and preprocess one batch at a time: at most a batch of model inputs exists at once,
never a full copy of a split.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.toolkit.data.datasets import Preprocessing

# Bytes of model input per prediction chunk. MobileNetV2's first blocks hold 8× their input: a chunk of 256
# images at 224² (154 MB) would need over a GB; 4 MiB keeps 8×8 inputs at 256 a chunk, 96² RGB at 37 and
# 224² RGB at 6, below what a training batch of 32 holds.
PREDICT_CHUNK_BYTES = 4 << 20
MAX_PREDICT_CHUNK = 256


@dataclass(frozen=True)
class LazyImages:
    """A split as raw images (N,H,W[,C]) and labels; model inputs are made by ``prep`` per batch."""

    raw: np.ndarray
    labels: np.ndarray
    prep: Preprocessing

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One model input's shape (no batch axis), in the model's layout."""
        return tuple(self.prep.apply(self.raw[:1]).shape[1:])

    @property
    def sample_bytes(self) -> int:
        return int(np.prod(self.sample_shape)) * np.dtype(np.float32).itemsize

    def take(self, indices: np.ndarray | slice) -> np.ndarray:
        """Model inputs (float32) for the samples at ``indices``."""
        return self.prep.apply(self.raw[indices])

    def chunks(self, size: int | None = None) -> Iterator[np.ndarray]:
        """Model inputs in order, ``size`` at a time (default: a chunk of about PREDICT_CHUNK_BYTES)."""
        size = size or self.predict_chunk
        for start in range(0, len(self), size):
            yield self.take(slice(start, start + size))

    @property
    def predict_chunk(self) -> int:
        return max(1, min(MAX_PREDICT_CHUNK, PREDICT_CHUNK_BYTES // max(1, self.sample_bytes)))

    def head(self, count: int) -> LazyImages:
        return LazyImages(self.raw[:count], self.labels[:count], self.prep)


def write_npz(path: Path, arrays: dict[str, np.ndarray | LazyImages]) -> None:
    """A compressed ``.npz`` that ``numpy.load`` reads like one from ``numpy.savez_compressed``, where a
    ``LazyImages`` value is written as its model inputs chunk by chunk (never all in memory at once)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, value in arrays.items():
            # zip64 from the start: a member's size is unknown to zipfile while it streams.
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                if isinstance(value, LazyImages):
                    _write_lazy(member, value)
                else:
                    np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)


def _write_lazy(member, images: LazyImages) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (len(images), *images.sample_shape)}
    np.lib.format.write_array_header_1_0(member, header)
    for chunk in images.chunks():
        member.write(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())
