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


def _export(module, args, path):
    import torch

    torch.export.save(torch.export.export(module.eval(), args), str(path))
    return path


def test_executorch_int4_keeps_convolutions_float(tmp_path):
    """XNNPACK's 4-bit kernels are fully connected only: a depthwise-separable CNN's convs stay float (they
    used to be quantized to [-8, 7] and then had no kernel at all), its Linear goes to 4 bits."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1, groups=3), torch.nn.Conv2d(3, 16, 1),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(16, 10))
    model = _export(net, (torch.randn(1, 3, 16, 16),), tmp_path / "dwse.pt2")
    report = convert(model, "executorch", "int4", tmp_path / "dwse.int4.pte")
    assert report["parity"]["verdict"] == "PASS"
    assert "convolutions float" in report["steps"][-1]["details"]["quantizer"]


def test_executorch_fp16_on_a_program_that_keeps_float32_is_one_line(tmp_path):
    import torch

    torch.manual_seed(0)

    class Recurrent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(8, 16, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0]

    model = _export(Recurrent(), (torch.randn(1, 5, 8),), tmp_path / "lstm.pt2")
    result = run_edgekit("convert", model, "--to", "executorch", "--quantize", "fp16", "-o", tmp_path / "l.pte")
    if result.returncode == 0:
        pytest.skip("this torch/ExecuTorch lowers the LSTM in fp16 now")
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error")]
    assert result.returncode == 5 and "fp16 on ExecuTorch failed: the program keeps float32" in line
    assert "fp16 on TFLite or ONNX" in line and "Traceback" not in result.stderr
