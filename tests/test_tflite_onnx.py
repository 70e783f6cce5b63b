"""TFLite → ONNX (tf2onnx's TFLite front end): float and int8 `.tflite` files edgekit made, including integer
I/O, convert and pass parity against the TFLite original on LiteRT; the int8 model stays quantized (QDQ); a
16x8 model is refused in one line; the route composes with ONNX quantization."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import run_edgekit

from edgekit.toolkit.contract.errors import ExitCode
from edgekit.toolkit.contract.formats import Format

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tflites(samples, tmp_path_factory):
    """The Keras sample as .tflite at none, int8 (float I/O), int8-io and int16x8."""
    out = tmp_path_factory.mktemp("tflites")
    made = {"none": samples[Format.TFLITE]}
    for mode in ("int8", "int8-io", "int16x8"):
        path = out / f"cnn.{mode}.tflite"
        result = run_edgekit("convert", samples[Format.KERAS], "--to", "tflite", "--quantize", mode,
                             "--calibration", "random", "-o", path)
        assert result.returncode == 0, result.stderr[-2000:]
        made[mode] = path
    return made


@pytest.mark.parametrize("mode", ["none", "int8", "int8-io"])
def test_tflite_converts_to_onnx_and_passes_against_the_tflite(tflites, tmp_path, mode):
    import onnx

    out = tmp_path / f"cnn.{mode}.onnx"
    result = run_edgekit("convert", tflites[mode], "--to", "onnx", "-o", out, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["route"] == ["tflite", "onnx"]
    assert report["parity"]["verdict"] == "PASS"
    assert report["parity"]["profile"] == "fp32", "a translation is judged as exact, not as a requantization"
    model = onnx.load(str(out))
    ops = Counter(node.op_type for node in model.graph.node)
    if mode == "none":
        assert not ops["QuantizeLinear"] and not ops["DequantizeLinear"]
    else:  # the TFLite file's own quantization, as QDQ
        assert ops["QuantizeLinear"] >= 1 and ops["DequantizeLinear"] >= 3, ops
    expected = onnx.TensorProto.INT8 if mode == "int8-io" else onnx.TensorProto.FLOAT
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [expected]
    sidecar = json.loads(out.with_name(out.name + ".edgekit.json").read_text())
    assert sidecar["extra"]["steps"][0]["details"]["exporter"] == "tf2onnx (TFLite front end)"


def test_a_16x8_tflite_is_refused_in_one_line(tflites, tmp_path):
    out = tmp_path / "cnn.onnx"
    result = run_edgekit("convert", tflites["int16x8"], "--to", "onnx", "-o", out)
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr[-2000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error")]
    assert "its quantization is int16" in line and "16x8" in line and "--quantize int8" in line
    assert "Traceback" not in result.stderr and not out.exists()


def test_tflite_to_onnx_composes_with_onnx_quantization(tflites, tmp_path):
    out = tmp_path / "cnn.dynamic.onnx"
    result = run_edgekit("convert", tflites["none"], "--to", "onnx", "--quantize", "dynamic", "-o", out, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["route"] == ["tflite", "onnx", "onnx"] and report["parity"]["verdict"] == "PASS"


def test_a_litert_torch_int8_io_tflite_converts_to_onnx_exactly(samples, tmp_path):
    """A .tflite from another converter (litert-torch + ai-edge-quantizer: other op and tensor names)."""
    tflite = tmp_path / "torch.int8-io.tflite"
    made = run_edgekit("convert", samples[Format.TORCH_EXPORTED], "--to", "tflite", "--quantize", "int8-io",
                       "--quantizer", "ai-edge-quantizer", "--calibration", "random", "-o", tflite)
    assert tflite.is_file(), made.stderr[-2000:]  # its own parity verdict (random weights and data) is not the point
    result = run_edgekit("convert", tflite, "--to", "onnx", "-o", tmp_path / "torch.onnx", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    parity = json.loads(result.stdout)["parity"]
    assert parity["verdict"] == "PASS" and parity["profile"] == "fp32"
    # int8 in, int8 out: the same integer arithmetic, up to one rounding step of the output
    assert all(o["metrics"]["max_abs"] <= 1 for o in parity["outputs"]), parity["outputs"]
