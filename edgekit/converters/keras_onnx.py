"""Keras (.keras/.h5) or SavedModel → ONNX with tf2onnx.

Both sources become one frozen TensorFlow graph, which tf2onnx converts (``tf2onnx.convert``'s own
``_convert_common``, the step its command line and ``from_function`` share):

- a Keras model is wrapped in a ``tf.function`` with an explicit input signature (``from_keras`` fails on
  Keras 3: ``KeyError: 'keras_tensor_N'``) and frozen with only the signature's tensors as graph inputs.
  ``from_function`` makes every non-resource input of the concrete function a graph input, and those
  include the tensors the function captured: Normalization/Rescaling constants (EfficientNet,
  MobileNetV3) became extra ONNX inputs. Here captures are frozen to constants.
- a SavedModel goes through tf2onnx's SavedModel loader (its ``serving_default`` signature; lookup tables
  included).

Then two repairs tf2onnx needs on Keras 3 graphs: Keras compiles grouped convolutions (ConvNeXt's
depthwise ``Conv2D(groups=C)``) in an XLA ``tf.function``, and grappler never inlines an XLA-marked
call, so tf2onnx left ``StatefulPartitionedCall`` nodes that ONNX Runtime refuses (INVALID_GRAPH): the
mark is dropped and the graph re-optimised. Exact GELU (``tf.nn.gelu``) uses ``Erfc``, which tf2onnx
cannot map: it becomes ``1 - Erf``.

tf2onnx logs recoverable internal failures with tracebacks while it succeeds; its log is captured here,
and what it reports as unsupported is raised as one line naming the ops.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from edgekit.converters._onnx import canonical_generated_names, check_requested_opset, record_opset
from edgekit.converters.base import Converter, StepInput, StepReport
from edgekit.toolkit.contract.errors import BackendError, first_line, option
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.safety.policy import keras_safe_mode

DEFAULT_OPSET = 17
SIGNATURE = "serving_default"
XLA_ATTRS = ("_XlaMustCompile", "_noinline")


@dataclass(frozen=True)
class FrozenGraph:
    graph_def: Any  # tf.compat.v1.GraphDef
    inputs: list[str]  # tensor names ("x:0")
    outputs: list[str]
    rename: dict[str, str]  # tensor name → the name the ONNX graph gives it
    tables: dict[Any, Any] | None = None  # lookup tables tf2onnx's SavedModel loader initialised


def _signature(step: StepInput) -> list[tf.TensorSpec]:
    return [
        tf.TensorSpec([d if isinstance(d, int) else None for d in ts.shape or ()], tf.as_dtype(ts.dtype), name=ts.name)
        for ts in step.io_spec.inputs
    ]


def _keras_function(step: StepInput) -> Any:
    """The Keras model as a concrete function of its inputs, outputs named as the I/O contract names them."""
    import keras

    outputs = step.io_spec.output_names
    model = keras.saving.load_model(str(step.path), compile=False, safe_mode=keras_safe_mode())

    def call(*args: tf.Tensor) -> list[tf.Tensor]:
        result = model(list(args) if len(args) > 1 else args[0], training=False)
        if isinstance(result, dict):
            result = [result[n] for n in outputs]
        result = result if isinstance(result, (list, tuple)) else [result]
        return [tf.identity(r, name=n) for r, n in zip(result, outputs, strict=True)]

    return tf.function(call, input_signature=_signature(step)).get_concrete_function()


def _freeze_keras(step: StepInput) -> FrozenGraph:
    from tf2onnx import tf_loader
    from tf2onnx.convert import tensor_names_from_structed

    function = _keras_function(step)
    # A concrete function's inputs are its arguments followed by what it captured: only the arguments are
    # graph inputs; tf_loader.from_function freezes the captures (variables and constants alike).
    inputs = [t.name for t in function.inputs[: len(step.io_spec.inputs)]]
    outputs = [t.name for t in function.outputs]
    graph_def = tf_loader.from_function(function, inputs, outputs)
    rename = tensor_names_from_structed(function, inputs, outputs)
    rename.update(zip(outputs, step.io_spec.output_names, strict=True))  # "predictions", not "Identity:0"
    return FrozenGraph(graph_def, inputs, outputs, rename)


def _freeze_saved_model(step: StepInput) -> FrozenGraph:
    from tf2onnx import tf_loader

    graph_def, inputs, outputs, tables, rename = tf_loader.from_saved_model(
        str(step.path), None, None, tag=["serve"], signatures=[SIGNATURE], return_initialized_tables=True,
        return_tensors_to_rename=True)
    return FrozenGraph(graph_def, inputs, outputs, rename, tables)


def inline_xla_calls(frozen: FrozenGraph) -> tuple[FrozenGraph, int]:
    """Drop the XLA marks that keep grappler from inlining function calls, and re-optimise the graph so the
    calls are inlined (tf2onnx maps ops, not calls). Returns how many marks were dropped."""
    from tf2onnx import tf_loader

    graph_def = frozen.graph_def
    dropped = 0
    for nodes in (graph_def.node, *(f.node_def for f in graph_def.library.function)):
        for node in nodes:
            for key in XLA_ATTRS:
                if key in node.attr:
                    del node.attr[key]
                    dropped += 1
    for function in graph_def.library.function:
        for key in XLA_ATTRS:
            if key in function.attr:
                del function.attr[key]
                dropped += 1
    if not dropped:
        return frozen, 0
    with tf.Graph().as_default() as graph, tf_loader.tf_session(graph=graph):
        # grappler reads the graph through a v1 meta graph: it needs a graph context, not eager mode.
        tf.import_graph_def(graph_def, name="")
        graph_def = tf_loader.tf_optimize(frozen.inputs, frozen.outputs, graph_def)
    return FrozenGraph(graph_def, frozen.inputs, frozen.outputs, frozen.rename, frozen.tables), dropped


def _erfc_as_one_minus_erf(ctx: Any, node: Any, name: str, args: list[Any]) -> Any:
    """tf2onnx handler (its custom-op API): Erfc(x) = 1 - Erf(x); ONNX has Erf since opset 9."""
    from tf2onnx import utils

    node.type = "Erf"
    dtype = ctx.get_dtype(node.output[0])
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype=utils.map_onnx_to_numpy_type(dtype)))
    erfc = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(f"{name}_erfc"))
    ctx.replace_inputs(erfc, [one.output[0], node.output[0]])
    ctx.set_dtype(erfc.output[0], dtype)
    ctx.copy_shape(node.output[0], erfc.output[0])
    return node


CUSTOM_OP_HANDLERS = {"Erfc": (_erfc_as_one_minus_erf, [])}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured_tf2onnx_log() -> Iterator[_Records]:
    """tf2onnx's warnings and errors (with their tracebacks) go here instead of the terminal."""
    logger = logging.getLogger("tf2onnx")
    saved = logger.handlers[:], logger.propagate, logger.level
    records = _Records()
    logger.handlers, logger.propagate = [records], False
    logger.setLevel(logging.WARNING)
    try:
        yield records
    finally:
        logger.handlers, logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


def unsupported_ops(records: list[logging.LogRecord]) -> Counter[str]:
    """The ops tf2onnx could not map, from its ``Unsupported ops: Counter(...)`` and per-node errors."""
    found: Counter[str] = Counter()
    for record in records:
        if record.msg == "Unsupported ops: %s" and record.args:
            found.update(record.args[0] if isinstance(record.args, tuple) else record.args)
        elif str(record.msg).startswith("Failed to convert node") and record.args:
            found[f"node {record.args[0]}"] += 1
    return found


def log_lines(records: list[logging.LogRecord], limit: int = 5) -> list[str]:
    """Distinct one-line messages, each with the exception it logged ("Failed to apply optimize_transpose
    (ValueError: max() arg is an empty sequence)")."""
    lines = []
    for record in records:
        line = record.getMessage().splitlines()[0][:160] if record.getMessage() else record.levelname
        if record.exc_info and record.exc_info[1] is not None:
            line += f" ({type(record.exc_info[1]).__name__}: {first_line(record.exc_info[1], 120)})"
        lines.append(line)
    unique = list(dict.fromkeys(lines))
    return unique[:limit] + ([f"… and {len(unique) - limit} more"] if len(unique) > limit else [])


def _convert(frozen: FrozenGraph, out: Path, opset: int, name: str) -> None:
    from tf2onnx.convert import _convert_common

    with tf.device("/cpu:0"):
        _convert_common(frozen.graph_def, name=name, opset=opset, input_names=frozen.inputs,
                        output_names=frozen.outputs, tensors_to_rename=frozen.rename,
                        initialized_tables=frozen.tables, custom_op_handlers=dict(CUSTOM_OP_HANDLERS),
                        continue_on_error=True, output_path=str(out))


class KerasToOnnx(Converter):

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        check_requested_opset(step.options.opset)
        opset = step.options.opset or DEFAULT_OPSET
        with captured_tf2onnx_log() as log:
            if step.format is Format.SAVEDMODEL:
                frozen = _freeze_saved_model(step)
                report.details["exporter"] = "tf2onnx (SavedModel loader, serving_default)"
            else:
                frozen = _freeze_keras(step)
                report.details["exporter"] = "tf2onnx (frozen tf.function)"
            frozen, inlined = inline_xla_calls(frozen)
            if inlined:
                report.details["inlined_xla_calls"] = inlined
            _convert(frozen, out, opset, step.path.name)
        missing = unsupported_ops(log.records)
        if missing:
            ops = ", ".join(f"{op}×{count}" if count > 1 else op for op, count in sorted(missing.items()))
            raise BackendError(f"{step.path.name}: tf2onnx cannot convert TensorFlow op(s) {ops} to ONNX",
                               hint=f"try {option('to', 'tflite')}, or replace the layer that uses the op")
        if log.records:
            # Recoverable on tf2onnx's side (e.g. an optimiser pass it skipped): one line each in the sidecar,
            # no traceback on the terminal.
            report.details["tf2onnx_warnings"] = log_lines(log.records)
        record_opset(out, opset, report)
        canonical_generated_names(out)
