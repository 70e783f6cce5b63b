import pytest

from edgekit.converters.planning import plan, supported_summary
from edgekit.toolkit.contract.errors import UsageError
from edgekit.toolkit.contract.formats import Format as F
from edgekit.toolkit.contract.options import QuantMode as Q
from edgekit.toolkit.contract.registry import CONVERTERS, ConverterSpec, Registry


def names(route):
    return [(s.source.value, s.to.value) for s in route]


def test_direct_route_when_it_supports_the_mode():
    assert names(plan(F.KERAS, F.TFLITE, Q.INT8)) == [("keras", "tflite")]


def test_quantized_onnx_goes_through_float_onnx_first():
    assert names(plan(F.TORCH_EXPORTED, F.ONNX, Q.INT8)) == [("torch-exported", "onnx"), ("onnx", "onnx")]
    assert names(plan(F.KERAS, F.ONNX, Q.FP16)) == [("keras", "onnx"), ("onnx", "onnx")]
    assert names(plan(F.TORCH_EXPORTED, F.ONNX, Q.NONE)) == [("torch-exported", "onnx")]


def test_onnx_to_itself_only_to_quantize():
    assert names(plan(F.ONNX, F.ONNX, Q.DYNAMIC)) == [("onnx", "onnx")]
    with pytest.raises(UsageError, match="onnx to onnx with quantize='none'"):  # the library names parameters
        plan(F.ONNX, F.ONNX, Q.NONE)


def test_unsupported_pair_lists_what_is_reachable():
    with pytest.raises(UsageError) as excinfo:
        plan(F.TORCH_EXPORTED, F.TORCHSCRIPT, Q.INT8)
    message = str(excinfo.value)
    assert "tflite (none, fp16, dynamic, int8, int8-io, int16x8, int4)" in message
    assert "executorch (none, fp16, dynamic, int8, int4)" in message


def test_via_must_be_a_third_format():
    with pytest.raises(UsageError, match="must differ"):
        plan(F.KERAS, F.TFLITE, via=F.TFLITE)


def test_via_composes_two_plans_on_a_synthetic_registry():
    registry = Registry("converter", [
        ConverterSpec(F.KERAS, F.ONNX, "k2o", "x:Y", ("x",)),
        ConverterSpec(F.ONNX, F.TFLITE, "o2t", "x:Y", ("x",), (Q.NONE, Q.INT8)),
        ConverterSpec(F.KERAS, F.TFLITE, "k2t", "x:Y", ("x",)),
    ])
    assert names(plan(F.KERAS, F.TFLITE, registry=registry)) == [("keras", "tflite")]
    assert names(plan(F.KERAS, F.TFLITE, Q.INT8, registry=registry)) == [("keras", "onnx"), ("onnx", "tflite")]
    assert names(plan(F.KERAS, F.TFLITE, via=F.ONNX, registry=registry)) == [("keras", "onnx"), ("onnx", "tflite")]


def test_summary_for_a_format_without_routes():
    assert supported_summary(F.EXECUTORCH, CONVERTERS) == "none"


def test_onnx_reaches_the_mobile_formats_through_its_importer():
    assert names(plan(F.ONNX, F.TFLITE, Q.INT8)) == [("onnx", "torch-exported"), ("torch-exported", "tflite")]
    assert names(plan(F.ONNX, F.EXECUTORCH, Q.INT4))[-1] == ("torch-exported", "executorch")


def test_the_onnx_importer_is_a_first_hop_only_unless_asked_with_via():
    with pytest.raises(UsageError) as refused:
        plan(F.KERAS, F.EXECUTORCH, Q.NONE)
    assert refused.value.hint.endswith("; via='onnx' reaches executorch too")  # the refusal names the way
    with pytest.raises(UsageError) as refused:
        plan(F.TFLITE, F.TORCHSCRIPT, Q.NONE)
    assert "via='onnx'" in refused.value.hint
    assert names(plan(F.KERAS, F.EXECUTORCH, Q.INT8, via=F.ONNX)) == [
        ("keras", "onnx"), ("onnx", "torch-exported"), ("torch-exported", "executorch")]


def test_a_route_takes_its_first_quantizer_unless_another_is_asked_for():
    # int8-io goes to PT2E (default_for: measured the fastest that passes), the other modes to the first listed
    assert [s.quantizer for s in plan(F.TORCH_EXPORTED, F.TFLITE, Q.INT8_IO)] == ["pt2e"]
    assert [s.quantizer for s in plan(F.TORCH_EXPORTED, F.TFLITE, Q.DYNAMIC)] == ["ai-edge-quantizer"]
    chosen = plan(F.TORCH_EXPORTED, F.TFLITE, Q.INT8_IO, quantizer="ai-edge-quantizer")
    assert names(chosen) == [("torch-exported", "tflite")] and chosen[0].impl.endswith(":TorchToTFLite")
    chosen = plan(F.TORCH_EXPORTED, F.TFLITE, Q.DYNAMIC, quantizer="pt2e")
    assert chosen[0].impl.endswith("TorchToTFLitePT2E")
    # a float route is not affected, nor is another edge's default
    assert plan(F.TORCH_EXPORTED, F.TFLITE, Q.NONE)[0].impl.endswith(":TorchToTFLite")
    # the tool picks the quantizing edge only: ONNX → TFLite reaches it through the float importer edge
    assert [s.quantizer for s in plan(F.ONNX, F.TFLITE, Q.DYNAMIC, quantizer="pt2e")] == ["", "pt2e"]
    assert plan(F.KERAS, F.TFLITE, Q.INT4, quantizer="ai-edge-quantizer")[0].quantizer == "ai-edge-quantizer"


def test_a_quantizer_that_cannot_make_the_mode_names_those_that_can():
    with pytest.raises(UsageError) as excinfo:
        plan(F.TORCH_EXPORTED, F.TFLITE, Q.INT8, quantizer="pt2e")
    message = str(excinfo.value)
    assert "quantizer='pt2e' does not make tflite from torch-exported in quantize='int8'" in message
    assert "ai-edge-quantizer (fp16, dynamic, int8, int8-io, int16x8, int4); pt2e (dynamic, int8-io)" in message
    with pytest.raises(UsageError, match="onnx from keras is quantized by: onnxruntime"):
        plan(F.KERAS, F.ONNX, Q.INT8, quantizer="tflite-converter")
    with pytest.raises(UsageError, match="no such quantizer.*one of: ai-edge-quantizer, tflite-converter, pt2e"):
        plan(F.TORCH_EXPORTED, F.TFLITE, Q.INT8, quantizer="nncf")
    with pytest.raises(UsageError, match="nothing is quantized"):
        plan(F.TORCH_EXPORTED, F.TFLITE, Q.NONE, quantizer="pt2e")
