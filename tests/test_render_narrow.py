"""Every table readable at COLUMNS=80 — validate, bench, pipeline, inspect, routes — with every number in full
(no "…"), and still drawn as a table where it fits (a wide terminal)."""

import io

import numpy as np
import pytest
from conftest import run_edgekit, strict_json
from rich.console import Console
from typer.testing import CliRunner

from edgekit import render
from edgekit.cli import app
from edgekit.toolkit.units import human_bytes, human_seconds

runner = CliRunner()
LONG_INPUT = "a_rather_long_input_tensor_name_that_no_80_column_table_can_hold_beside_the_rest"


pytestmark = pytest.mark.usefixtures("console_reads_columns")


def _onnx(path, *, scale: float = 1.0, input_name: str = "x"):
    """input (1, 8) → logits (1, 10) = input @ W × scale."""
    from onnx import TensorProto, helper, numpy_helper, save

    weight = np.random.default_rng(0).standard_normal((8, 10)).astype(np.float32)
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])
    nodes = [helper.make_node("MatMul", [input_name, "w"], ["raw"]), helper.make_node("Mul", ["raw", "s"], ["logits"])]
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.float32([scale]), "s")]
    model = helper.make_model(helper.make_graph(nodes, "m", [x], [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    save(model, str(path))
    return path


def _flat(text: str) -> str:
    """The text with every run of whitespace as one space (a stacked value may wrap at a space)."""
    return " ".join(text.split())


def _metric_strings(metrics: dict) -> list[str]:
    """What the validate table prints for one output's metrics."""
    return [f"{metrics['max_abs']:.3g}", f"{metrics['mean_abs']:.3g}", f"{metrics['p99_abs']:.3g}",
            f"{metrics['max_rel']:.3g}", f"{metrics['cosine']:.6f}", f"{metrics['snr_db']:.1f}",
            f"{metrics['top1_agreement']:.1%}", f"{metrics['top5_agreement']:.1%}"]


@pytest.mark.parametrize("columns", ["80", "200"])
def test_validate_shows_every_metric_in_full(tmp_path, columns):
    reference, candidate = _onnx(tmp_path / "ref.onnx"), _onnx(tmp_path / "cand.onnx", scale=1.003)
    result = runner.invoke(app, ["validate", str(reference), str(candidate), "--profile", "int8",
                                 "--json-out", str(tmp_path / "r.json")], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    (output,) = strict_json((tmp_path / "r.json").read_text())["outputs"]
    assert "…" not in result.stdout
    for text in (*_metric_strings(output["metrics"]), "max |Δ|", "cosine", "SNR dB", "top-1", "top-5"):
        assert text in result.stdout, text
    assert all(len(line) <= int(columns) for line in result.stdout.splitlines()[1:4])
    assert ("┃" in result.stdout) is (columns == "200")  # a table where it fits, stacked where it does not


def test_validate_at_80_columns_in_a_real_terminal_process(tmp_path):
    """`COLUMNS=80 edgekit validate …` as a user runs it (the acceptance line of the issue)."""
    reference, candidate = _onnx(tmp_path / "ref.onnx"), _onnx(tmp_path / "cand.onnx", scale=1.003)
    result = run_edgekit("validate", reference, candidate, "--profile", "int8", "--json-out", tmp_path / "r.json",
                         env_extra={"COLUMNS": "80"}, timeout=300)
    assert result.returncode == 0, result.stderr
    (output,) = strict_json((tmp_path / "r.json").read_text())["outputs"]
    assert "…" not in result.stdout
    assert all(text in result.stdout for text in _metric_strings(output["metrics"]))


def test_bench_tables_at_80_columns(tmp_path):
    model = _onnx(tmp_path / "m.onnx")
    result = runner.invoke(app, ["bench", str(model), str(model), "--warmup", "1", "--runs", "5",
                                 "--min-seconds", "0", "--json-out", str(tmp_path / "b.json")], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout and "Latency" in result.stdout and "Costs" in result.stdout
    results = strict_json((tmp_path / "b.json").read_text())["results"]
    for entry in results:
        stats = entry["stats"]
        for value in (stats["p50"], stats["p90"], stats["p99"], stats["mean"], entry["load_seconds"]):
            assert human_seconds(value) in result.stdout
        assert human_bytes(entry["file_size_bytes"]) in result.stdout
    assert f"{stats['cv']:.1%}" in result.stdout


def test_inspect_contract_stacks_per_tensor_at_80_columns(tmp_path):
    model = _onnx(tmp_path / "m.onnx", input_name=LONG_INPUT)
    result = runner.invoke(app, ["inspect", str(model)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    contract = result.stdout.split("I/O contract")[1].split("operators")[0]
    assert "…" not in contract and LONG_INPUT in contract and "[1, 8]" in contract and "[1, 10]" in contract
    assert f"in  {LONG_INPUT}" in contract and "out  logits" in contract  # one heading per tensor
    wide = runner.invoke(app, ["inspect", str(model)], env={"COLUMNS": "200"})
    assert "┃" in wide.stdout.split("I/O contract")[1]


def test_routes_at_80_columns():
    result = runner.invoke(app, ["routes"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "…" not in result.stdout
    rows = strict_json(runner.invoke(app, ["routes", "--json"]).stdout)
    for row in rows:
        assert row["converter"] in _flat(result.stdout) and f"{row['source']} → {row['to']}" in result.stdout


@pytest.mark.parametrize("width", [80, 200])
def test_pipeline_table_at_80_and_200_columns(width):
    from test_pipeline_report import make_report

    from edgekit.pipeline.report import table_cells

    out = io.StringIO()
    report = make_report()
    render.render_pipeline(report, {}, Console(file=out, width=width, highlight=False, soft_wrap=True))
    text = out.getvalue()
    assert "…" not in text
    for row in report.rows:
        for cell in table_cells(row):
            assert cell in _flat(text), cell
    assert ("┃" in text) is (width == 200)
