"""--quantize int4 (4-bit weights) on the three mobile formats: an MLP and a small `transformers` BERT from a
.pt2 pass parity on TFLite (ai-edge-quantizer), ExecuTorch (PT2E XNNPACK, weights on [-8, 7]) and ONNX
(MatMulNBits); on the linear-heavy MLP each file is at most 0.6× its dynamic-int8 twin; a Keras model reaches
TFLite int4 and ONNX int4 too."""

from __future__ import annotations

import json

import pytest
from conftest import run_edgekit

from edgekit.toolkit.contract.formats import Format

pytestmark = pytest.mark.slow
TARGETS = ("tflite", "executorch", "onnx")


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                                 torch.nn.ReLU(), torch.nn.Linear(512, 10)).eval()
    path = tmp_path_factory.mktemp("int4") / "mlp.pt2"
    torch.export.save(torch.export.export(module, (torch.randn(1, 256),)), str(path))
    return path


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    from user_models import save_pt2, transformer

    module, args, _ = transformer("bert")
    return save_pt2(module, args, tmp_path_factory.mktemp("int4") / "bert.pt2")


def convert(model, to, mode, out):
    result = run_edgekit("convert", model, "--to", to, "--quantize", mode, "-o", out, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("to", TARGETS)
def test_int4_is_at_most_0_6_of_dynamic_int8_on_a_linear_heavy_model(mlp, tmp_path, to):
    suffix = Format(to).spec.suffix
    int4 = convert(mlp, to, "int4", tmp_path / f"mlp.int4{suffix}")
    dynamic = convert(mlp, to, "dynamic", tmp_path / f"mlp.dynamic{suffix}")
    assert int4["parity"]["verdict"] == "PASS" and int4["parity"]["profile"] == "int4"
    ratio = int4["size_bytes"] / dynamic["size_bytes"]
    assert ratio <= 0.6, f"{to}: int4 is {ratio:.3f}× of dynamic int8"


@pytest.mark.parametrize("to", TARGETS)
def test_int4_on_a_small_transformer(bert, tmp_path, to):
    report = convert(bert, to, "int4", tmp_path / f"bert.int4{Format(to).spec.suffix}")
    assert report["parity"]["verdict"] == "PASS", report["parity"]["outputs"]
    details = " ".join(str(step["details"]) for step in report["steps"])
    expected = {"tflite": "dynamic_wi4_afp32", "executorch": "int4 weights", "onnx": "MatMulNBits"}[to]
    assert expected in details, details


@pytest.mark.parametrize("to", ("tflite", "onnx"))
def test_int4_from_keras(samples, tmp_path, to):
    report = convert(samples[Format.KERAS], to, "int4", tmp_path / f"k.int4{Format(to).spec.suffix}")
    assert report["parity"]["verdict"] == "PASS"
    assert report["route"] == (["keras", "tflite"] if to == "tflite" else ["keras", "onnx", "onnx"])
