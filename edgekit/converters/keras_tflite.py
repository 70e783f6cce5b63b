"""Keras (.keras/.h5) or SavedModel → TFLite with tf.lite.TFLiteConverter, in every quantization mode."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from edgekit.converters.base import Converter, StepInput, StepReport
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.safety.policy import keras_safe_mode


def tf_converter(step: StepInput) -> tf.lite.TFLiteConverter:
    if step.format is Format.SAVEDMODEL:
        return tf.lite.TFLiteConverter.from_saved_model(str(step.path))
    import keras

    model = keras.saving.load_model(str(step.path), compile=False, safe_mode=keras_safe_mode())
    return tf.lite.TFLiteConverter.from_keras_model(model)


class KerasToTFLite(Converter):

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        converter = tf_converter(step)
        mode = step.quantize
        if mode is QuantMode.FP16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif mode is QuantMode.DYNAMIC:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif mode in (QuantMode.INT8, QuantMode.INT8_IO, QuantMode.INT16X8):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: self._representative(step)
            if mode is QuantMode.INT16X8:
                converter.target_spec.supported_ops = [
                    tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
                ]
            else:
                # Full integer: fail rather than silently keep float ops the int8 kernels cannot take.
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if mode is QuantMode.INT8_IO:
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        out.write_bytes(converter.convert())
        report.details["converter"] = "tf.lite.TFLiteConverter"

    @staticmethod
    def _representative(step: StepInput) -> Iterator[list[np.ndarray]]:
        assert step.calibration is not None
        names = step.io_spec.input_names
        for feed in step.calibration.feeds:
            yield [feed[name] for name in names]
