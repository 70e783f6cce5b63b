
from conftest import strict_json
from typer.testing import CliRunner

from edgekit import __version__
from edgekit.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"edgekit {__version__}"


def test_help_lists_commands_and_exit_codes():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for fragment in ("info", "inspect", "Exit codes", "4 refused for safety"):
        assert fragment in result.stdout


def test_info_json_has_versions_cpu_cuda_and_runtimes():
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["edgekit"] == __version__
    assert data["versions"]["torch"].startswith("2.13.0")
    assert data["versions"]["onnxruntime"]
    assert data["cpu"]["logical_cores"] >= 1 and isinstance(data["cpu"]["isa_flags"], list)
    assert isinstance(data["cuda"]["usable"], bool)
    formats = {rt["format"]: rt for rt in data["runtimes"]}
    assert {"tflite", "onnx", "torchscript", "torch-exported", "executorch", "keras", "keras-h5", "savedmodel"} == set(
        formats
    )
    assert all(rt["missing"] == [] for rt in formats.values())
    assert isinstance(data["routes"], list)
    targets = {t["target"]: t for t in data["compat_targets"]}
    assert targets["tflite-gpu"]["evidence"] == "static rule" and targets["onnx-nnapi"]["format"] == "onnx"
    assert len(targets) == 8 and all(t["missing"] == [] for t in targets.values())


def test_info_human():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    for fragment in ("CPU", "ISA", "CUDA", "Backends", "Runtimes", "onnxruntime", "Compatibility targets"):
        assert fragment in result.stdout


def test_unknown_command_is_a_usage_error():
    result = runner.invoke(app, ["frobnicate"])
    assert result.exit_code == 2


def test_routes_lists_the_matrix():
    result = runner.invoke(app, ["routes", "--json"])
    assert result.exit_code == 0
    rows: dict[tuple[str, str], list[str]] = {}
    for route in strict_json(result.stdout):  # an edge may have several converters (keras → tflite int4)
        rows.setdefault((route["source"], route["to"]), []).extend(route["quantize"])
    assert rows[("keras", "tflite")] == ["none", "fp16", "dynamic", "int8", "int8-io", "int16x8", "int4"]
    assert rows[("torch-exported", "executorch")] == ["none", "fp16", "dynamic", "int8", "int4"]
    assert rows[("onnx", "onnx")] == ["fp16", "dynamic", "int8", "int4"]
    human = runner.invoke(app, ["routes"])
    assert human.exit_code == 0 and "torch-exported" in human.stdout


def test_info_lists_routes():
    data = strict_json(runner.invoke(app, ["info", "--json"]).stdout)
    pairs = {(r["source"], r["to"]) for r in data["routes"]}
    assert {("keras", "onnx"), ("torch-exported", "tflite"), ("onnx", "onnx")} <= pairs
    assert all(r["missing"] == [] for r in data["routes"])
