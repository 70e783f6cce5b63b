"""torch.export program (.pt2) → TFLite with litert-torch; quantized with ai-edge-quantizer.

Modes: ``fp16`` (float16 weights dequantized at load, float compute: the FLOAT_CASTING weight-only recipe),
``dynamic`` (int8 weights, float activations), ``int8`` (static int8 inside, float32 inputs and
outputs), ``int8-io`` (static int8, inputs and outputs int8 too) and ``int16x8`` (static int16 activations
with int8 weights, int16 I/O) and ``int4`` (channelwise int4 weights, activations quantized to int8 at run
time: XNNPACK's qd8 × qc4w kernels) — what ai-edge-quantizer's recipes produce. For ``int8`` the static
recipe's INPUT and OUTPUT operations are set to ``NO_QUANTIZE`` (as Ultralytics' LiteRT export does), so
the model takes and returns float32 and quantizes/dequantizes at its edges. ``--nhwc`` wraps the model
so its image inputs are channels-last, as Android camera pipelines deliver them.

``--keep-float`` leaves the matching torch modules' operators in float in every mode: litert-torch names each
tensor after the module that made it (``__main__.Net/__main__.Block_enc/torch.nn.modules.linear.Linear_fc;``:
each level its class and attribute), and the module paths come back from the program's ``nn_module_stack``. An
operator belongs to the module its weights are named after; one without weights to the innermost module its
outputs name (a fused output can name several, and the graph's last output carries the signature's name
instead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.converters._ai_edge import FP16_RECIPE, INT4_RECIPE, TFLiteOp, leave_float, recipe, tflite_ops
from edgekit.converters.base import Converter, StepInput, StepReport, Twin
from edgekit.converters.torch_onnx import example_inputs
from edgekit.targets._torch import load_exported_program
from edgekit.toolkit.contract.errors import UsageError
from edgekit.toolkit.contract.iospec import cast_checked
from edgekit.toolkit.contract.layers import Layer, select, unit_name, units
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


def module_scopes(module: Any) -> dict[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Each module's litert-torch name below the root (its levels ``<class>_<attribute>``) → its chain of
    (module path, class) from the outermost, read from the graph's ``nn_module_stack``."""
    table: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
    for node in module.graph.nodes:
        stack = [(path, kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}")
                 for path, kind in (node.meta.get("nn_module_stack") or {}).values() if path]
        for depth in range(1, len(stack) + 1):
            chain = tuple(stack[:depth])
            table.setdefault(tuple(f"{kind}_{path.rsplit('.', 1)[-1]}" for path, kind in chain), chain)
    return table


def _modules_named(names: Iterable[str], table: dict) -> list[tuple[tuple[str, str], ...]]:
    """The module chains that tensor names name: each ``;``-separated part's levels past its root, matched on the
    longest tail a module has (a wrapper, e.g. --nhwc's, adds a level in front)."""
    found = []
    for name in names:
        for part in name.split(";"):
            levels = part.split("/")
            for start in range(1, len(levels)):
                if (chain := table.get(tuple(levels[start:]))) is not None:
                    found.append(chain)
                    break
    return found


def torch_layers(module: Any, ops: list[TFLiteOp]) -> list[tuple[Layer, TFLiteOp]]:
    """Each operator as ``--keep-float`` sees it: its module's path, classes and enclosing paths (the operator's
    scope where no module is named)."""
    table = module_scopes(module)
    layers = []
    for op in ops:
        chains = _modules_named(op.constants, table) or _modules_named(op.outputs, table)
        if not chains:
            layers.append((Layer(op.scope, (op.kind,)), op))
            continue
        chain = max(chains, key=len)  # the innermost module named
        classes = tuple(kind.rsplit(".", 1)[-1] for _, kind in chain)
        layers.append((Layer(chain[-1][0], (op.kind, *classes), tuple(path for path, _ in chain)), op))
    return layers


def kept_float_ops(module: Any, float_model: Path, step: StepInput, report: StepReport) -> list[TFLiteOp]:
    """The operators ``--keep-float`` names (a usage error for a pattern naming none), recorded in the details;
    the float model shown to ``ConvertOptions.tap``."""
    if not (step.options.keep_float or step.options.list_units or step.options.tap):
        return []
    layers = torch_layers(module, tflite_ops(float_model))
    report.units = units(layer for layer, _ in layers)
    if step.options.tap is not None:
        step.options.tap(Twin("tflite", f"ai_edge_quantizer ({RECIPES[step.quantize]})",
                              {name: unit_name(layer) for layer, op in layers for name in op.outputs}, float_model))
    if not step.options.keep_float:
        return []
    chosen = set(select(step.options.keep_float, [layer for layer, _ in layers], origin=step.source_name))
    kept = [(layer, op) for layer, op in layers if layer in chosen]
    report.details["keep_float"] = {"patterns": list(step.options.keep_float),
                                    "modules": list(dict.fromkeys(layer.name for layer, _ in kept)),
                                    "operators": len(kept)}
    return [op for _, op in kept]


def _source(step: StepInput, report: StepReport) -> tuple[Any, tuple, list[int]]:
    """The program's module and batch-1 example inputs, wrapped to take channels-last images with ``--nhwc`` (the
    indices of the inputs it permutes)."""
    import litert_torch

    module = load_exported_program(step.path).module()
    args = example_inputs(step)
    nhwc = _image_inputs(step) if step.options.nhwc else []
    if nhwc:
        module = litert_torch.to_channel_last_io(module, args=nhwc)
        args = tuple(a.permute(0, 2, 3, 1).contiguous() if i in nhwc else a for i, a in enumerate(args))
        report.details["io_layout"] = "nhwc"
    return module, args, nhwc


class TorchToTFLite(Converter):
    keeps_float = True  # ai-edge-quantizer NO_QUANTIZE rules on the kept operators' scopes

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        import litert_torch

        module, args, nhwc = _source(step, report)
        if step.quantize is QuantMode.NONE:
            litert_torch.convert(module, args).export(str(out))
            report.details["converter"] = "litert_torch.convert"
            return
        with scratch_directory("edgekit-tflite-") as scratch:
            float_model = Path(scratch) / "float.tflite"
            litert_torch.convert(module, args).export(str(float_model))
            keep = kept_float_ops(module, float_model, step, report)
            self._quantize(float_model, out, step, nhwc, keep, report)

    def _quantize(self, float_model: Path, out: Path, step: StepInput, nhwc: list[int], keep: list[TFLiteOp],
                  report: StepReport) -> None:
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
        leave_float(engine, keep)
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
            if not calibration_result and keep:  # the quantizer then stops with "QSVs are required"
                raise UsageError(f"{step.source_name}: --keep-float leaves every operator float: nothing is left to "
                                 f"quantize in {step.quantize.value}",
                                 hint="keep fewer layers float, or use --quantize none")
        result = engine.quantize(calibration_result, enable_progress_report=False)
        out.write_bytes(bytes(result.quantized_model))
        report.details["converter"] = f"litert_torch.convert + ai_edge_quantizer ({recipe_name})"


def _filtered_quantizer(base: type, keep: Callable[[Any], bool] | None) -> Any:
    """litert-torch's PT2EQuantizer whose pattern annotators also skip the nodes ``keep`` rejects (``--keep-float``)."""
    if keep is None:
        return base()

    class Filtered(base):  # type: ignore[misc, valid-type]
        def _annotate_all_static_patterns(self, model: Any, config: Any, filter_fn: Any = None) -> Any:
            return super()._annotate_all_static_patterns(model, config, _both(filter_fn, keep))

        def _annotate_all_dynamic_patterns(self, model: Any, config: Any, filter_fn: Any = None) -> Any:
            return super()._annotate_all_dynamic_patterns(model, config, _both(filter_fn, keep))

    return Filtered()


def _both(first: Callable[[Any], bool] | None, second: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return second if first is None else lambda node: first(node) and second(node)


class TorchToTFLitePT2E(Converter):
    """The PT2E path (``--quantizer pt2e``): litert-torch's PT2EQuantizer annotates the exported graph (per-channel
    symmetric int8 weights; activations static int8 calibrated with histogram observers, or quantized at run
    time in ``dynamic``), torchao's ``prepare_pt2e``/``convert_pt2e`` make the quantize–dequantize graph and
    litert-torch lowers it to TFLite's int8 kernels. Static models take and return int8: the quantize of each
    input and the dequantize of each output become the graph's I/O, with their scale and zero point (``int8-io``;
    ``int8`` with float I/O is ai-edge-quantizer's, the route's default). ``--keep-float`` leaves the matching
    modules' nodes unannotated: the quantizer's per-module configs take no "leave float" entry, so every pattern
    annotator it runs gets the node filter too."""

    keeps_float = True

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        import litert_torch
        import torch
        from litert_torch.quantize import pt2e_quantizer
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        from edgekit.converters._pt2e import calibrate, integer_scalars_as_constants, keep_float_filter, node_layer

        module, args, nhwc = _source(step, report)
        dynamic = step.quantize is QuantMode.DYNAMIC
        graph = torch.export.export(module, args).module()
        integer_scalars_as_constants(graph)
        quantizer = _filtered_quantizer(pt2e_quantizer.PT2EQuantizer, keep_float_filter(graph, step, report))
        quantizer.set_global(pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
        prepared = prepare_pt2e(graph, quantizer)
        if dynamic:
            prepared(*args)
        else:
            calibrate(prepared, step, nhwc)
        converted = convert_pt2e(prepared, fold_quantize=False)
        if step.options.tap is not None:
            reference = torch.export.export(module, args).module()
            step.options.tap(Twin("pt2e", "litert-torch PT2EQuantizer (convert_pt2e's quantize–dequantize graph)",
                                  {node.name: unit_name(layer) for node in reference.graph.nodes
                                   if (layer := node_layer(node)) is not None}, modules=(reference, converted)))
        litert_torch.convert(converted, args, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(out))
        scheme = "int8 weights per channel, " + ("activations quantized at run time" if dynamic
                                                  else "int8 activations calibrated (histogram observers)")
        report.details["converter"] = f"litert_torch.convert + PT2E (litert_torch PT2EQuantizer: {scheme})"
        if not dynamic:
            report.details["io"] = "int8 (the inputs' quantize and the outputs' dequantize are the graph's I/O)"
