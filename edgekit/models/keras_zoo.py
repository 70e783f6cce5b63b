"""Keras 3 architectures (TensorFlow backend); MobileNetV2 from keras.applications with weights=None."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras

from edgekit.models import Arch

BATCHNORM_MOMENTUM = 0.9


def _mlp(image: keras.KerasTensor, classes: int) -> keras.KerasTensor:
    x = keras.layers.Flatten()(image)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    return keras.layers.Dense(classes, name="logits")(x)


def _cnn(image: keras.KerasTensor, classes: int) -> keras.KerasTensor:
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2, strides=2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    return keras.layers.Dense(classes, name="logits")(x)


def build(arch: Arch, *, channels: int, size: tuple[int, int], classes: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    shape = (*size, channels)
    if arch is Arch.MOBILENETV2:
        model = keras.applications.MobileNetV2(
            input_shape=shape, alpha=1.0, weights=None, classes=classes, classifier_activation=None,
            name="mobilenetv2",
        )
        # keras.applications uses BatchNorm momentum 0.999: after the few hundred steps of a small
        # training run the moving statistics are still near their init, and inference-mode logits are
        # degenerate. 0.9 is what torch uses (its momentum=0.1).
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = BATCHNORM_MOMENTUM
        return model
    image = keras.Input(shape, name="image")
    head = {Arch.MLP: _mlp, Arch.CNN: _cnn}[arch]
    return keras.Model(image, head(image, classes), name=str(arch))
