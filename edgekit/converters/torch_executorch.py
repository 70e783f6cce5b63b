"""torch.export program (.pt2) → ExecuTorch (.pte), lowered to the XNNPACK delegate.

Quantization uses PT2E with the XNNPACK quantizer: ``int8`` static (calibrated, per-channel weights),
``dynamic`` (int8 weights, activations quantized at run time). When XNNPACK partitioning fails, the
program falls back to ExecuTorch's portable kernels with a warning naming the failure; the delegated
share of nodes is recorded either way. ``--keep-float`` leaves the matching modules unannotated through the
quantizer's node filter.
"""

from __future__ import annotations

from pathlib import Path

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.exir import to_edge_transform_and_lower

from edgekit.converters._pt2e import calibrate, integer_scalars_as_constants, keep_float_filter, node_layer
from edgekit.converters.base import Converter, StepInput, StepReport, Twin
from edgekit.converters.torch_onnx import example_inputs
from edgekit.targets._torch import load_exported_program
from edgekit.toolkit.contract.errors import BackendError, UsageError, first_line, option
from edgekit.toolkit.contract.layers import unit_name
from edgekit.toolkit.contract.options import QuantMode

DELEGATE_CALL = "executorch_call_delegate"


def explicit_pool_strides(program: torch.export.ExportedProgram) -> int:
    """Spell out max_pool2d's default stride (= kernel size) where the call left it out.

    Semantically a no-op; the XNNPACK partitioner indexes ``node.args[2]`` and crashes without it.
    """
    fixed = 0
    for node in program.graph.nodes:
        if node.op == "call_function" and node.target in (torch.ops.aten.max_pool2d.default,
                                                         torch.ops.aten.max_pool2d_with_indices.default):
            if "stride" in node.kwargs:
                continue
            if len(node.args) == 2:
                node.args = (*node.args, node.args[1])
                fixed += 1
            elif len(node.args) > 2 and not node.args[2]:  # stride=[] also means "same as kernel"
                node.args = (node.args[0], node.args[1], node.args[1], *node.args[3:])
                fixed += 1
    if fixed:
        program.graph_module.recompile()
    return fixed


def _quantized(program: torch.export.ExportedProgram, step: StepInput, args: tuple,
               report: StepReport) -> torch.export.ExportedProgram:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    dynamic = step.quantize in (QuantMode.DYNAMIC, QuantMode.INT4)
    # int4: the same dynamic config with weights on [-8, 7]; XNNPACK then stores them packed, 4 bits each
    # (its qd8 × qc4w kernels), where int8 values would take a byte.
    bits = {"weight_qmin": -8, "weight_qmax": 7} if step.quantize is QuantMode.INT4 else {}
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic, **bits)
    if step.quantize is QuantMode.INT4:
        # XNNPACK has 4-bit kernels for fully connected layers only: a 4-bit conv would be left to portable
        # kernels, which have no quantized variants. Convolutions stay float.
        quantizer = XNNPACKQuantizer().set_module_type(torch.nn.Linear, config)
    else:
        quantizer = XNNPACKQuantizer().set_global(config)
    module = program.module()
    integer_scalars_as_constants(module)
    keep = keep_float_filter(module, step, report)
    if keep is not None:
        quantizer.set_filter_function(keep)
    prepared = prepare_pt2e(module, quantizer)
    if dynamic:
        prepared(*args)
    else:
        calibrate(prepared, step)
    converted = convert_pt2e(prepared)
    if step.options.tap is not None:
        # a fresh module of the same program: its nodes and the converted ones share their origin (from_node)
        reference = program.module()
        step.options.tap(Twin("pt2e", "PT2E XNNPACKQuantizer (convert_pt2e's quantize–dequantize graph)",
                              {node.name: unit_name(layer) for node in reference.graph.nodes
                               if (layer := node_layer(node)) is not None}, modules=(reference, converted)))
    return torch.export.export(converted, args)


class _HalfInside(torch.nn.Module):
    """fp16 inside, the model's own dtypes outside: float inputs are cast to float16 on entry and float16
    outputs back to float32 on exit (integer inputs, e.g. token ids, pass as they are)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner.half()

    def forward(self, *inputs: torch.Tensor) -> object:
        from torch.utils._pytree import tree_map

        cast = [x.half() if x.is_floating_point() else x for x in inputs]
        return tree_map(lambda o: o.float() if isinstance(o, torch.Tensor) and o.dtype == torch.float16 else o,
                        self.inner(*cast))


def _half(program: torch.export.ExportedProgram, args: tuple) -> torch.export.ExportedProgram:
    return torch.export.export(_HalfInside(program.module()), args)


def _fp16_refused(step: StepInput, exc: Exception) -> BackendError:
    """The traced program fixes float32 in places (explicit casts, float32 constants such as attention masks),
    which then meet the float16 weights."""
    return BackendError(f"{step.path.name}: fp16 on ExecuTorch failed: the program keeps float32 in places "
                        f"({first_line(exc, 120)})",
                        hint=f"use {option('quantize', 'none')} or dynamic on ExecuTorch, or fp16 on TFLite or ONNX "
                             "(their converters cast at the tensor level)")


def _is_quantize(node: torch.fx.Node) -> bool:
    name = str(node.target)
    return "quantize" in name and "dequantize" not in name


def _static_scale(node: torch.fx.Node) -> tuple[float, int] | None:
    """A quantize node's scale and zero point when they are constants (static activation quantization)."""
    if node.op != "call_function" or not _is_quantize(node) or len(node.args) < 3:
        return None
    scale, zero = node.args[1], node.args[2]
    return (float(scale), int(zero)) if isinstance(scale, float) and isinstance(zero, int) else None


def _tapped(program: torch.export.ExportedProgram, report: StepReport) -> list[dict]:
    """Tap every op's output in place (FULL_TENSOR: the value itself, appended to the program's outputs; taps
    survive partitioning, so a delegate returns them too). The specs go to the step's details.

    In a statically quantized program an op's output goes into its quantize node (through a fused activation), and a
    tap anywhere inside breaks XNNPACK's dq → op → q pattern (measured, executorch 1.4.1: the weight's
    dequantize_per_channel then stays outside the delegate and has no portable kernel). There only the quantize
    nodes are tapped — the int8
    value the next op reads, with its scale and zero point, under the name of the op it quantizes. Quantize,
    dequantize and qparams ops themselves are never tapped."""
    from executorch.devtools.intermediate_output_tap import FULL_TENSOR, tap_intermediate_outputs_

    static = any(_static_scale(n) is not None for n in program.graph.nodes)

    def selected(node: torch.fx.Node) -> bool:
        if node.op != "call_function" or not isinstance(node.meta.get("val"), torch.Tensor):
            return False
        if static:  # only the quantize nodes of ops' outputs: any other tap splits a fused dq → op → (act) → q
            return _static_scale(node) is not None and node.args[0].op == "call_function"
        name = str(node.target)
        return "quantize" not in name and "choose_qparams" not in name

    scales = {n.name: (n.args[0].name, _static_scale(n)) for n in program.graph.nodes if _static_scale(n)}
    users = len(program.graph_signature.user_outputs)
    _, specs = tap_intermediate_outputs_(program, rules=[(selected, FULL_TENSOR)], error_on_empty=False)
    taps = []
    for s in specs:
        source, qparams = scales.get(s.node_name, (s.node_name, None))
        taps.append({"node_name": source, "op_target": s.op_target, "output_index": s.output_index,
                     "module_path": s.module_path, "module_class": s.module_class,
                     **({"scale": qparams[0], "zero_point": qparams[1]} if qparams else {})})
    report.details["taps"] = taps
    report.details["user_outputs"] = users
    return taps


class TorchToExecuTorch(Converter):
    keeps_float = True  # the PT2E quantizer's node filter

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        program = load_exported_program(step.path)
        args = example_inputs(step)
        if step.quantize is QuantMode.FP16:
            if step.options.keep_float:
                raise UsageError(f"{option('keep_float')}: fp16 on ExecuTorch casts the whole program",
                                 hint="keep layers float with dynamic, int8 or int4 here, or fp16 on ONNX")
            try:
                program = _half(program, args)
            except Exception as exc:
                raise _fp16_refused(step, exc) from None
            report.details["precision"] = "float16 weights and compute (XNNPACK fp16 kernels), float32 I/O"
        elif step.quantize is not QuantMode.NONE:
            program = _quantized(program, step, args, report)
            report.details["quantizer"] = "PT2E XNNPACKQuantizer " + {
                QuantMode.DYNAMIC: "dynamic",
                QuantMode.INT4: "dynamic, int4 weights of Linear layers (per-channel, [-8, 7]; convolutions float)",
            }.get(step.quantize, "static per-channel")
        patched = explicit_pool_strides(program)
        if patched:
            report.details["max_pool2d_strides_made_explicit"] = patched
        total = sum(1 for n in program.graph.nodes if n.op == "call_function")
        taps = _tapped(program, report) if step.options.debug_taps else None
        try:
            lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            report.details["backend"] = "XNNPACK"
        except Exception as exc:
            report.warnings.append(
                f"XNNPACK partitioning failed ({type(exc).__name__}: {first_line(exc)}); "
                "the whole program runs on portable kernels"
            )
            try:
                lowered = to_edge_transform_and_lower(program)
            except Exception as fallback:
                if step.quantize is QuantMode.FP16:
                    raise _fp16_refused(step, fallback) from None
                raise
            report.details["backend"] = "portable (fallback)"
        if taps is not None:
            from executorch.devtools.intermediate_output_tap import strip_taps_

            strip_taps_(lowered)
        graph = lowered.exported_program().graph
        remaining = [n for n in graph.nodes if n.op == "call_function" and "getitem" not in str(n.target)]
        portable = sum(1 for n in remaining if DELEGATE_CALL not in str(n.target))
        report.details["delegated_share"] = round(1 - portable / total, 3) if total else 0.0
        report.details["portable_nodes"] = portable
        out.write_bytes(lowered.to_executorch().buffer)
