"""Training, prediction and saving for Keras models (saved as .keras).

``model.fit`` is fed a ``keras.utils.PyDataset`` that preprocesses one batch of raw images at a time:
given NumPy arrays, Keras copies them into tensors (several full copies at the training resolution —
MobileNetV2 at 224² passed 24 GB on the 1.1 GB digits), while a batch at 224² is 19 MB.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from edgekit.training.batches import LazyImages
from edgekit.training.types import EpochStats
from edgekit.validators.metrics import top1_accuracy


class _Batches(keras.utils.PyDataset):
    """Shuffled training batches, preprocessed on the fly; epoch ``e``'s order is fixed by (seed, e)."""

    def __init__(self, images: LazyImages, *, batch_size: int, seed: int) -> None:
        super().__init__(workers=1, use_multiprocessing=False)  # in order, in this thread: reproducible
        self.images, self.batch_size, self.seed = images, batch_size, seed
        self._epoch = 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng((self.seed, self._epoch)).permutation(len(self.images))

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        batch = self._order[index * self.batch_size: (index + 1) * self.batch_size]
        return self.images.take(batch), self.images.labels[batch]

    def on_epoch_end(self) -> None:
        self._epoch += 1
        self._order = self._permutation()


class _Reporter(keras.callbacks.Callback):
    def __init__(self, epochs: int, validation: LazyImages, on_epoch: Callable[[EpochStats], None]) -> None:
        super().__init__()
        self.epochs, self.validation, self.on_epoch = epochs, validation, on_epoch
        self.history: list[EpochStats] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        val_accuracy = top1_accuracy(predict(self.model, self.validation), self.validation.labels)
        stats = EpochStats(epoch + 1, self.epochs, float(logs.get("loss", float("nan"))),
                           float(logs.get("accuracy", float("nan"))), val_accuracy, time.perf_counter() - self._start)
        self.history.append(stats)
        self.on_epoch(stats)


def fit(
    model: keras.Model,
    train: LazyImages,
    validation: LazyImages,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    on_epoch: Callable[[EpochStats], None],
) -> list[EpochStats]:
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    batches = _Batches(train, batch_size=batch_size, seed=seed)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * len(batches)))
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    reporter = _Reporter(epochs, validation, on_epoch)
    model.fit(batches, epochs=epochs, shuffle=False, verbose=0, callbacks=[reporter])
    return reporter.history


class _Inputs(keras.utils.PyDataset):
    """Prediction chunks in order (inputs only)."""

    def __init__(self, images: LazyImages) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.images, self.chunk = images, images.predict_chunk

    def __len__(self) -> int:
        return -(-len(self.images) // self.chunk)

    def __getitem__(self, index: int) -> tuple[np.ndarray]:
        return (self.images.take(slice(index * self.chunk, (index + 1) * self.chunk)),)


def predict(model: keras.Model, images: LazyImages) -> np.ndarray:
    """Through ``model.predict`` (a compiled graph), not eager calls: an eager call of a functional model
    keeps every layer's output alive until it returns, 2 GB for a chunk of 151 MobileNetV2 inputs at 96²."""
    return np.asarray(model.predict(_Inputs(images), verbose=0))


def save(model: keras.Model, path: Path, input_shape: tuple[int, ...] | None = None) -> None:
    """Save architecture and weights only: a model rebuilt from its config is uncompiled and carries no
    optimizer state (Adam's would triple the file). keras.models.clone_model copies compile state."""
    if not model.compiled:
        model.save(str(path))
        return
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    clone.save(str(path))
