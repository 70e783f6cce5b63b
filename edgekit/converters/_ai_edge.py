"""What the converters that write TFLite share of ai-edge-quantizer: its recipes by name, a weight-only pass
over a float .tflite (the int4 mode for every TFLite source, fp16 for torch), and the graph's operators as
``--keep-float`` addresses them (each operator's scope, the names of its constant inputs), with the recipe
rules that leave chosen operators in float."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FP16_RECIPE = "weight_only_wf16_afp32"  # no ready-made recipe: built below, as the recipe manager documents
INT4_RECIPE = "dynamic_wi4_afp32"  # channelwise int4 weights, activations quantized to int8 at run time


def recipe(name: str) -> Any:
    """ai-edge-quantizer's recipe of that name; ``weight_only_wf16_afp32`` is its weight-only config with
    16-bit FLOAT_CASTING (fp16 weights, float compute)."""
    from ai_edge_quantizer import recipe as recipes
    from ai_edge_quantizer import recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    if name != FP16_RECIPE:
        return getattr(recipes, name)()
    manager = recipe_manager.RecipeManager()
    manager.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                   algorithm_key=AlgorithmName.FLOAT_CASTING)
    return manager.get_quantization_recipe()


def quantize_weights(float_model: Path, name: str, keep: Iterable[TFLiteOp] = ()) -> bytes:
    """``float_model`` quantized by a recipe that needs no calibration (weight-only or dynamic), the
    operators in ``keep`` left in float."""
    from ai_edge_quantizer import quantizer

    engine = quantizer.Quantizer(str(float_model), recipe(name))
    assert not engine.need_calibration, name
    leave_float(engine, keep)
    return bytes(engine.quantize(None, enable_progress_report=False).quantized_model)


@dataclass(frozen=True)
class TFLiteOp:
    """One operator of a .tflite graph: its builtin name, its scope as ai-edge-quantizer's recipes match it
    (its output tensor names joined by ``;``), and the names of its outputs and of its constant inputs
    (weights, biases: converters name those after the layer they belong to, where an output may carry a
    fused location or the signature's output name)."""

    subgraph: int
    index: int
    kind: str  # FULLY_CONNECTED, CONV_2D, ...
    scope: str
    outputs: tuple[str, ...]
    constants: tuple[str, ...]


def _builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def tflite_ops(model: Path | bytes) -> list[TFLiteOp]:
    """Every operator of every subgraph, in the file's order."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    flat = tfl.read_model(model if isinstance(model, Path) else bytearray(model))
    names = _builtin_names()
    ops = []
    def constant(tensor: Any) -> bool:
        buffer = flat.buffers[tensor.buffer] if tensor.buffer else None
        return buffer is not None and (buffer.data is not None or bool(getattr(buffer, "offset", 0)))

    for s, subgraph in enumerate(flat.subgraphs):
        tensors = subgraph.tensors
        for i, op in enumerate(subgraph.operators or []):
            code = flat.operatorCodes[op.opcodeIndex]
            kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            ops.append(TFLiteOp(
                s, i, kind, tfl.get_op_scope(op, tensors),
                tuple(tfl.get_tensor_name(tensors[t]) for t in op.outputs if t >= 0),
                tuple(tfl.get_tensor_name(tensors[t]) for t in op.inputs if t >= 0 and constant(tensors[t]))))
    return ops


def leave_float(engine: Any, ops: Iterable[TFLiteOp]) -> None:
    """Recipe rules that leave each operator in float: its exact scope, set to ``NO_QUANTIZE`` for every
    operation (the latest rule matching a scope wins, so these override the recipe's ``.*``)."""
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    for scope in dict.fromkeys(op.scope for op in ops):
        engine.update_quantization_recipe(regex=f"^{re.escape(scope)}$", operation_name=TFLOperationName.ALL_SUPPORTED,
                                          algorithm_key=AlgorithmName.NO_QUANTIZE)
