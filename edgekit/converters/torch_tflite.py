"""torch.export program (.pt2) → TFLite with litert-torch; quantized with ai-edge-quantizer.

Modes: ``fp16`` (float16 weights dequantized at load, float compute: the FLOAT_CASTING weight-only recipe),
``dynamic`` (int8 weights, float activations), ``int8`` (static int8 inside, float32 inputs and
outputs), ``int8-io`` (static int8, inputs and outputs int8 too) and ``int16x8`` (static int16 activations
with int8 weights, int16 I/O) and ``int4`` (channelwise int4 weights, activations quantized to int8 at run
time: XNNPACK's qd8 × qc4w kernels) — what ai-edge-quantizer's recipes produce. For ``int8`` the static
recipe's INPUT and OUTPUT operations are set to ``NO_QUANTIZE`` (as Ultralytics' LiteRT export does), so
the model takes and returns float32 and quantizes/dequantizes at its edges. ``--nhwc`` wraps the model
so its image inputs are channels-last, as Android camera pipelines deliver them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.converters._ai_edge import FP16_RECIPE, INT4_RECIPE, recipe
from edgekit.converters.base import Converter, StepInput, StepReport
from edgekit.converters.torch_onnx import example_inputs
from edgekit.targets._torch import load_exported_program
from edgekit.toolkit.contract.iospec import cast_checked
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.fsutil import scratch_directory

RECIPES = {QuantMode.FP16: FP16_RECIPE, QuantMode.DYNAMIC: "dynamic_wi8_afp32",
           QuantMode.INT8: "static_wi8_ai8",
           QuantMode.INT8_IO: "static_wi8_ai8", QuantMode.INT16X8: "static_wi8_ai16",
           QuantMode.INT4: INT4_RECIPE}
FLOAT_IO = (QuantMode.INT8,)  # static int8 inside, the graph's inputs and outputs left float
SIGNATURE = "serving_default"


def _image_inputs(step: StepInput) -> list[int]:
    return [i for i, ts in enumerate(step.io_spec.inputs) if ts.shape is not None and len(ts.shape) == 4]


class TorchToTFLite(Converter):

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        import litert_torch

        module = load_exported_program(step.path).module()
        args = example_inputs(step)
        nhwc = _image_inputs(step) if step.options.nhwc else []
        if nhwc:
            module = litert_torch.to_channel_last_io(module, args=nhwc)
            args = tuple(a.permute(0, 2, 3, 1).contiguous() if i in nhwc else a for i, a in enumerate(args))
            report.details["io_layout"] = "nhwc"
        if step.quantize is QuantMode.NONE:
            litert_torch.convert(module, args).export(str(out))
            report.details["converter"] = "litert_torch.convert"
            return
        with scratch_directory("edgekit-tflite-") as scratch:
            float_model = Path(scratch) / "float.tflite"
            litert_torch.convert(module, args).export(str(float_model))
            self._quantize(float_model, out, step, nhwc, report)

    def _quantize(self, float_model: Path, out: Path, step: StepInput, nhwc: list[int], report: StepReport) -> None:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import quantizer

        recipe_name = RECIPES[step.quantize]
        engine = quantizer.Quantizer(str(float_model), recipe(recipe_name))
        if step.quantize in FLOAT_IO:
            from ai_edge_quantizer.algorithm_manager import AlgorithmName
            from ai_edge_quantizer.qtyping import TFLOperationName

            for operation in (TFLOperationName.INPUT, TFLOperationName.OUTPUT):
                engine.update_quantization_recipe(regex=".*", operation_name=operation,
                                                  algorithm_key=AlgorithmName.NO_QUANTIZE)
            report.details["io"] = "float32 (the recipe's INPUT and OUTPUT operations set to NO_QUANTIZE)"
        calibration_result = None
        if engine.need_calibration:
            assert step.calibration is not None
            runner = Interpreter(str(float_model)).get_signature_runner(SIGNATURE)
            details = runner.get_input_details()
            tflite_names = list(details)
            samples = []
            for feed in step.calibration.feeds:
                values = [feed[name] for name in step.io_spec.input_names]
                values = [v.transpose(0, 2, 3, 1) if i in nhwc else v for i, v in enumerate(values)]
                pairs = zip(tflite_names, values, strict=True)
                # litert-torch narrows int64 inputs (token ids) to int32: the samples follow, range-checked.
                samples.append({name: np.ascontiguousarray(cast_checked(
                    v, details[name]["dtype"], name=name, origin=str(step.path))) for name, v in pairs})
            calibration_result = engine.calibrate({SIGNATURE: samples})
        result = engine.quantize(calibration_result, enable_progress_report=False)
        out.write_bytes(bytes(result.quantized_model))
        report.details["converter"] = f"litert_torch.convert + ai_edge_quantizer ({recipe_name})"
