"""The TFLite GPU delegate's operator rules, applied to a model file without a GPU.

The GPU delegate decides per operator with ``CheckGpuDelegateCompatibility`` (LiteRT's
``tflite/tools/versioning/gpu_compatibility.cc``, the rules its model builder runs before it takes a node;
restated from the August 2026 source, which adds TOPK_V2, REVERSE_V2, BITCAST and the logical ops to
TensorFlow's older copy). This module restates those rules over a model's flatbuffer: which builtin operators
the delegate knows, how many runtime/constant inputs each takes, and the option values it refuses. The offline
check assumes the delegate's enhanced broadcasting, as LiteRT's own offline check does.

Why not call LiteRT's analyzer (``_pywrap_analyzer_wrapper.ModelAnalyzer(..., gpu_compatibility=True)``): in
the pinned ai-edge-litert 2.3 it says "looks compatible with GPU delegate" of a model whose only operator is
UNIQUE, and of ARG_MAX, which the delegate does not implement (measured), so its verdict tells a user nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TensorSig:
    type: str  # "FLOAT32", "INT8", …; "NONE" for an omitted optional input
    dims: tuple[int, ...]
    is_const: bool


@dataclass(frozen=True)
class OpSig:
    op: str  # builtin operator name ("CONV_2D"), or "CUSTOM"
    custom: str
    inputs: tuple[TensorSig, ...]
    outputs: tuple[TensorSig, ...]
    options: object | None  # the generated *OptionsT object, or None

    def opt(self, name: str, default=None):
        return getattr(self.options, name, default) if self.options is not None else default

    @property
    def runtime_inputs(self) -> int:
        return sum(1 for t in self.inputs if not t.is_const and t.type != "NONE")

    @property
    def const_inputs(self) -> int:
        return sum(1 for t in self.inputs if t.is_const)


FLOATS = ("FLOAT32", "FLOAT16")
TYPE_BYTES = {"FLOAT32": 4, "FLOAT16": 2, "BFLOAT16": 2, "FLOAT64": 8, "INT32": 4, "UINT32": 4, "INT16": 2,
              "UINT16": 2, "INT8": 1, "UINT8": 1, "INT64": 8, "UINT64": 8, "BOOL": 1}
SIGN_BIT = 5  # ActivationFunctionType.SIGN_BIT: the only fused activation the delegate refuses


class Refused(Exception):
    """A rule the operator breaks; the message is the delegate's reason."""


def _io(sig: OpSig, runtime: int, outputs: int) -> None:
    if sig.runtime_inputs != runtime:
        raise Refused(f"expected {runtime} runtime input tensor(s), the node has {sig.runtime_inputs}")
    if len(sig.outputs) != outputs:
        raise Refused(f"expected {outputs} output tensor(s), the node has {len(sig.outputs)}")


def _io_consts(sig: OpSig, runtime: int, const: int, outputs: int) -> None:
    if sig.const_inputs != const:
        raise Refused(f"expected {const} constant input tensor(s), the node has {sig.const_inputs}")
    _io(sig, runtime, outputs)


def _one_or_two_operands(sig: OpSig) -> None:
    for runtime, const in ((2, 0), (1, 1)):
        try:
            return _io_consts(sig, runtime, const, 1)
        except Refused:
            pass
    raise Refused("the op handles 1 or 2 operands only")


def _activation(sig: OpSig) -> None:
    if sig.opt("fusedActivationFunction", 0) == SIGN_BIT:
        raise Refused("fused activation SIGN_BIT is not supported")


def _conv_io(sig: OpSig) -> None:
    if sig.runtime_inputs > 2:
        raise Refused(f"expected 1 or 2 input tensors, the node has {sig.runtime_inputs} runtime inputs")
    if len(sig.outputs) != 1:
        raise Refused(f"expected 1 output tensor, the node has {len(sig.outputs)}")
    if sig.runtime_inputs == 1 and len(sig.inputs) < 2:
        raise Refused("the filter tensor is missing")


def _positive(what: str, *values: int) -> None:
    if any(v <= 0 for v in values):
        raise Refused(f"incorrect {what} values {values}")


def _pool(sig: OpSig) -> None:
    _io(sig, 1, 2 if sig.op == "CUSTOM" else 1)
    _positive("kernel", sig.opt("filterHeight", 1), sig.opt("filterWidth", 1))
    _positive("stride", sig.opt("strideH", 1), sig.opt("strideW", 1))
    _activation(sig)


def _axes_int32_const(sig: OpSig, index: int) -> None:
    if index >= len(sig.inputs):
        raise Refused("the axes input is missing")
    axes = sig.inputs[index]
    if not axes.is_const:
        raise Refused(f"{sig.op} is supported only with constant axes")
    if axes.type != "INT32":
        raise Refused(f"{sig.op} takes int32 axes, the node has {axes.type.lower()}")


def _broadcastable(a: TensorSig, b: TensorSig) -> None:
    if len(a.dims) > 1 and len(b.dims) > 1 and len(a.dims) != len(b.dims):
        longer, shorter = (a.dims, b.dims) if len(a.dims) >= len(b.dims) else (b.dims, a.dims)
        for x, y in zip(reversed(longer), reversed(shorter), strict=False):
            if x != y and x != 1 and y != 1:
                raise Refused(f"broadcasting {list(a.dims)} with {list(b.dims)} is not supported")


def _add(sig: OpSig) -> None:
    if len(sig.inputs) != 2:
        raise Refused("ADD requires two input tensors")
    _broadcastable(*sig.inputs)


def _mul(sig: OpSig) -> None:
    if len(sig.inputs) != 2:
        raise Refused("MUL requires two input tensors")
    if len(sig.inputs[0].dims) != len(sig.inputs[1].dims):
        _broadcastable(*sig.inputs)
    _activation(sig)


def _cast(sig: OpSig) -> None:
    _io(sig, 1, 1)
    src, dst = sig.inputs[0].type, sig.outputs[0].type
    if (src == "BOOL" and dst in FLOATS) or (src in FLOATS and dst == "BOOL") or \
            (src in ("FLOAT32", "INT32") and dst in ("FLOAT32", "INT32")):
        return
    raise Refused(f"CAST from {src.lower()} to {dst.lower()} is not supported")


def _depthwise(sig: OpSig) -> None:
    _conv_io(sig)
    if len(sig.inputs) < 2:
        raise Refused("the filter tensor is missing")
    _positive("stride", sig.opt("strideH", 1), sig.opt("strideW", 1))
    _positive("dilation", sig.opt("dilationHFactor", 1), sig.opt("dilationWFactor", 1))
    _activation(sig)
    multiplier = sig.opt("depthMultiplier", 1)
    x, w, out = sig.inputs[0], sig.inputs[1], sig.outputs[0]
    if len(x.dims) != 4 or len(w.dims) != 4 or len(out.dims) != 4:
        raise Refused("input, filter and output must be 4-D")
    if x.dims[0] != out.dims[0]:
        raise Refused("input batch != output batch")
    if w.dims[3] != out.dims[3]:
        raise Refused("filter channels != output channels")
    if out.dims[3] != x.dims[3] * multiplier:
        raise Refused("output channels != input channels × depth_multiplier")
    if len(sig.inputs) > 2 and sig.inputs[2].type != "NONE" and math.prod(sig.inputs[2].dims) != out.dims[3]:
        raise Refused("bias size != output channels")
    if multiplier != 1 and x.dims[3] != 1:
        raise Refused("depth_multiplier != 1 with more than one input channel")


def _block(sig: OpSig) -> None:
    _io(sig, 1, 1)
    size = sig.opt("blockSize", 2)
    if size == 1:
        raise Refused(f"{sig.op} with block_size 1 is a no-op")
    if size < 1:
        raise Refused(f"{sig.op} block_size must be > 1")


def _dequantize(sig: OpSig) -> None:
    if len(sig.inputs) != 1 or len(sig.outputs) != 1:
        raise Refused("DEQUANTIZE takes one input and one output")
    if sig.inputs[0].type == "INT16":
        raise Refused("dequantizing int16 is not supported")


def _embedding(sig: OpSig) -> None:
    if len(sig.inputs) != 2 or len(sig.outputs) != 1:
        raise Refused("EMBEDDING_LOOKUP takes 2 inputs and 1 output")
    ids, values, out = sig.inputs[0], sig.inputs[1], sig.outputs[0]
    if len(ids.dims) != 1:
        raise Refused(f"expected 1-D ids, got {len(ids.dims)}-D")
    if len(values.dims) < 2 or len(values.dims) != len(out.dims) or values.dims[1:] != out.dims[1:]:
        raise Refused("the table and the output shapes do not match")
    if values.type not in ("INT8", "INT4", "FLOAT32"):
        raise Refused(f"expected an int8, int4 or float32 table, got {values.type.lower()}")


def _dynamic_update_slice(sig: OpSig) -> None:
    if len(sig.inputs) != 3:
        raise Refused("DYNAMIC_UPDATE_SLICE requires 3 inputs")
    operand, update, start = sig.inputs
    if len(operand.dims) == 4 and operand.dims[0] != 1:
        raise Refused("only a 4-D operand with batch size 1 is supported")
    if len(start.dims) != 1 or start.type != "INT32":
        raise Refused("start indices must be 1-D int32")
    if operand.type != update.type or len(update.dims) != len(operand.dims):
        raise Refused("the update must match the operand's type and rank")


def _fully_connected(sig: OpSig) -> None:
    if not sig.inputs or not sig.outputs:
        raise Refused("expected an input and an output tensor")
    if sig.opt("weightsFormat", 0) != 0:
        raise Refused(f"weights format {sig.opt('weightsFormat')} is not supported")
    if sig.runtime_inputs > 2:
        raise Refused("more than 2 runtime inputs are not supported")
    if sig.inputs[0].is_const:
        raise Refused("a constant input is not supported")
    if sig.opt("keepNumDims", False) and len(sig.inputs[0].dims) != len(sig.outputs[0].dims):
        raise Refused("keep_num_dims with input and output of different rank is not supported")


def _gather(sig: OpSig) -> None:
    _one_or_two_operands(sig)
    if len(sig.inputs[1].dims) != 1:
        raise Refused("only 1-D indices are supported")
    if sig.inputs[1].type != "INT32":
        raise Refused(f"only int32 indices are supported, the node has {sig.inputs[1].type.lower()}")


def _lstm(sig: OpSig) -> None:
    kernel = sig.opt("kernelType", 0)  # LSTMKernelType.FULL = 0, BASIC = 1
    activation = sig.opt("fusedActivationFunction", 0)
    if kernel == 0:
        if len(sig.inputs) not in (20, 24):
            raise Refused(f"expected 20 or 24 input tensors, the node has {len(sig.inputs)}")
        if len(sig.outputs) != 1:
            raise Refused(f"expected 1 output tensor, the node has {len(sig.outputs)}")
        if activation not in (4, 6):  # TANH; the schema has no SIGMOID fused activation
            raise Refused("only sigmoid or tanh activation is supported")
        return
    _io_consts(sig, 3, 2, 4)
    if activation != 4:
        raise Refused("only TANH activation is supported")
    if sig.opt("cellClip", 0.0) or sig.opt("projClip", 0.0):
        raise Refused("cell_clip/proj_clip are not supported")


def _mean(sig: OpSig) -> None:
    _io_consts(sig, 1, 1, 1)
    _axes_int32_const(sig, 1)


def _bitcast(sig: OpSig) -> None:
    _io(sig, 1, 1)
    src, dst = sig.inputs[0], sig.outputs[0]
    a, b = TYPE_BYTES.get(src.type), TYPE_BYTES.get(dst.type)
    if a is None or b is None:
        raise Refused(f"BITCAST between {src.type.lower()} and {dst.type.lower()} is not supported")
    if a == b and src.dims != dst.dims:
        raise Refused("same-size element types need the same shapes")
    if a != b:
        wide, narrow, wide_size, narrow_size = (src, dst, a, b) if a > b else (dst, src, b, a)
        if len(narrow.dims) != len(wide.dims) + 1 or narrow.dims[:-1] != wide.dims or \
                narrow.dims[-1] * narrow_size != wide_size:
            raise Refused("the shapes must match but for a last dimension of the element-size ratio")


def _reduce(sig: OpSig) -> None:
    _io_consts(sig, 1, 1, 1)
    _axes_int32_const(sig, 1)


def _broadcast_in_dim(sig: OpSig) -> None:
    _io_consts(sig, 1, 1, 1)
    dims = sig.inputs[1]
    if len(dims.dims) != 1 or dims.type != "INT32":
        raise Refused("only 1-D int32 broadcast dimensions are supported")
    if len(sig.inputs[0].dims) != dims.dims[0]:
        raise Refused("the broadcast dimensions must number the operand's rank")


def _cbrt(sig: OpSig) -> None:
    _io_consts(sig, 1, 0, 1)
    if sig.inputs[0].type not in (*FLOATS, "BFLOAT16") or sig.inputs[0].type != sig.outputs[0].type:
        raise Refused("only float inputs of the output's type are supported")


def _one_hot(sig: OpSig) -> None:
    if len(sig.inputs) != 4:
        raise Refused("ONE_HOT expects 4 inputs and 1 output")
    indices, _, on, off = sig.inputs
    if indices.type != "INT32":
        raise Refused("indices must be int32")
    axis = sig.opt("axis", -1)
    if axis != -1 and (not indices.dims or axis != indices.dims[-1]):
        raise Refused("axis must be -1 or the last dimension")
    for i, d in enumerate(indices.dims[:-1]):
        if not (len(indices.dims) > 3 and i == 0) and d != 1:
            raise Refused(f"a non-singleton dimension at {i} is not supported")
    for t in (on, off):
        if t.type != "FLOAT32" or not t.is_const or len(t.dims) > 1 or (t.dims and t.dims[0] > 1):
            raise Refused("on/off values must be constant float32 scalars")


def _select(sig: OpSig) -> None:
    if len(sig.inputs) != 3 or len(sig.outputs) != 1:
        raise Refused("expected 3 inputs and 1 output")
    cond, a, b = sig.inputs
    if cond.type not in ("BOOL", *FLOATS) or a.type not in FLOATS or b.type not in FLOATS:
        raise Refused("the condition must be bool or float and both branches float")
    out = sig.outputs[0].dims
    for t, name in ((a, "if"), (b, "else")):
        if t.dims and t.dims != out and (len(t.dims) > 1 or t.dims[0] > 1):
            raise Refused(f"the {name} tensor must have the output's shape or be a scalar")
        if t.is_const and len(t.dims) == 2:
            raise Refused(f"a 2-D {name} tensor is supported only when constant")


def _slice(sig: OpSig) -> None:
    if len(sig.inputs) < 3:
        raise Refused(f"SLICE requires 3 inputs, the node has {len(sig.inputs)}")
    if len(sig.inputs[0].dims) not in (3, 4):
        raise Refused(f"SLICE supports 3-D or 4-D tensors only, the node's is {len(sig.inputs[0].dims)}-D")


def _strided_slice(sig: OpSig) -> None:
    for mask, name in (("ellipsisMask", "ellipsis_mask"), ("newAxisMask", "new_axis_mask"),
                       ("shrinkAxisMask", "shrink_axis_mask")):
        if sig.opt(mask, 0):
            raise Refused(f"STRIDED_SLICE with {name} is not supported")
    if len(sig.inputs) < 4:
        raise Refused("STRIDED_SLICE requires 4 inputs")
    if len(sig.inputs[0].dims) not in (3, 4):
        raise Refused(f"STRIDED_SLICE supports 3-D or 4-D tensors only, the node's is {len(sig.inputs[0].dims)}-D")


def _softmax(sig: OpSig) -> None:
    if sig.opt("beta", 1.0) != 1:
        raise Refused(f"Softmax beta {sig.opt('beta')} != 1 is not supported")


def _transpose_conv(sig: OpSig) -> None:
    _conv_io(sig)
    _positive("stride", sig.opt("strideH", 1), sig.opt("strideW", 1))


def _resize_bilinear(sig: OpSig) -> None:
    _io(sig, 1, 1)
    if sig.opt("alignCorners", False) and sig.opt("halfPixelCenters", False):
        raise Refused("align_corners with half_pixel_centers is not supported")


def _pad(sig: OpSig) -> None:
    if sig.op == "MIRROR_PAD" and sig.opt("mode", 0) != 0:  # MirrorPadMode.REFLECT = 0
        raise Refused("only REFLECT mirror padding is supported")
    _io(sig, 1, 1)
    if len(sig.inputs) < 2:
        raise Refused("the paddings input is missing")
    pads = sig.inputs[1].dims
    if len(pads) != 2 or pads[0] not in (3, 4) or pads[1] != 2:
        raise Refused(f"paddings of shape {list(pads)} are not supported (4x2 or 3x2)")


def _clamp(sig: OpSig) -> None:
    x, low, high = (sig.inputs + (None, None, None))[:3]
    if low is None or high is None or not (x.type == low.type == high.type):
        raise Refused("STABLEHLO_CLAMP's tensors must all have the same type")
    _io_consts(sig, 3, 0, 1)


def _custom(sig: OpSig) -> None:
    if sig.custom == "Convolution2DTransposeBias":
        if len(sig.inputs) < 2:
            raise Refused("the filter tensor is missing")
    elif sig.custom == "MaxPoolingWithArgmax2D":
        _io(sig, 1, 2)
    elif sig.custom == "MaxUnpooling2D":
        _io(sig, 2, 1)
    elif sig.custom == "Resampler":
        _io(sig, 2, 1)
        src, warp = sig.inputs[:2]
        if len(src.dims) != 4 or len(warp.dims) != 4 or src.dims[0] != warp.dims[0] or warp.dims[3] < 2:
            raise Refused("Resampler needs 4-D source and warp of the same batch, warp with ≥ 2 channels")
    else:
        raise Refused(f"custom op {sig.custom or '(unnamed)'} is not supported by the GPU delegate")


def _ok(sig: OpSig) -> None:
    return None


def _one_runtime(sig: OpSig) -> None:
    _io(sig, 1, 1)


def _unary(sig: OpSig) -> None:
    _io_consts(sig, 1, 0, 1)


def _binary(sig: OpSig) -> None:
    _one_or_two_operands(sig)
    _activation(sig)


def _add_n(sig: OpSig) -> None:
    if len(sig.inputs) != 2:
        raise Refused("ADD_N supports 2 inputs only")


def _batch_matmul(sig: OpSig) -> None:
    if len(sig.inputs) != 2 or len(sig.outputs) != 1:
        raise Refused("expected 2 inputs and 1 output")


def _cumsum(sig: OpSig) -> None:
    if len(sig.inputs) != 2 or len(sig.outputs) != 1 or sig.inputs[0].type not in FLOATS \
            or sig.outputs[0].type != sig.inputs[0].type \
            or sig.inputs[1].type != "INT32" or not sig.inputs[1].is_const:
        raise Refused("input/output must be float and the axis a constant int32")


def _conv(sig: OpSig) -> None:
    _conv_io(sig)
    _positive("stride", sig.opt("strideH", 1), sig.opt("strideW", 1))
    _positive("dilation", sig.opt("dilationHFactor", 1), sig.opt("dilationWFactor", 1))
    _activation(sig)


RULES = {
    "ADD": _add, "ADD_N": _add_n, "AVERAGE_POOL_2D": _pool, "MAX_POOL_2D": _pool, "BATCH_MATMUL": _batch_matmul,
    "CAST": _cast, "CONCATENATION": _ok, "CONV_2D": _conv, "CUMSUM": _cumsum,
    "DENSIFY": lambda s: _io(s, 0, 1), "DEPTHWISE_CONV_2D": _depthwise, "DEPTH_TO_SPACE": _block,
    "SPACE_TO_DEPTH": _block, "DEQUANTIZE": _dequantize, "EMBEDDING_LOOKUP": _embedding,
    "DYNAMIC_UPDATE_SLICE": _dynamic_update_slice, "FULLY_CONNECTED": _fully_connected, "GATHER": _gather,
    "HARD_SWISH": _one_runtime, "LSTM": _lstm, "MEAN": _mean, "MUL": _mul, "PACK": _ok, "ONE_HOT": _one_hot,
    "QUANTIZE": _one_runtime, "RELU_N1_TO_1": _ok, "PRELU": _ok, "RESHAPE": _one_runtime, "SELECT": _select,
    "SELECT_V2": _select, "SLICE": _slice, "SOFTMAX": _softmax, "SPLIT": _ok, "SPLIT_V": _ok,
    "STRIDED_SLICE": _strided_slice, "TILE": _one_runtime, "TRANSPOSE": _one_runtime,
    "TRANSPOSE_CONV": _transpose_conv, "RESIZE_BILINEAR": _resize_bilinear, "RESIZE_NEAREST_NEIGHBOR": _one_runtime,
    "RELU": _ok, "RELU6": _ok, "LEAKY_RELU": _ok, "REDUCE_MAX": _reduce, "REDUCE_MIN": _reduce,
    "REDUCE_PROD": _reduce, "SUM": _reduce, "REDUCE_ALL": _reduce, "REDUCE_ANY": _reduce,
    "REVERSE_V2": _reduce, "TOPK_V2": lambda s: _io(s, 1, 2), "BITCAST": _bitcast,
    "STABLEHLO_BROADCAST_IN_DIM": _broadcast_in_dim, "STABLEHLO_CBRT": _cbrt,
    "PAD": _pad, "PADV2": _pad, "MIRROR_PAD": _pad,
    "STABLEHLO_CLAMP": _clamp, "CUSTOM": _custom,
    **dict.fromkeys(("ABS", "CEIL", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGICAL_NOT", "LOGISTIC", "NEG",
                     "ROUND", "RSQRT", "SIGN", "SIN", "SQRT", "SQUARE", "TANH"), _unary),
    **dict.fromkeys(("ATAN2", "DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD", "GREATER", "GREATER_EQUAL", "LOGICAL_AND",
                     "LOGICAL_OR", "LESS", "LESS_EQUAL", "MAXIMUM", "MINIMUM", "NOT_EQUAL", "POW", "RIGHT_SHIFT",
                     "STABLEHLO_REMAINDER", "STABLEHLO_SHIFT_LEFT", "SQUARED_DIFFERENCE", "SUB"),
                    _binary),
}


def gpu_refusal(sig: OpSig) -> str | None:
    """None when the GPU delegate takes the operator; else its reason."""
    rule = RULES.get(sig.op)
    if rule is None:
        return f"{sig.op} is not an operator the GPU delegate implements"
    try:
        rule(sig)
    except Refused as refused:
        return str(refused)
    except IndexError:  # a crafted file's node with fewer tensors than any rule above expects
        return f"the node has {len(sig.inputs)} input and {len(sig.outputs)} output tensor(s), fewer than " \
            f"{sig.op} takes"
    return None
