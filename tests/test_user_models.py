"""Models users bring: integer inputs get their domain from the model in every format, user data feeds
several inputs on every command, integer narrowing is stated, and transformers convert on every route."""

import json
import os
import shutil

import numpy as np
import pytest
from conftest import LazyModule, run_edgekit, strict_json
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.targets import open_runtime
from edgekit.toolkit.contract.artifact import sidecar_path

runner = CliRunner()
user_models = LazyModule("user_models")  # torch, imported when a test runs


def invoke(*args):
    return runner.invoke(app, [*map(str, args)])


@pytest.fixture(scope="module")
def two_input(tmp_path_factory):
    module, args = user_models.tokens_and_features()
    out = tmp_path_factory.mktemp("two_input")
    return (user_models.save_pt2(module, args, out / "tokens.pt2"),
            user_models.tokens_and_features_npz(out / "inputs.npz"))


def _domain(path, name):
    with open_runtime(path) as runtime:
        domain = next(t for t in runtime.io_spec.inputs if t.name == name).domain
    return domain


def test_domain_read_from_pt2_torchscript_and_onnx(two_input, tmp_path):
    import torch

    pt2, _ = two_input
    assert _domain(pt2, "ids").high == user_models.VOCAB and "embedding" in _domain(pt2, "ids").source
    module, args = user_models.tokens_and_features()
    scripted = tmp_path / "tokens.torchscript.pt"
    torch.jit.save(torch.jit.trace(module, args), str(scripted))
    assert _domain(scripted, "ids").high == user_models.VOCAB
    onnx_path = tmp_path / "tokens.onnx"
    torch.onnx.export(module, args, str(onnx_path), input_names=["ids", "features"], dynamo=False)
    assert _domain(onnx_path, "ids").high == user_models.VOCAB


def test_domain_read_from_keras_and_tflite(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    ids = keras.Input((user_models.SEQ,), dtype="int32", name="ids")
    reshaped = keras.layers.Reshape((user_models.SEQ,))(ids)
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(37, 4)(reshaped))
    model = keras.Model(ids, keras.layers.Dense(3)(pooled))
    model.save(tmp_path / "m.keras")
    assert _domain(tmp_path / "m.keras", "ids").high == 37
    (tmp_path / "m.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    with open_runtime(tmp_path / "m.tflite") as runtime:
        (spec,) = runtime.io_spec.inputs
    assert spec.domain is not None and spec.domain.high == 37


def test_inspect_shows_the_domain_and_refuses_a_contradicting_range(two_input):
    pt2, _ = two_input
    result = invoke("inspect", pt2, "--json")
    assert result.exit_code == 0, result.output
    inputs = {t["name"]: t for t in strict_json(result.stdout)["io_spec"]["inputs"]}
    assert inputs["ids"]["domain"]["high"] == user_models.VOCAB and "domain" not in inputs["features"]
    text = invoke("inspect", pt2)
    assert "int [0, 50)" in text.stdout and "indexes 'embedding.weight' (50 rows)" in text.stdout
    narrowed = invoke("inspect", pt2, "--input-range", "ids=3:9", "--json")
    assert strict_json(narrowed.stdout)["io_spec"]["inputs"][0]["domain"]["low"] == 3
    bad = invoke("inspect", pt2, "--input-range", "ids=0:500")
    assert bad.exit_code == 2
    assert "contradicts the model" in bad.output and "int [0, 50)" in bad.output and "ids=0:500" in bad.output
    unknown = invoke("inspect", pt2, "--input-range", "tokens=0:5")
    assert unknown.exit_code == 2 and "the model's inputs are ['ids', 'features']" in unknown.output


@pytest.mark.slow
def test_data_npz_feeds_a_two_input_model_on_every_command(two_input, tmp_path):
    pt2, data = two_input
    tflite = tmp_path / "tokens.tflite"
    converted = invoke("convert", pt2, "--to", "tflite", "-o", tflite, "--data", data, "--json")
    assert converted.exit_code == 0, converted.output
    parity = strict_json(converted.stdout)["parity"]
    assert parity["verdict"] == "PASS" and "24 samples of ids, features from inputs.npz" in parity["data_source"]
    sidecar = json.loads(sidecar_path(tflite).read_text())
    assert sidecar["extra"]["dtype_adaptation"] == ["input args_0: int64 → int32 (range-checked)"]
    assert sidecar["extra"]["source_input_names"] == {"args_0": "ids", "args_1": "features"}
    assert sidecar["io_spec"]["inputs"][0]["domain"]["high"] == user_models.VOCAB  # carried over to the renamed input

    validated = invoke("validate", pt2, tflite, "--data", data, "--json")
    assert validated.exit_code == 0, validated.output
    report = strict_json(validated.stdout)
    assert report["samples"] == 24 and report["accuracy"] is not None  # labels were read
    assert "args_0: int64 → int32 (range-checked)" in report["adaptations"]
    assert "int64 → int32" in invoke("validate", pt2, tflite, "--data", data).stdout

    bench = invoke("bench", pt2, tflite, "--data", data, "--runs", "5", "--min-seconds", "0.05", "--json")
    assert bench.exit_code == 0, bench.output
    assert {r["input_source"] for r in strict_json(bench.stdout)["results"]} == {"sample 0 of inputs.npz"}

    bundle = tmp_path / "tokens.zip"
    packaged = invoke("package", tflite, "-o", bundle, "--data", data, "--bench-seconds", "0")
    assert packaged.exit_code == 0, packaged.output
    import zipfile

    with zipfile.ZipFile(bundle) as archive:
        goldens = json.loads(archive.read("model.json"))["goldens"]
    assert goldens["source"] == "4 samples of args_0, args_1 from inputs.npz"  # the source's names, aliased

    calibrated = invoke("convert", pt2, "--to", "onnx", "--quantize", "int8", "--calibration", data,
                        "-o", tmp_path / "tokens.int8.onnx", "--json")
    assert calibrated.exit_code == 0, calibrated.output
    steps = json.loads(sidecar_path(tmp_path / "tokens.int8.onnx").read_text())["extra"]["steps"]
    assert any("of ids, features from inputs.npz" in step["details"].get("calibration", "") for step in steps)


@pytest.mark.slow
def test_pipeline_takes_npz_data_for_a_two_input_model(two_input, tmp_path):
    pt2, data = two_input
    out = tmp_path / "out"
    result = run_edgekit("pipeline", pt2, "--to", "onnx,tflite", "--quantize", "none,int8", "--data", data,
                         "--no-bench", "--out", out)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads((out / "report.json").read_text())
    rows = report["rows"]
    assert rows and all(r["status"] != "conversion-failed" for r in rows), rows
    assert all("inputs.npz" in r["data"] for r in rows), rows
    assert {(r["format"], r["status"]) for r in rows if r["precision"] == "none"} == {("onnx", "passed"),
                                                                                      ("tflite", "passed")}


def test_bad_npz_is_one_line_exit_3(two_input, tmp_path):
    pt2, _ = two_input
    bad = tmp_path / "bad.npz"
    np.savez(bad, ids=np.full((4, user_models.SEQ), user_models.VOCAB + 7, np.int64),
             features=np.zeros((4, 4), np.float32))
    result = run_edgekit("validate", pt2, pt2, "--data", bad)
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error")]
    assert len(lines) == 1 and "bad.npz" in lines[0] and "outside its domain int [0, 50)" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_transformer_encoders_convert_on_every_route_without_input_range(kind, tmp_path):
    module, args, vocab = user_models.transformer(kind)
    pt2 = user_models.save_pt2(module, args, tmp_path / f"{kind}.pt2")
    inspected = strict_json(invoke("inspect", pt2, "--json").stdout)
    ids, mask = inspected["io_spec"]["inputs"]
    assert ids["domain"]["high"] == vocab and ids["domain"]["kind"] == "integer"
    assert mask["domain"]["high"] == 2
    for target in ("onnx", "torchscript", "executorch", "tflite"):
        result = invoke("convert", pt2, "--to", target, "--json")
        assert result.exit_code == 0, f"{target}: {result.output}"
        assert strict_json(result.stdout)["parity"]["verdict"] == "PASS", target
    for target, mode in (("onnx", "int8"), ("executorch", "int8"), ("tflite", "int8-io")):
        result = invoke("convert", pt2, "--to", target, "--quantize", mode, "--calibration", "random", "--json")
        assert result.exit_code in (0, 1), f"{target} {mode}: {result.output}"  # converted; verdict honest
        assert strict_json(result.stdout)["parity"]["verdict"] in ("PASS", "FAIL")


@pytest.mark.slow
def test_gpt2_logits_convert(tmp_path):
    module, args, vocab = user_models.transformer("gpt2")
    pt2 = user_models.save_pt2(module, args, tmp_path / "gpt2.pt2")
    for target in ("onnx", "tflite"):
        result = invoke("convert", pt2, "--to", target, "--json")
        assert result.exit_code == 0, result.output
    shutil.rmtree(tmp_path, ignore_errors=True)
