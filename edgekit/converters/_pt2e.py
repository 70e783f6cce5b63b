"""Helpers for PT2E (torch.export → prepare_pt2e → convert_pt2e) graphs that both PT2E routes share: torch →
ExecuTorch (XNNPACKQuantizer) and torch → TFLite through litert-torch's PT2EQuantizer. Imports no ExecuTorch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from edgekit.converters.base import StepInput, StepReport
from edgekit.toolkit.contract.layers import Layer, select, units

INTEGER_ARITHMETIC = {"add", "sub", "rsub", "mul", "div", "floor_divide", "remainder"}


def integer_scalars_as_constants(module: torch.fx.GraphModule) -> int:
    """Give integer arithmetic's scalar operands a constant of the tensor's own dtype.

    PT2E's prepare turns every scalar operand into a float32 tensor constant, so ``arange(n) + 1`` (the
    position ids of a transformer) becomes float and the index op it feeds fails ("tensors used as
    indices must be long, int, byte or bool tensors"). A constant made here first keeps it integer.
    """
    made = 0
    for node in list(module.graph.nodes):
        value = node.meta.get("val")
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload) \
                or not isinstance(value, torch.Tensor) or value.dtype.is_floating_point or value.dtype == torch.bool \
                or node.target.__name__.split(".")[0] not in INTEGER_ARITHMETIC:
            continue
        args = list(node.args)
        for index, arg in enumerate(args[1:], start=1):
            if isinstance(arg, int) and not isinstance(arg, bool):
                name = f"_edgekit_integer_operand_{made}"
                module.register_buffer(name, torch.tensor(arg, dtype=value.dtype))
                with module.graph.inserting_before(node):
                    args[index] = module.graph.get_attr(name)
                args[index].meta["val"] = torch.tensor(arg, dtype=value.dtype)
                made += 1
        node.args = tuple(args)
    if made:
        module.recompile()
    return made


def node_layer(node: torch.fx.Node) -> Layer | None:
    """A graph node as ``--keep-float`` sees it: its innermost module path (the node's name at the top level),
    the op and module classes around it, and its enclosing module paths."""
    if node.op != "call_function":
        return None
    stack = [(path, kind) for path, kind in (node.meta.get("nn_module_stack") or {}).values() if path]
    classes = [(kind if isinstance(kind, str) else kind.__qualname__).rsplit(".", 1)[-1] for _, kind in stack]
    op = getattr(node.target, "__name__", str(node.target)).split(".")[0]
    name = stack[-1][0] if stack else node.name
    return Layer(name, (op, *classes), tuple(path for path, _ in stack))


def keep_float_filter(module: torch.fx.GraphModule, step: StepInput,
                      report: StepReport) -> Callable[[torch.fx.Node], bool] | None:
    """The PT2E quantizer's node filter leaving ``--keep-float``'s layers unannotated (its ``set_module_name``
    takes no "no quantization" config), or None when nothing is kept."""
    patterns = step.options.keep_float
    layers = {node.name: layer for node in module.graph.nodes if (layer := node_layer(node)) is not None}
    if step.options.list_units:
        report.units = units(layers.values())
    if not patterns:
        return None
    chosen = select(patterns, list(layers.values()), origin=step.source_name)
    chosen_set = set(chosen)
    kept = {name for name, layer in layers.items() if layer in chosen_set}
    report.details["keep_float"] = {"patterns": list(patterns),
                                    "modules": list(dict.fromkeys(layer.name for layer in chosen))}
    return lambda node: node.name not in kept


def calibrate(prepared: torch.fx.GraphModule, step: StepInput, nhwc: Sequence[int] = ()) -> None:
    """Run ``prepare_pt2e``'s observers over the calibration feeds, in the contract's input order (the inputs at
    ``nhwc`` permuted channels-last, as the module wrapped for ``--nhwc`` takes them)."""
    assert step.calibration is not None
    for feed in step.calibration.feeds:
        values = [torch.from_numpy(np.ascontiguousarray(feed[name])) for name in step.io_spec.input_names]
        prepared(*(v.permute(0, 2, 3, 1).contiguous() if i in nhwc else v for i, v in enumerate(values)))
