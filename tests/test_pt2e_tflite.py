"""torch → TFLite through PT2E (``--quantizer pt2e``): litert-torch lowers a convert_pt2e graph. Checked in the written
file (integer I/O with its scale, int8 weights, what stayed float), by parity on labelled digits, by the recipe
making the same bytes again, and on a transformer with integer inputs."""

from __future__ import annotations

import json

import pytest
from conftest import run_edgekit
from test_keep_float import _weight_types

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlps(tmp_path_factory):
    from tiny_models import outlier_mlps

    return outlier_mlps(tmp_path_factory.mktemp("pt2e"))


def _convert(source, out, *args):
    directory = source.parent
    return run_edgekit("convert", source, "--to", "tflite", "-o", out, "--json", "--calibration",
                       directory / "calib.npz", "--data", directory / "test.npz", *args)


def _io_types(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path))
    return ([d["dtype"].__name__ for d in interpreter.get_input_details()],
            [d["dtype"].__name__ for d in interpreter.get_output_details()])


def test_int8_io_is_integer_end_to_end_passes_and_its_recipe_makes_the_same_file(mlps, tmp_path):
    out = tmp_path / "clean.tflite"
    result = _convert(mlps / "clean.pt2", out, "--quantize", "int8-io", "--quantizer", "pt2e")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["parity"]["verdict"] == "PASS"
    assert _io_types(out) == (["int8"], ["int8"]) and _weight_types(out) == ["int8"] * 3
    step = report["steps"][-1]
    assert "PT2E" in step["details"]["converter"] and step["details"]["io"].startswith("int8")
    sidecar = json.loads((tmp_path / "clean.tflite.edgekit.json").read_text())
    assert sidecar["options"]["quantizer"] == "pt2e"
    inputs = sidecar["io_spec"]["inputs"]
    assert inputs[0]["quant"]["scale"][0] > 0  # the app is told how to quantize its float input
    again = run_edgekit("convert", mlps / "clean.pt2", "--recipe", tmp_path / "clean.tflite.edgekit.json",
                        "-o", tmp_path / "again.tflite", "--data", mlps / "test.npz", "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((tmp_path / "again.tflite.edgekit.json").read_text())["sha256"] == sidecar["sha256"]
    assert (tmp_path / "again.tflite").read_bytes() == out.read_bytes()
    # PT2E is this mode's default (measured the fastest that passes parity): the same file without the flag;
    # ai-edge-quantizer when asked for
    default = _convert(mlps / "clean.pt2", tmp_path / "default.tflite", "--quantize", "int8-io")
    assert default.returncode == 0 and (tmp_path / "default.tflite").read_bytes() == out.read_bytes()
    aeq = _convert(mlps / "clean.pt2", tmp_path / "aeq.tflite", "--quantize", "int8-io", "--quantizer",
                   "ai-edge-quantizer")
    assert "ai_edge_quantizer" in json.loads(aeq.stdout)["steps"][-1]["details"]["converter"]


def test_keep_float_and_the_budget_work_through_the_pt2e_quantizer(mlps, tmp_path):
    plain = _convert(mlps / "outlier.pt2", tmp_path / "plain.tflite", "--quantize", "int8-io", "--quantizer", "pt2e")
    assert plain.returncode == 1 and json.loads(plain.stdout)["parity"]["verdict"] == "FAIL"  # the planted outlier
    kept = _convert(mlps / "outlier.pt2", tmp_path / "kept.tflite", "--quantize", "int8-io", "--quantizer", "pt2e",
                    "--keep-float", "fc2")
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert _weight_types(tmp_path / "kept.tflite") == ["int8", "float32", "int8"]
    assert json.loads(kept.stdout)["steps"][-1]["details"]["keep_float"]["modules"] == ["fc2"]
    budget = _convert(mlps / "outlier.pt2", tmp_path / "budget.tflite", "--quantize", "int8-io", "--quantizer", "pt2e",
                      "--max-accuracy-drop", "2")
    assert budget.returncode == 0, budget.stderr[-2000:]
    sidecar = json.loads((tmp_path / "budget.tflite.edgekit.json").read_text())
    assert sidecar["options"]["keep_float"] == ["fc2"] and sidecar["options"]["quantizer"] == "pt2e"


def test_dynamic_keeps_float_io_and_an_unsupported_mode_names_the_tools_that_make_it(mlps, tmp_path):
    dynamic = _convert(mlps / "clean.pt2", tmp_path / "d.tflite", "--quantize", "dynamic", "--quantizer", "pt2e")
    assert dynamic.returncode == 0, dynamic.stderr[-2000:]
    assert json.loads(dynamic.stdout)["parity"]["verdict"] == "PASS"
    assert _io_types(tmp_path / "d.tflite") == (["float32"], ["float32"])
    assert _weight_types(tmp_path / "d.tflite") == ["int8"] * 3
    refused = _convert(mlps / "clean.pt2", tmp_path / "x.tflite", "--quantize", "int8", "--quantizer", "pt2e")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "ai-edge-quantizer (fp16, dynamic, int8, int8-io, int16x8, int4); pt2e (dynamic, int8-io)" in refused.stderr
    assert not (tmp_path / "x.tflite").exists()


def test_a_transformer_with_integer_inputs(tmp_path):
    from user_models import save_pt2, transformer

    module, args, _ = transformer("bert")
    pt2 = save_pt2(module, args, tmp_path / "bert.pt2")
    result = run_edgekit("convert", pt2, "--to", "tflite", "--quantize", "int8-io", "--quantizer", "pt2e",
                         "--calibration", "random", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["parity"]["verdict"] == "PASS"  # measured: cosine 0.99987 (ai-edge-quantizer int8-io: 0.966)
    with open(report["sidecar"]) as sidecar:
        inputs = json.load(sidecar)["io_spec"]["inputs"]
    assert {ts["dtype"] for ts in inputs} <= {"int32", "int64"}  # token ids stay integers, not quantized
