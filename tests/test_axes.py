"""One table per axis: a precision or an output format is a row of its table, and everything else follows.

``axis_plugins`` adds a test-only precision (``int4w``) and a test-only output format (``linear-npz``) with
one row each, one module and its registry lines. These tests then use edgekit as a user would and check
that the default file names, planning, the routes listing, calibration needs, tolerance profiles,
sniffing, the runtime and parity all follow from those rows — no other file knows about them.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.toolkit.contract.formats import Format, output_formats, sniff
from edgekit.toolkit.contract.options import QuantMode, quant_mode_help


@pytest.fixture
def plugins():
    import axis_plugins

    mode, fmt = axis_plugins.register()
    yield mode, fmt
    axis_plugins.unregister()
    assert "int4w" not in QuantMode and "linear-npz" not in Format


def _linear_onnx(path):
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((6, 3)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"],
                                                                                                ["y"])],
                              "linear", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])], [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    path.write_bytes(model.SerializeToString())
    return path


def test_a_new_precision_is_one_row_one_module_one_registry_line(plugins, samples, tmp_path):
    from edgekit.conversion import convert, default_output
    from edgekit.converters.base import ConvertOptions
    from edgekit.converters.planning import plan, supported_summary
    from edgekit.validators.tolerances import Profile, profile_for

    mode, _ = plugins
    source = tmp_path / "tiny.onnx"
    source.write_bytes(samples[Format.ONNX].read_bytes())
    assert mode is QuantMode("int4w") and "int4w (4-bit weights, float compute)" in quant_mode_help()
    assert default_output(source, Format.ONNX, mode).name == "tiny.int4w.onnx"
    assert profile_for("int4w") is Profile.DYNAMIC and not mode.spec.needs_calibration
    assert [s.name for s in plan(Format.ONNX, Format.ONNX, mode)] == ["test int4 weights"]
    assert "int4w" in supported_summary(Format.TORCH_EXPORTED)  # composed: torch → onnx → int4w onnx
    result = convert(source, Format.ONNX, ConvertOptions(quantize=mode))
    artifact = result.artifact
    assert artifact.path.name == "tiny.int4w.onnx" and artifact.options["quantize"] == "int4w"
    assert result.parity is not None and result.parity.profile is Profile.DYNAMIC
    assert result.steps[-1].details["rounded_initializers"] >= 2


def test_a_new_output_format_is_one_row_one_module_two_registry_lines(plugins, tmp_path):
    from edgekit.conversion import convert
    from edgekit.targets import open_runtime
    from edgekit.toolkit.contract.registry import CONVERTERS

    _, fmt = plugins
    source = _linear_onnx(tmp_path / "linear.onnx")
    assert fmt in output_formats() and any(spec.to is fmt for spec in CONVERTERS)
    result = convert(source, fmt)
    out = result.artifact.path
    assert out.name == "linear.eklin" and sniff(out).format is fmt
    assert result.parity is not None and result.parity.passed, result.parity.failures()
    x = np.ones((1, 6), np.float32)
    with open_runtime(out) as linear, open_runtime(source) as reference:
        np.testing.assert_allclose(linear.run({"x": x})["y"], reference.run({"x": x})["y"], rtol=1e-5, atol=1e-6)


def test_tables_drive_what_the_cli_offers():
    from typer.testing import CliRunner

    from edgekit.cli import app

    runner = CliRunner()
    help_text = " ".join(runner.invoke(app, ["convert", "--help"], terminal_width=200).output.split())
    for fmt in output_formats():
        assert fmt.value in help_text
    for mode in QuantMode:
        assert f"{mode.value} ({mode.spec.summary})" in help_text
    refused = runner.invoke(app, ["convert", "x.onnx", "--to", "keras"])
    assert refused.exit_code == 2 and "not one of tflite, onnx, torchscript, executorch" in refused.stderr


def test_open_values_behave_like_strings_and_enums():
    import copy
    import json
    import pickle

    assert QuantMode.INT8 == "int8" and QuantMode("int8") is QuantMode.INT8 and f"{Format.ONNX}" == "onnx"
    assert pickle.loads(pickle.dumps(Format.TFLITE)) is Format.TFLITE
    assert copy.deepcopy(QuantMode.NONE) is QuantMode.NONE
    assert json.dumps({"f": Format.ONNX}) == '{"f": "onnx"}' and {Format.ONNX: 1}["onnx"] == 1
    assert [q.value for q in QuantMode][:2] == ["none", "fp16"] and len(QuantMode) == 7
    with pytest.raises(ValueError, match="not a quantization mode"):
        QuantMode("int3")
    with pytest.raises(ValueError, match="registered twice"):
        QuantMode.register(QuantMode.INT8.spec)
