"""Per-layer quantization error (edgekit quant-report, convert --layer-report) and the ranking it gives an
accuracy budget.

Unit tests drive the pure analysis with tensors built by hand; the end-to-end tests use the planted-outlier digits
MLP of test_budget (fc2's weights from a dead unit set 1000× the layer's largest: fc2 alone wrecks int8) on every
route, and a transformers ConvNeXt whose int8 TFLite conversion fails parity.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import run_edgekit, strict_json

from edgekit.targets.tensors import Node, Pair
from edgekit.validators.layerwise import TensorError, accumulate, analyse, worst_samples


def N(name: str, kind: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> Node:
    return Node(name, kind, inputs, outputs)


def P(ref: np.ndarray, cand: np.ndarray, is_quantized: bool = True) -> Pair:
    return Pair(ref, cand, is_quantized)


def _samples(noise: dict[str, float], count: int = 16, seed: int = 0):
    """Per sample, each tensor's float value and a quantized one carrying ``noise`` (relative std) on top of what
    its input carried: a chain a → b → c where every tensor inherits the noise before it."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        x = rng.standard_normal(256)
        pairs, carried = {}, np.zeros(256)
        for name in ("a", "b", "c"):
            carried = carried + noise.get(name, 0.0) * rng.standard_normal(256)
            pairs[name] = P(x, x + carried)
        yield pairs


CHAIN = [N("op_a", "FC", ("x",), ("a",)), N("op_b", "FC", ("a",), ("b",)), N("op_c", "FC", ("b",), ("c",))]


def test_the_layer_that_adds_the_noise_is_ranked_first_not_the_ones_it_propagates_to():
    errors, count = accumulate(_samples({"a": 0.02, "b": 0.3}))  # c adds nothing: it only carries b's noise
    result = analyse(CHAIN, ["c"], errors, count, {"a": "fc_a", "b": "fc_b", "c": "fc_c"}, ["fc_a", "fc_b", "fc_c"])
    assert [layer.unit for layer in result.layers] == ["fc_b", "fc_a", "fc_c"]
    assert result.layers[0].share > 0.99 and all(layer.keepable for layer in result.layers)
    # the downstream layer's SQNR is as bad as fc_b's (it carries fc_b's noise), yet its share is nothing
    assert errors["c"].sqnr_db == pytest.approx(errors["b"].sqnr_db) and result.layers[-1].share == 0.0
    assert result.explained == pytest.approx(1.0, rel=0.05)  # noise powers add: the first-order sum holds
    assert result.matched == result.tensors == 3


def test_a_block_is_judged_at_the_tensors_it_hands_on_not_inside():
    # a LayerNorm-like block: an internal tensor (the variance) is noisy, its output clean
    nodes = [N("mean", "MEAN", ("x",), ("m",)), N("var", "SQUARED_DIFFERENCE", ("x", "m"), ("v",)),
             N("out", "MUL", ("v", "x"), ("y",)), N("fc", "FC", ("y",), ("z",))]
    rng = np.random.default_rng(1)

    def sample():
        x = rng.standard_normal(64)
        return {"m": P(x, x + 1e-3 * rng.standard_normal(64)), "v": P(x, x + 0.5 * rng.standard_normal(64)),
                "y": P(x, x + 1e-3 * rng.standard_normal(64)), "z": P(x, x + 0.1 * rng.standard_normal(64))}

    errors, count = accumulate(sample() for _ in range(12))
    units = {"m": "norm", "v": "norm", "y": "norm", "z": "head"}
    result = analyse(nodes, ["z"], errors, count, units, ["norm", "head"])
    assert [layer.unit for layer in result.layers] == ["head", "norm"]
    assert result.layers[1].operators == 3 and result.layers[1].tensor == "y"


def test_an_alias_gives_a_fused_blocks_tensor_to_the_layer_that_makes_it():
    # ONNX Runtime folds the Relu into its Gemm: the Gemm writes the Relu's tensor, which belongs to the Gemm's layer
    nodes = [N("gemm", "Gemm", ("x",), ("g",)), N("relu", "Relu", ("g",), ("r",))]
    errors, count = accumulate({"r": P(np.ones(8), np.ones(8) * 1.1)} for _ in range(4))
    plain = analyse(nodes, ["r"], errors, count, {"g": "fc2"}, ["fc2"])
    assert [layer.unit for layer in plain.layers] == ["r"] and not plain.layers[0].keepable
    fused = analyse(nodes, ["r"], errors, count, {"g": "fc2"}, ["fc2"], aliases={"r": "g"})
    assert [layer.unit for layer in fused.layers] == ["fc2"] and fused.layers[0].keepable


def test_shares_come_from_the_worst_samples():
    good = {"a": P(np.ones(4), np.ones(4))}
    bad = {"a": P(np.ones(4), np.ones(4) * 2)}
    errors, count = accumulate([good] * 30 + [bad] * 2)
    assert worst_samples(errors, ["a"], count)[-2:] == [30, 31] and len(worst_samples(errors, ["a"], count)) == 8


def test_tensor_figures():
    error = TensorError()
    error.add(np.array([1.0, 0.0]), np.array([1.0, 0.1]), True)
    assert error.sqnr_db == pytest.approx(20.0) and error.max_abs == pytest.approx(0.1)
    assert error.cosine == pytest.approx(1 / math.sqrt(1.01))
    same = TensorError()
    same.add(np.ones(3), np.ones(3), False)
    assert same.sqnr_db is None and same.figures()["cosine"] == pytest.approx(1.0)


def test_a_tensor_missing_from_some_samples_is_dropped():
    errors, count = accumulate([{"a": P(np.ones(2), np.ones(2)), "b": P(np.ones(2), np.ones(2))},
                                {"a": P(np.ones(2), np.ones(2))}])
    assert count == 2 and set(errors) == {"a"}


@pytest.fixture(scope="module")
def mlps(tmp_path_factory):
    from tiny_models import outlier_mlps

    return outlier_mlps(tmp_path_factory.mktemp("outlier"))


def _convert(mlps, to, out, *args):
    return run_edgekit("convert", mlps / "outlier.pt2", "--to", to, "--quantize", "int8", "-o", out,
                       "--calibration", mlps / "calib.npz", "--data", mlps / "test.npz", *args)


@pytest.mark.slow
@pytest.mark.parametrize("to, suffix", [("tflite", ".tflite"), ("onnx", ".onnx"), ("executorch", ".pte")])
def test_quant_report_ranks_the_planted_outlier_layer_first_on_every_route(mlps, tmp_path, to, suffix):
    artifact = tmp_path / f"outlier{suffix}"
    made = _convert(mlps, to, artifact)
    assert made.returncode == 1, made.stderr[-2000:]  # int8 parity fails: the outlier wrecks it
    html = tmp_path / "layers.html"
    result = run_edgekit("quant-report", mlps / "outlier.pt2", artifact, "--data", mlps / "test.npz", "--json",
                         "--html", html)
    assert result.returncode == 0, result.stderr[-2000:]
    report = strict_json(result.stdout)
    assert report["edgekit_report"] == "quant-report" and report["version"] == 1 and report["same_bytes"]
    layers = report["layers"]
    assert layers[0]["layer"] == "fc2" and layers[0]["share"] > 0.8 and layers[0]["keep_float"], layers
    assert {"fc1", "fc2", "head"} <= {layer["layer"] for layer in layers}
    fc1 = next(layer for layer in layers if layer["layer"] == "fc1")
    assert fc1["sqnr_db"] > 25 > layers[0]["sqnr_db"]  # the clean layer quantizes well, the outlier does not
    assert report["instrument"].startswith({"tflite": "LiteRT", "onnx": "onnxruntime.quantization.qdq_loss_debug",
                                            "executorch": "torchao numeric debugger"}[to])
    assert report["deployed"]["verdict"] == "FAIL" and report["samples"] == 32
    page = html.read_text()
    assert "fc2" in page and "data:image/png;base64," in page
    if to == "onnx":  # the terminal table (one route: each run converts again)
        terminal = run_edgekit("quant-report", mlps / "outlier.pt2", artifact, "--data", mlps / "test.npz")
        assert terminal.returncode == 0 and "fc2" in terminal.stdout.split("fc1")[0]  # fc2's row comes first
        assert "1.00× the measured final error" in terminal.stdout


@pytest.mark.slow
def test_convert_layer_report_puts_the_layers_in_its_json(mlps, tmp_path):
    result = _convert(mlps, "tflite", tmp_path / "m.tflite", "--layer-report", "--json")
    assert result.returncode == 1, result.stderr[-2000:]
    report = strict_json(result.stdout)["quant_report"]
    assert report["layers"][0]["layer"] == "fc2"
    assert "quant_report" not in json.loads((tmp_path / "m.tflite.edgekit.json").read_text())  # not in the record


@pytest.mark.slow
def test_quant_report_refusals(mlps, tmp_path):
    plain = tmp_path / "float.onnx"
    assert run_edgekit("convert", mlps / "outlier.pt2", "--to", "onnx", "-o", plain, "--no-validate").returncode == 0
    unquantized = run_edgekit("quant-report", mlps / "outlier.pt2", plain)
    assert unquantized.returncode == 2 and "not quantized" in unquantized.stderr
    assert "Traceback" not in unquantized.stderr
    stray = tmp_path / "stray.onnx"
    stray.write_bytes(plain.read_bytes())
    no_sidecar = run_edgekit("quant-report", mlps / "outlier.pt2", stray)
    assert no_sidecar.returncode == 3 and "sidecar" in no_sidecar.stderr
    fp16 = tmp_path / "half.pte"
    assert run_edgekit("convert", mlps / "outlier.pt2", "--to", "executorch", "--quantize", "fp16", "-o", fp16,
                       "--no-validate").returncode == 0
    uninstrumented = run_edgekit("quant-report", mlps / "outlier.pt2", fp16)
    assert uninstrumented.returncode == 2 and "quant-report covers" in uninstrumented.stderr


@pytest.fixture(scope="module")
def convnext(tmp_path_factory):
    """A transformers ConvNeXt (LayerNorm, GELU, depthwise convolutions) with seeded random weights, 64²."""
    import torch
    import transformers as hf

    torch.manual_seed(0)
    model = hf.ConvNextForImageClassification(hf.ConvNextConfig(num_stages=2, hidden_sizes=[16, 32], depths=[1, 1],
                                                                num_labels=10))

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixels):
            return self.model(pixels).logits

    directory = tmp_path_factory.mktemp("convnext")
    torch.export.save(torch.export.export(Logits().eval(), (torch.randn(1, 3, 64, 64),)), str(directory / "cnx.pt2"))
    rng = np.random.default_rng(0)
    np.savez(directory / "calib.npz", x=rng.standard_normal((64, 3, 64, 64)).astype("float32"))
    np.savez(directory / "test.npz", x=rng.standard_normal((32, 3, 64, 64)).astype("float32"))
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("to, budget", [("tflite", "0.99"), ("onnx", "0.9995")])
def test_a_convnext_that_fails_int8_meets_a_cosine_budget_with_the_kept_layers_named(convnext, tmp_path, to, budget):
    # measured: TFLite int8 cosine 0.967 (the classifier and the final LayerNorm cost most), ONNX 0.99922
    out = tmp_path / f"cnx.{to}"
    common = ("--to", to, "--quantize", "int8", "--calibration", convnext / "calib.npz", "--data",
              convnext / "test.npz")
    plain = run_edgekit("convert", convnext / "cnx.pt2", *common, "-o", tmp_path / f"plain.{to}", "--json")
    full_cosine = strict_json(plain.stdout)["parity"]["outputs"][0]["metrics"]["cosine"]
    assert full_cosine < float(budget)
    result = run_edgekit("convert", convnext / "cnx.pt2", *common, "-o", out, "--min-cosine", budget)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "budget    met; kept float: model." in result.stdout
    record = json.loads((tmp_path / f"cnx.{to}.edgekit.json").read_text())
    kept = record["options"]["keep_float"]
    assert kept and all(name.startswith("model.") for name in kept)
    assert record["extra"]["budget"]["ranking"]["layers"][0]["layer"] in kept
    assert record["extra"]["parity"]["verdict"] == "PASS"
    assert min(record["extra"]["parity"]["cosine"].values()) >= float(budget)
