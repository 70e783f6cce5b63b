import numpy as np
import pytest

from edgekit.toolkit.contract.errors import UsageError
from edgekit.toolkit.contract.iospec import (
    IOSpec,
    Layout,
    QuantParams,
    TensorSpec,
    apply_input_shapes,
    example_feeds,
    guess_layout,
    parse_input_shapes,
    tensor,
)


def test_parse_input_shapes_named_unnamed_and_symbolic():
    assert parse_input_shapes(["x=1,3,32,32", "mask=batch,16"]) == {"x": (1, 3, 32, 32), "mask": ("batch", 16)}
    assert parse_input_shapes(["1,8,8,1"]) == {"*": (1, 8, 8, 1)}


@pytest.mark.parametrize("bad", ["x=1,0,3", "x=1,-3", "x=", "x=1,3.5", "x=1,,2", "a=b=c"])
def test_parse_input_shapes_rejects_bad_values(bad):
    with pytest.raises(UsageError):
        parse_input_shapes([bad])


def test_parse_input_shapes_rejects_duplicates_and_mixed_unnamed():
    with pytest.raises(UsageError, match="twice"):
        parse_input_shapes(["x=1", "x=2"])
    with pytest.raises(UsageError, match="single input"):
        parse_input_shapes(["1,2", "y=3"])


def test_apply_input_shapes_fills_unknown_and_symbolic_but_never_contradicts():
    spec = IOSpec((tensor("x", None, "float32"), tensor("y", ("batch", 4), "float32")))
    filled = apply_input_shapes(spec, {"x": (1, 3, 8, 8), "y": (2, 4)})
    assert filled.input("x").shape == (1, 3, 8, 8)
    assert filled.input("x").layout is Layout.NCHW
    assert filled.input("y").shape == (2, 4)
    with pytest.raises(UsageError, match="contradicts"):
        apply_input_shapes(spec, {"y": (2, 5)})
    with pytest.raises(UsageError, match="unknown input"):
        apply_input_shapes(spec, {"z": (1,)})
    with pytest.raises(UsageError, match="needs a name"):
        apply_input_shapes(spec, {"*": (1,)})


def test_unnamed_shape_applies_to_the_single_input():
    spec = IOSpec((tensor("only", None, "float32"),))
    assert apply_input_shapes(spec, {"*": (1, 2)}).input("only").shape == (1, 2)


@pytest.mark.parametrize(
    ("shape", "layout"),
    [((1, 3, 224, 224), Layout.NCHW), (("?", 224, 224, 3), Layout.NHWC), ((1, 8, 8, 8), Layout.UNKNOWN),
     ((1, 10), Layout.UNKNOWN), ((1, 1, 8, 1), Layout.UNKNOWN), (None, Layout.UNKNOWN)],
)
def test_guess_layout(shape, layout):
    assert guess_layout(shape) is layout


def test_tensor_normalises_dims_and_dtypes():
    ts = tensor("x", [None, -1, 3, "batch"], np.float32)
    assert ts.shape == ("?", "?", 3, "batch")
    assert ts.dtype == "float32"
    assert not ts.is_static
    assert ts.accepts((5, 7, 3, 2)) and not ts.accepts((5, 7, 4, 2)) and not ts.accepts((5, 7, 3))


def test_quant_params_dequantize_per_tensor_and_per_axis():
    per_tensor = QuantParams((0.5,), (10,))
    assert per_tensor.dequantize(np.array([10, 12, 8], dtype=np.int8)).tolist() == [0.0, 1.0, -1.0]
    per_axis = QuantParams((1.0, 2.0), (0, 1), axis=1)
    values = np.array([[1, 1], [2, 3]], dtype=np.int8)
    assert per_axis.dequantize(values).tolist() == [[1.0, 0.0], [2.0, 4.0]]


def test_iospec_json_round_trip():
    spec = IOSpec(
        (TensorSpec("x", ("batch", 8, 8, 1), "int8", Layout.NHWC, QuantParams((0.02,), (-3,))),),
        (tensor("logits", (1, 10), "float32"),),
    )
    assert IOSpec.from_dict(spec.to_dict()) == spec


def test_example_feeds_are_seeded_and_shaped():
    spec = IOSpec((tensor("x", ("b", 3), "float32"), tensor("ids", (2,), "int64"), tensor("m", (2,), "bool")))
    first, second = example_feeds(spec, seed=3), example_feeds(spec, seed=3)
    assert first["x"].shape == (1, 3) and first["x"].dtype == np.float32
    assert first["ids"].dtype == np.int64 and first["m"].dtype == np.bool_
    assert all(np.array_equal(first[k], second[k]) for k in first)
    with pytest.raises(UsageError, match="no known shape"):
        example_feeds(IOSpec((tensor("x", None, "float32"),)))
