"""Training, prediction and saving for Keras models (saved as .keras)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from edgekit.training.types import EpochStats
from edgekit.validators.metrics import top1_accuracy


class _Reporter(keras.callbacks.Callback):
    def __init__(self, epochs: int, validation, on_epoch: Callable[[EpochStats], None]) -> None:
        super().__init__()
        self.epochs, self.validation, self.on_epoch = epochs, validation, on_epoch
        self.history: list[EpochStats] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        val_accuracy = top1_accuracy(predict(self.model, self.validation[0]), self.validation[1])
        stats = EpochStats(epoch + 1, self.epochs, float(logs.get("loss", float("nan"))),
                           float(logs.get("accuracy", float("nan"))), val_accuracy, time.perf_counter() - self._start)
        self.history.append(stats)
        self.on_epoch(stats)


def fit(
    model: keras.Model,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
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
    steps = max(1, epochs * -(-len(train[0]) // batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    reporter = _Reporter(epochs, validation, on_epoch)
    model.fit(train[0], train[1], batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
              callbacks=[reporter])
    return reporter.history


def predict(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([
        keras.ops.convert_to_numpy(model(images[i: i + batch_size], training=False))
        for i in range(0, len(images), batch_size)
    ])



def save(model: keras.Model, path: Path, input_shape: tuple[int, ...] | None = None) -> None:
    """Save architecture and weights only: a model rebuilt from its config is uncompiled and carries no
    optimizer state (Adam's would triple the file). keras.models.clone_model copies compile state."""
    if not model.compiled:
        model.save(str(path))
        return
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    clone.save(str(path))
