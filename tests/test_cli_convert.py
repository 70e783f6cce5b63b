"""End to end: `edgekit convert` over the whole route × quantization matrix, and bad input."""

import shutil

import numpy as np
import pytest
from conftest import route_matrix, strict_json
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.targets import open_runtime
from edgekit.toolkit.contract.artifact import read_sidecar, sidecar_path
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import example_feeds
from edgekit.toolkit.contract.options import QuantMode

runner = CliRunner()
TORCH_MATRIX = route_matrix(Format.TORCH_EXPORTED)
KERAS_MATRIX = route_matrix(Format.KERAS)
SIDECAR_KEYS = {"sha256", "source_sha256", "route", "options", "versions", "io_spec", "format"}


def convert(*args):
    return runner.invoke(app, ["convert", *map(str, args), "--json"])


def check_artifact(result, target: str, quant: str) -> dict:
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    artifact = data["artifact"]
    assert data["format"] == target and data["quantize"] == quant
    with open_runtime(artifact) as runtime:
        outputs = runtime.run(example_feeds(runtime.io_spec))
        assert all(np.isfinite(v.astype(np.float32)).all() for v in outputs.values())
    sidecar = strict_json(sidecar_path(artifact).read_text())
    assert SIDECAR_KEYS <= set(sidecar) and sidecar["options"]["quantize"] == quant
    assert sidecar["route"][-1] == target and sidecar["versions"]["edgekit"]
    assert "conversion_seconds" in sidecar["extra"] and "delegation" in sidecar["extra"]
    assert read_sidecar(artifact) is not None, "the sidecar's sha256 must match the artifact"
    return data


def tiny_model_options(quant: str) -> list[str]:
    """The tiny models have random weights and no data: their logits sit near ties on random inputs, so a
    quantized variant's parity says nothing there. Quantized parity is asserted on the digits CNN."""
    options = ["--calibration", "random"] if quant in ("int8", "int8-io", "int16x8") else []
    return options + (["--no-validate"] if quant in ("dynamic", "int8", "int8-io", "int16x8") else [])


def assert_parity_passes_on_real_data(data: dict, quant: str, sidecar) -> None:
    """Issue #5's acceptance: every route on the digits CNN passes at its default profile on the model's own
    test split, and the quantized ones lose at most one point of accuracy."""
    parity = data["parity"]
    assert parity["verdict"] == "PASS", parity
    assert "360 samples of test_x" in parity["data_source"]
    if quant != "none":
        assert parity["accuracy"]["delta"] >= -0.01, parity["accuracy"]
    assert sidecar.extra["parity"]["verdict"] == "PASS"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits CNN trained in each framework (8 epochs: ≥ 95% test accuracy, as parity needs a real model)."""
    out = tmp_path_factory.mktemp("digits")
    models = {}
    for framework, suffix in (("torch", ".pt2"), ("keras", ".keras")):
        result = runner.invoke(app, ["train", "--framework", framework, "--arch", "cnn", "--epochs", "8",
                                     "-o", str(out / f"digits_cnn{suffix}")])
        assert result.exit_code == 0, result.output
        models[framework] = out / f"digits_cnn{suffix}"
    return models


@pytest.mark.slow
@pytest.mark.parametrize(("target", "quant"), TORCH_MATRIX, ids=lambda v: v)
def test_torch_matrix_on_tiny_model(samples, tmp_path, target, quant):
    calibration = tiny_model_options(quant)
    result = convert(samples[Format.TORCH_EXPORTED], "--to", target, "--quantize", quant, *calibration,
                     "-o", tmp_path / f"tiny{Format(target).spec.suffix}")
    check_artifact(result, target, quant)
    if "random" in calibration:
        assert "accuracy is unknown" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("target", "quant"), TORCH_MATRIX, ids=lambda v: v)
def test_torch_matrix_on_digits_cnn(digits, tmp_path, target, quant):
    out = tmp_path / f"d{Format(target).spec.suffix}"
    result = convert(digits["torch"], "--to", target, "--quantize", quant, "-o", out)
    data = check_artifact(result, target, quant)
    if QuantMode(quant).spec.needs_calibration:
        calibrated = [s["details"].get("calibration", "") for s in data["steps"]]
        assert any("digits_cnn.pt2.data.npz" in c for c in calibrated), calibrated
    sidecar = read_sidecar(data["artifact"])
    assert sidecar.labels == tuple(str(i) for i in range(10)) and sidecar.data is not None
    assert_parity_passes_on_real_data(data, quant, sidecar)
    if (target, quant) == ("tflite", "int8"):  # float32 I/O, int8 inside (the recipe's I/O left float)
        assert [t["dtype"] for t in (*data["io_spec"]["inputs"], *data["io_spec"]["outputs"])] == ["float32"] * 2
        from ai_edge_litert.interpreter import Interpreter

        dtypes = {str(t["dtype"].__name__) for t in Interpreter(str(data["artifact"])).get_tensor_details()}
        assert "int8" in dtypes, dtypes
        assert "NO_QUANTIZE" in data["steps"][-1]["details"]["io"]


@pytest.mark.slow
@pytest.mark.parametrize(("target", "quant"), KERAS_MATRIX, ids=lambda v: v)
def test_keras_matrix_on_tiny_model(samples, tmp_path, target, quant):
    calibration = tiny_model_options(quant)
    result = convert(samples[Format.KERAS], "--to", target, "--quantize", quant, *calibration,
                     "-o", tmp_path / f"tiny{Format(target).spec.suffix}")
    check_artifact(result, target, quant)


@pytest.mark.slow
@pytest.mark.parametrize(("target", "quant"), KERAS_MATRIX, ids=lambda v: v)
def test_keras_matrix_on_digits_cnn(digits, tmp_path, target, quant):
    out = tmp_path / f"d{Format(target).spec.suffix}"
    result = convert(digits["keras"], "--to", target, "--quantize", quant, "-o", out)
    data = check_artifact(result, target, quant)
    if quant == "int8-io":
        inputs = data["io_spec"]["inputs"]
        assert inputs[0]["dtype"] == "int8" and inputs[0]["quant"]["scale"][0] > 0
    assert_parity_passes_on_real_data(data, quant, read_sidecar(data["artifact"]))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [Format.SAVEDMODEL, Format.KERAS_H5], ids=str)
@pytest.mark.parametrize(("target", "quant"), [("tflite", "none"), ("tflite", "int8"), ("onnx", "none")])
def test_savedmodel_and_h5_sources(samples, tmp_path, fmt, target, quant):
    calibration = ["--calibration", "random", "--no-validate"] if quant == "int8" else []
    result = convert(samples[fmt], "--to", target, "--quantize", quant, *calibration,
                     "-o", tmp_path / f"m{Format(target).spec.suffix}")
    check_artifact(result, target, quant)


def test_default_output_name_is_beside_the_input(samples, tmp_path):
    source = tmp_path / "model.keras"
    shutil.copy(samples[Format.KERAS], source)
    result = runner.invoke(app, ["convert", str(source), "--to", "tflite", "--quantize", "fp16"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model.fp16.tflite").is_file() and (tmp_path / "model.fp16.tflite.edgekit.json").is_file()


def test_nhwc_tflite_from_torch(samples, tmp_path):
    data = check_artifact(convert(samples[Format.TORCH_EXPORTED], "--to", "tflite", "--nhwc",
                                  "-o", tmp_path / "m.tflite"), "tflite", "none")
    assert data["io_spec"]["inputs"][0]["shape"] == [1, 8, 8, 1]
    assert data["io_spec"]["inputs"][0]["layout"] == "nhwc"


def test_script_is_refused_for_exported_programs(samples, tmp_path):
    result = convert(samples[Format.TORCH_EXPORTED], "--to", "torchscript", "--script", "-o", tmp_path / "m.pt")
    _refused(result, 2, "--script needs the model's Python source")
    assert list(tmp_path.iterdir()) == []


def test_via_is_recorded(samples, tmp_path):
    data = check_artifact(convert(samples[Format.KERAS], "--to", "onnx", "--quantize", "dynamic",
                                  "-o", tmp_path / "m.onnx"), "onnx", "dynamic")
    assert data["route"] == ["keras", "onnx", "onnx"]


@pytest.mark.slow
def test_executorch_max_pool_without_stride_converts_delegated(tmp_path):
    import torch
    from tiny_models import PoolWithoutStride

    source = tmp_path / "pool.pt2"
    torch.export.save(torch.export.export(PoolWithoutStride().eval(), (torch.zeros(1, 1, 8, 8),)), str(source))
    data = check_artifact(convert(source, "--to", "executorch", "-o", tmp_path / "pool.pte"), "executorch", "none")
    details = data["steps"][0]["details"]
    assert details["max_pool2d_strides_made_explicit"] == 1
    assert details["backend"] == "XNNPACK" and details["delegated_share"] > 0.5


def test_factory_source(tmp_path):
    result = convert("tiny_models:torch_factory", "--input-shape", "features=1,4", "--to", "onnx",
                     "-o", tmp_path / "f.onnx")
    check_artifact(result, "onnx", "none")


def _refused(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error:") and fragment in lines[0], result.stderr


def test_unsupported_pair_is_refused_with_supported_list(samples, tmp_path):
    _refused(convert(samples[Format.TORCH_EXPORTED], "--to", "torchscript", "--quantize", "int8", "-o",
                     tmp_path / "m.pt"), 2, "tflite (none, fp16, dynamic, int8, int8-io, int16x8, int4)")
    assert list(tmp_path.iterdir()) == []


def test_unknown_target_is_a_usage_error(samples):
    assert convert(samples[Format.ONNX], "--to", "coreml").exit_code == 2
    _refused(convert(samples[Format.ONNX], "--to", "keras"), 2, "not one of tflite, onnx, torchscript, executorch")


def test_int8_without_calibration_data_is_refused(samples, tmp_path):
    _refused(convert(samples[Format.KERAS], "--to", "tflite", "--quantize", "int8", "-o", tmp_path / "m.tflite"),
             2, "needs calibration data")
    assert list(tmp_path.iterdir()) == []


def test_calibration_npz_of_the_wrong_shape(samples, tmp_path):
    np.savez(tmp_path / "calib.npz", calibration_x=np.zeros((4, 3, 32, 32), np.float32))
    out = tmp_path / "out"
    out.mkdir()
    result = convert(samples[Format.KERAS], "--to", "tflite", "--quantize", "int8", "--calibration",
                     tmp_path / "calib.npz", "-o", out / "m.tflite")
    _refused(result, 3, "calibration samples have shape [3, 32, 32]")
    assert list(out.iterdir()) == []


def test_existing_output_is_kept_without_force(samples, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"the previous artifact")
    _refused(convert(samples[Format.KERAS], "--to", "onnx", "-o", target), 2, "already exists")
    assert target.read_bytes() == b"the previous artifact"


def test_unwritable_output_directory(samples):
    _refused(convert(samples[Format.KERAS], "--to", "tflite", "-o", "/proc/edgekit-test.tflite"), 3, "cannot write")


def test_wrong_output_extension(samples, tmp_path):
    _refused(convert(samples[Format.KERAS], "--to", "tflite", "-o", tmp_path / "m.onnx"), 2, "saved as .tflite")


def test_code_bearing_source_is_refused(whole_model_pickle, tmp_path):
    _refused(convert(whole_model_pickle, "--to", "onnx", "-o", tmp_path / "m.onnx"), 4, "pickled whole model")


def test_parity_failure_keeps_the_artifact_marked_failed(tmp_path):
    """A route whose result differs from the original: exit 1, the artifact stays, its sidecar says FAIL."""
    import numpy as np

    from edgekit.samples import torch_cnn

    source = tmp_path / "m.pt2"
    import torch

    torch.export.save(torch.export.export(torch_cnn(), (torch.zeros(1, 1, 8, 8),)), str(source))
    np.savez(tmp_path / "calib.npz", calibration_x=np.full((4, 1, 8, 8), 50.0, np.float32))
    # Calibrating on constant, out-of-range data makes the int8 ranges useless for random inputs.
    result = convert(source, "--to", "onnx", "--quantize", "int8", "--calibration", tmp_path / "calib.npz",
                     "-o", tmp_path / "m.int8.onnx")
    assert result.exit_code == 1, result.output
    assert "parity FAIL" in result.stderr and (tmp_path / "m.int8.onnx").is_file()
    assert strict_json(result.stdout)["parity"]["verdict"] == "FAIL"
    assert read_sidecar(tmp_path / "m.int8.onnx").extra["parity"]["verdict"] == "FAIL"
