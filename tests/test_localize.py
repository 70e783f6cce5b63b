"""edgekit localize: where a conversion's numbers part from its original's.

Unit tests drive the pairing and judging with values built by hand. The end-to-end tests build the faults
themselves on models made here (module names with ``_`` in them): one ONNX Conv's weights ×1.05, one litert-torch
TFLite weight buffer corrupted in the file's bytes, one op of an ExecuTorch program's XNNPACK block replaced, one
Keras Dense kernel perturbed before TFLite conversion, and the planted-outlier MLP whose int8 conversion fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import run_edgekit, strict_json

from edgekit.validators.localize import (
    CHANNELS_LAST_TO_FIRST,
    LayerRule,
    Localization,
    accumulate,
    fits,
    judge,
    model_explorer_data,
    name_rank,
    pair,
)


@dataclass(frozen=True)
class V:
    name: str
    op: str = "op"
    inputs: tuple[str, ...] = ()
    module_path: str | None = None
    keys: tuple[tuple[str, str], ...] = ()
    scopes: tuple[str, ...] = ()
    quantized: bool = False


RULE = LayerRule("fp32", atol=1e-4)


def _localize(ref_values, ref_runs, ref_outputs, cand_values, cand_runs, cand_outputs, rule=RULE) -> Localization:
    pairing = pair(ref_values, ref_runs[0], ref_outputs, cand_values, cand_runs[0], cand_outputs)
    errors = accumulate(pairing, list(zip(ref_runs, cand_runs, strict=True)))
    return Localization(judge(pairing, ref_values, cand_values, errors, rule), pairing, rule)


def test_layouts_a_candidate_shape_can_hold():
    assert fits((1, 16, 8, 8), (1, 16, 8, 8)) == [None]
    assert fits((1, 8, 8, 8), (1, 8, 8, 8)) == [None, (0, 2, 3, 1), (0, 3, 1, 2)]  # square: the values decide
    assert fits((1, 16, 8, 4), (1, 8, 4, 16)) == [(0, 2, 3, 1)]
    assert fits((1, 8, 4, 16), (1, 16, 8, 4)) == [(0, 3, 1, 2)]
    assert fits((1, 16, 8, 8), (1, 8, 8, 16)) == [(0, 2, 3, 1)]
    assert fits((1, 512), (1, 256)) == []
    assert fits((16, 96), (1, 16, 96)) == [None]  # a unit dimension the converter added: the same values
    assert fits((1, 16, 16, 32), (1, 256, 32)) == [None]  # channels-last rows merged, channels kept
    assert fits((1, 16, 8, 8), (1, 8, 8, 16), CHANNELS_LAST_TO_FIRST) == []  # not a change from channels-last


def test_names_pair_by_module_path_litert_scope_and_keras_layer():
    conv = V("conv2d_2", keys=(("module", "mid_block.2"),
                               ("litert", "torch.nn.modules.container.Sequential_mid_block/torch.nn.modules.conv."
                                          "Conv2d_2")))
    litert = "pkg.Net/torch.nn.modules.container.Sequential_mid_block/torch.nn.modules.conv.Conv2d_2"
    assert name_rank(conv, V("x", scopes=(litert,))) == 1
    # a module named "block" is not "mid_block": the scope is matched segment by segment
    block = V("conv2d_9", keys=(("litert", "torch.nn.modules.container.Sequential_block/torch.nn.modules.conv."
                                           "Conv2d_2"),))
    assert name_rank(block, V("x", scopes=(litert,))) is None
    assert name_rank(conv, V("conv2d_2")) == 0
    assert name_rank(conv, V("y", scopes=("module:mid_block.2",))) == 1
    dense = V("dense", keys=(("layer", "dense"),))
    assert name_rank(dense, V("t", scopes=("model_1/dense_1/MatMul",))) == 1  # TensorFlow's _N uniquifier
    assert name_rank(V("dense_1", keys=(("layer", "dense_1"),)), V("t", scopes=("model_1/dense_2_1/MatMul",))) is None


def _chain(broken_at: str | None, scale: float = 1.05):
    """a → b → c in the reference; the candidate computes b wrong (×scale) when asked, and c follows from it."""
    rng = np.random.default_rng(0)
    ref_values = [V("a", keys=(("module", "m.a"),), module_path="m.a"), V("b", inputs=("a",), module_path="m.b",
                                                                         keys=(("module", "m.b"),)),
                  V("c", inputs=("b",), module_path="m.c", keys=(("module", "m.c"),))]
    cand_values = [V("ta", scopes=("module:m.a",)), V("tb", scopes=("module:m.b",)), V("tc", scopes=("module:m.c",))]
    ref_runs, cand_runs = [], []
    for _ in range(4):
        a = rng.normal(size=(1, 6))
        b, c = a * 2, a * 2 + 1
        wrong = scale if broken_at == "b" else 1.0
        ref_runs.append({"a": a, "b": b, "c": c})
        cand_runs.append({"ta": a, "tb": b * wrong, "tc": b * wrong + 1})
    return ref_values, ref_runs, cand_values, cand_runs


def test_the_origin_is_the_first_failing_pair_whose_feeders_pass():
    ref_values, ref_runs, cand_values, cand_runs = _chain("b")
    found = _localize(ref_values, ref_runs, ["c"], cand_values, cand_runs, ["tc"])
    status = {p.match.reference: p.status for p in found.pairs}
    assert status == {"a": "pass", "b": "origin", "c": "propagated"}
    assert found.origin.match.candidate == "tb" and found.origin.feeders == ["a"]
    assert found.pairing.matched_share == 1.0 and found.worst(1)[0].match.reference == "b"
    clean = _localize(*_chain(None)[:2], ["c"], *_chain(None)[2:], ["tc"])
    assert clean.origin is None and all(p.passed for p in clean.pairs)


def test_a_fused_block_is_matched_and_named_by_its_first_module():
    """conv → relu in the reference; the candidate has one tensor for both, named by both modules."""
    rng = np.random.default_rng(1)
    ref_values = [V("conv", "conv2d", module_path="block.0", keys=(("module", "block.0"),)),
                  V("relu", "relu", ("conv",), module_path="block.1", keys=(("module", "block.1"),))]
    cand_values = [V("fused", "CONV_2D", scopes=("module:block.1", "module:block.0"))]
    ref_runs, cand_runs = [], []
    for _ in range(3):
        conv = rng.normal(size=(1, 4, 3, 3))
        ref_runs.append({"conv": conv, "relu": np.maximum(conv, 0)})
        cand_runs.append({"fused": np.maximum(conv, 0).transpose(0, 2, 3, 1) * 1.1})  # NHWC, and wrong
    found = _localize(ref_values, ref_runs, ["relu"], cand_values, cand_runs, ["fused"])
    assert found.pairing.fused == {"conv": "relu"} and found.pairing.matched_share == 1.0
    origin = found.origin.to_dict()
    assert origin["module_path"] == "block.0" and origin["fused"] == ["conv"]
    assert origin["layout"] == "NCHW → NHWC" and origin["permutation"] == [0, 2, 3, 1]


def _runs(make, samples: int = 3):
    rng = np.random.default_rng(7)
    pairs = [make(rng.normal(size=(1, 6))) for _ in range(samples)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def test_renumbered_names_are_paired_by_dataflow_not_by_name():
    """torch.onnx renumbers FX names after its decompositions: the candidate's ``act_1`` is the reference's
    ``act_2``. Both are in one scope; the dataflow (which projection each reads) decides, never the values."""
    scope = (("module", "m"),)
    ref_values = [V("lin_a", "linear", ("x",), "m", scope), V("lin_b", "linear", ("x",), "m", scope),
                  V("act_1", "gelu", ("lin_a",), "m", scope), V("act_2", "gelu", ("lin_b",), "m", scope),
                  V("out", "add", ("act_1", "act_2"), "m", scope)]
    cand_values = [V("lin_a", "MatMul", ("x",), scopes=("module:m",)),
                   V("lin_b", "MatMul", ("x",), scopes=("module:m",)),
                   V("act_1", "Gelu", ("lin_b",), scopes=("module:m",)),
                   V("act_2", "Gelu", ("lin_a",), scopes=("module:m",)),
                   V("out", "Add", ("act_1", "act_2"), scopes=("module:m",))]

    def make(x):
        a, b = x * 2, x - 1
        ref = {"lin_a": a, "lin_b": b, "act_1": np.tanh(a), "act_2": np.tanh(b), "out": np.tanh(a) + np.tanh(b)}
        return ref, {"lin_a": a, "lin_b": b, "act_1": np.tanh(b), "act_2": np.tanh(a), "out": ref["out"]}

    ref_runs, cand_runs = _runs(make)
    found = _localize(ref_values, ref_runs, ["out"], cand_values, cand_runs, ["out"])
    assert {m.reference: m.candidate for m in found.pairing.matches} == {
        "lin_a": "lin_a", "lin_b": "lin_b", "act_1": "act_2", "act_2": "act_1", "out": "out"}
    assert found.origin is None and all(p.passed for p in found.pairs)


def test_a_difference_every_reader_undoes_is_absorbed_not_an_origin():
    """litert-torch folds attention's 1/√d into the query projection's weights: the projection differs, what it
    feeds agrees again. That pair is absorbed; a fault that reaches the output still has its origin."""
    ref_values = [V("q", "linear", ("x",), "m.q", (("module", "m.q"),)),
                  V("s", "mul", ("q",), "m", (("module", "m"),)),
                  V("o", "linear", ("s",), "m.o", (("module", "m.o"),))]
    cand_values = [V("tq", scopes=("module:m.q",), inputs=("x",)), V("ts", scopes=("module:m",), inputs=("tq",)),
                   V("to", scopes=("module:m.o",), inputs=("ts",))]

    def make(x, fault=1.0):
        q = x * 3
        return {"q": q, "s": q * 0.25, "o": q * 0.25 + 1}, {"tq": q * 0.25, "ts": q * 0.25, "to": q * 0.25 * fault + 1}

    ref_runs, cand_runs = _runs(make)
    found = _localize(ref_values, ref_runs, ["o"], cand_values, cand_runs, ["to"])
    assert [p.status for p in found.pairs] == ["absorbed", "pass", "pass"] and found.origin is None
    assert not found.failing and found.absorbed[0].match.reference == "q"
    ref_runs, cand_runs = _runs(lambda x: make(x, fault=1.2))
    found = _localize(ref_values, ref_runs, ["o"], cand_values, cand_runs, ["to"])
    assert [p.status for p in found.pairs] == ["absorbed", "pass", "origin"]


def test_moves_stand_with_their_input_and_constants_and_unused_values_are_not_counted():
    """A reshape the candidate renamed is its input's values; a position embedding computed from weights alone is
    folded by converters, a value no output reads is dropped by them: none counts against the matched share."""
    ref_values = [V("emb", "embedding", ("ids",), "e", (("module", "e"),)),
                  V("pos", "embedding", ("position_ids",), "p", (("module", "p"),)),
                  V("add", "add", ("emb", "pos"), "a", (("module", "a"),)),
                  V("view", "view", ("add",), "a", (("module", "a"),)),
                  V("fc", "linear", ("view",), "fc", (("module", "fc"),)),
                  V("state", "tanh", ("add",), "s", (("module", "s"),))]
    cand_values = [V("emb", inputs=("ids",)), V("add", inputs=("emb",)), V("view_7", "Reshape", ("add",)),
                   V("fc", inputs=("view_7",))]

    def make(x):
        pos = np.arange(6.0).reshape(1, 6)
        ref = {"emb": x, "pos": pos, "add": x + pos, "view": (x + pos).reshape(6, 1), "fc": (x + pos).sum()[None],
               "state": np.tanh(x + pos)}
        return ref, {"emb": x, "add": x + pos, "view_7": (x + pos).reshape(6, 1), "fc": ref["fc"]}

    ref_runs, cand_runs = _runs(make)
    pairing = pair(ref_values, ref_runs[0], ["fc"], cand_values, cand_runs[0], ["fc"], sources=("ids",))
    assert pairing.fused == {"view": "add"} and pairing.constant == ["pos"] and pairing.unused == ["state"]
    assert not pairing.unmatched and pairing.runtime_values == 4
    assert pairing.matched_share == 1.0 and {m.reference for m in pairing.matches} == {"emb", "add", "fc"}


def test_litert_scopes_name_modulelist_items_by_their_index():
    """litert-torch names each module by the last segment of its path: a ModuleList item is ``BertLayer_0``."""
    from edgekit.targets.traces import _module_keys

    path, keys = _module_keys({"a": ("", "pkg.Root"), "b": ("encoder", "pkg.Encoder"),
                               "c": ("encoder.layer.0", "pkg.Layer"), "d": ("encoder.layer.0.dense", "pkg.Linear")})
    assert path == "encoder.layer.0.dense"
    assert dict(keys)["litert"] == "pkg.Encoder_encoder/pkg.Layer_0/pkg.Linear_dense"


def test_cosine_rule_and_model_explorer_node_data():
    ref_values, ref_runs, cand_values, cand_runs = _chain("b", scale=1.5)
    found = _localize(ref_values, ref_runs, ["c"], cand_values, cand_runs, ["tc"],
                      rule=LayerRule("int8", min_cosine=0.99))
    # ×1.5 keeps the direction (cosine 1), and costs b 6 dB of SQNR: the gain error is caught where it is made
    assert found.origin.match.reference == "b" and "gain" in found.origin.detail
    data = model_explorer_data(_localize(*_chain("b")[:2], ["c"], *_chain("b")[2:], ["tc"]))
    assert set(data["results"]) == {"ta", "tb", "tc"} and data["results"]["tb"]["value"] == -1000.0
    assert all({"value", "bgColor"} <= set(t) for t in data["thresholds"])


# --- end to end ----------------------------------------------------------------------------------------------------

def _underscore_net():
    import torch

    class UnderscoreNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem_conv = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.mid_block = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
                                                 torch.nn.Conv2d(8, 16, 3, padding=1))
            self.down_proj = torch.nn.Linear(16 * 4 * 4, 10)

        def forward(self, x):
            x = torch.relu(self.stem_conv(x))
            x = torch.nn.functional.max_pool2d(self.mid_block(x), 2, 2)
            return self.down_proj(torch.flatten(x, 1))

    torch.manual_seed(0)
    return UnderscoreNet().eval()


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Path:
    import torch

    out = tmp_path_factory.mktemp("localize")
    torch.export.save(torch.export.export(_underscore_net(), (torch.randn(1, 1, 8, 8),)), str(out / "net.pt2"))
    return out / "net.pt2"


def _localize_cli(reference, candidate, *extra):
    result = run_edgekit("localize", reference, candidate, "--json", *extra)
    return result, (strict_json(result.stdout) if result.stdout.strip() else None)


@pytest.mark.slow
def test_an_onnx_conv_scaled_by_5_percent_is_named_with_its_fx_node_and_module(net, tmp_path):
    import onnx
    from onnx import numpy_helper

    clean = tmp_path / "net.onnx"
    assert run_edgekit("convert", net, "--to", "onnx", "-o", clean).returncode == 0
    result, report = _localize_cli(net, clean, "--html", tmp_path / "clean.html")
    assert result.returncode == 0, result.stderr[-2000:]
    assert report["edgekit_report"] == "localize" and report["version"] == 1 and report["origin"] is None
    assert report["matched_share"] == 1.0 and report["passed"] and all(p["passed"] for p in report["pairs"])

    model = onnx.load(str(clean))
    node = next(n for n in model.graph.node if n.output[0] == "conv2d_2")  # mid_block.2
    weight = next(i for i in model.graph.initializer if i.name == node.input[1])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(1.05), weight.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    result, report = _localize_cli(net, broken, "--html", tmp_path / "broken.html", "--me-json", tmp_path / "me.json",
                                   "--json-out", tmp_path / "broken.json")
    assert result.returncode == 1, result.stderr[-2000:]
    origin = report["origin"]
    assert origin["candidate_name"] == "conv2d_2" and origin["reference_name"] == "conv2d_2"  # ONNX value = FX node
    assert origin["module_path"] == "mid_block.2" and origin["op"] == "conv2d"
    assert origin["metrics"]["cosine"] > 0.999 and origin["detail"].startswith("max |Δ|")  # ×1.05: same direction
    assert origin["local"]["passed"] is False  # the node alone on the reference's inputs: wrong by itself
    status = {p["reference_name"]: p["status"] for p in report["pairs"]}
    assert status["conv2d_1"] == "pass" and status["linear"] == "propagated"
    assert report["origins"] == ["conv2d_2"] and not report["deployed"]["passed"]
    assert "origin mid_block.2" in result.stderr
    me = strict_json((tmp_path / "me.json").read_text())
    assert me["results"]["conv2d_2"]["value"] == -1000.0 and "conv2d_1" in me["results"]
    assert strict_json((tmp_path / "broken.json").read_text())["origin"]["module_path"] == "mid_block.2"
    page = (tmp_path / "broken.html").read_text()
    assert "mid_block.2" in page and "data:image/png;base64," in page

    terminal = run_edgekit("localize", net, broken)
    assert terminal.returncode == 1 and "origin" in terminal.stdout and "mid_block.2" in terminal.stdout
    validated = run_edgekit("validate", net, broken, "--localize")
    assert validated.returncode == 1 and "mid_block.2" in validated.stdout, validated.stdout[-2000:]


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.slow
def test_the_html_error_curve_renders_in_headless_chromium_with_the_origin_marked(net, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("EDGEKIT_REQUIRE_BROWSER"):
            pytest.fail("EDGEKIT_REQUIRE_BROWSER is set but no chromium is installed (.ci/run installs it)")
        pytest.skip("no chromium here (.ci/run installs Debian's chromium)")
    import onnx
    from onnx import numpy_helper

    clean = tmp_path / "net.onnx"
    assert run_edgekit("convert", net, "--to", "onnx", "-o", clean, "--no-validate").returncode == 0
    model = onnx.load(str(clean))
    node = next(n for n in model.graph.node if n.output[0] == "conv2d_1")
    weight = next(i for i in model.graph.initializer if i.name == node.input[1])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(1.3), weight.name))
    onnx.save(model, str(tmp_path / "broken.onnx"))
    page = tmp_path / "broken.html"
    assert run_edgekit("localize", net, tmp_path / "broken.onnx", "--html", page).returncode == 1

    import matplotlib.image

    def red_pixels(html: Path) -> int:
        shot = tmp_path / f"{html.stem}.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1200,1600", f"--screenshot={shot}", html.as_uri()],
                       capture_output=True, timeout=120, check=True)
        pixels = matplotlib.image.imread(shot)[..., :3]
        return int(((pixels[..., 0] > 0.7) & (pixels[..., 1] < 0.3) & (pixels[..., 2] < 0.3)).sum())

    bare = tmp_path / "bare.html"
    bare.write_text(page.read_text().replace("src='data:image/png", "data-x='"))
    # the origin's marker is red on the curve; the page's table shows the origin's row in red text as well
    assert red_pixels(page) > red_pixels(bare) + 20


def _weight_of(tflite: Path, output_contains: str) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite))
    interp.allocate_tensors()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    op = next(op for op in interp._get_ops_details() if op["op_name"] == "CONV_2D"
              and any(output_contains in details[i]["name"] for i in op["outputs"]))
    return interp.get_tensor(op["inputs"][1])


@pytest.mark.slow
def test_a_corrupted_litert_weight_buffer_names_its_module_despite_nhwc(net, tmp_path):
    clean = tmp_path / "net.tflite"
    assert run_edgekit("convert", net, "--to", "tflite", "-o", clean).returncode == 0
    result, report = _localize_cli(net, clean)
    assert result.returncode == 0 and report["matched_share"] >= 0.9, (result.stderr[-2000:], report)

    weight = _weight_of(clean, "Sequential_mid_block/torch.nn.modules.conv.Conv2d_2")
    data = clean.read_bytes()
    assert data.count(weight.tobytes()) == 1  # the buffer, found in the file's bytes
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(data.replace(weight.tobytes(), (weight * np.float32(1.05)).astype(np.float32).tobytes()))
    result, report = _localize_cli(net, broken)
    assert result.returncode == 1, result.stderr[-2000:]
    origin = report["origin"]
    assert origin["module_path"] == "mid_block.2" and origin["reference_name"] == "conv2d_2"
    assert "Sequential_mid_block/torch.nn.modules.conv.Conv2d_2" in origin["candidate_name"]
    assert origin["layout"] == "NCHW → NHWC" and origin["permutation"] == [0, 2, 3, 1]
    status = {p["module_path"]: p["status"] for p in report["pairs"]}
    assert status["mid_block.0"] == "pass" and status["down_proj"] == "propagated"


@pytest.mark.slow
def test_an_executorch_op_replaced_inside_its_delegate_is_found_through_taps(net, tmp_path):
    import torch

    program = torch.export.load(str(net))
    relu = next(n for n in program.graph.nodes if n.name == "relu_1")  # mid_block.1, inside the XNNPACK block
    relu.target, relu.args = torch.ops.aten.hardtanh.default, (relu.args[0], -0.05, 0.05)
    program.graph_module.recompile()
    altered = tmp_path / "altered.pt2"
    torch.export.save(program, str(altered))
    pte = tmp_path / "altered.pte"
    assert run_edgekit("convert", altered, "--to", "executorch", "-o", pte).returncode == 0

    result, report = _localize_cli(net, pte)
    assert result.returncode == 1, result.stderr[-2000:]
    origin = report["origin"]
    assert origin["candidate_op"] == "XnnpackBackend call 0" and origin["candidate_name"] == "output_0"
    assert any("cannot see inside" in note for note in report["notes"]), report["notes"]

    result, report = _localize_cli(net, pte, "--taps")
    assert result.returncode == 1, result.stderr[-2000:]
    origin = report["origin"]
    assert origin["reference_name"] == "relu_1" and origin["module_path"] == "mid_block.1"
    assert origin["paired_by"] == "name" and report["matched_share"] == 1.0
    assert not report["deployed"]["instrumented_differs"]  # the tapped program computes what the deployed one does
    status = {p["reference_name"]: p["status"] for p in report["pairs"]}
    assert status["conv2d_1"] == "pass" and status["conv2d_2"] == "propagated"
    assert run_edgekit("localize", net, tmp_path / "altered.pte", "--taps", "--taps-source",
                       tmp_path / "missing.pt2").returncode == 3


@pytest.mark.slow
def test_a_perturbed_keras_dense_kernel_is_named_in_its_tflite_conversion(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="feature_conv")(image)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(16, activation="relu", name="hidden_dense")(x)
    model = keras.Model(image, keras.layers.Dense(10, name="out_dense")(x))
    model.save(tmp_path / "good.keras")
    kernel, bias = model.get_layer("hidden_dense").get_weights()
    model.get_layer("hidden_dense").set_weights([kernel * 1.05, bias])
    model.save(tmp_path / "bad.keras")
    for name in ("good", "bad"):
        made = run_edgekit("convert", tmp_path / f"{name}.keras", "--to", "tflite", "-o", tmp_path / f"{name}.tflite")
        assert made.returncode == 0, made.stderr[-2000:]
    result, report = _localize_cli(tmp_path / "good.keras", tmp_path / "good.tflite")
    assert result.returncode == 0 and report["matched_share"] == 1.0, (result.stderr[-2000:], report)
    result, report = _localize_cli(tmp_path / "good.keras", tmp_path / "bad.tflite")
    assert result.returncode == 1, result.stderr[-2000:]
    assert report["origin"]["reference_name"] == "hidden_dense" and "hidden_dense" in report["origin"]["candidate_name"]
    assert {p["reference_name"]: p["status"] for p in report["pairs"]}["feature_conv"] == "pass"


@pytest.fixture(scope="module")
def mlps(tmp_path_factory):
    from tiny_models import outlier_mlps

    return outlier_mlps(tmp_path_factory.mktemp("outlier"))


@pytest.mark.slow
@pytest.mark.parametrize("to, suffix", [("tflite", ".tflite"), ("onnx", ".onnx")])
def test_an_int8_failure_is_localized_to_the_layer_quant_report_ranks_first(mlps, tmp_path, to, suffix):
    artifact = tmp_path / f"outlier{suffix}"
    made = run_edgekit("convert", mlps / "outlier.pt2", "--to", to, "--quantize", "int8", "-o", artifact,
                       "--calibration", mlps / "calib.npz")
    assert made.returncode == 1, made.stderr[-2000:]  # int8 parity fails: the outlier wrecks it
    result, report = _localize_cli(mlps / "outlier.pt2", artifact, "--data", mlps / "test.npz")
    assert result.returncode == 1, result.stderr[-2000:]
    assert report["profile"] == "int8" and report["matched_share"] == 1.0
    pairs = {p["reference_name"]: p for p in report["pairs"]}
    worst = pairs[report["worst"][0]]
    assert report["origin"]["module_path"] == "fc2" and worst["module_path"] == "fc2" and worst["share"] > 0.5
    layers = strict_json(run_edgekit("quant-report", mlps / "outlier.pt2", artifact, "--data", mlps / "test.npz",
                                     "--json").stdout)["layers"]
    assert layers[0]["layer"] == worst["module_path"]  # the two reports agree on the layer whose error dominates


@pytest.mark.slow
def test_matched_share_on_the_digits_cnn_for_every_route(default_pipeline):
    """The trained digits CNNs and every artifact the default pipeline made from them (ExecuTorch with taps)."""
    from edgekit.api import localize

    out, _ = default_pipeline
    models = {"torch": out / "models" / "digits_cnn_torch.pt2", "keras": out / "models" / "digits_cnn_keras.keras"}
    seen = {}
    for artifact in sorted(out.glob("artifacts/*")):
        if artifact.name.endswith(".json") or artifact.suffix == ".pt":  # TorchScript: refused (next test)
            continue
        source = models["torch" if "_torch." in artifact.name else "keras"]
        report = localize(source, artifact, samples=8, taps=artifact.suffix == ".pte", isolate=False)
        seen[artifact.name] = report.localization.pairing.matched_share
        assert report.passed, (artifact.name, report.to_dict()["notes"])
    assert len(seen) >= 20 and all(share >= 0.9 for share in seen.values()), seen


@pytest.mark.slow
def test_localize_refusals(net, samples, tmp_path):
    from edgekit.toolkit.contract.formats import Format

    missing = run_edgekit("localize", net, tmp_path / "nope.onnx")
    assert missing.returncode == 3 and "nope.onnx" in missing.stderr and "Traceback" not in missing.stderr
    onnx_file = samples[Format.ONNX]
    taps = run_edgekit("localize", samples[Format.TORCH_EXPORTED], onnx_file, "--taps")
    assert taps.returncode == 2 and "--taps is for ExecuTorch programs" in taps.stderr
    script = run_edgekit("--trust", "localize", samples[Format.TORCH_EXPORTED], samples[Format.TORCHSCRIPT])
    assert script.returncode == 2 and "TorchScript" in script.stderr and "candidates:" in script.stderr
    (tmp_path / "taken.json").write_text("{}")
    kept = run_edgekit("localize", net, onnx_file, "--json-out", tmp_path / "taken.json")
    assert kept.returncode != 0 and (tmp_path / "taken.json").read_text() == "{}"
    assert json.loads(run_edgekit("localize", samples[Format.TORCH_EXPORTED], onnx_file, "--json").stdout)["passed"]


@pytest.mark.slow
def test_a_transformers_bert_is_paired_by_dataflow_and_a_scaled_dense_is_named(tmp_path):
    """A model edgekit did not write, with integer inputs: transformers' BERT (small config, seeded random weights).
    Its ONNX and TFLite conversions pass at every layer with nearly every value paired (torch.onnx renumbers the
    FX names of reshapes, litert-torch names tensors by several modules at once and folds attention's 1/√d into the
    query and key weights); then one Linear's square weight written transposed in the ONNX file (a classic
    conversion bug) is named as the origin."""
    import onnx
    from onnx import numpy_helper
    from user_models import save_pt2, transformer

    module, args, _ = transformer("bert")
    pt2 = save_pt2(module, args, tmp_path / "bert.pt2")
    reports = {}
    for to in ("onnx", "tflite"):
        artifact = tmp_path / f"bert.{to}"
        made = run_edgekit("convert", pt2, "--to", to, "-o", artifact, "--no-validate")
        assert made.returncode == 0, made.stderr[-2000:]
        result, reports[to] = _localize_cli(pt2, artifact, "--samples", "6")
        assert result.returncode == 0, (result.stderr[-2000:], reports[to] and reports[to]["origins"])
        assert reports[to]["matched_share"] >= 0.9 and reports[to]["origin"] is None
    assert reports["onnx"]["matched_share"] == 1.0 and not reports["onnx"]["unmatched"]
    absorbed = {p["module_path"] for p in reports["tflite"]["pairs"] if p["status"] == "absorbed"}
    assert absorbed and all(path.endswith((".query", ".key")) for path in absorbed), absorbed

    model = onnx.load(str(tmp_path / "bert.onnx"))
    dense = "model.bert.encoder.layer.0.attention.output.dense"
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul" and any(
        p.key == "pkg.torch.onnx.name_scopes" and f"'{dense}'" in p.value for p in n.metadata_props))
    weight = next(i for i in model.graph.initializer if i.name in matmul.input)
    values = numpy_helper.to_array(weight)
    assert values.shape == (32, 32)
    weight.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(values.T), weight.name))
    onnx.save(model, str(tmp_path / "broken.onnx"))
    result, report = _localize_cli(pt2, tmp_path / "broken.onnx", "--samples", "6")
    assert result.returncode == 1, result.stderr[-2000:]
    assert report["origin"]["module_path"] == dense and report["origins"] == [report["origin"]["reference_name"]]
    assert report["origin"]["local"]["passed"] is False  # wrong by itself on the reference's inputs
    upstream = [p for p in report["pairs"] if p["depth"] < report["origin"]["depth"]]
    assert upstream and all(p["status"] == "pass" for p in upstream)


def test_the_torch_trace_keeps_a_value_that_an_in_place_op_rewrites_later():
    """A ResNet's ``hidden += residual`` runs in place on the batch norm's output: the trace must hold the value
    the batch norm made, not what the add left in its storage."""
    from types import SimpleNamespace

    import torch

    from edgekit.targets.traces import torch_trace

    class Residual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.norm = torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)

        def forward(self, x):
            hidden = self.norm(self.lin(x))
            hidden += x
            return torch.relu(hidden)

    torch.manual_seed(0)
    module = Residual().eval()
    x = torch.randn(3, 4)
    program = torch.export.export(module, (x,))
    trace = torch_trace(program, SimpleNamespace(input_names=["x"]))
    assert any(v.op == "add_" for v in trace.values)  # the in-place add is in the graph the trace runs
    norm = next(v.name for v in trace.values if v.op.startswith("batch_norm") or "native_batch_norm" in v.op)
    with torch.no_grad():
        expected = module.norm(module.lin(x)).numpy()
    assert np.allclose(trace.run({"x": x.numpy()})[norm], expected, atol=1e-6)
