"""End to end: `edgekit import` for every SOURCE kind, then `edgekit inspect` on the result."""


import pytest
from conftest import strict_json
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.toolkit.contract.artifact import read_sidecar
from edgekit.toolkit.contract.formats import Format

runner = CliRunner()
COPIED = [Format.TORCH_EXPORTED, Format.TORCHSCRIPT, Format.ONNX, Format.EXECUTORCH, Format.SAVEDMODEL,
          Format.TFLITE, Format.KERAS]


def run_import(out_dir, source, *args: str):
    out_dir.mkdir(exist_ok=True)
    return runner.invoke(app, ["import", str(source), "-o", str(out_dir / "imported"), "--json", *args])


def assert_inspectable(result, fmt: Format) -> dict:
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["format"] == fmt.value
    inspected = runner.invoke(app, ["inspect", data["artifact"], "--json"])
    assert inspected.exit_code == 0, inspected.output
    report = strict_json(inspected.stdout)
    assert report["format"] == fmt.value and report["smoke_run"]["ok"]
    assert read_sidecar(data["artifact"]) is not None
    return data


def test_torch_factory_with_input_shape_and_labels(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\n")
    result = run_import(tmp_path / "out", "tiny_models:torch_factory", "--input-shape", "features=1,4",
                        "--labels", str(labels))
    data = assert_inspectable(result, Format.TORCH_EXPORTED)
    assert data["artifact"].endswith(".pt2") and data["labels"] == ["cat", "dog", "bird"]
    assert data["io_spec"]["inputs"][0]["name"] == "features"


def test_torch_factory_with_state_dict_weights(tmp_path):
    import torch
    from tiny_models import torch_factory

    model = torch_factory()
    with torch.no_grad():
        model.fc.bias.fill_(3.0)
    torch.save(model.state_dict(), str(tmp_path / "weights.pt"))
    result = run_import(tmp_path / "out", "tiny_models:torch_factory", "--input-shape", "1,4",
                        "--weights", str(tmp_path / "weights.pt"))
    data = assert_inspectable(result, Format.TORCH_EXPORTED)
    program = torch.export.load(data["artifact"])
    assert torch.allclose(program.module()(torch.zeros(1, 4)), torch.full((1, 3), 3.0))


def test_keras_factory(tmp_path):
    data = assert_inspectable(run_import(tmp_path / "out", "tiny_models:keras_factory"), Format.KERAS)
    assert data["io_spec"]["outputs"][0]["name"] == "scores"


@pytest.mark.slow
def test_keras_builtin_application(tmp_path):
    result = run_import(tmp_path / "out", "keras:MobileNetV2", "--input-shape", "32,32,3", "--scale", "0.00392157",
                        "--mean", "0.5", "--std", "0.5")
    data = assert_inspectable(result, Format.KERAS)
    assert data["io_spec"]["inputs"][0]["shape"] == ["?", 32, 32, 3]
    sidecar = read_sidecar(data["artifact"])
    assert sidecar.preprocessing.mean == (0.5, 0.5, 0.5) and sidecar.preprocessing.size == (32, 32)


def test_keras_h5_becomes_keras(samples, tmp_path):
    data = assert_inspectable(run_import(tmp_path / "out", samples[Format.KERAS_H5]), Format.KERAS)
    assert data["artifact"].endswith(".keras")


@pytest.mark.parametrize("fmt", COPIED, ids=str)
def test_model_files_are_copied_and_verified(samples, tmp_path, fmt):
    data = assert_inspectable(run_import(tmp_path / "out", samples[fmt]), fmt)
    sidecar = read_sidecar(data["artifact"])
    assert sidecar.route == ("edgekit.import", fmt.value)
    assert sidecar.source_sha256 == sidecar.sha256  # a copy: same bytes


def _assert_refused(result, out_dir, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("source", "args", "code", "fragment"),
    [
        ("no_such_pkg.models:build", [], 3, "cannot import no_such_pkg.models"),
        ("tiny_models:missing_factory", [], 3, "has no callable 'missing_factory'"),
        ("tiny_models:broken_factory", [], 3, "the factory raised RuntimeError: checkpoint directory"),
        ("tiny_models:not_a_model", [], 3, "not a torch nn.Module or keras.Model"),
        ("tiny_models:torch_factory", [], 2, "records no input shape"),
        ("tiny_models:torch_factory", ["--input-shape", "wrong=1,4"], 2, "exactly ['features']"),
        ("keras:NoSuchNet", [], 3, "not a keras.applications architecture"),
        ("neither/a/file", [], 3, "no such file, and not a factory reference"),
    ],
)
def test_bad_sources(tmp_path, source, args, code, fragment):
    _assert_refused(run_import(tmp_path / "out", source, *args), tmp_path / "out", code, fragment)


def test_labels_count_must_match_classes(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("one\ntwo\n")
    result = run_import(tmp_path / "out", "tiny_models:torch_factory", "--input-shape", "1,4", "--labels", str(labels))
    _assert_refused(result, tmp_path / "out", 3, "2 labels, but output")


def test_state_dict_alone_needs_its_architecture(samples, tmp_path):
    result = run_import(tmp_path / "out", samples[Format.TORCH_PICKLE])
    _assert_refused(result, tmp_path / "out", 3, "--weights")


def test_whole_model_pickle_as_weights_is_refused(whole_model_pickle, tmp_path):
    result = run_import(tmp_path / "out", "tiny_models:torch_factory", "--input-shape", "1,4",
                        "--weights", str(whole_model_pickle))
    _assert_refused(result, tmp_path / "out", 4, "pickled whole model")


def test_existing_output_needs_force(samples, tmp_path):
    out = tmp_path / "out"
    assert run_import(out, samples[Format.ONNX]).exit_code == 0
    again = run_import(out, samples[Format.ONNX])
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert run_import(out, samples[Format.ONNX], "--force").exit_code == 0


def test_mean_without_std_is_a_usage_error(tmp_path):
    result = run_import(tmp_path / "out", "tiny_models:keras_factory", "--mean", "0.5")
    _assert_refused(result, tmp_path / "out", 2, "--mean and --std go together")
