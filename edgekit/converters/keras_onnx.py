"""Keras (.keras/.h5) or SavedModel → ONNX with tf2onnx.

``tf2onnx.convert.from_keras`` fails on Keras 3 (``KeyError: 'keras_tensor_N'``), so a Keras model is
wrapped in a ``tf.function`` with an explicit input signature and converted with ``from_function``.
A SavedModel goes through tf2onnx's own SavedModel front end (``python -m tf2onnx.convert
--saved-model``), in a child process, which also keeps its TensorFlow graph state out of ours.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from edgekit.converters._onnx import check_requested_opset, record_opset
from edgekit.converters.base import Converter, StepInput, StepReport
from edgekit.toolkit.contract.errors import BackendError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.safety.policy import keras_safe_mode

DEFAULT_OPSET = 17


def _signature(step: StepInput) -> list[tf.TensorSpec]:
    return [
        tf.TensorSpec([d if isinstance(d, int) else None for d in ts.shape or ()], tf.as_dtype(ts.dtype), name=ts.name)
        for ts in step.io_spec.inputs
    ]


def _function(step: StepInput) -> tf.types.experimental.GenericFunction:
    signature = _signature(step)
    outputs = step.io_spec.output_names
    import keras

    model = keras.saving.load_model(str(step.path), compile=False, safe_mode=keras_safe_mode())

    def call(*args: tf.Tensor) -> list[tf.Tensor]:
        result = model(list(args) if len(args) > 1 else args[0], training=False)
        result = result if isinstance(result, (list, tuple)) else [result]
        return [tf.identity(r, name=n) for r, n in zip(result, outputs, strict=True)]

    return tf.function(call, input_signature=signature)


def _from_saved_model(step: StepInput, out: Path, opset: int) -> None:
    command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(step.path), "--signature_def",
               "serving_default", "--opset", str(opset), "--output", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "Error" in line or "error" in line]
        raise BackendError(f"{step.path.name}: tf2onnx --saved-model failed: {(errors or ['see --debug'])[-1]}")


class KerasToOnnx(Converter):

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        import tf2onnx

        check_requested_opset(step.options.opset)
        opset = step.options.opset or DEFAULT_OPSET
        if step.format is Format.SAVEDMODEL:
            _from_saved_model(step, out, opset)
            report.details["exporter"] = "tf2onnx --saved-model"
        else:
            tf2onnx.convert.from_function(_function(step), input_signature=_signature(step), opset=opset,
                                          output_path=str(out))
            report.details["exporter"] = "tf2onnx.convert.from_function"
        record_opset(out, opset, report)
