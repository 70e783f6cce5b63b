"""ONNX → torch.export (edgekit's ONNX importer), the first hop of ONNX → TFLite / ExecuTorch.

Unit tests build one-node and small ONNX graphs with ``onnx.helper`` and compare the importer's module with
ONNX Runtime on seeded data; end-to-end tests convert ONNX files edgekit wrote and ones it did not (torch dynamo
with a symbolic batch, tf2onnx, recurrent and BERT graphs) to TFLite and ExecuTorch and read the parity verdict
against the ONNX original."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_edgekit

from edgekit.toolkit.contract.errors import ExitCode, InvalidInputError
from edgekit.toolkit.contract.formats import Format


def _model(nodes, inputs, outputs, initializers=(), opset=18):
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
                              list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _agree(model, feeds):
    import onnxruntime as ort
    import torch

    from edgekit.converters.onnx_torch import OnnxModule

    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    module = OnnxModule(model, [torch.from_numpy(v) for v in feeds.values()], "test.onnx")
    got = module(*[torch.from_numpy(v) for v in feeds.values()])
    got = [got] if isinstance(got, torch.Tensor) else list(got)
    for want, have in zip(expected, got, strict=True):
        assert tuple(have.shape) == want.shape
        np.testing.assert_allclose(have.numpy(), want, rtol=1e-5, atol=1e-5)
    return module


def _const(name, array):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(array), name)


RNG = np.random.default_rng(0)
X = RNG.standard_normal((1, 3, 9, 9)).astype(np.float32)


@pytest.mark.parametrize("auto_pad,pads", [("SAME_UPPER", None), ("SAME_LOWER", None), ("NOTSET", [0, 1, 1, 0])])
def test_conv_and_maxpool_pads_match_onnxruntime(auto_pad, pads):
    from onnx import helper

    extra = {"pads": pads} if pads else {"auto_pad": auto_pad}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[2, 2], **extra),
             helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 2], **extra)]
    weights = [_const("w", RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)),
               _const("b", RNG.standard_normal(4).astype(np.float32))]
    module = _agree(_model(nodes, [("x", X.shape)], ["y"], weights), {"x": X})
    assert module.layers == {"Conv2d": 1}, "a constant-weight Conv is a torch layer"


def test_matmul_by_a_constant_with_its_bias_is_one_linear():
    from onnx import helper

    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    weights = [_const("w", RNG.standard_normal((6, 4)).astype(np.float32)),
               _const("b", RNG.standard_normal(4).astype(np.float32))]
    module = _agree(_model(nodes, [("x", (2, 5, 6))], ["y"], weights),
                    {"x": RNG.standard_normal((2, 5, 6)).astype(np.float32)})
    assert module.layers == {"Linear": 1} and module.folded == 0


def test_shape_arithmetic_is_folded_at_build_time():
    """A dynamo-style Shape → Gather → Concat → Reshape chain: folded, so the traced program is data-only."""
    from onnx import helper

    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    consts = [_const("zero", np.int64(0)), _const("axes", np.array([0], np.int64)),
              _const("minus1", np.array([-1], np.int64))]
    module = _agree(_model(nodes, [("x", X.shape)], ["y"], consts), {"x": X})
    assert module.folded == 4


@pytest.mark.parametrize("node,opset", [
    (("Slice", ["x", "st", "en", "ax", "sp"], {}), 18),
    (("Flatten", ["x"], {"axis": 4}), 18),
    (("Flatten", ["x"], {"axis": -1}), 18),
    (("Softmax", ["x"], {"axis": 1}), 11),
    (("Softmax", ["x"], {"axis": 1}), 18),
    (("Pad", ["x", "pads"], {"mode": "reflect"}), 18),
    (("Pad", ["x", "pads"], {"mode": "edge"}), 18),
    (("ReduceMean", ["x", "rax"], {"keepdims": 0}), 18),
    (("Transpose", ["x"], {"perm": [0, 2, 3, 1]}), 18),
    (("Resize", ["x", "", "scales"], {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                                       "nearest_mode": "floor"}), 18),
    (("Resize", ["x", "", "scales"], {"mode": "linear"}), 18),
    (("GlobalAveragePool", ["x"], {}), 18),
    (("LpNormalization", ["x"], {}), 18),
])
def test_op_semantics_match_onnxruntime(node, opset):
    from onnx import helper

    op_type, inputs, attrs = node
    consts = [_const("st", np.array([-1, 1], np.int64)), _const("en", np.array([-10, 8], np.int64)),
              _const("ax", np.array([2, 3], np.int64)), _const("sp", np.array([-2, 3], np.int64)),
              _const("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)), _const("rax", np.array([1, -1], np.int64)),
              _const("scales", np.array([1, 1, 2, 2], np.float32))]
    model = _model([helper.make_node(op_type, inputs, ["y"], **attrs)], [("x", X.shape)], ["y"],
                   [c for c in consts if c.name in inputs], opset)
    if op_type == "LpNormalization":  # not translated: refused by name
        with pytest.raises(InvalidInputError, match="cannot translate LpNormalization"):
            _agree(model, {"x": X})
        return
    _agree(model, {"x": X})


def test_quantized_onnx_is_refused_naming_the_ops():
    from onnx import helper

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    model = _model(nodes, [("x", X.shape)], ["y"], [_const("s", np.float32(0.1)), _const("z", np.uint8(0))])
    with pytest.raises(InvalidInputError) as excinfo:
        _agree(model, {"x": X})
    assert "DequantizeLinear, QuantizeLinear" in str(excinfo.value) and "quantized ONNX" in excinfo.value.hint


# --- end to end ---------------------------------------------------------------------------------------------

def _convert(path, to, out, *extra):
    result = run_edgekit("convert", path, "--to", to, "-o", out, "--json", *extra)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    made = run_edgekit("train", "--framework", "torch", "--arch", "cnn", "-o", out / "digits.pt2", "--json")
    assert made.returncode == 0, made.stderr[-2000:]
    _convert(out / "digits.pt2", "onnx", out / "digits.onnx")
    return out / "digits.onnx"


@pytest.mark.slow
@pytest.mark.parametrize("to,suffix", [("tflite", ".tflite"), ("executorch", ".pte")])
@pytest.mark.parametrize("mode", ["none", "int8"])
def test_digits_onnx_converts_to_mobile_formats_and_passes(digits_onnx, tmp_path, to, suffix, mode):
    report = _convert(digits_onnx, to, tmp_path / f"digits.{mode}{suffix}", "--quantize", mode)
    assert report["route"] == ["onnx", "torch-exported", to]
    assert report["parity"]["verdict"] == "PASS" and report["parity"]["accuracy"]["candidate"] > 0.9, report["parity"]
    assert report["steps"][0]["details"]["nodes"]["layers"] == {"Conv2d": 2, "Linear": 2}


@pytest.fixture(scope="module")
def foreign_onnx(tmp_path_factory):
    """ONNX files edgekit did not write: torch dynamo with a symbolic batch, a bidirectional LSTM, a small BERT."""
    import torch
    from transformers import BertConfig, BertModel

    out = tmp_path_factory.mktemp("foreign")
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
            self.norm, self.fc = torch.nn.LayerNorm(8), torch.nn.Linear(8, 5)

        def forward(self, x):
            x = torch.nn.functional.gelu(self.bn(self.conv(x)))
            x = torch.nn.functional.max_pool2d(x, 2, 2).mean((2, 3))
            return torch.softmax(self.fc(self.norm(x)), -1)

    class Recurrent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.fc = torch.nn.LSTM(8, 16, batch_first=True, bidirectional=True), torch.nn.Linear(32, 3)

        def forward(self, x):
            return self.fc(self.lstm(x)[0][:, -1])

    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32)

    class Bert(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel(config).eval()

        def forward(self, ids, mask):
            return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state

    batch = torch.export.Dim("batch", min=1, max=64)
    torch.onnx.export(Net().eval(), (torch.randn(2, 3, 16, 16),), str(out / "dynamic.onnx"), dynamo=True,
                      dynamic_shapes={"x": {0: batch}}, external_data=False)
    torch.onnx.export(Recurrent().eval(), (torch.randn(1, 5, 8),), str(out / "lstm.onnx"), dynamo=True,
                      external_data=False)
    ids, mask = torch.randint(0, 120, (1, 16)), torch.ones(1, 16, dtype=torch.int64)
    torch.onnx.export(Bert().eval(), (ids, mask), str(out / "bert.onnx"), dynamo=False, opset_version=14,
                      input_names=["input_ids", "attention_mask"])
    return out


@pytest.mark.slow
def test_a_dynamo_onnx_with_a_symbolic_batch_converts_at_batch_one(foreign_onnx, tmp_path):
    report = _convert(foreign_onnx / "dynamic.onnx", "tflite", tmp_path / "dynamic.tflite")
    assert report["parity"]["verdict"] == "PASS"
    assert any("symbolic dimensions" in w and "fixed at" in w for w in report["warnings"]), report["warnings"]


@pytest.mark.slow
@pytest.mark.parametrize("name,to,suffix", [("lstm", "executorch", ".pte"), ("bert", "tflite", ".tflite")])
def test_recurrent_and_transformer_onnx_convert_and_pass(foreign_onnx, tmp_path, name, to, suffix):
    report = _convert(foreign_onnx / f"{name}.onnx", to, tmp_path / f"{name}{suffix}")
    assert report["parity"]["verdict"] == "PASS", report["parity"]


@pytest.mark.slow
def test_a_tf2onnx_onnx_converts_to_tflite(samples, tmp_path):
    onnx_path = tmp_path / "keras.onnx"
    _convert(samples[Format.KERAS], "onnx", onnx_path)
    report = _convert(onnx_path, "tflite", tmp_path / "keras.tflite")
    assert report["route"] == ["onnx", "torch-exported", "tflite"] and report["parity"]["verdict"] == "PASS"


@pytest.mark.slow
def test_an_untranslatable_op_is_one_line_with_exit_3(tmp_path):
    import onnx
    from onnx import helper

    model = _model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("LpNormalization", ["r"], ["y"])],
                   [("x", (1, 4))], ["y"])
    path = tmp_path / "lp.onnx"
    onnx.save(model, str(path))
    result = run_edgekit("convert", path, "--to", "tflite", "-o", tmp_path / "lp.tflite")
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr[-2000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error")]
    assert "lp.onnx" in line and "LpNormalization" in line and "Traceback" not in result.stderr
    assert not (tmp_path / "lp.tflite").exists()
