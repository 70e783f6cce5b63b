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
