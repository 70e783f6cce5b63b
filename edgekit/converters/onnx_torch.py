"""ONNX → torch.export program (.pt2): edgekit's own ONNX importer, the first hop of ONNX → TFLite and
ONNX → ExecuTorch (then converted and quantized by the torch routes, with parity against the ONNX original).

Why an importer of its own (the decision is in the README): onnx2torch imports torchvision, which does not
import beside the pinned torch; onnx2tf's releases pin an older TensorFlow, numpy and onnx than edgekit's
stack. The importer reads the graph as data — an ONNX file carries no code — and builds one
``torch.nn.Module`` whose ``forward`` runs the nodes in graph order with torch operators, which
``torch.export`` then traces into an ordinary ExportedProgram.

Shapes are fixed at the contract's shapes (a symbolic batch is exported at 1): everything that depends only on
initializers, constants and tensor shapes — ``Shape → Gather → Concat → Reshape`` chains, weight transposes,
``Constant`` nodes — is folded once, eagerly, when the module is built, so the traced program holds only the
data path. ``MatMul`` by a constant matrix (with its bias ``Add``) becomes ``linear``, as the quantizers and
XNNPACK expect. An operator the importer does not translate (and any quantized or custom-domain op) is refused
in one line naming each one and the ops it does translate.
"""

from __future__ import annotations

import functools
import keyword
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgekit.converters.base import Converter, StepInput, StepReport
from edgekit.converters.torch_onnx import example_inputs
from edgekit.toolkit.contract.errors import EdgekitError, InvalidInputError, option
from edgekit.toolkit.safety.policy.allocations import allocation_error, allocation_failure, check_allocations, oversized

Values = list[torch.Tensor | None]
OpFn = Callable[["_Context", Any, Values], Sequence[torch.Tensor] | torch.Tensor]
OPS: dict[str, OpFn] = {}
# Ops that only ever produce shape-derived values: folded at build time whatever feeds them.
SHAPE_OPS = frozenset({"Shape", "Size"})
QUANTIZED = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                       "MatMulInteger", "DynamicQuantizeLinear", "MatMulNBits", "QLinearAdd", "QLinearMul"})


def op(*names: str) -> Callable[[OpFn], OpFn]:
    def register(fn: OpFn) -> OpFn:
        for name in names:
            OPS[name] = fn
        return fn
    return register


class _Context:
    """What an op implementation sees: the node's attributes, the model's opset, and static (folded) values
    as numpy arrays for arguments that must be Python numbers (shapes, axes, pads)."""

    def __init__(self, opset: int, static: dict[str, np.ndarray]) -> None:
        self.opset = opset
        self.static = static
        self.node: Any = None

    def attr(self, name: str, default: Any = None) -> Any:
        import onnx

        for attribute in self.node.attribute:
            if attribute.name == name:
                value = onnx.helper.get_attribute_value(attribute)
                if isinstance(value, bytes):
                    return value.decode()
                if isinstance(value, list) and value and isinstance(value[0], bytes):
                    return [v.decode() for v in value]
                if isinstance(value, onnx.TensorProto):
                    return onnx.numpy_helper.to_array(value)
                return value
        return default

    def ints(self, index: int, default: list[int] | None = None) -> list[int] | None:
        """Input ``index`` as Python ints: it must be known when the module is built."""
        if index >= len(self.node.input) or not self.node.input[index]:
            return default
        name = self.node.input[index]
        if name not in self.static:
            raise InvalidInputError(
                f"{self.node.op_type} node {self.node.name or name!r}: its input {name!r} is computed from the "
                "model's data, and edgekit's ONNX importer needs it fixed (a shape, axes or pads)",
                hint="export the ONNX model with static shapes, or convert the model it came from")
        return [int(v) for v in np.asarray(self.static[name]).reshape(-1)]


def _np_to_torch(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, copy=True, order="C"))  # (ascontiguousarray makes 0-d arrays 1-d)


def _torch_dtype(onnx_type: int) -> torch.dtype:
    import onnx

    np_type = onnx.helper.tensor_dtype_to_np_dtype(onnx_type)
    return torch.from_numpy(np.zeros((), dtype=np_type)).dtype


# --- elementwise ------------------------------------------------------------------------------------------

def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> OpFn:
    return lambda ctx, node, x: fn(x[0])


for _name, _fn in {"Identity": lambda t: t, "Neg": torch.neg, "Abs": torch.abs, "Sqrt": torch.sqrt,
                   "Exp": torch.exp, "Log": torch.log, "Reciprocal": torch.reciprocal, "Floor": torch.floor,
                   "Ceil": torch.ceil, "Round": torch.round, "Sin": torch.sin, "Cos": torch.cos, "Erf": torch.erf,
                   "Tanh": torch.tanh, "Sigmoid": torch.sigmoid, "Relu": F.relu, "Softplus": F.softplus,
                   "Softsign": F.softsign, "HardSwish": F.hardswish, "Not": torch.logical_not,
                   "Sign": torch.sign, "Mish": F.mish}.items():
    OPS[_name] = _unary(_fn)


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> OpFn:
    return lambda ctx, node, x: fn(x[0], x[1])


for _name, _fn in {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Pow": torch.pow,
                   "Equal": torch.eq, "Less": torch.lt, "Greater": torch.gt, "LessOrEqual": torch.le,
                   "GreaterOrEqual": torch.ge, "And": torch.logical_and, "Or": torch.logical_or,
                   "Xor": torch.logical_xor, "MatMul": torch.matmul, "PRelu": lambda a, s: torch.where(a >= 0, a, a * s)
                   }.items():
    OPS[_name] = _binary(_fn)


@op("Div")
def _div(ctx, node, x):
    a, b = x
    if a.dtype.is_floating_point or b.dtype.is_floating_point:
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


@op("Mod")
def _mod(ctx, node, x):
    return torch.fmod(x[0], x[1]) if ctx.attr("fmod", 0) else torch.remainder(x[0], x[1])


@op("Max", "Min", "Sum", "Mean")
def _variadic(ctx, node, x):
    fn = {"Max": torch.maximum, "Min": torch.minimum, "Sum": torch.add, "Mean": torch.add}[node.op_type]
    result = x[0]
    for other in x[1:]:
        result = fn(result, other)
    return result / len(x) if node.op_type == "Mean" else result


@op("Where")
def _where(ctx, node, x):
    return torch.where(x[0], x[1], x[2])


@op("LeakyRelu")
def _leaky(ctx, node, x):
    return F.leaky_relu(x[0], ctx.attr("alpha", 0.01))


@op("Elu")
def _elu(ctx, node, x):
    return F.elu(x[0], ctx.attr("alpha", 1.0))


@op("Selu")
def _selu(ctx, node, x):
    alpha, gamma = ctx.attr("alpha", 1.67326319217681884765625), ctx.attr("gamma", 1.05070102214813232421875)
    return gamma * torch.where(x[0] > 0, x[0], alpha * (torch.exp(x[0]) - 1))


@op("HardSigmoid")
def _hard_sigmoid(ctx, node, x):
    return torch.clamp(ctx.attr("alpha", 0.2) * x[0] + ctx.attr("beta", 0.5), 0, 1)


@op("Gelu")
def _gelu(ctx, node, x):
    return F.gelu(x[0], approximate=ctx.attr("approximate", "none"))


@op("Clip")
def _clip(ctx, node, x):
    if ctx.opset < 11:
        return torch.clamp(x[0], ctx.attr("min", -math.inf), ctx.attr("max", math.inf))
    low = x[1] if len(x) > 1 and x[1] is not None else None
    high = x[2] if len(x) > 2 and x[2] is not None else None
    return torch.clamp(x[0], low, high)


@op("Cast")
def _cast(ctx, node, x):
    return x[0].to(_torch_dtype(ctx.attr("to")))


@op("CastLike")
def _cast_like(ctx, node, x):
    return x[0].to(x[1].dtype)


@op("IsNaN")
def _isnan(ctx, node, x):
    return torch.isnan(x[0])


@op("IsInf")
def _isinf(ctx, node, x):
    positive, negative = ctx.attr("detect_positive", 1), ctx.attr("detect_negative", 1)
    if positive and negative:
        return torch.isinf(x[0])
    return torch.isposinf(x[0]) if positive else torch.isneginf(x[0])


# --- softmax, normalization ---------------------------------------------------------------------------------

def _softmax_like(fn: Callable[..., torch.Tensor]) -> OpFn:
    def impl(ctx, node, x):
        data = x[0]
        if ctx.opset >= 13:
            return fn(data, dim=ctx.attr("axis", -1))
        axis = ctx.attr("axis", 1) % data.dim()  # opset < 13: the input coerced to 2-D at axis
        shape = data.shape
        return fn(data.reshape(math.prod(shape[:axis]), -1), dim=-1).reshape(shape)
    return impl


OPS["Softmax"] = _softmax_like(torch.softmax)
OPS["LogSoftmax"] = _softmax_like(torch.log_softmax)


@op("BatchNormalization")
def _batch_norm(ctx, node, x):
    data, scale, bias, mean, var = x[:5]
    return F.batch_norm(data, mean, var, scale, bias, training=False, eps=ctx.attr("epsilon", 1e-5))


@op("InstanceNormalization")
def _instance_norm(ctx, node, x):
    return F.instance_norm(x[0], weight=x[1], bias=x[2], eps=ctx.attr("epsilon", 1e-5))


@op("LayerNormalization")
def _layer_norm(ctx, node, x):
    data = x[0]
    axis = ctx.attr("axis", -1) % data.dim()
    scale = x[1]
    bias = x[2] if len(x) > 2 else None
    return F.layer_norm(data, tuple(data.shape[axis:]), scale, bias, eps=ctx.attr("epsilon", 1e-5))


# --- linear algebra, convolution, pooling -----------------------------------------------------------------

@op("Gemm")
def _gemm(ctx, node, x):
    a, b = x[0], x[1]
    c = x[2] if len(x) > 2 else None
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    if ctx.attr("transA", 0):
        a = a.t()
    if alpha == 1.0 and beta == 1.0:
        weight = b if ctx.attr("transB", 0) else b.t()
        return F.linear(a, weight, c)
    result = alpha * torch.matmul(a, b.t() if ctx.attr("transB", 0) else b)
    return result if c is None else result + beta * c


def _pads(ctx: _Context, spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
          dilations: Sequence[int]) -> list[int]:
    """ONNX pads ``[b1, b2, …, e1, e2, …]``, ``auto_pad`` resolved at the (static) input size."""
    auto = ctx.attr("auto_pad", "NOTSET")
    rank = len(kernel)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            begins.append(small if auto == "SAME_UPPER" else large)
            ends.append(large if auto == "SAME_UPPER" else small)
        return begins + ends
    if auto == "VALID":
        return [0] * (2 * rank)
    return list(ctx.attr("pads", [0] * (2 * rank)))


def _apply_pads(data: torch.Tensor, pads: list[int], value: float) -> tuple[torch.Tensor, list[int]]:
    """Symmetric pads go to the operator; asymmetric ones are applied first with F.pad."""
    rank = len(pads) // 2
    begins, ends = pads[:rank], pads[rank:]
    if begins == ends:
        return data, begins
    return F.pad(data, _torch_pads(begins, ends), value=value), [0] * rank


def _torch_pads(begins: Sequence[int], ends: Sequence[int]) -> list[int]:
    """ONNX's per-axis begins/ends → F.pad's (last axis first) [b, e, b, e, …]."""
    flat: list[int] = []
    for b, e in zip(reversed(begins), reversed(ends), strict=True):
        flat += [b, e]
    return flat


def _conv_geometry(ctx: _Context, data: torch.Tensor, weight: torch.Tensor
                   ) -> tuple[int, list[int], list[int], list[int], list[int]]:
    """A Conv's rank, kernel, strides, dilations and resolved pads."""
    rank = weight.dim() - 2
    kernel = list(ctx.attr("kernel_shape", weight.shape[2:]))
    strides = list(ctx.attr("strides", [1] * rank))
    dilations = list(ctx.attr("dilations", [1] * rank))
    return rank, kernel, strides, dilations, _pads(ctx, data.shape[2:], kernel, strides, dilations)


@op("Conv")
def _conv(ctx, node, x):
    data, weight = x[0], x[1]
    bias = x[2] if len(x) > 2 else None
    rank, _, strides, dilations, pads = _conv_geometry(ctx, data, weight)
    data, padding = _apply_pads(data, pads, 0.0)
    conv = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
    return conv(data, weight, bias, stride=strides, padding=padding, dilation=dilations, groups=ctx.attr("group", 1))


@op("ConvTranspose")
def _conv_transpose(ctx, node, x):
    data, weight = x[0], x[1]
    bias = x[2] if len(x) > 2 else None
    rank = weight.dim() - 2
    strides = list(ctx.attr("strides", [1] * rank))
    dilations = list(ctx.attr("dilations", [1] * rank))
    if ctx.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or ctx.attr("output_shape") is not None:
        raise InvalidInputError(f"ConvTranspose node {node.name!r}: auto_pad/output_shape are not supported by "
                                "edgekit's ONNX importer", hint="export with explicit pads")
    pads = list(ctx.attr("pads", [0] * (2 * rank)))
    if pads[:rank] != pads[rank:]:
        raise InvalidInputError(f"ConvTranspose node {node.name!r}: asymmetric pads {pads} are not supported by "
                                "edgekit's ONNX importer", hint="export with symmetric pads")
    conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[rank - 1]
    return conv(data, weight, bias, stride=strides, padding=pads[:rank],
                output_padding=list(ctx.attr("output_padding", [0] * rank)), groups=ctx.attr("group", 1),
                dilation=dilations)


@op("MaxPool", "AveragePool", "LpPool")
def _pool(ctx, node, x):
    if node.op_type == "LpPool" or len(node.output) > 1 and node.output[1]:
        raise InvalidInputError(f"{node.op_type} node {node.name!r} (with indices) is not supported by "
                                "edgekit's ONNX importer", hint="export MaxPool without its indices output")
    data = x[0]
    kernel = list(ctx.attr("kernel_shape"))
    rank = len(kernel)
    strides = list(ctx.attr("strides", [1] * rank))  # explicit always: XNNPACK needs the stride
    dilations = list(ctx.attr("dilations", [1] * rank))
    ceil = bool(ctx.attr("ceil_mode", 0))
    maximum = node.op_type == "MaxPool"
    pads = _pads(ctx, data.shape[2:], kernel, strides, dilations)
    if not maximum and pads[:rank] != pads[rank:] and not ctx.attr("count_include_pad", 0):
        raise InvalidInputError(f"AveragePool node {node.name!r}: asymmetric pads that exclude the padding from "
                                "the average are not supported by edgekit's ONNX importer",
                                hint="export with symmetric pads")
    data, padding = _apply_pads(data, pads, -math.inf if maximum else 0.0)
    if maximum:
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[rank - 1]
        return pool(data, kernel, strides, padding, dilations, ceil_mode=ceil)
    if any(d != 1 for d in dilations):
        raise InvalidInputError(f"AveragePool node {node.name!r}: dilations are not supported by edgekit's ONNX "
                                "importer", hint="export without dilated average pooling")
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[rank - 1]
    return pool(data, kernel, strides, padding, ceil_mode=ceil,
                count_include_pad=bool(ctx.attr("count_include_pad", 0)))


@op("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx, node, x):
    dims = tuple(range(2, x[0].dim()))
    if node.op_type == "GlobalAveragePool":
        return x[0].mean(dim=dims, keepdim=True)
    return x[0].amax(dim=dims, keepdim=True)


# --- shape manipulation -------------------------------------------------------------------------------------

@op("Reshape")
def _reshape(ctx, node, x):
    shape = ctx.ints(1)
    if not ctx.attr("allowzero", 0):
        shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x[0].reshape(shape)


@op("Flatten")
def _flatten(ctx, node, x):
    axis = ctx.attr("axis", 1)
    axis = axis + x[0].dim() if axis < 0 else axis  # axis may equal the rank: (N, 1)
    return x[0].reshape(math.prod(x[0].shape[:axis]), -1)


@op("Transpose")
def _transpose(ctx, node, x):
    perm = ctx.attr("perm") or list(reversed(range(x[0].dim())))
    return x[0].permute(*perm)


def _axes(ctx: _Context, x: Values, attr_until: int) -> list[int] | None:
    return list(ctx.attr("axes")) if ctx.opset < attr_until and ctx.attr("axes") is not None else (
        ctx.ints(1) if ctx.opset >= attr_until else None)


@op("Squeeze")
def _squeeze(ctx, node, x):
    axes = _axes(ctx, x, 13)
    if axes is None:
        return torch.squeeze(x[0])
    return torch.squeeze(x[0], dim=tuple(a % x[0].dim() for a in axes))


@op("Unsqueeze")
def _unsqueeze(ctx, node, x):
    result = x[0]
    axes = _axes(ctx, x, 13)
    rank = result.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        result = result.unsqueeze(axis)
    return result


@op("Concat")
def _concat(ctx, node, x):
    return torch.cat([t for t in x if t is not None], dim=ctx.attr("axis"))


@op("Split")
def _split(ctx, node, x):
    axis = ctx.attr("axis", 0)
    sizes = ctx.attr("split") if ctx.opset < 13 else ctx.ints(1)
    if sizes is None:
        count = ctx.attr("num_outputs", len(node.output))
        size = x[0].shape[axis]
        step = math.ceil(size / count)
        sizes = [min(step, size - i * step) for i in range(count)]
    return torch.split(x[0], list(sizes), dim=axis)


@op("Slice")
def _slice(ctx, node, x):
    data = x[0]
    if ctx.opset < 10:
        starts, ends = list(ctx.attr("starts")), list(ctx.attr("ends"))
        axes, steps = list(ctx.attr("axes", range(len(starts)))), [1] * len(starts)
    else:
        starts, ends = ctx.ints(1), ctx.ints(2)
        axes = ctx.ints(3, list(range(len(starts))))
        steps = ctx.ints(4, [1] * len(starts))
    index: list[slice] = [slice(None)] * data.dim()
    flips = []
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= data.dim()
        size = data.shape[axis]
        if step > 0:
            start = max(0, min(size, start + size if start < 0 else start))
            end = max(0, min(size, end + size if end < 0 else end))
            index[axis] = slice(start, max(start, end), step)
        else:  # a negative step: slice the reversed range, then flip
            start = max(-1, min(size - 1, start + size if start < 0 else start))
            end = max(-1, min(size - 1, end + size if end < 0 else end))
            picked = list(range(start, end, step))
            index[axis] = slice(picked[-1], picked[0] + 1, -step) if picked else slice(0, 0)
            flips.append(axis)
    result = data[tuple(index)]
    return torch.flip(result, flips) if flips else result


@op("Gather")
def _gather(ctx, node, x):
    data, indices = x
    axis = ctx.attr("axis", 0) % data.dim()
    indices = torch.where(indices < 0, indices + data.shape[axis], indices)
    if indices.dim() == 0:
        return data.index_select(axis, indices.reshape(1).long()).squeeze(axis)
    flat = data.index_select(axis, indices.reshape(-1).long())
    return flat.reshape(*data.shape[:axis], *indices.shape, *data.shape[axis + 1:])


@op("GatherND")
def _gather_nd(ctx, node, x):
    data, indices = x
    batch = ctx.attr("batch_dims", 0)
    if batch:
        raise InvalidInputError(f"GatherND node {node.name!r}: batch_dims={batch} is not supported by edgekit's "
                                "ONNX importer", hint="export with batch_dims=0")
    depth = indices.shape[-1]
    indices = indices.long()
    picks = tuple(torch.where(indices[..., i] < 0, indices[..., i] + data.shape[i], indices[..., i])
                  for i in range(depth))
    return data[picks]


@op("GatherElements")
def _gather_elements(ctx, node, x):
    axis = ctx.attr("axis", 0) % x[0].dim()
    indices = torch.where(x[1] < 0, x[1] + x[0].shape[axis], x[1])
    return torch.gather(x[0], axis, indices.long())


@op("Expand")
def _expand(ctx, node, x):
    shape = ctx.ints(1)
    target = torch.broadcast_shapes(tuple(x[0].shape), tuple(shape))
    return x[0].expand(target)


@op("Tile")
def _tile(ctx, node, x):
    return x[0].repeat(*ctx.ints(1))


@op("Pad")
def _pad(ctx, node, x):
    data = x[0]
    pads = list(ctx.attr("pads")) if ctx.opset < 11 else ctx.ints(1)
    value = ctx.attr("value", 0.0) if ctx.opset < 11 else (
        float(ctx.static[node.input[2]]) if len(node.input) > 2 and node.input[2] else 0.0)
    axes = ctx.ints(3) if ctx.opset >= 18 and len(node.input) > 3 else list(range(data.dim()))
    axes = [a % data.dim() for a in axes]
    count = len(axes)
    begins, ends = pads[:count], pads[count:]
    flat: list[int] = []
    for axis in reversed(range(data.dim())):
        if axis in axes:
            i = axes.index(axis)
            flat += [begins[i], ends[i]]
        else:
            flat += [0, 0]
    while flat[-2:] == [0, 0] and len(flat) > 2:
        flat = flat[:-2]
    mode = ctx.attr("mode", "constant")
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}[mode]
    return F.pad(data, flat, mode=torch_mode, value=value) if mode == "constant" else F.pad(data, flat, mode=torch_mode)


@op("Shape")
def _shape(ctx, node, x):
    dims = list(x[0].shape)
    start, end = ctx.attr("start", 0), ctx.attr("end", len(dims))
    return torch.tensor(dims[start:end], dtype=torch.int64)


@op("Size")
def _size(ctx, node, x):
    return torch.tensor(x[0].numel(), dtype=torch.int64)


@op("Constant")
def _constant(ctx, node, x):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        value = ctx.attr(key)
        if value is not None:
            if isinstance(value, np.ndarray):
                return _np_to_torch(value)
            dtype = np.float32 if "float" in key else np.int64
            return _np_to_torch(np.asarray(value, dtype=dtype))
    raise InvalidInputError(f"Constant node {node.name!r}: only tensor and numeric values are supported")


@op("ConstantOfShape")
def _constant_of_shape(ctx, node, x):
    value = ctx.attr("value")
    value = np.zeros(1, np.float32) if value is None else value
    return torch.full(ctx.ints(0), value.reshape(-1)[0].item(), dtype=_np_to_torch(value).dtype)


@op("Range")
def _range(ctx, node, x):
    start, limit, delta = (x[i].item() for i in range(3))
    return torch.arange(start, limit, delta, dtype=x[0].dtype)


@op("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare")
def _reduce(ctx, node, x):
    data = x[0]
    axes_from_input = ctx.opset >= 18 or (node.op_type == "ReduceSum" and ctx.opset >= 13)
    axes = (ctx.ints(1) if axes_from_input else ctx.attr("axes"))
    keep = bool(ctx.attr("keepdims", 1))
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return data
        axes = list(range(data.dim()))
    dims = tuple(a % data.dim() for a in axes)
    kind = node.op_type
    if kind == "ReduceMean":
        return data.mean(dim=dims, keepdim=keep)
    if kind == "ReduceSum":
        return data.sum(dim=dims, keepdim=keep)
    if kind == "ReduceSumSquare":
        return (data * data).sum(dim=dims, keepdim=keep)
    if kind == "ReduceL2":
        return torch.sqrt((data * data).sum(dim=dims, keepdim=keep))
    if kind == "ReduceMax":
        return data.amax(dim=dims, keepdim=keep)
    if kind == "ReduceMin":
        return data.amin(dim=dims, keepdim=keep)
    result = data
    for dim in sorted(dims, reverse=True):
        result = result.prod(dim=dim, keepdim=keep)
    return result


@op("ArgMax", "ArgMin")
def _arg(ctx, node, x):
    if ctx.attr("select_last_index", 0):
        raise InvalidInputError(f"{node.op_type} node {node.name!r}: select_last_index is not supported by "
                                "edgekit's ONNX importer")
    fn = torch.argmax if node.op_type == "ArgMax" else torch.argmin
    return fn(x[0], dim=ctx.attr("axis", 0), keepdim=bool(ctx.attr("keepdims", 1)))


@op("Einsum")
def _einsum(ctx, node, x):
    return torch.einsum(ctx.attr("equation"), *x)


@op("CumSum")
def _cumsum(ctx, node, x):
    if ctx.attr("exclusive", 0) or ctx.attr("reverse", 0):
        raise InvalidInputError(f"CumSum node {node.name!r}: exclusive/reverse are not supported by edgekit's "
                                "ONNX importer")
    return torch.cumsum(x[0], dim=ctx.ints(1)[0])


@op("Resize", "Upsample")
def _resize(ctx, node, x):
    data = x[0]
    mode = ctx.attr("mode", "nearest")
    transform = ctx.attr("coordinate_transformation_mode", "half_pixel" if node.op_type == "Resize" else "asymmetric")
    target = _resize_target(ctx, node, data)
    if mode == "nearest" and transform == "asymmetric" and ctx.attr("nearest_mode", "round_prefer_floor") == "floor":
        return F.interpolate(data, size=target, mode="nearest")
    if mode in ("linear", "bilinear") and transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        return F.interpolate(data, size=target, mode="bilinear" if data.dim() == 4 else "linear",
                             align_corners=transform == "align_corners")
    if mode == "nearest" and transform == "asymmetric" and ctx.opset < 11:
        return F.interpolate(data, size=target, mode="nearest")
    raise InvalidInputError(
        f"{node.op_type} node {node.name!r}: mode={mode}, coordinate_transformation_mode={transform} is not "
        "supported by edgekit's ONNX importer",
        hint="it translates nearest/asymmetric/floor and linear with half_pixel or align_corners")


def _resize_target(ctx: _Context, node: Any, data: torch.Tensor) -> list[int]:
    """A Resize/Upsample's spatial output size, from its sizes or its scales."""
    if node.op_type == "Upsample":
        scales = list(ctx.attr("scales") or []) or [float(v) for v in ctx.static[node.input[1]].reshape(-1)]
        sizes = None
    else:
        scale_name = node.input[2] if len(node.input) > 2 else ""
        size_name = node.input[3] if len(node.input) > 3 else ""
        scales = [float(v) for v in ctx.static[scale_name].reshape(-1)] if scale_name in ctx.static else []
        sizes = ctx.ints(3) if size_name else None
    if sizes:
        return [int(s) for s in sizes[2:]]
    return [int(math.floor(n * s)) for n, s in zip(data.shape[2:], scales[2:], strict=True)]


# --- allocation bombs ---------------------------------------------------------------------------------------

def _planned(ctx: _Context, node: Any, args: Values) -> tuple[list[int], int] | None:
    """The shape and item size of the tensor an op sized by constants (``ConstantOfShape``, ``Tile``, ``Expand``,
    ``Range``, ``Pad``, ``Resize``) will allocate, computed before it does; None for other ops, or where the sizes
    cannot be read (the op then reports its own error)."""
    kind = node.op_type
    try:
        if kind == "ConstantOfShape":
            value = ctx.attr("value")
            return list(ctx.ints(0) or []), 4 if value is None else np.asarray(value).itemsize
        data = args[0] if args else None
        if data is None:
            return None
        shape, itemsize = list(data.shape), data.element_size()
        if kind == "Tile":
            return [d * r for d, r in zip(shape, ctx.ints(1) or [], strict=False)], itemsize
        if kind == "Expand":
            target = ctx.ints(1) or []
            rank = max(len(shape), len(target))
            ours, theirs = [1] * (rank - len(shape)) + shape, [1] * (rank - len(target)) + target
            return [t if o == 1 else o for o, t in zip(ours, theirs, strict=True)], itemsize
        if kind == "Range":
            start, limit, delta = (float(a.item()) for a in args[:3])
            return ([max(math.ceil((limit - start) / delta), 0)], itemsize) if delta else None
        if kind == "Pad":
            pads = list(ctx.attr("pads")) if ctx.opset < 11 else ctx.ints(1) or []
            axes = ctx.ints(3) if ctx.opset >= 18 and len(node.input) > 3 else list(range(len(shape)))
            axes = [a % len(shape) for a in axes or []]
            for i, axis in enumerate(axes):
                shape[axis] = max(shape[axis] + pads[i] + pads[i + len(axes)], 0)
            return shape, itemsize
        if kind in ("Resize", "Upsample"):
            return [*shape[:2], *_resize_target(ctx, node, data)], itemsize
    except InvalidInputError:
        raise
    except (ValueError, TypeError, IndexError, RuntimeError, KeyError, OverflowError, ZeroDivisionError):
        return None
    return None


# --- the module -------------------------------------------------------------------------------------------

GRAPH_PREFIX = "onnx_"  # a graph name that is an attribute of the module already, a keyword or no identifier


def _identifier(name: str, taken: set[str]) -> str:
    """The attribute an ONNX name is stored under. Two namespaces that cannot meet: the importer's own attributes
    all start with ``_``, graph names never do (stripped); a graph name that nn.Module or the importer's class
    already defines (``forward``, ``training``, ``to``, ``layers``, ``T_destination``…), a Python keyword or no
    identifier at all takes ``onnx_`` in front. The name stays a suffix of the attribute (``fc1``,
    ``onnx_forward``), which is how localize pairs a layer with its ONNX node (``…_<node name>``)."""
    base = re.sub(r"\W", "_", name).strip("_") or "value"
    base = f"c_{base}" if base[0].isdigit() else base
    if base in _reserved() or keyword.iskeyword(base) or not base.isidentifier():
        base = GRAPH_PREFIX + (base if base.isascii() else re.sub(r"[^0-9A-Za-z_]", "_", base))
    candidate, n = base, 1
    while candidate in taken or candidate in _reserved():
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate


@functools.cache
def _reserved() -> frozenset[str]:
    """Every public name an OnnxModule has before the graph's are added: its class's (nn.Module's methods, the
    importer's properties) and an nn.Module instance's (``training``)."""
    return frozenset(name for name in (*dir(OnnxModule), *vars(torch.nn.Module())) if not name.startswith("_"))


class OnnxModule(torch.nn.Module):
    """The data path of an ONNX graph as torch operators. Layers with constant weights become torch modules
    (``Gemm``/``MatMul`` by a constant → ``nn.Linear``, ``Conv`` → ``nn.ConvNd``) named after their ONNX nodes,
    so quantizers that select by module type or path see them; other folded values are parameters/buffers."""

    def __init__(self, model: Any, example: Sequence[torch.Tensor], origin: str) -> None:
        super().__init__()
        from onnx import numpy_helper

        graph = model.graph
        self._opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        _refuse_unsupported(graph, origin)
        initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self._inputs = [i.name for i in graph.input if i.name not in initializers]
        self._outputs = [o.name for o in graph.output]
        if len(example) != len(self._inputs):
            raise InvalidInputError(f"{origin}: the ONNX graph has {len(self._inputs)} input(s), the contract "
                                    f"{len(example)}")
        self._nodes = list(graph.node)
        self._origin = origin
        # Eager pass: every value at the example inputs, and which values depend on data at all.
        static: dict[str, np.ndarray] = dict(initializers)
        values: dict[str, torch.Tensor] = {name: _np_to_torch(a) for name, a in initializers.items()}
        values.update(zip(self._inputs, example, strict=True))
        taken: set[str] = set()
        # node index → (module attribute, data input, output names, F.pad before it or None)
        self._layers: dict[int, tuple[str, str, list[str], list[int] | None]] = {}
        self._dynamic: list[int] = []
        absorbed: set[int] = set()  # bias Adds folded into the Linear before them
        ctx = _Context(self._opset, static)
        consumers = _consumers(self._nodes)
        for index, node in enumerate(self._nodes):
            if index in absorbed:
                continue
            where = f"{node.op_type} node {node.name or node.output[0]!r}"
            try:
                self._build_node(index, ctx, values, consumers, taken, absorbed)
            except EdgekitError:
                raise
            except Exception as exc:
                if allocation_failure(exc):
                    raise allocation_error(origin, exc, where) from None
                raise
        self._register_constants(static, taken)
        self._folded = len(self._nodes) - len(self._dynamic) - len(absorbed)
        self._layer_counts = {kind: sum(1 for m in self.children() if type(m).__name__ == kind)
                              for kind in sorted({type(m).__name__ for m in self.children()})}

    @property
    def folded(self) -> int:
        """How many nodes were computed once, when the module was built."""
        return self._folded

    @property
    def layers(self) -> dict[str, int]:
        """The torch layers made from constant-weight nodes, by class (``{"Linear": 2}``)."""
        return self._layer_counts

    def _build_node(self, index: int, ctx: _Context, values: dict[str, torch.Tensor],
                    consumers: dict[str, list[int]], taken: set[str], absorbed: set[int]) -> None:
        """Run node ``index`` at the example inputs: fold it, make it a torch layer, or mark it as data path. An
        op that makes a tensor from constant sizes is measured before it allocates (an allocation bomb is exit 6
        naming the node, not the allocator's error), and every value after (``Expand`` makes views)."""
        node, static = self._nodes[index], ctx.static
        ctx.node = node
        where = f"{node.op_type} node {node.name or node.output[0]!r}"
        args = [values.get(name) if name else None for name in node.input]
        planned = _planned(ctx, node, args)
        if planned is not None and (refusal := oversized(self._origin, where, *planned)) is not None:
            raise refusal
        folded = node.op_type in SHAPE_OPS or all(not name or name in static for name in node.input)
        layer = None if folded else _layer(ctx, node, args, static, consumers, self._nodes, self._outputs)
        if layer is not None:
            module, pre_pad, bias_add = layer
            attr = _identifier(node.name or node.output[0], taken)
            self.add_module(attr, module)
            names = [self._nodes[bias_add].output[0]] if bias_add is not None else list(node.output)
            if bias_add is not None:
                absorbed.add(bias_add)
            self._layers[index] = (attr, node.input[0], names, pre_pad)
            data = F.pad(args[0], pre_pad) if pre_pad else args[0]
            _store(values, names, module(data))
            self._dynamic.append(index)
            return
        outputs = OPS[node.op_type](ctx, node, args)
        outputs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
        for name, value in zip(node.output, outputs, strict=False):
            if name:
                refusal = oversized(self._origin, where, value.shape, value.element_size())
                if refusal is not None:
                    raise refusal
                values[name] = value
        if folded:
            for name, value in zip(node.output, outputs, strict=False):
                if name:
                    static[name] = value.detach().numpy().copy()
        else:
            self._dynamic.append(index)

    def _register_constants(self, static: dict[str, np.ndarray], taken: set[str]) -> None:
        """What the traced forward reads: folded values consumed by a data-path node, as parameters/buffers; the
        rest of the folded values only as Python numbers (shapes, axes, pads, scales)."""
        self._attr: dict[str, str] = {}
        needed = [n for i in self._dynamic if i not in self._layers for n in self._nodes[i].input if n]
        for name in [*needed, *self._outputs]:
            if name in static and name not in self._attr:
                attr = _identifier(name, taken)
                tensor = _np_to_torch(static[name])
                if tensor.dtype.is_floating_point:
                    self.register_parameter(attr, torch.nn.Parameter(tensor, requires_grad=False))
                else:
                    self.register_buffer(attr, tensor)
                self._attr[name] = attr
        self._static = {name: a for name, a in static.items() if a.dtype.kind in "iub" or a.size <= 64}

    def forward(self, *inputs: torch.Tensor) -> Any:
        values: dict[str, torch.Tensor] = dict(zip(self._inputs, inputs, strict=True))
        for name, attr in self._attr.items():
            values[name] = getattr(self, attr)
        ctx = _Context(self._opset, self._static)
        for index in self._dynamic:
            node = self._nodes[index]
            if index in self._layers:
                attr, data, names, pre_pad = self._layers[index]
                x = values[data]
                _store(values, names, getattr(self, attr)(F.pad(x, pre_pad) if pre_pad else x))
                continue
            ctx.node = node
            args = [values.get(name) if name else None for name in node.input]
            outputs = OPS[node.op_type](ctx, node, args)
            outputs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
            for name, value in zip(node.output, outputs, strict=False):
                if name:
                    values[name] = value
        results = tuple(values[name] for name in self._outputs)
        return results[0] if len(results) == 1 else results


def _store(values: dict[str, torch.Tensor], names: list[str], result: Any) -> None:
    results = [result] if isinstance(result, torch.Tensor) else list(result)
    for name, value in zip(names, results, strict=False):
        if name:
            values[name] = value


def _layer(ctx: _Context, node: Any, args: Values, static: dict[str, np.ndarray], consumers: dict[str, list[int]],
           nodes: list[Any], outputs: list[str]) -> tuple[torch.nn.Module, list[int] | None, int | None] | None:
    """A torch layer for a node whose weights are constants: (module, F.pad before it, absorbed bias Add)."""
    weights = [name for name in node.input[1:] if name]
    if node.input[0] in static or not all(name in static for name in weights):
        return None
    if node.op_type == "Conv":
        return _conv_layer(ctx, node, args)
    if node.op_type in ("LSTM", "GRU"):
        return _Recurrent(ctx, node, args), None, None
    if node.op_type == "Gemm":
        weight = static[node.input[1]]
        if weight.ndim != 2 or weight.dtype.kind != "f" or ctx.attr("transA", 0) or args[0].dim() != 2:
            return None
        weight = weight if ctx.attr("transB", 0) else weight.T
        bias = static[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        if bias is not None and bias.size not in (1, weight.shape[0]):
            return None
        bias = None if bias is None else np.broadcast_to(bias.reshape(-1), (weight.shape[0],)) * ctx.attr("beta", 1.0)
        return _linear(weight * ctx.attr("alpha", 1.0), bias), None, None
    if node.op_type == "MatMul":
        weight = static[node.input[1]]
        if weight.ndim != 2 or weight.dtype.kind != "f" or args[0].dim() < 1:
            return None
        bias, absorbed = None, None
        users = consumers.get(node.output[0], [])
        if len(users) == 1 and node.output[0] not in outputs:
            add = nodes[users[0]]
            other = [n for n in add.input if n != node.output[0]]
            if (add.op_type == "Add" and len(other) == 1 and other[0] in static
                    and static[other[0]].shape in ((weight.shape[1],), (1, weight.shape[1]))):
                bias, absorbed = static[other[0]].reshape(-1), users[0]
        return _linear(weight.T, bias), None, absorbed
    return None


def _linear(weight: np.ndarray, bias: np.ndarray | None) -> torch.nn.Linear:
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=_np_to_torch(weight).dtype)
    with torch.no_grad():
        layer.weight.copy_(_np_to_torch(weight))
        if bias is not None:
            layer.bias.copy_(_np_to_torch(np.asarray(bias, dtype=weight.dtype)))
    return layer.requires_grad_(False)


class _Recurrent(torch.nn.Module):
    """ONNX ``LSTM``/``GRU`` (constant weights, default activations) as ``nn.LSTM``/``nn.GRU``: the gate blocks
    reordered (ONNX i,o,f,c → torch i,f,g,o; z,r,h → r,z,n), outputs laid out as ONNX's Y, Y_h[, Y_c]."""

    GATES = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}
    DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}

    def __init__(self, ctx: _Context, node: Any, args: Values) -> None:
        super().__init__()
        kind = node.op_type
        where = f"{kind} node {node.name!r}"
        direction = ctx.attr("direction", "forward")
        activations = list(ctx.attr("activations") or [])
        directions = 2 if direction == "bidirectional" else 1
        if activations and activations != self.DEFAULT_ACTIVATIONS[kind] * directions:
            raise InvalidInputError(f"{where}: activations {activations} are not supported by edgekit's ONNX "
                                    "importer", hint="it translates the default sigmoid/tanh cells")
        if ctx.attr("clip") is not None or ctx.attr("input_forget", 0):
            raise InvalidInputError(f"{where}: clip/input_forget are not supported by edgekit's ONNX importer")
        if kind == "GRU" and not ctx.attr("linear_before_reset", 0):
            raise InvalidInputError(f"{where}: linear_before_reset=0 has no torch equivalent (nn.GRU resets "
                                    "after the linear map)", hint="export the GRU with linear_before_reset=1")
        if kind == "LSTM" and len(args) > 7 and args[7] is not None:
            raise InvalidInputError(f"{where}: peephole weights are not supported by edgekit's ONNX importer")
        self.batch_first = bool(ctx.attr("layout", 0))
        self.reverse = direction == "reverse"
        data, weight, recurrence = args[0], args[1], args[2]
        steps = data.shape[1 if self.batch_first else 0]
        if len(args) > 4 and args[4] is not None and bool((args[4] != steps).any()):
            raise InvalidInputError(f"{where}: sequence_lens shorter than the sequence are not supported by "
                                    "edgekit's ONNX importer", hint="export with full-length sequences")
        hidden = ctx.attr("hidden_size", recurrence.shape[-1])
        cell = torch.nn.LSTM if kind == "LSTM" else torch.nn.GRU
        self.cell = cell(weight.shape[-1], hidden, batch_first=self.batch_first, bidirectional=directions == 2)
        gates = self.GATES[kind]
        bias = args[3] if len(args) > 3 and args[3] is not None else torch.zeros(directions, 2 * len(gates) * hidden)

        def reorder(matrix: torch.Tensor) -> torch.Tensor:
            blocks = matrix.reshape(len(gates), hidden, *matrix.shape[1:])
            return blocks[gates].reshape(matrix.shape)

        with torch.no_grad():
            for d in range(directions):
                suffix = "_reverse" if d == 1 else ""
                getattr(self.cell, f"weight_ih_l0{suffix}").copy_(reorder(weight[d]))
                getattr(self.cell, f"weight_hh_l0{suffix}").copy_(reorder(recurrence[d]))
                getattr(self.cell, f"bias_ih_l0{suffix}").copy_(reorder(bias[d][: len(gates) * hidden]))
                getattr(self.cell, f"bias_hh_l0{suffix}").copy_(reorder(bias[d][len(gates) * hidden:]))
        self.cell.requires_grad_(False)
        self.directions, self.hidden, self.kind = directions, hidden, kind
        initial = [args[i] if len(args) > i else None for i in ((5, 6) if kind == "LSTM" else (5,))]
        for i, state in enumerate(initial):
            if state is not None:
                state = state.transpose(0, 1) if self.batch_first else state
                self.register_buffer(f"initial_{i}", state.detach().clone())
        self.has_initial = [state is not None for state in initial]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        time_axis = 1 if self.batch_first else 0
        if self.reverse:
            x = torch.flip(x, [time_axis])
        batch = x.shape[0 if self.batch_first else 1]
        zeros = x.new_zeros(self.directions, batch, self.hidden)
        states = [getattr(self, f"initial_{i}") if present else zeros for i, present in enumerate(self.has_initial)]
        y, state = self.cell(x, (states[0], states[1]) if self.kind == "LSTM" else states[0])
        if self.reverse:
            y = torch.flip(y, [time_axis])
        finals = list(state) if self.kind == "LSTM" else [state]
        if self.batch_first:  # Y [batch, seq, dirs, hidden], Y_h [batch, dirs, hidden]
            return (y.reshape(y.shape[0], y.shape[1], self.directions, self.hidden),
                    *(f.transpose(0, 1) for f in finals))
        return (y.reshape(y.shape[0], y.shape[1], self.directions, self.hidden).permute(0, 2, 1, 3), *finals)


def _conv_layer(ctx: _Context, node: Any, args: Values) -> tuple[torch.nn.Module, list[int] | None, None]:
    data, weight = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    rank, kernel, strides, dilations, pads = _conv_geometry(ctx, data, weight)
    groups = ctx.attr("group", 1)
    begins, ends = pads[:rank], pads[rank:]
    pre_pad = None
    if begins != ends:
        pre_pad, begins = _torch_pads(begins, ends), [0] * rank
    kind = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)[rank - 1]
    layer = kind(weight.shape[1] * groups, weight.shape[0], kernel, stride=strides, padding=begins,
                 dilation=dilations, groups=groups, bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer.requires_grad_(False), pre_pad, None


def _consumers(nodes: list[Any]) -> dict[str, list[int]]:
    users: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            users.setdefault(name, []).append(index)
    return users


def _refuse_unsupported(graph: Any, origin: str) -> None:
    unknown: dict[str, int] = {}
    for node in graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        if node.domain not in ("", "ai.onnx") or node.op_type not in OPS:
            unknown[key] = unknown.get(key, 0) + 1
    if not unknown:
        return
    listed = ", ".join(f"{k}×{n}" if n > 1 else k for k, n in sorted(unknown.items()))
    quantized = any(k in QUANTIZED for k in unknown)
    hint = ("this is a quantized ONNX model: convert the float model and quantize on the target route "
            f"({option('quantize', 'int8')})" if quantized
            else f"it translates {len(OPS)} standard ONNX ops; convert the model this ONNX came from instead, "
                 "or export it without these ops")
    raise InvalidInputError(f"{origin}: edgekit's ONNX importer cannot translate {listed} to torch", hint=hint)


def _recurrent_with_data_weights(ctx, node, x):
    raise InvalidInputError(f"{node.op_type} node {node.name!r}: its weights are computed from the model's data; "
                            "edgekit's ONNX importer translates recurrent layers with constant weights")


OPS["LSTM"] = OPS["GRU"] = _recurrent_with_data_weights


class OnnxToTorch(Converter):

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        import onnx

        model = onnx.load(str(step.path))
        example = example_inputs(step)
        origin = step.path.name
        check_allocations(model, origin)
        try:
            with torch.no_grad():
                module = OnnxModule(model, example, origin).eval()
                program = torch.export.export(module, tuple(example), strict=False)
        except EdgekitError:
            raise
        except Exception as exc:  # what the allocation checks could not foresee (a size the data decides)
            if allocation_failure(exc):
                raise allocation_error(origin, exc) from None
            raise
        torch.export.save(program, str(out))
        symbolic = [ts.name for ts in step.io_spec.inputs if any(not isinstance(d, int) for d in ts.shape or ())]
        report.details["importer"] = "edgekit ONNX importer (torch operators, torch.export)"
        report.details["onnx_opset"] = module._opset
        report.details["nodes"] = {"total": len(module._nodes), "folded_at_build": module.folded,
                                   "layers": module.layers}
        if symbolic:
            report.details["fixed_shapes"] = {ts.name: list(ts.concrete_shape()) for ts in step.io_spec.inputs}
            report.warnings.append(f"{origin}: symbolic dimensions of {', '.join(symbolic)} were fixed at "
                                   f"{report.details['fixed_shapes']} for the torch program")
