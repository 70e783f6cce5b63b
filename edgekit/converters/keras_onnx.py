"""Keras (.keras/.h5) or SavedModel → ONNX with tf2onnx.

``tf2onnx.convert.from_keras`` fails on Keras 3 (``KeyError: 'keras_tensor_N'``), so the model is
wrapped in a ``tf.function`` with an explicit input signature and converted with ``from_function``.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from edgekit.converters.base import Converter, StepInput, StepReport
from edgekit.toolkit.formats import Format

DEFAULT_OPSET = 17


def _signature(step: StepInput) -> list[tf.TensorSpec]:
    return [
        tf.TensorSpec([d if isinstance(d, int) else None for d in ts.shape or ()], tf.as_dtype(ts.dtype), name=ts.name)
        for ts in step.io_spec.inputs
    ]


def _function(step: StepInput) -> tf.types.experimental.GenericFunction:
    signature = _signature(step)
    names = step.io_spec.input_names
    outputs = step.io_spec.output_names
    if step.format is Format.SAVEDMODEL:
        served = tf.saved_model.load(str(step.path)).signatures["serving_default"]

        def call(*args: tf.Tensor) -> list[tf.Tensor]:
            result = served(**dict(zip(names, args, strict=True)))
            return [tf.identity(result[n], name=n) for n in outputs]
    else:
        import keras

        model = keras.saving.load_model(str(step.path), compile=False, safe_mode=True)

        def call(*args: tf.Tensor) -> list[tf.Tensor]:
            result = model(list(args) if len(args) > 1 else args[0], training=False)
            result = result if isinstance(result, (list, tuple)) else [result]
            return [tf.identity(r, name=n) for r, n in zip(result, outputs, strict=True)]

    return tf.function(call, input_signature=signature)


class KerasToOnnx(Converter):
    source = (Format.KERAS, Format.KERAS_H5, Format.SAVEDMODEL)
    target = Format.ONNX

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        import tf2onnx

        opset = step.options.opset or DEFAULT_OPSET
        tf2onnx.convert.from_function(_function(step), input_signature=_signature(step), opset=opset,
                                      output_path=str(out))
        report.details["exporter"] = f"tf2onnx.convert.from_function (opset {opset})"
