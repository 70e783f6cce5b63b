"""Keras (.keras/.h5) or SavedModel → TFLite with tf.lite.TFLiteConverter, in every quantization mode.

Recurrent layers (LSTM, GRU, SimpleRNN, ConvLSTM, and Bidirectional wrappers of them) trace to a
``while`` loop over TensorList ops whose element shape includes the batch. With a dynamic batch the
converter cannot lower those to builtins and asks for Flex (Select TF) ops, which a plain LiteRT
runtime lacks. So a recurrent model is converted at batch 1 (the batch every edge app runs): its
inference call is exported at batch 1 with its own weights; where the sequence length is fixed and not
too long, its recurrent layers are also unrolled into straight-line builtins (ADD, MUL, LOGISTIC, TANH,
FULLY_CONNECTED), the only form the int8 quantizer takes. The rewrite is recorded in the step's
details.

``--keep-float`` names Keras layers, which TensorFlow's name scopes do not map back to reliably (``conv2d``
becomes ``conv2d_1`` and ``conv2d_1`` becomes ``conv2d_1_2``). So a twin of the model, its layers renamed to
numbered tokens, is converted in float beside it: the same graph, operator for operator, whose names say which
layer made each operator. The kept operators are then left float by the quantizer of the mode: TFLiteConverter's
own MLIR quantizer with its node denylist (what its QuantizationDebugger uses) for ``int8`` and ``int8-io``, and
ai-edge-quantizer's NO_QUANTIZE rules on the float model for ``dynamic``, ``fp16`` and ``int4``
(TFLiteConverter has no per-layer switch in those modes, nor in ``int16x8``, which refuses it). A SavedModel has
no layers: its patterns match the graph's own tensor names.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from edgekit.converters._ai_edge import FP16_RECIPE, INT4_RECIPE, TFLiteOp, quantize_weights, tflite_ops
from edgekit.converters.base import Converter, StepInput, StepReport, Twin
from edgekit.toolkit.contract.errors import BackendError, UsageError, option
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.layers import Layer, select, unit_name, units
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.fsutil import scratch_directory
from edgekit.toolkit.safety.policy import keras_safe_mode

# Unrolling copies the cell's ops once per step: at 200 LSTM steps the float file is 8x the weights and
# conversion takes 15 s, at 1000 steps int8 took 90 s and 48 MB. Past this length float modes keep the
# compact WHILE loop; the int8 family unrolls at any fixed length, since the quantizer crashes
# (SIGSEGV) on a WHILE loop.
MAX_UNROLL_STEPS = 256


@dataclass(frozen=True)
class RecurrentPlan:
    """How a recurrent model is rewritten for TFLite builtins."""

    layers: tuple[str, ...]  # the recurrent layers found, e.g. ("lstm (LSTM)",)
    steps: int | None  # the fixed sequence length, None where it is dynamic
    unroll: bool

    def describe(self) -> str:
        how = f"unrolled over {self.steps} steps" if self.unroll else "kept as a WHILE loop"
        return f"batch fixed at 1, recurrent layers {how} ({', '.join(self.layers)}); same weights"


def _recurrent_layers(model: Any) -> list[Any]:
    import keras

    # _flatten_layers walks every tracked sublayer: nested models and Bidirectional's two directions.
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.RNN)]


def _sequence_length(step: StepInput) -> int | None:
    """The longest axis 1 of the inputs (time, for sequences and token ids alike) when every input's shape
    past the batch is fixed; None otherwise (a layer could then see a dynamic length)."""
    if any(ts.shape is None or not all(isinstance(d, int) for d in ts.shape[1:]) for ts in step.io_spec.inputs):
        return None
    lengths = [int(ts.shape[1]) for ts in step.io_spec.inputs if ts.shape is not None and len(ts.shape) >= 2]
    return max(lengths) if lengths else None


def plan_recurrent(layers: list[Any], steps: int | None, mode: QuantMode) -> RecurrentPlan:
    names = tuple(dict.fromkeys(f"{layer.name} ({type(layer).__name__})" for layer in layers))
    if mode.spec.needs_calibration and steps is None:
        raise UsageError(
            f"{option('quantize', mode.value)}: the recurrent layers {', '.join(names)} have a dynamic sequence "
            "length, which converts to a TFLite WHILE loop; TFLite's full-integer quantizer crashes on it",
            hint=f"fix the length, e.g. {option('input_shapes')} NAME=1,STEPS,FEATURES, or use "
                 f"{option('quantize', 'dynamic')}",
        )
    unroll = steps is not None and (steps <= MAX_UNROLL_STEPS or mode.spec.needs_calibration)
    return RecurrentPlan(names, steps, unroll)


def _export_batch_one(model: Any, step: StepInput, plan: RecurrentPlan, directory: Path) -> None:
    """A SavedModel of the model's inference call at batch 1, the way TFLiteConverter.from_keras_model
    exports a Keras 3 model, minus ``track(model)``: tracking makes the SavedModel also trace the model's
    own default signature at its declared (dynamic) shapes, which an unrolled layer cannot take. The
    endpoint tracks the variables (and lookup tables) it uses by itself."""
    import keras

    if plan.unroll:
        for layer in _recurrent_layers(model):
            layer.unroll = True  # read by RNN.call when the endpoint is traced
    specs = [tf.TensorSpec((1, *_dims(ts.shape)[1:]), tf.as_dtype(ts.dtype), name=ts.name)
             for ts in step.io_spec.inputs]
    archive = keras.export.ExportArchive()
    archive.add_endpoint("serve", functools.partial(model.__call__, training=False),
                         input_signature=specs if len(specs) == 1 else [specs])
    archive.write_out(str(directory), verbose=False)


def _dims(shape: tuple[Any, ...] | None) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) else None for d in shape or ())


def _load(step: StepInput) -> Any:
    import keras

    return keras.saving.load_model(str(step.path), compile=False, safe_mode=keras_safe_mode())


def tf_converter(step: StepInput, report: StepReport, scratch: Path, model: Any = None) -> tf.lite.TFLiteConverter:
    if step.format is Format.SAVEDMODEL:
        return tf.lite.TFLiteConverter.from_saved_model(str(step.path))
    model = _load(step) if model is None else model
    recurrent = _recurrent_layers(model)
    if not recurrent:
        return tf.lite.TFLiteConverter.from_keras_model(model)
    plan = plan_recurrent(recurrent, _sequence_length(step), step.quantize)
    _export_batch_one(model, step, plan, scratch / "batch1")
    report.details["rewrite"] = plan.describe()
    return tf.lite.TFLiteConverter.from_saved_model(str(scratch / "batch1"))


_TF_OP = re.compile(r"'tf\.(\w+)' op")


def refusal(step: StepInput, exc: Exception) -> BackendError | None:
    """One line naming the TensorFlow op that TFLite builtins lack, instead of MLIR's diagnostics."""
    text = str(exc)
    ops = sorted(set(_TF_OP.findall(text)))
    if not ops:
        return None
    if any(op.startswith("TensorList") for op in ops):
        hint = ("a recurrent loop at a dynamic batch: convert the .keras model (edgekit fixes its batch at 1), or "
                "export the SavedModel with a fixed batch (keras.Input(..., batch_size=1))")
    else:
        hint = "replace the layer that uses it; edgekit converts to TFLite builtins only (no Flex ops)"
    return BackendError(f"{step.path.name}: TFLite builtins have no kernel for TensorFlow op(s) {', '.join(ops)}",
                        hint=hint)


_TOKEN = "edgekitlayer{}x"
_TOKENS = re.compile(r"edgekitlayer(\d+)x")
# Modes whose keep-float goes through ai-edge-quantizer on the float model, and the recipe each uses.
AEQ_RECIPES = {QuantMode.DYNAMIC: "dynamic_wi8_afp32", QuantMode.FP16: FP16_RECIPE, QuantMode.INT4: INT4_RECIPE}


def _tokens(name: str) -> list[int]:
    """The twin's layer numbers a tensor name carries, outermost first."""
    return [int(t) for t in _TOKENS.findall(name)]


def _walk(model: Any) -> list[tuple[Any, str]]:
    """Every layer, nested ones included, with its path: a nested layer's is its model's path and its name,
    joined by ``/``."""
    rows: list[tuple[Any, str]] = []

    def walk(layer: Any, prefix: str) -> None:
        for child in layer._flatten_layers(include_self=False, recursive=False):
            rows.append((child, prefix + child.name))
            walk(child, f"{prefix}{child.name}/")

    walk(model, "")
    return rows


def keras_layers(step: StepInput, scratch: Path, ops: list[TFLiteOp]) -> tuple[list[tuple[Layer, TFLiteOp]], list[str]]:
    """Each float operator of the Keras model with the layer that made it, read off a renamed twin's conversion
    (see the module docstring), and the layers that made none (folded, or without compute); a SavedModel's
    operators by their own tensor names."""
    if step.format is Format.SAVEDMODEL:
        def prefixes(name: str) -> list[str]:
            parts = name.split(";")[0].split("/")
            return ["/".join(parts[:i]) for i in range(1, len(parts))]

        return [(Layer(op.outputs[0] if op.outputs else op.scope, (op.kind,),
                       tuple(dict.fromkeys(p for name in (*op.constants, *op.outputs) for p in prefixes(name)))), op)
                for op in ops], []
    twin = _load(step)
    rows = [(path, type(layer).__name__) for layer, path in _walk(twin)]
    for i, (layer, _) in enumerate(_walk(twin)):
        layer.name = _TOKEN.format(i)
    (scratch / "twin").mkdir()
    twin_ops = tflite_ops(tf_converter(step, StepReport("twin"), scratch / "twin", model=twin).convert())
    if [op.kind for op in twin_ops] != [op.kind for op in ops]:
        raise BackendError(f"{step.source_name}: the renamed twin converted to a different graph "
                           f"({len(twin_ops)} operators, the model {len(ops)}): its layers cannot be named",
                           hint="convert --to onnx, where --keep-float matches the ONNX graph's own nodes")
    layers = []
    for op, twin_op in zip(ops, twin_ops, strict=True):
        chains = ([c for name in twin_op.constants if (c := _tokens(name.split(";")[0]))]
                  or [c for name in twin_op.outputs for part in name.split(";") if (c := _tokens(part))])
        if not chains:
            layers.append((Layer(op.outputs[0] if op.outputs else op.scope, (op.kind,)), op))
            continue
        chain = max(chains, key=len)
        path = rows[chain[-1]][0]
        scopes = tuple(rows[t][0] for t in chain)
        layers.append((Layer(path, (op.kind, *(rows[t][1] for t in chain)), scopes), op))
    named = {scope for layer, _ in layers for scope in layer.scopes}
    return layers, [path for path, _ in rows if path not in named]


@contextlib.contextmanager
def _denylisted(nodes: list[str]) -> Iterator[None]:
    """TFLiteConverter.convert with its MLIR quantizer leaving ``nodes`` (operator output names) in float: the
    ``denylisted_nodes`` its QuantizationDebugger passes, given to the call convert() makes itself, so the rest of
    convert() (I/O types, buffer dedup, metadata) is unchanged."""
    from tensorflow.lite.python import lite

    quantize: Callable[..., bytes] = lite._mlir_quantize
    lite._mlir_quantize = functools.partial(quantize, denylisted_nodes=nodes)
    try:
        yield
    finally:
        lite._mlir_quantize = quantize


class KerasToTFLite(Converter):
    keeps_float = True  # the MLIR quantizer's node denylist (int8, int8-io), ai-edge-quantizer's rules (the rest)

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        mode = step.quantize
        if step.options.keep_float and mode is QuantMode.INT16X8:
            raise UsageError(f"{option('keep_float')}: TFLiteConverter's 16x8 quantizer leaves no layer float",
                             hint=f"use {option('quantize', 'int8')}, or convert a torch model (its int16x8 takes it)")
        with scratch_directory("edgekit-keras-") as scratch:
            keep, flatbuffer = self._kept(step, Path(scratch), report)
            if not (keep and mode in AEQ_RECIPES):  # there the float model made for --keep-float is quantized
                with _denylisted([name for op in keep for name in op.outputs]) if keep else contextlib.nullcontext():
                    flatbuffer = self._convert(tf_converter(step, report, Path(scratch)), step)
            if mode is QuantMode.INT4 or (keep and mode in AEQ_RECIPES):
                # TFLiteConverter has no 4-bit mode (nor, in the others, per-layer exclusion): its float model,
                # then ai-edge-quantizer's recipe
                float_model = Path(scratch) / "float.tflite"
                float_model.write_bytes(flatbuffer)
                flatbuffer = quantize_weights(float_model, AEQ_RECIPES[mode], keep)
                report.details["quantizer"] = f"ai_edge_quantizer ({AEQ_RECIPES[mode]})"
        out.write_bytes(flatbuffer)
        report.details["converter"] = "tf.lite.TFLiteConverter"

    def _kept(self, step: StepInput, scratch: Path, report: StepReport) -> tuple[list[TFLiteOp], bytes]:
        """The float model's operators ``--keep-float`` names (a usage error for a pattern naming none), and the
        float model."""
        if not (step.options.keep_float or step.options.list_units or step.options.tap):
            return [], b""
        (scratch / "float").mkdir()
        flatbuffer = self._convert(tf_converter(step, report, scratch / "float"), step, float_only=True)
        ops = tflite_ops(flatbuffer)
        layers, folded = keras_layers(step, scratch, ops)
        report.units = units((layer for layer, _ in layers), [layer for layer, op in layers if op.constants])
        if step.options.tap is not None:
            float_model = scratch / "float" / "float.tflite"
            float_model.write_bytes(flatbuffer)
            aeq = step.quantize is QuantMode.INT4 or (bool(step.options.keep_float) and step.quantize in AEQ_RECIPES)
            tool = (f"ai_edge_quantizer ({AEQ_RECIPES[step.quantize]})" if aeq
                    else "tf.lite.TFLiteConverter (MLIR quantizer)")
            step.options.tap(Twin("tflite", tool, {name: unit_name(layer) for layer, op in layers
                                                   for name in op.outputs}, float_model))
        if not step.options.keep_float:
            return [], flatbuffer
        chosen = set(select(step.options.keep_float, [layer for layer, _ in layers], origin=step.source_name,
                            folded=folded))
        kept = [(layer, op) for layer, op in layers if layer in chosen]
        report.details["keep_float"] = {"patterns": list(step.options.keep_float),
                                        "layers": list(dict.fromkeys(layer.name for layer, _ in kept)),
                                        "operators": len(kept)}
        return [op for _, op in kept], flatbuffer

    def _convert(self, converter: tf.lite.TFLiteConverter, step: StepInput, float_only: bool = False) -> bytes:
        mode = QuantMode.NONE if float_only else step.quantize
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
        try:
            return converter.convert()
        except Exception as exc:
            refused = refusal(step, exc)
            if refused is None:
                raise
            raise refused from exc

    @staticmethod
    def _representative(step: StepInput) -> Iterator[list[np.ndarray] | dict[str, np.ndarray]]:
        assert step.calibration is not None
        names = step.io_spec.input_names
        for feed in step.calibration.feeds:
            # A list is matched to the graph's input tensors, whose order need not be the signature's (a
            # two-input model came out b, a): several inputs go by signature name, the contract's names.
            yield [feed[names[0]]] if len(names) == 1 else {name: feed[name] for name in names}
