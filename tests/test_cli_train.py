"""End to end: `edgekit train` in both frameworks, through the CLI."""


import numpy as np
import pytest
from conftest import strict_json
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.toolkit.contract.artifact import read_sidecar
from edgekit.toolkit.reports import InspectReport

runner = CliRunner()


def train(tmp_path, *args: str):
    """Train into tmp_path/out (inputs stay beside it), so "nothing written" means out/ is empty."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return runner.invoke(app, ["train", *args, "-o", str(out / "model"), "--json"])


@pytest.fixture(scope="module")
def cnn_runs(tmp_path_factory):
    """The digits CNN trained twice with the same seed in each framework."""
    runs = {}
    for framework in ("torch", "keras"):
        for attempt in (1, 2):
            out = tmp_path_factory.mktemp(f"{framework}{attempt}")
            result = train(out, "--framework", framework, "--arch", "cnn", "--seed", "7")
            assert result.exit_code == 0, result.output
            runs[framework, attempt] = strict_json(result.stdout)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_cnn_reaches_95_percent_on_digits(cnn_runs, framework):
    assert cnn_runs[framework, 1]["test_accuracy"] >= 0.95
    assert cnn_runs[framework, 1]["test_samples"] == 360


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_same_seed_same_accuracy(cnn_runs, framework):
    first, second = cnn_runs[framework, 1], cnn_runs[framework, 2]
    assert first["test_accuracy"] == second["test_accuracy"]
    assert [h["loss"] for h in first["history"]] == [h["loss"] for h in second["history"]]


@pytest.mark.slow
@pytest.mark.parametrize(("framework", "suffix", "shape"), [("torch", ".pt2", [1, 1, 8, 8]),
                                                             ("keras", ".keras", ["?", 8, 8, 1])])
def test_outputs_data_and_sidecar(cnn_runs, framework, suffix, shape):
    run = cnn_runs[framework, 1]
    model = run["artifact"]
    assert model.endswith(suffix)
    sidecar = read_sidecar(model)
    assert sidecar is not None and sidecar.labels == tuple(str(i) for i in range(10))
    assert sidecar.metrics["test_accuracy"] == run["test_accuracy"]
    assert sidecar.preprocessing.scale == 1 / 16 and sidecar.preprocessing.layout.value in ("nchw", "nhwc")
    assert list(sidecar.io_spec.inputs[0].shape) == shape
    with np.load(run["data"]) as data:
        assert data["calibration_x"].shape[1:] == tuple(d for d in shape[1:])
        assert len(data["test_x"]) == len(data["test_y"]) == 360
        assert list(data["labels"]) == [str(i) for i in range(10)]
    inspected = runner.invoke(app, ["inspect", model, "--json"])
    assert inspected.exit_code == 0, inspected.output
    assert InspectReport.from_dict(strict_json(inspected.stdout)).smoke_run.ok


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_mobilenetv2_trains_to_healthy_logits(tmp_path, framework):
    result = train(tmp_path, "--framework", framework, "--arch", "mobilenetv2", "--image-size", "32", "--epochs", "3")
    assert result.exit_code == 0, result.output
    run = strict_json(result.stdout)
    assert run["test_accuracy"] >= 0.5, run["test_accuracy"]
    from edgekit.targets import open_runtime

    with np.load(run["data"]) as data:
        images = data["calibration_x"][:32]
    with open_runtime(run["artifact"]) as runtime:
        name = runtime.io_spec.input_names[0]
        logits = np.concatenate([next(iter(runtime.run({name: x[None]}).values())) for x in images])
    assert np.isfinite(logits).all()
    assert logits.std(axis=1).mean() > 0.5, "logits must not collapse to near-constant values"
    assert len(set(logits.argmax(axis=1))) > 3, "predictions must not be one class"


def test_user_npz_trains_an_mlp(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = (rng.random((60, 6, 6)) * 40 + y[:, None, None] * 80).astype(np.uint8)
    np.savez(tmp_path / "shapes.npz", x=x, y=y, labels=np.array(["dark", "mid", "bright"]))
    result = train(tmp_path, "--framework", "torch", "--arch", "mlp", "--data", str(tmp_path / "shapes.npz"),
                   "--epochs", "5")
    assert result.exit_code == 0, result.output
    run = strict_json(result.stdout)
    assert run["test_accuracy"] >= 0.9
    assert read_sidecar(run["artifact"]).labels == ("dark", "mid", "bright")


def _assert_nothing_written(result, tmp_path, code, fragment):
    assert result.exit_code == code, result.output
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list((tmp_path / "out").iterdir()) == []


def test_npz_without_x_or_y(tmp_path):
    np.savez(tmp_path / "input.npz", images=np.zeros((9, 4, 4)))
    result = train(tmp_path, "--framework", "torch", "--arch", "mlp", "--data", str(tmp_path / "input.npz"))
    _assert_nothing_written(result, tmp_path, 3, "missing array(s) ['x', 'y']")


def test_npz_labels_not_matching_classes(tmp_path):
    np.savez(tmp_path / "input.npz", x=np.zeros((9, 4, 4)), y=np.array([0, 1, 2] * 3), labels=np.array(["a", "b"]))
    result = train(tmp_path, "--framework", "keras", "--arch", "mlp", "--data", str(tmp_path / "input.npz"))
    _assert_nothing_written(result, tmp_path, 3, "2 labels for 3 classes")


def test_missing_data_file(tmp_path):
    result = train(tmp_path, "--framework", "torch", "--arch", "cnn", "--data", str(tmp_path / "none.npz"))
    _assert_nothing_written(result, tmp_path, 3, "no such data file")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--epochs", "0"], "--epochs must be ≥ 1"), (["--batch-size", "-1"], "--batch-size must be ≥ 1")],
)
def test_bad_numbers_are_usage_errors(tmp_path, args, fragment):
    result = train(tmp_path, "--framework", "torch", "--arch", "cnn", *args)
    _assert_nothing_written(result, tmp_path, 2, fragment)


def test_wrong_extension_and_existing_output(tmp_path):
    wrong = runner.invoke(app, ["train", "--framework", "keras", "--arch", "mlp", "-o", str(tmp_path / "m.pt2")])
    assert wrong.exit_code == 2 and "keras models are saved as .keras" in wrong.stderr
    (tmp_path / "m.pt2").write_bytes(b"precious")
    exists = runner.invoke(app, ["train", "--framework", "torch", "--arch", "mlp", "-o", str(tmp_path / "m.pt2")])
    assert exists.exit_code == 2 and "already exists" in exists.stderr
    assert (tmp_path / "m.pt2").read_bytes() == b"precious"


def test_unknown_arch_is_a_usage_error(tmp_path):
    result = train(tmp_path, "--framework", "torch", "--arch", "resnet")
    assert result.exit_code == 2


def test_torch_and_keras_models_of_one_name_keep_separate_data():
    from pathlib import Path

    from edgekit.models import Framework
    from edgekit.training import output_paths

    torch_model, torch_data = output_paths(Path("digits"), Framework.TORCH)
    keras_model, keras_data = output_paths(Path("digits"), Framework.KERAS)
    assert (torch_model.name, keras_model.name) == ("digits.pt2", "digits.keras")
    assert torch_data != keras_data and torch_data.name == "digits.pt2.data.npz"
