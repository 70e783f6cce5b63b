"""--keep-float PATTERN: matching (paths, globs, op types, nearest names on a miss) and the two routes that map it
to their backend — onnxruntime's nodes_to_exclude on ONNX, the PT2E quantizer's node filter on ExecuTorch — checked
in the written files, not in what the converter says it did."""

from __future__ import annotations

import json

import pytest
from conftest import run_edgekit

from edgekit.toolkit.contract.errors import UsageError
from edgekit.toolkit.contract.layers import Layer, check_patterns, matches, select

LAYERS = [
    Layer("node_linear", ("Gemm", "Block", "Linear"), ("enc_block", "enc_block.fc_in")),
    Layer("node_layer_norm", ("LayerNormalization", "Block", "LayerNorm"), ("enc_block", "enc_block.norm")),
    Layer("node_linear_1", ("Gemm", "Block", "Linear"), ("enc_block", "enc_block.fc_out")),
    Layer("node_linear_2", ("Gemm", "Linear"), ("head",)),
]


def names(patterns):
    return [layer.name for layer in select(patterns, LAYERS, origin="m.pt2")]


def test_a_module_path_keeps_itself_and_what_it_contains():
    assert names(["enc_block.fc_out"]) == ["node_linear_1"]
    assert names(["enc_block"]) == ["node_linear", "node_layer_norm", "node_linear_1"]
    assert not matches("enc", LAYERS[0]) and not matches("enc_block.fc", LAYERS[0])


def test_globs_and_op_types_ignore_case_and_underscores():
    assert names(["enc_block.fc_*"]) == ["node_linear", "node_linear_1"]
    assert names(["layer_norm"]) == ["node_layer_norm"]
    assert names(["gemm"]) == ["node_linear", "node_linear_1", "node_linear_2"]
    assert names(["head", "LayerNorm"]) == ["node_layer_norm", "node_linear_2"]  # the model's order, no repeats


def test_a_pattern_matching_nothing_names_the_nearest_layers():
    with pytest.raises(UsageError) as caught:
        select(["enc_blok.fc_out"], LAYERS, origin="m.pt2")
    assert "m.pt2" in caught.value.message and "enc_blok.fc_out" in caught.value.message
    assert "enc_block.fc_out" in (caught.value.hint or "")


def test_empty_patterns_and_keep_float_without_quantization_are_refused():
    from edgekit.converters.base import ConvertOptions
    from edgekit.toolkit.contract.options import QuantMode

    with pytest.raises(UsageError):
        check_patterns([" "])
    with pytest.raises(UsageError, match="nothing is quantized"):
        ConvertOptions(keep_float=("head",))
    assert ConvertOptions(QuantMode.INT8, keep_float=(" head ",)).to_dict()["keep_float"] == ["head"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import torch

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc_in, self.norm, self.fc_out = torch.nn.Linear(16, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 8)

        def forward(self, x):
            return self.fc_out(torch.relu(self.norm(self.fc_in(x))))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc_block, self.head = Block(), torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.head(self.enc_block(x))

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("keep_float") / "m.pt2"
    torch.export.save(torch.export.export(Model().eval(), (torch.randn(1, 16),)), str(path))
    return path


def _convert(model, out, *args):
    return run_edgekit("convert", model, "-o", out, "--json", "--calibration", "random", *args)


def _dequantized_weights(path):
    import onnx

    return {n.name.removesuffix(".weight_DequantizeLinear") for n in onnx.load(str(path)).graph.node
            if n.name.endswith(".weight_DequantizeLinear")}


@pytest.mark.slow
def test_onnx_int8_leaves_the_named_module_and_op_type_float(model, tmp_path):
    plain = _convert(model, tmp_path / "plain.onnx", "--to", "onnx", "--quantize", "int8")
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert _dequantized_weights(tmp_path / "plain.onnx") == {"enc_block.fc_in", "enc_block.norm", "enc_block.fc_out",
                                                             "head"}
    kept = _convert(model, tmp_path / "kept.onnx", "--to", "onnx", "--quantize", "int8",
                    "--keep-float", "enc_block.fc_out", "--keep-float", "LayerNorm")
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert _dequantized_weights(tmp_path / "kept.onnx") == {"enc_block.fc_in", "head"}
    report = json.loads(kept.stdout)
    assert report["parity"]["verdict"] == "PASS"
    sidecar = json.loads((tmp_path / "kept.onnx.edgekit.json").read_text())
    assert sidecar["options"]["keep_float"] == ["enc_block.fc_out", "LayerNorm"]
    assert sidecar["extra"]["kept_float"] == [{"patterns": ["enc_block.fc_out", "LayerNorm"],
                                               "nodes": ["node_layer_norm", "node_linear_1"]}]


@pytest.mark.slow
def test_onnx_dynamic_and_int4_honour_it(model, tmp_path):
    import onnx

    result = _convert(model, tmp_path / "d.onnx", "--to", "onnx", "--quantize", "dynamic", "--keep-float", "head")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "head" not in {n.name.split(".weight")[0] for n in onnx.load(str(tmp_path / "d.onnx")).graph.node
                          if "weight" in n.name and "Dequantize" in n.op_type}
    # quantize_dynamic splits each Gemm into <name>_MatMul + <name>_Add and makes the MatMul a MatMulInteger
    ops = {n.name: n.op_type for n in onnx.load(str(tmp_path / "d.onnx")).graph.node}
    assert ops["node_linear_2_MatMul"] == "MatMul" and "node_linear_2_MatMul_quant" not in ops
    assert ops["node_linear_1_MatMul_quant"] == "MatMulInteger"
    int4 = _convert(model, tmp_path / "q4.onnx", "--to", "onnx", "--quantize", "int4", "--keep-float", "head")
    assert int4.returncode == 0, int4.stderr[-2000:]
    ops = [n.op_type for n in onnx.load(str(tmp_path / "q4.onnx")).graph.node]
    assert ops.count("MatMulNBits") == 2 and "MatMul" in ops  # of three linears, head stays a float MatMul


@pytest.mark.slow
def test_executorch_dynamic_leaves_the_named_module_float(model, tmp_path):
    import torch

    from edgekit.converters.base import ConvertOptions, StepInput, StepReport
    from edgekit.converters.torch_executorch import _quantized
    from edgekit.targets._torch import load_exported_program
    from edgekit.toolkit.contract.formats import Format
    from edgekit.toolkit.contract.options import QuantMode

    def quantized_linears(keep):
        options = ConvertOptions(QuantMode.DYNAMIC, keep_float=keep)
        step = StepInput(model, Format.TORCH_EXPORTED, None, options, QuantMode.DYNAMIC, None)  # type: ignore[arg-type]
        program = _quantized(load_exported_program(model), step, (torch.randn(1, 16),), StepReport("t"))
        linears = [n for n in program.graph.nodes if n.target == torch.ops.aten.linear.default]
        return [bool(n.args[1].op == "call_function" and "dequantize" in str(n.args[1].target)) for n in linears]

    assert quantized_linears(()) == [True, True, True]
    assert quantized_linears(("head",)) == [True, True, False]
    result = _convert(model, tmp_path / "m.pte", "--to", "executorch", "--quantize", "dynamic", "--keep-float", "head")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["parity"]["verdict"] == "PASS"
    assert report["steps"][-1]["details"]["keep_float"] == {"patterns": ["head"], "modules": ["head"]}


@pytest.mark.slow
def test_refusals_are_one_line_usage_errors(model, tmp_path):
    miss = _convert(model, tmp_path / "x.onnx", "--to", "onnx", "--quantize", "int8", "--keep-float", "enc_blok")
    assert miss.returncode == 2 and "m.pt2" in miss.stderr and "nearest names: enc_block" in miss.stderr
    assert "Traceback" not in miss.stderr and not (tmp_path / "x.onnx").exists()
    tflite = _convert(model, tmp_path / "x.tflite", "--to", "tflite", "--quantize", "int8", "--keep-float", "head")
    assert tflite.returncode == 2 and "onnx" in tflite.stderr and "executorch" in tflite.stderr
    unquantized = _convert(model, tmp_path / "y.onnx", "--to", "onnx", "--keep-float", "head")
    assert unquantized.returncode == 2 and "--quantize" in unquantized.stderr
