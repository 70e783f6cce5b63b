"""End to end: `edgekit package` bundles, `--verify` passes on a fresh bundle and fails on tampering."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from conftest import strict_json
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.toolkit.contract.formats import Format

runner = CliRunner()
pytestmark = pytest.mark.slow


def artifact(default_pipeline, name):
    return default_pipeline[0] / "artifacts" / name


def package(*args):
    return runner.invoke(app, ["package", *map(str, args)])


def rewrite(bundle, target, replacements):
    """Copy ``bundle`` to ``target`` with some members' bytes replaced."""
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(target, "w") as out:
        for info in src.infolist():
            out.writestr(info, replacements.get(info.filename, src.read(info)))
    return target


@pytest.mark.parametrize(("name", "model_file", "snippet"), [
    ("digits_cnn_keras.int8-io.tflite", "model.tflite", "org.tensorflow.lite.Interpreter"),
    ("digits_cnn_torch.int8.pte", "model.pte", "org.pytorch.executorch.Module"),
    ("digits_cnn_torch.fp32.onnx", "model.onnx", "ai.onnxruntime.OrtEnvironment"),
])
def test_bundle_contents_and_verify(default_pipeline, tmp_path, name, model_file, snippet):
    bundle = tmp_path / "digits.zip"
    result = package(artifact(default_pipeline, name), "-o", bundle, "--bench-seconds", "0.2")
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        manifest = strict_json(archive.read("model.json"))
        usage = archive.read("USAGE.md").decode()
        goldens = np.load(io.BytesIO(archive.read("golden/inputs.npz")))
        raw = archive.read("golden/input_0.bin")
    assert {model_file, "model.json", "USAGE.md", "labels.txt", "golden/inputs.npz", "golden/outputs.npz",
            "golden/input_0.bin", "golden/output_0.bin"} <= names
    assert manifest["model"]["file"] == model_file and manifest["labels"] == [str(i) for i in range(10)]
    assert manifest["io"]["inputs"] and manifest["preprocessing"]["size"] == [8, 8]
    assert manifest["parity"]["verdict"] == "PASS" and manifest["latency"]["p50_ms"] > 0
    assert manifest["goldens"]["source"].startswith("test_x[:4]")  # real samples, not random ones
    assert set(manifest["files"]) == names - {"model.json"}
    assert manifest["provenance"]["route"] and manifest["provenance"]["versions"]
    first = manifest["goldens"]["inputs"][0]
    assert len(raw) == goldens[first["npz_key"]].nbytes  # the .bin is the same values, raw little-endian
    assert snippet in usage
    if manifest["io"]["inputs"][0]["quant"]:
        assert "quantized: real = (q −" in usage
    verified = package("--verify", bundle)
    assert verified.exit_code == 0, verified.output
    assert "verified" in verified.output and "golden" in verified.output


@pytest.fixture
def tflite_bundle(default_pipeline, tmp_path):
    bundle = tmp_path / "digits.zip"
    assert package(artifact(default_pipeline, "digits_cnn_keras.int8-io.tflite"), "-o", bundle,
                   "--bench-seconds", "0").exit_code == 0
    return bundle


def test_verify_fails_when_the_model_is_swapped(default_pipeline, tflite_bundle, tmp_path):
    other = artifact(default_pipeline, "digits_cnn_keras.fp32.tflite").read_bytes()
    swapped = rewrite(tflite_bundle, tmp_path / "swapped.zip", {"model.tflite": other})
    result = package("--verify", swapped)
    assert result.exit_code == 1
    assert "sha256 model.tflite" in result.output and "swapped or modified" in result.output


def test_verify_fails_when_the_model_is_swapped_and_the_manifest_updated(default_pipeline, tflite_bundle, tmp_path):
    """Even with the sha256s rewritten to match, the goldens catch a different model."""
    import hashlib

    other = artifact(default_pipeline, "digits_cnn_keras.int8.tflite").read_bytes()
    with zipfile.ZipFile(tflite_bundle) as archive:
        manifest = strict_json(archive.read("model.json"))
    digest = hashlib.sha256(other).hexdigest()
    manifest["files"]["model.tflite"] = manifest["model"]["sha256"] = digest
    forged = rewrite(tflite_bundle, tmp_path / "forged.zip",
                     {"model.tflite": other, "model.json": json.dumps(manifest).encode()})
    result = package("--verify", forged)
    assert result.exit_code == 1 and "golden" in result.output
    assert "sha256 model.tflite: matches" in result.output


def test_verify_fails_on_a_tampered_golden(tflite_bundle, tmp_path):
    tampered = rewrite(tflite_bundle, tmp_path / "tampered.zip", {"golden/output_0.bin": b"\x00" * 40})
    result = package("--verify", tampered)
    assert result.exit_code == 1 and "sha256 golden/output_0.bin" in result.output


def test_verify_refuses_members_escaping_the_bundle(tflite_bundle, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(tflite_bundle) as src, zipfile.ZipFile(evil, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        out.writestr("../escape.txt", b"x")
    result = package("--verify", evil)
    assert result.exit_code == 3 and "points outside the bundle" in result.output
    assert not (tmp_path.parent / "escape.txt").exists()


def test_package_bad_input(samples, default_pipeline, tflite_bundle, tmp_path):
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"PK\x03\x04 truncated")
    assert package("--verify", not_zip).exit_code == 3
    result = package(samples[Format.TORCH_EXPORTED], "-o", tmp_path / "x.zip")
    assert result.exit_code == 2 and "supported: tflite, onnx, executorch" in result.output
    model = artifact(default_pipeline, "digits_cnn_keras.fp32.tflite")
    result = package(model, "-o", tflite_bundle)
    assert result.exit_code == 2 and "already exists" in result.output
    assert package(model, "-o", tmp_path / "x.tar").exit_code == 2
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    result = package(model, "-o", tmp_path / "y.zip", "--labels", labels, "--bench-seconds", "0")
    assert result.exit_code == 3 and "2 labels for 10 classes" in result.output
    assert not (tmp_path / "y.zip").exists()
    assert package("--verify").exit_code == 2  # --verify needs a value


def test_a_hostile_input_name_stays_a_string_literal_and_hidden_members_exit_3(tmp_path):
    """A tiny ONNX model whose input name is Kotlin code: USAGE.md holds it as an escaped literal and the
    bundle verifies; the same bundle with a second model.onnx hidden from the directory exits 3."""
    from test_bundle_security import INJECTIONS, hidden_model, kotlin_line, tiny_onnx

    from edgekit.packaging.usage import kotlin_string

    name = INJECTIONS[0]
    bundle = tmp_path / "b.zip"
    made = package(tiny_onnx(tmp_path / "m.onnx", input_name=name), "-o", bundle, "--bench-seconds", "0")
    assert made.exit_code == 0, made.output
    with zipfile.ZipFile(bundle) as archive:
        usage = archive.read("USAGE.md").decode()
    line = next(line for line in usage.splitlines() if line.startswith("val result = "))
    assert line == f"val result = session.run(mapOf({kotlin_string(name)} to input))"
    assert kotlin_line(line) == ("val result = session.run(mapOf( to input))", [name])
    verified = package("--verify", bundle)
    assert verified.exit_code == 0, verified.output
    hidden = tmp_path / "hidden.zip"
    hidden.write_bytes(hidden_model(bundle, tiny_onnx(tmp_path / "evil.onnx", scale=-1.0).read_bytes())[0])
    refused = package("--verify", hidden)
    assert refused.exit_code == 3 and "belong to no listed member" in refused.output
