"""`edgekit compat`: per-operator support on each device target, with the evidence it rests on.

Models are built in code: ONNX graphs with onnx.helper (an op NNAPI rejects, opsets newer than the installed
ONNX Runtime), TFLite files from tf.function (an op the GPU delegate does not implement), a torch module whose
cumsum XNNPACK leaves to ExecuTorch's CPU kernels, and the digits CNN edgekit trains, which runs everywhere.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import run_edgekit, strict_json
from test_pipeline_report import make_report

from edgekit.targets.compat import check_compat, parse_targets
from edgekit.targets.compat.gpu_rules import OpSig, TensorSig, gpu_refusal
from edgekit.toolkit.contract.compat import COMPAT_TARGETS, Evidence, OpCompat, Support, TargetCompat
from edgekit.toolkit.contract.errors import ExitCode, UsageError
from edgekit.toolkit.contract.formats import Format

F32 = "FLOAT32"


def t(dims, const=False, dtype=F32):
    return TensorSig(dtype, tuple(dims), const)


class Opts:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def sig(op, inputs, outputs=((1, 4, 4, 8),), custom="", **options):
    return OpSig(op, custom, tuple(i if isinstance(i, TensorSig) else t(i) for i in inputs),
                 tuple(t(o) for o in outputs), Opts(**options) if options else None)


# -- the GPU delegate's rules, on operator signatures -------------------------------------------------------------


@pytest.mark.parametrize(("op", "reason"), [
    (sig("ARG_MAX", [(1, 10), t((1,), const=True, dtype="INT32")], [(1,)]), "not an operator the GPU delegate"),
    (sig("STRIDED_SLICE", [(1, 4, 4, 8), t((4,), True, "INT32"), t((4,), True, "INT32"), t((4,), True, "INT32")],
         shrinkAxisMask=1), "shrink_axis_mask"),
    (sig("RESHAPE", [(1, 4, 4, 8), t((2,), dtype="INT32")], [(1, 128)]), "1 runtime input"),
    (sig("MEAN", [(1, 4, 4, 8), t((2,), dtype="INT32")], [(1, 8)]), "1 constant input"),
    (sig("SOFTMAX", [(1, 10)], [(1, 10)], beta=2.0), "beta"),
    (sig("MIRROR_PAD", [(1, 4, 4, 8), t((4, 2), True, "INT32")], mode=1), "REFLECT"),
    (sig("CUSTOM", [(1, 4)], [(1, 4)], custom="MyOp"), "custom op MyOp"),
    (sig("CAST", [t((1, 4), dtype="INT64")], [(1, 4)]), "CAST from int64"),
    (sig("FULLY_CONNECTED", [], []), "expected an input and an output tensor"),  # a crafted file's arity
    (sig("DEPTHWISE_CONV_2D", [t((1, 8, 8, 4), True)]), "the filter tensor is missing"),
    (sig("CUMSUM", [(1, 4), t((1,), True, "INT32")], []), "the axis a constant int32"),
    (sig("DEPTHWISE_CONV_2D", [(1, 8, 8, 4), t((1, 3, 3, 8), True), t((8,), True)], [(1, 8, 8, 8)],
         depthMultiplier=2, strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1), "depth_multiplier"),
])
def test_the_gpu_delegate_refuses_with_its_own_reason(op, reason):
    refusal = gpu_refusal(op)
    assert refusal is not None and reason in refusal, refusal


@pytest.mark.parametrize("op", [
    sig("CONV_2D", [(1, 8, 8, 1), t((8, 3, 3, 1), True), t((8,), True)], [(1, 8, 8, 8)], strideH=1, strideW=1,
        dilationHFactor=1, dilationWFactor=1, fusedActivationFunction=1),
    sig("RESHAPE", [(1, 4, 4, 8), t((2,), True, "INT32")], [(1, 128)]),
    sig("MEAN", [(1, 4, 4, 8), t((2,), True, "INT32")], [(1, 8)]),
    sig("SOFTMAX", [(1, 10)], [(1, 10)], beta=1.0),
    sig("ADD", [(1, 4, 4, 8), (8,)]),
    sig("FULLY_CONNECTED", [(1, 128), t((10, 128), True), t((10,), True)], [(1, 10)], weightsFormat=0),
    sig("CUSTOM", [(1, 8, 8, 3), (1, 8, 8, 2)], [(1, 8, 8, 3)], custom="Resampler"),
])
def test_the_gpu_delegate_takes_what_its_rules_accept(op):
    assert gpu_refusal(op) is None


def test_unknown_is_never_counted_as_supported():
    ok = OpCompat(0, "CONV_2D", Support.SUPPORTED)
    unknown = OpCompat(1, "MYSTERY", Support.UNKNOWN, "no rule")
    target = TargetCompat("tflite-gpu", "", Evidence.STATIC_RULE, (ok, unknown))
    assert target.support is Support.UNKNOWN and "1 of 2 unknown: MYSTERY #1" in target.summary()
    assert TargetCompat("x", "", Evidence.STATIC_RULE, ()).support is Support.UNKNOWN  # nothing checked
    bad = replace(target, ops=(ok, unknown, OpCompat(2, "ARG_MAX", Support.UNSUPPORTED, "not implemented")))
    assert bad.support is Support.UNSUPPORTED
    assert bad.summary() == "1 of 3 unsupported: ARG_MAX #2; 1 of 3 unknown: MYSTERY #1"


def test_targets_parse_with_profiles_and_refuse_unknown_names():
    assert parse_targets(None) == list(COMPAT_TARGETS)
    assert parse_targets(["android-gpu", "tflite-gpu", "onnx-nnapi"]) == ["tflite-gpu", "litert", "onnx-nnapi"]
    assert "tflite-xnnpack" in parse_targets(["mobile-cpu-4t"])
    with pytest.raises(UsageError, match="target='tflite-npu': not a compatibility target") as caught:
        parse_targets(["tflite-npu"])
    assert "tflite-gpu" in caught.value.hint and "android-gpu" in caught.value.hint


def test_a_target_whose_backend_is_not_installed_names_the_extra(monkeypatch, tmp_path):
    from edgekit.toolkit.contract import extras
    from edgekit.toolkit.contract.errors import MissingDependencyError

    real = extras.is_installed
    monkeypatch.setattr(extras, "is_installed", lambda module: module != "ai_edge_litert" and real(module))
    with pytest.raises(MissingDependencyError, match="checking tflite-gpu needs ai_edge_litert") as caught:
        COMPAT_TARGETS["tflite-gpu"].check(tmp_path / "m.tflite")
    assert caught.value.hint == "pip install 'edgekit[litert]'"


def test_onnx_runtime_versions_from_its_compatibility_table():
    from edgekit.targets.compat.onnx import oldest_release, ort_refusal

    assert oldest_release(8, {"ai.onnx": 17}) == "1.12"
    assert oldest_release(10, {"ai.onnx": 20}) == "1.18"  # IR 10 arrived with 1.18
    assert oldest_release(8, {"ai.onnx": 13, "ai.onnx.ml": 3}) == "1.12"
    assert oldest_release(11, {"ai.onnx": 21}) is None  # newer than the table
    message = ("[ONNXRuntimeError] : 1 : FAIL : Load model from m.onnx failed:/src/model_load_utils.h:46 void "
               "f(const std::string&, int) ONNX Runtime only *guarantees* support for models stamped with official "
               "released onnx opset versions. Opset 27 is under development and support for this is limited. "
               "Current official support for domain ai.onnx is till opset 26.\n")
    assert ort_refusal(RuntimeError(message)) == "ai.onnx opset 27 is newer than it supports (up to opset 26)"


# -- ONNX: NNAPI / CoreML partitions, runtime versions ---------------------------------------------------------


def onnx_model(path: Path, *, opset: int = 17, ir: int = 8, middle: str = "CumSum") -> Path:
    import onnx
    from onnx import TensorProto
    from onnx import helper as h

    x = h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    axis = h.make_tensor("axis", TensorProto.INT64, [], [1])
    inner = h.make_node("CumSum", ["a", "axis"], ["b"], name="running_total") if middle == "CumSum" else \
        h.make_node(middle, ["a"], ["b"], name="middle")
    graph = h.make_graph([h.make_node("Relu", ["x"], ["a"], name="relu_in"), inner,
                          h.make_node("Sigmoid", ["b"], ["y"], name="squash")], "g", [x], [y], [axis])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], ir_version=ir), path)
    return path


def test_an_op_nnapi_rejects_is_flagged_with_the_checkers_partition_count(tmp_path):
    model = onnx_model(tmp_path / "cumsum.onnx")
    result = run_edgekit("compat", model, "--target", "onnx-nnapi", "--json")
    assert result.returncode == ExitCode.CHECK_FAILED, result.stderr[-2000:]
    report = strict_json(result.stdout)
    (nnapi,) = report["targets"]
    assert nnapi["target"] == "onnx-nnapi" and nnapi["support"] == "unsupported" and report["passed"] is False
    assert nnapi["facts"]["partitions"] == 2 and nnapi["facts"]["supported_nodes"] == 2
    assert nnapi["facts"]["unsupported_ops"] == ["ai.onnx:CumSum"]
    flagged = [op for op in nnapi["ops"] if op["support"] != "supported"]
    assert [(op["index"], op["op"], op["name"], op["evidence"]) for op in flagged] == [
        (1, "CumSum", "running_total", "static rule")]
    assert "NNAPI supported-op list" in flagged[0]["reason"]
    text = run_edgekit("compat", model, "--target", "onnx-nnapi")
    assert text.returncode == 1 and "CumSum" in text.stdout and "Traceback" not in text.stderr
    assert "not every operator runs on onnx-nnapi" in text.stderr


def test_an_onnx_model_every_ep_takes_passes_with_exit_0(tmp_path):
    model = onnx_model(tmp_path / "plain.onnx", middle="Tanh")
    result = run_edgekit("compat", model, "--json")
    assert result.returncode == 0, result.stdout[-3000:]
    report = strict_json(result.stdout)
    assert [t["target"] for t in report["targets"]] == ["onnx-nnapi", "onnx-coreml", "onnxruntime"]
    assert {t["evidence"] for t in report["targets"]} == {"static rule", "runtime check on this machine"}
    assert report["targets"][0]["facts"]["partitions"] == 1


def test_checking_an_onnx_file_does_not_import_torch(tmp_path):
    """ONNX Runtime's tools package imports torch in its __init__ (3.5 s); the check loads its checker without."""
    import subprocess
    import sys

    model = onnx_model(tmp_path / "m.onnx")
    script = ("import sys\nfrom edgekit.targets.compat import check_compat\n"
              f"report = check_compat({str(model)!r})\n"
              "assert [t.target for t in report.targets] == ['onnx-nnapi', 'onnx-coreml', 'onnxruntime']\n"
              "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_runtime_table_reads_every_onnx_import_and_names_contrib_domains_in_use(tmp_path):
    """ONNX Runtime validates unused imports of ONNX's domains too (its quantizer adds ai.onnx.ml 5)."""
    import onnx
    from onnx import TensorProto
    from onnx import helper as h

    x = h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    graph = h.make_graph([h.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")], "g", [x], [y])
    model = h.make_model(graph, ir_version=8, opset_imports=[
        h.make_opsetid("", 17), h.make_opsetid("ai.onnx.ml", 5), h.make_opsetid("com.microsoft", 1),
        h.make_opsetid("com.microsoft.nchwc", 1)])
    onnx.save(model, tmp_path / "m.onnx")
    (runtime,) = check_compat(tmp_path / "m.onnx", ["onnxruntime"]).targets
    (row,) = runtime.ops
    assert row.support is Support.SUPPORTED  # the installed ONNX Runtime has com.microsoft Gelu
    assert "IR 8, ai.onnx opset 17, ai.onnx.ml opset 5, com.microsoft opset 1:" in row.reason  # nchwc: unused
    assert "newer than ORT's compatibility table" in row.reason  # ML opset 5 > the table's 4
    assert "nodes in com.microsoft need that domain's kernels too" in row.reason


@pytest.mark.parametrize(("opset", "ir", "named"), [
    (27, 13, "ai.onnx opset 27 is newer than it supports (up to opset 26)"),
    (21, 14, "Unsupported model IR version: 14, max supported IR version: 13"),
])
def test_an_onnx_model_newer_than_the_installed_runtime_is_flagged_with_the_versions(tmp_path, opset, ir, named):
    from importlib.metadata import version

    report = check_compat(onnx_model(tmp_path / "new.onnx", opset=opset, ir=ir, middle="Tanh"), ["onnxruntime"])
    (runtime,) = report.targets
    (row,) = runtime.ops
    assert runtime.support is Support.UNSUPPORTED and row.evidence is Evidence.RUNTIME_CHECK
    assert f"IR {ir}, ai.onnx opset {opset}" in row.reason and named in row.reason
    assert f"onnxruntime {version('onnxruntime')}" in row.reason
    assert "newer than ORT's compatibility table" in row.reason


# -- TFLite: XNNPACK (runtime), GPU delegate (static rules), LiteRT version --------------------------------------


@pytest.fixture(scope="module")
def argmax_tflite(tmp_path_factory) -> Path:
    """relu → cumsum → argmax: XNNPACK takes neither CUMSUM nor ARG_MAX; the GPU delegate takes CUMSUM only."""
    import tensorflow as tf

    class Net(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
        def __call__(self, x):
            y = tf.nn.relu(x) * 2.0
            return {"index": tf.argmax(tf.reshape(y, [1, -1]), axis=-1), "total": tf.math.cumsum(y, axis=1)}

    net = Net()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([net.__call__.get_concrete_function()], net)
    path = tmp_path_factory.mktemp("tflite") / "argmax.tflite"
    path.write_bytes(converter.convert())
    return path


def test_an_op_the_gpu_delegate_lacks_is_named_at_its_index(argmax_tflite):
    from ai_edge_litert import interpreter as litert

    result = run_edgekit("compat", argmax_tflite, "--json")
    assert result.returncode == ExitCode.CHECK_FAILED, result.stderr[-2000:]
    targets = {t["target"]: t for t in strict_json(result.stdout)["targets"]}
    assert list(targets) == ["tflite-xnnpack", "tflite-gpu", "litert"]
    plain = litert.Interpreter(model_path=str(argmax_tflite),
                               experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    argmax_index = next(op["index"] for op in plain._get_ops_details() if op["op_name"] == "ARG_MAX")
    gpu = targets["tflite-gpu"]
    assert gpu["support"] == "unsupported" and gpu["evidence"] == "static rule"
    assert [(op["index"], op["op"]) for op in gpu["ops"] if op["support"] != "supported"] == [
        (argmax_index, "ARG_MAX")]
    assert f"ARG_MAX #{argmax_index}" in gpu["summary"]
    xnnpack = targets["tflite-xnnpack"]
    assert xnnpack["evidence"] == "runtime check on this machine"
    assert sorted(op["op"] for op in xnnpack["ops"] if op["support"] != "supported") == ["ARG_MAX", "CUMSUM"]
    assert targets["litert"]["support"] == "supported"
    assert targets["litert"]["facts"]["min_runtime_version"]  # the converter records it


def test_a_dynamic_batch_keeps_shape_arithmetic_off_the_gpu(samples, tmp_path):
    """The Keras sample's flatten under a dynamic batch is SHAPE → STRIDED_SLICE → PACK → RESHAPE: real ops,
    which neither delegate takes (a fixed batch folds them away)."""
    import keras
    import tensorflow as tf

    report = check_compat(samples[Format.TFLITE], ["tflite-gpu"])
    (gpu,) = report.targets
    assert {op.op for op in gpu.ops if op.support is Support.UNSUPPORTED} == {"SHAPE", "STRIDED_SLICE", "RESHAPE"}
    assert {op.op for op in gpu.ops if op.support is Support.SUPPORTED} >= {"CONV_2D", "FULLY_CONNECTED"}
    assert any("dynamic input dimensions" in note and "[-1, 8, 8, 1]" in note for note in gpu.notes)

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), batch_size=1)
    hidden = keras.layers.MaxPooling2D()(keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image))
    fixed = tmp_path / "fixed.tflite"
    fixed.write_bytes(tf.lite.TFLiteConverter.from_keras_model(
        keras.Model(image, keras.layers.Dense(10)(keras.layers.Flatten()(hidden)))).convert())
    for target in check_compat(fixed, ["tflite-gpu", "tflite-xnnpack"]).targets:  # the shape arithmetic is folded
        assert target.support is Support.SUPPORTED and [op.op for op in target.ops] == [
            "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED"], (target.target, target.summary())
        assert not any("dynamic" in note for note in target.notes)


@pytest.mark.parametrize(("name", "content"), [("garbage.tflite", b"\x00" * 4 + b"TFL3" + b"\x07" * 40),
                                               ("model.pt2", None)])
def test_bad_or_undeployable_files_get_one_line_and_exit_3(samples, tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        path = samples[Format.TORCH_EXPORTED]
    else:
        path.write_bytes(content)
    result = run_edgekit("compat", path)
    assert result.returncode == ExitCode.INVALID_INPUT, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and str(path) in result.stderr
    if content is None:
        assert "compat checks deployable artifacts" in result.stderr and "edgekit convert" in result.stderr


def test_a_target_of_another_format_or_an_unknown_one_is_a_usage_error(samples):
    result = run_edgekit("compat", samples[Format.ONNX], "--target", "tflite-gpu")
    assert result.returncode == ExitCode.USAGE and "checks tflite artifacts" in result.stderr
    assert "onnx-nnapi" in result.stderr
    result = run_edgekit("compat", samples[Format.ONNX], "--target", "gpu")
    assert result.returncode == ExitCode.USAGE and "--target gpu: not a compatibility target" in result.stderr
    result = run_edgekit("pipeline", "--compat", "tflite-gpu,gpu", "--out", samples[Format.ONNX].parent / "nope")
    assert result.returncode == ExitCode.USAGE and "--compat gpu: not a compatibility target" in result.stderr
    assert not (samples[Format.ONNX].parent / "nope").exists()  # refused before any file


# -- malformed and crafted TFLite files: one line, exit 3, bounded work ------------------------------------------


def crafted_tflite(*, subgraphs=1, tensors=1, operators=1, fan_in=1, tensor_index=0, opcode_index=0,
                   buffer_offset=None) -> bytes:
    """A .tflite whose vectors repeat one table: ``subgraphs`` entries naming one subgraph, which lists one tensor
    ``tensors`` times and one RELU ``operators`` times, whose inputs name ``tensor_index`` ``fan_in`` times. The
    object API unpacks each reference as its own tree; LiteRT's verifier stops at a million tables."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    b = flatbuffers.Builder(1024)

    def vector(start, items, prepend):
        start(b, len(items))
        for item in reversed(items):
            prepend(item)
        return b.EndVector()

    def tables(start, items):
        return vector(start, items, b.PrependUOffsetTRelative)

    def ints(start, items):
        return vector(start, items, b.PrependInt32)

    shape, name = ints(fb.TensorStartShapeVector, [1, 4]), b.CreateString("x")
    fb.TensorStart(b)
    fb.TensorAddShape(b, shape)
    fb.TensorAddName(b, name)
    fb.TensorAddBuffer(b, 1 if buffer_offset is not None else 0)
    tensor = fb.TensorEnd(b)
    inputs = ints(fb.OperatorStartInputsVector, [tensor_index] * fan_in)
    outputs = ints(fb.OperatorStartOutputsVector, [0])
    fb.OperatorStart(b)
    fb.OperatorAddOpcodeIndex(b, opcode_index)
    fb.OperatorAddInputs(b, inputs)
    fb.OperatorAddOutputs(b, outputs)
    operator = fb.OperatorEnd(b)
    tensor_list, operator_list = tables(fb.SubGraphStartTensorsVector, [tensor] * tensors), \
        tables(fb.SubGraphStartOperatorsVector, [operator] * operators)
    graph_inputs, graph_outputs = ints(fb.SubGraphStartInputsVector, [0]), ints(fb.SubGraphStartOutputsVector, [0])
    fb.SubGraphStart(b)
    fb.SubGraphAddTensors(b, tensor_list)
    fb.SubGraphAddOperators(b, operator_list)
    fb.SubGraphAddInputs(b, graph_inputs)
    fb.SubGraphAddOutputs(b, graph_outputs)
    graph_list = tables(fb.ModelStartSubgraphsVector, [fb.SubGraphEnd(b)] * subgraphs)
    fb.OperatorCodeStart(b)
    fb.OperatorCodeAddBuiltinCode(b, fb.BuiltinOperator.RELU)
    fb.OperatorCodeAddDeprecatedBuiltinCode(b, fb.BuiltinOperator.RELU)
    codes = tables(fb.ModelStartOperatorCodesVector, [fb.OperatorCodeEnd(b)])
    fb.BufferStart(b)
    buffers = [fb.BufferEnd(b)]  # buffer 0: the schema's empty sentinel
    if buffer_offset is not None:  # data stored after the flatbuffer (as in a model over 2 GB), at this offset
        fb.BufferStart(b)
        fb.BufferAddOffset(b, buffer_offset)
        fb.BufferAddSize(b, 64)
        buffers.append(fb.BufferEnd(b))
    buffer_list = tables(fb.ModelStartBuffersVector, buffers)
    fb.ModelStart(b)
    fb.ModelAddVersion(b, 3)
    fb.ModelAddOperatorCodes(b, codes)
    fb.ModelAddSubgraphs(b, graph_list)
    fb.ModelAddBuffers(b, buffer_list)
    b.Finish(fb.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_a_file_of_shared_tables_is_read_once_per_table(tmp_path):
    """24 KB: 2,000 subgraph entries naming one subgraph of 2,000 tensor and 2,000 operator entries. The object API
    built 8 million objects from it (> 30 s, > 600 MB, still going); LiteRT's verifier refuses it in milliseconds."""
    from edgekit.targets.compat.tflite import parse_flatbuffer

    data = crafted_tflite(subgraphs=2000, tensors=2000, operators=2000)
    assert len(data) < 30_000
    path = tmp_path / "dag.tflite"
    path.write_bytes(data)
    # first through the CLI, whose subprocess timeout fails the test where the object API's code ran for minutes
    result = run_edgekit("compat", path, timeout=60)
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("edgekit: error:")]
    assert f"{path}: LiteRT's flatbuffer verifier refuses it" in line and "Traceback" not in result.stderr
    model = parse_flatbuffer(data, "dag.tflite")  # the walk itself reads each shared table once
    assert model.subgraphs == 2000 and len(model.ops) == 2000 and len(set(map(id, model.ops))) == 1  # one OpSig
    assert model.ops[0].op == "RELU" and model.ops[0].inputs == (TensorSig(F32, (1, 4), False),)


def test_shared_tables_past_the_read_budget_are_refused_in_bounded_time():
    """3,000 references to one operator whose inputs name one tensor 3,000 times: 9 million tensor references in
    24 KB, which LiteRT's verifier accepts (it counts tables, not entries)."""

    from edgekit.targets.compat.tflite import WALK_BUDGET, parse_flatbuffer
    from edgekit.toolkit.contract.errors import InvalidInputError

    data = crafted_tflite(operators=3000, fan_in=3000)
    with pytest.raises(InvalidInputError, match=f"fan.tflite: reading it takes more than {WALK_BUDGET:,} table") as bad:
        parse_flatbuffer(data, "fan.tflite")
    assert bad.value.exit_code == ExitCode.INVALID_INPUT
    assert len(parse_flatbuffer(crafted_tflite(operators=1000, fan_in=1000), "fan.tflite").ops) == 1000  # under it


@pytest.mark.parametrize(("attack", "problem"), [
    ({"tensor_index": 7}, "subgraph 0's operator 0 has input tensor 7, out of range (the subgraph has 1 tensors)"),
    ({"tensor_index": -5}, "subgraph 0's operator 0 has input tensor -5, out of range"),
    ({"opcode_index": 2**31 - 1}, "operator 0 has opcode index 2147483647, out of range (the model has 1 operator"),
    ({"buffer_offset": 10**6}, "buffer 1's data at offset 1000000 (64 bytes) runs past the end of the"),
])
def test_a_malformed_tflite_is_invalid_input_in_every_target(tmp_path, attack, problem):
    """The interpreter's constructor raised these outside the target's try: exit 70 before."""
    from edgekit.toolkit.contract.errors import InvalidInputError

    path = tmp_path / "bad.tflite"
    path.write_bytes(crafted_tflite(**attack))
    for target in ("tflite-xnnpack", "tflite-gpu", "litert"):
        with pytest.raises(InvalidInputError) as bad:
            check_compat(path, [target])
        assert bad.value.exit_code == ExitCode.INVALID_INPUT
        assert str(bad.value).startswith(f"{path}: ") and problem in str(bad.value)


@pytest.mark.parametrize(("attack", "problem"), [({"tensor_index": 7}, "input tensor 7, out of range"),
                                                 ({"opcode_index": 2**31 - 1}, "opcode index 2147483647"),
                                                 ({"buffer_offset": 10**6}, "runs past the end of the")])
def test_edgekit_compat_on_a_malformed_tflite_exits_3_in_one_line(tmp_path, attack, problem, victim):
    path = tmp_path / "bad.tflite"
    path.write_bytes(crafted_tflite(**attack))
    result = run_edgekit("compat", path, timeout=120, cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tflite"]  # nothing written beside it
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("edgekit: error:")]
    assert str(path) in line and problem in line and "(fix: re-export" in line and "Traceback" not in result.stderr


def test_parse_flatbuffer_raises_only_invalid_input_on_corrupted_bytes(samples):
    """Seeded byte corruption of a converter's file: a FlatModel or an InvalidInputError, never anything else."""
    import random

    from edgekit.targets.compat.tflite import parse_flatbuffer
    from edgekit.toolkit.contract.errors import InvalidInputError

    valid = samples[Format.TFLITE].read_bytes()
    assert parse_flatbuffer(valid).ops
    rng = random.Random(0)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(400):
        data = bytearray(valid)
        for _ in range(rng.choice((1, 3))):
            at = rng.randrange(len(data))
            data[at:at + 4] = rng.randrange(2**32).to_bytes(4, "little")
        try:
            parse_flatbuffer(bytes(data[:rng.choice((len(data), rng.randrange(len(data))))]), "corrupt.tflite")
            outcomes["parsed"] += 1
        except InvalidInputError as refused:
            assert refused.one_line().startswith("corrupt.tflite: ") and "\n" not in refused.one_line()
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100


def test_an_onnx_graph_the_checker_cannot_walk_is_invalid_input_or_unknown(tmp_path):
    """ONNX Runtime's usability checker raised ValueError outside any try (exit 70): on a malformed graph (ONNX's
    checker refuses it too: exit 3) and on a valid graph it cannot assess (two custom-domain nodes, no shapes)."""
    import onnx
    from onnx import TensorProto
    from onnx import helper as h

    from edgekit.toolkit.contract.errors import InvalidInputError

    x = h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    missing = h.make_graph([h.make_node("Add", ["x", "nowhere"], ["y"])], "g", [x], [y])
    onnx.save(h.make_model(missing, opset_imports=[h.make_opsetid("", 17)], ir_version=8), tmp_path / "bad.onnx")
    with pytest.raises(InvalidInputError, match=r"bad.onnx: not a valid ONNX graph \(.*'nowhere'") as bad:
        check_compat(tmp_path / "bad.onnx", ["onnx-nnapi"])
    assert bad.value.exit_code == ExitCode.INVALID_INPUT
    custom = h.make_graph([h.make_node("Foo", ["x"], ["a"], domain="my.ops"),
                           h.make_node("Bar", ["a"], ["y"], domain="my.ops")], "g", [x], [y])
    onnx.save(h.make_model(custom, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("my.ops", 1)], ir_version=8),
              tmp_path / "custom.onnx")
    (nnapi,) = check_compat(tmp_path / "custom.onnx", ["onnx-nnapi"]).targets
    (row,) = nnapi.ops
    assert nnapi.support is Support.UNKNOWN and "usability checker cannot check it" in row.reason


@pytest.mark.parametrize("call", ["delegate", "kernel"])
def test_a_pte_calling_outside_its_tables_is_invalid_input(samples, tmp_path, call):
    """A delegate or operator index past its method's table: IndexError outside any try (exit 70) before."""
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary
    from executorch.exir.schema import KernelCall

    from edgekit.toolkit.contract.errors import InvalidInputError

    pte = deserialize_pte_binary(samples[Format.EXECUTORCH].read_bytes())
    instruction = pte.program.execution_plan[0].chains[0].instructions[0]
    if call == "delegate":
        instruction.instr_args.delegate_index = 7
    else:
        instruction.instr_args = KernelCall(op_index=2**31 - 1, args=[])
    path = tmp_path / "bad.pte"
    path.write_bytes(bytes(serialize_pte_binary(pte)))
    for target in ("executorch-xnnpack", "executorch"):
        with pytest.raises(InvalidInputError, match=f"bad.pte: method forward's instruction 0 calls "
                                                    f"{'delegate 7' if call == 'delegate' else 'operator 2147483647'}"
                                                    f", out of range"):
            check_compat(path, [target])


# -- device profiles, bench, check -----------------------------------------------------------------------------


def test_bench_reports_the_profiles_compat_targets_and_refuses_an_accelerator_profile(samples, tmp_path):
    result = run_edgekit("bench", samples[Format.TFLITE], "--target", "mobile-cpu-1t", "--min-seconds", "0.05",
                         "--runs", "5", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    compat = strict_json(result.stdout)["compat"][str(samples[Format.TFLITE])]
    assert list(compat) == ["tflite-xnnpack", "litert"]
    assert compat["litert"]["support"] == "supported"
    refused = run_edgekit("bench", samples[Format.TFLITE], "--target", "android-gpu")
    assert refused.returncode == ExitCode.USAGE, refused.stderr
    assert "edgekit compat MODEL --target android-gpu" in refused.stderr and "Traceback" not in refused.stderr


def test_check_requires_compat_targets_of_each_rows_format():
    from edgekit.pipeline.gate import judge, parse_config
    from edgekit.pipeline.report import RowStatus

    gpu_bad = {"tflite-gpu": {"support": "unsupported", "summary": "1 of 8 unsupported: ARG_MAX #7"}}
    base = make_report()
    rows = (replace(base.rows[0], compat=gpu_bad),  # tflite
            replace(base.rows[1], status=RowStatus.PASSED, reason="", compat={}))  # onnx: tflite-gpu does not apply
    report = replace(base, rows=rows)
    config = parse_config({"thresholds": {"compat": ["tflite-gpu"]}}, Path("/c/edgekit.toml"))
    violations = judge(report, config).violations
    assert violations == ("digits_cnn_torch → tflite none: tflite-gpu unsupported: 1 of 8 unsupported: ARG_MAX #7 "
                          "(compat)",)
    nnapi = parse_config({"thresholds": {"onnx": {"compat": ["android-nnapi"]}}}, Path("/c/edgekit.toml"))
    assert judge(report, nnapi).violations == ("digits_cnn_torch → onnx int8: compat onnx-nnapi required but not "
                                              "checked", "digits_cnn_torch → onnx int8: compat onnxruntime "
                                              "required but not checked")
    assert "onnx-nnapi" in nnapi.compat_targets and "tflite-xnnpack" in nnapi.compat_targets  # + [pipeline] all
    with pytest.raises(UsageError, match=r"\[thresholds\]: 'gpu': not a compatibility target"):
        parse_config({"thresholds": {"compat": ["gpu"]}}, Path("/c/edgekit.toml"))
    assert parse_config({"pipeline": {"compat": []}}, Path("/c/edgekit.toml")).compat_targets == ()


def test_the_pipeline_table_shows_the_compat_column():
    from edgekit.pipeline.report import TABLE_COLUMNS, PipelineReport, fmt_compat, junit_xml, markdown

    ok = {"tflite-xnnpack": {"support": "supported", "summary": "all 8 ops supported"},
          "litert": {"support": "supported", "summary": "supported"}}
    base = make_report()
    rows = (replace(base.rows[0], compat=ok),
            replace(base.rows[1], compat={"onnx-nnapi": {"support": "unsupported", "summary": "x"},
                                          "onnx-coreml": {"support": "unknown", "summary": "y"}}))
    report = replace(base, rows=rows)
    assert TABLE_COLUMNS[-1] == "compat"
    assert [fmt_compat(r) for r in report.rows] == ["✓ 2 targets", "✗ onnx-nnapi, ? onnx-coreml"]
    assert "✗ onnx-nnapi" in markdown(report)
    assert 'name="compat.onnx-nnapi" value="unsupported"' in junit_xml(report)
    again = PipelineReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.rows[0].compat == ok


# -- real artifacts end to end ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_digits_cnn_runs_on_every_target_with_each_evidence_level(tmp_path):
    model = tmp_path / "digits.pt2"
    trained = run_edgekit("train", "--framework", "torch", "--arch", "cnn", "-o", model, "--epochs", "1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    evidence = {}
    for fmt, suffix in (("tflite", ".tflite"), ("onnx", ".onnx"), ("executorch", ".pte")):
        artifact = tmp_path / f"digits{suffix}"
        converted = run_edgekit("convert", model, "--to", fmt, "-o", artifact)
        assert converted.returncode == 0, converted.stderr[-2000:]
        result = run_edgekit("compat", artifact, "--json")
        report = strict_json(result.stdout)
        assert result.returncode == 0 and report["passed"], [(t["target"], t["summary"]) for t in report["targets"]]
        evidence.update({t["target"]: t["evidence"] for t in report["targets"]})
    assert set(evidence) == set(COMPAT_TARGETS)
    assert evidence["tflite-gpu"] == "static rule" and evidence["tflite-xnnpack"] == "runtime check on this machine"
    assert evidence["executorch-xnnpack"] == "compiler check"


@pytest.mark.slow
def test_an_executorch_op_xnnpack_leaves_to_the_cpu_is_listed(tmp_path):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(16, 16)

        def forward(self, x):
            return torch.cumsum(self.fc(x), dim=1)

    torch.manual_seed(0)
    source = tmp_path / "cumsum.pt2"
    torch.export.save(torch.export.export(Net().eval(), (torch.randn(1, 16),)), str(source))
    artifact = tmp_path / "cumsum.pte"
    converted = run_edgekit("convert", source, "--to", "executorch", "-o", artifact)
    assert converted.returncode == 0, converted.stderr[-2000:]
    result = run_edgekit("compat", artifact, "--json")
    assert result.returncode == 1
    targets = {t["target"]: t for t in strict_json(result.stdout)["targets"]}
    xnnpack = targets["executorch-xnnpack"]
    assert [op["op"] for op in xnnpack["ops"]] == ["XnnpackBackend", "aten::cumsum.out"]
    assert [op["support"] for op in xnnpack["ops"]] == ["supported", "unsupported"]
    assert targets["executorch"]["support"] == "supported"  # it runs: on the portable kernel
    assert targets["executorch"]["facts"]["schema"].startswith("ET")


@pytest.mark.slow
def test_check_gates_a_pipeline_on_a_compat_target(samples, tmp_path):
    import shutil

    models = tmp_path / "models"
    models.mkdir()
    keras = shutil.copy(samples[Format.KERAS], models / "net.keras")
    config = tmp_path / "edgekit.toml"
    config.write_text(f'[pipeline]\nmodels = ["{Path(keras).relative_to(tmp_path)}"]\nto = ["tflite", "onnx"]\n'
                      'quantize = ["none"]\ncalibration = "random"\n\n[thresholds]\ncompat = ["tflite-gpu"]\n')
    result = run_edgekit("check", "--config", config)
    assert result.returncode == ExitCode.CHECK_FAILED, result.stdout[-3000:] + result.stderr[-2000:]
    report = strict_json((tmp_path / "edgekit-check" / "report.json").read_text())
    rows = {r["format"]: r for r in report["rows"]}
    assert rows["tflite"]["compat"]["tflite-gpu"]["support"] == "unsupported"  # the dynamic batch's SHAPE
    assert set(rows["onnx"]["compat"]) == {"onnx-nnapi", "onnx-coreml", "onnxruntime"}
    assert [v for v in report["violations"] if "(compat)" in v] == [
        f"net → tflite none: tflite-gpu unsupported: {rows['tflite']['compat']['tflite-gpu']['summary']} (compat)"]
    assert "compat" in (tmp_path / "edgekit-check" / "report.md").read_text()
