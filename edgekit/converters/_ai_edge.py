"""What the converters that write TFLite share of ai-edge-quantizer: its recipes by name, and a weight-only
pass over a float .tflite (the int4 mode for every TFLite source, fp16 for torch)."""

from __future__ import annotations

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


def quantize_weights(float_model: Path, name: str) -> bytes:
    """``float_model`` quantized by a recipe that needs no calibration (weight-only or dynamic)."""
    from ai_edge_quantizer import quantizer

    engine = quantizer.Quantizer(str(float_model), recipe(name))
    assert not engine.need_calibration, name
    return bytes(engine.quantize(None, enable_progress_report=False).quantized_model)
