"""ONNX → ONNX: fp16 conversion, dynamic int8, and static int8 (QDQ) with calibration, using
onnxruntime's own tooling (onnxruntime.quantization, onnxruntime.transformers.float16)."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgekit.converters._onnx import canonical_dim_params
from edgekit.converters.base import Converter, StepInput, StepReport
from edgekit.toolkit.contract.errors import BackendError, first_line
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.fsutil import scratch_directory


class _Reader(CalibrationDataReader):
    """Calibration samples keyed by the ONNX graph's own input names (matched by position: exporters
    may rename inputs)."""

    def __init__(self, step: StepInput, model_path: Path) -> None:
        assert step.calibration is not None
        pairs = input_pairs(step, model_path)
        self._feeds = iter([{o: feed[s] for o, s in pairs} for feed in step.calibration.feeds])

    def get_next(self) -> dict | None:
        return next(self._feeds, None)


def input_pairs(step: StepInput, model_path: Path) -> list[tuple[str, str]]:
    """(ONNX input name, contract input name): by name where every name matches, else by position."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    onnx_names = [i.name for i in graph.input if i.name not in initializers]
    source_names = step.io_spec.input_names
    if len(onnx_names) != len(source_names):
        raise BackendError(
            f"{step.path.name}: the ONNX graph takes {len(onnx_names)} inputs {onnx_names}, the model "
            f"{len(source_names)} {source_names}: calibration samples cannot feed it",
            hint="the exporter turned constants into graph inputs; re-export the model")
    if set(onnx_names) == set(source_names):
        return [(name, name) for name in onnx_names]
    return list(zip(onnx_names, source_names, strict=True))


def prepare(source: Path, prepared: Path, report: StepReport) -> None:
    """ORT's recommended pre-processing: symbolic shape inference and graph optimisation. Symbolic
    inference gives up on some graphs ("Incomplete symbolic shape inference"); ONNX's own shape inference
    is then enough for quantization, and the fallback is recorded."""
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
    except Exception as exc:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        report.details["pre_process"] = f"without symbolic shape inference ({first_line(exc, 120)})"


def output_softmax_nodes(model_path: Path) -> list[str]:
    """Softmax nodes that produce a graph output. ORT quantizes a Softmax output on a fixed 1/256 grid, so
    every probability under 1/512 becomes 0: a 1000-class head's tail, or all of a flat one. Kept in float
    they cost one small op on int8 logits, and the model's probabilities survive."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    return [n.name for n in graph.node if n.op_type == "Softmax" and n.name and set(n.output) & outputs]


class OnnxQuantize(Converter):

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        mode = step.quantize
        if mode is QuantMode.FP16:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            # keep_io_types: the app still feeds and reads float32; only the inside is fp16.
            model = convert_float_to_float16(onnx.load(str(step.path)), keep_io_types=True)
            onnx.save(model, str(out))
            report.details["tool"] = "onnxruntime.transformers.float16 (keep_io_types)"
            return
        with scratch_directory("edgekit-quantize-") as scratch:
            prepared = Path(scratch) / "prepared.onnx"
            prepare(step.path, prepared, report)
            if mode is QuantMode.DYNAMIC:
                quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8, per_channel=True)
                canonical_dim_params(out)  # pre-processing's shape inference numbers unknown dims per process
                report.details["tool"] = "onnxruntime.quantization.quantize_dynamic (QInt8 weights, per-channel)"
            else:
                # U8S8 (uint8 activations, int8 weights) is onnxruntime's default and what its x86 int8
                # kernels are built for: on MobileNetV2 here 1.82x over fp32, where S8S8 gave 1.19x.
                float_heads = output_softmax_nodes(prepared)
                quantize_static(
                    str(prepared), str(out), _Reader(step, prepared), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    nodes_to_exclude=float_heads,
                )
                canonical_dim_params(out)
                report.details["tool"] = "onnxruntime.quantization.quantize_static (QDQ U8S8, per-channel weights)"
                if float_heads:
                    report.details["kept_float"] = f"output Softmax ({len(float_heads)}): {', '.join(float_heads)}"
