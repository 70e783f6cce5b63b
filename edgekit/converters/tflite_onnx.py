"""TFLite → ONNX: tf2onnx's TFLite front end (``tf2onnx.convert.from_tflite``).

It reads the flatbuffer, maps each TFLite op to ONNX and keeps the model's quantization: an int8 TFLite
model becomes a QDQ ONNX model — QuantizeLinear/DequantizeLinear around float ops, with the file's own
scales and zero points — which ONNX Runtime runs with int8 kernels; integer I/O (``int8-io``) stays integer.
Parity is checked against the TFLite original, on LiteRT.

A 16x8 model (int16 activations, int64 biases) has no ONNX form from this converter: tf2onnx writes opsets
up to 18, where QuantizeLinear takes 8-bit integers only (int16 arrives in opset 21, int64 never), so it is
refused with what to do instead.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.converters._onnx import canonical_generated_names, check_requested_opset, record_opset
from edgekit.converters.base import Converter, StepInput, StepReport
from edgekit.converters.keras_onnx import DEFAULT_OPSET, captured_tf2onnx_log, log_lines, unsupported_ops
from edgekit.toolkit.contract.errors import BackendError, InvalidInputError, first_line, option

# What each op takes at opsets ≤ 18 (onnx.TensorProto types): 8-bit integers, and int32 (biases) to dequantize.
ALLOWED = {"QuantizeLinear": (2, 3), "DequantizeLinear": (2, 3, 6)}


class TFLiteToOnnx(Converter):

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        from tf2onnx.convert import from_tflite

        check_requested_opset(step.options.opset)
        opset = step.options.opset or DEFAULT_OPSET
        with captured_tf2onnx_log() as log:
            try:
                from_tflite(str(step.path), opset=opset, output_path=str(out))
            except ValueError as exc:  # tf2onnx's make_sure: an opset it cannot write, an unmappable graph
                raise BackendError(f"{step.path.name}: tf2onnx cannot convert it: {first_line(exc, 200)}",
                                   hint=f"try another {option('opset')} (tf2onnx writes up to 18)") from None
        missing = unsupported_ops(log.records)
        if missing:
            ops = ", ".join(f"{op}×{count}" if count > 1 else op for op, count in sorted(missing.items()))
            raise BackendError(f"{step.path.name}: tf2onnx cannot convert TFLite op(s) {ops} to ONNX",
                               hint="convert the model this .tflite came from to ONNX instead")
        _refuse_wide_quantization(step.path, out)
        report.details["exporter"] = "tf2onnx (TFLite front end)"
        if log.records:
            report.details["tf2onnx_warnings"] = log_lines(log.records)
        record_opset(out, opset, report)
        canonical_generated_names(out)


def _refuse_wide_quantization(source: Path, out: Path) -> None:
    """QuantizeLinear/DequantizeLinear on wider integers (a 16x8 model's int16 activations and int64 biases):
    not valid ONNX at the opsets tf2onnx writes, so no runtime would load the file."""
    import onnx

    model = onnx.load(str(out), load_external_data=False)
    types = {t.name: t.data_type for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ALLOWED and len(node.input) > 2 and types.get(node.input[2], 3) not in ALLOWED[node.op_type]:
            name = onnx.TensorProto.DataType.Name(types[node.input[2]]).lower()
            raise InvalidInputError(
                f"{source.name}: its quantization is {name} ({node.op_type} {node.name}), which ONNX's "
                "QuantizeLinear/DequantizeLinear do not take at the opsets tf2onnx writes (8-bit, and int32 "
                "biases; this is a 16x8 model)",
                hint="convert the float model this .tflite came from to ONNX and quantize there "
                     f"({option('quantize', 'int8')}), or start from an int8 or float .tflite")
