"""Accuracy-budgeted quantization (convert --max-accuracy-drop / --min-cosine) and convert --recipe.

The model is a digits MLP with one planted outlier layer: unit 5 of fc1 is dead after its ReLU from the first
step of training (no gradient revives it), so fc2's weights from it can be anything without changing a single
output. They are set 1000x the layer's largest weight: every row of fc2 then quantizes to that outlier and zeros,
so fc2 alone wrecks int8 (measured: 82 points of top-1) and fc2 alone kept float restores it. The same model
without the outlier quantizes within the budget with nothing kept float.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import run_edgekit

from edgekit.budget import Budget, Trial
from edgekit.toolkit.contract.errors import UsageError
from edgekit.validators.tolerances import DEFAULTS, Profile


def test_a_budget_replaces_the_profiles_accuracy_criteria_by_its_own():
    cosine_only = Budget(min_cosine=0.995).overrides().apply(DEFAULTS[Profile.INT8], "logits")
    assert (cosine_only.min_cosine, cosine_only.min_top1, cosine_only.max_accuracy_drop) == (0.995, None, None)
    drop_only = Budget(max_accuracy_drop=0.5).overrides().apply(DEFAULTS[Profile.INT8], "logits")
    assert (drop_only.min_cosine, drop_only.max_accuracy_drop) == (None, 0.005)


def test_budgets_out_of_range_are_usage_errors():
    for bad in ({}, {"min_cosine": 1.5}, {"max_accuracy_drop": -1.0}, {"max_accuracy_drop": 101.0}):
        with pytest.raises(UsageError):
            Budget(**bad)


def test_the_search_minimises_the_drop_when_asked_and_one_minus_cosine_otherwise():
    trial = Trial("probe", ("fc2",), "fc2", cosine=0.98, drop=3.0, size=1, passed=False, seconds=0.0)
    assert trial.error(Budget(max_accuracy_drop=1.0)) == pytest.approx(3.02)
    assert trial.error(Budget(min_cosine=0.99)) == pytest.approx(0.02)
    assert trial.shortfall(Budget(max_accuracy_drop=1.0, min_cosine=0.99)) == pytest.approx(2.0 + 1.0)


@pytest.fixture(scope="module")
def mlps(tmp_path_factory):
    from tiny_models import outlier_mlps

    return outlier_mlps(tmp_path_factory.mktemp("budget"))


def _budgeted(mlps, source, to, out, *args):
    return run_edgekit("convert", mlps / source, "--to", to, "--quantize", "int8", "-o", out, "--json",
                       "--calibration", mlps / "calib.npz", "--data", mlps / "test.npz", *args)


def _budget(out):
    return json.loads((out.parent / (out.name + ".edgekit.json")).read_text())["extra"]["budget"]


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("to, suffix", [("tflite", ".tflite"), ("onnx", ".onnx"), ("executorch", ".pte")])
def test_the_budget_keeps_exactly_the_outlier_layer_float_and_nothing_without_it(mlps, tmp_path, to, suffix):
    out = tmp_path / f"outlier{suffix}"
    result = _budgeted(mlps, "outlier.pt2", to, out, "--max-accuracy-drop", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["parity"]["verdict"] == "PASS" and report["parity"]["accuracy"]["delta"] >= -0.02
    budget = _budget(out)
    full = budget["trials"][0]
    assert full["stage"] == "full" and full["accuracy_drop_points"] > 30  # the outlier wrecks plain int8
    # the per-layer report of the full model ranks the outlier first, and its one revert meets the budget
    ranking = budget["ranking"]["layers"]
    assert ranking[0]["layer"] == "fc2" and ranking[0]["share"] > 0.8, ranking
    assert {layer["layer"] for layer in ranking} == {"fc1", "fc2", "head"}
    assert [t["stage"] for t in budget["trials"]] == ["full", "greedy"]
    assert budget["met"] and json.loads((tmp_path / f"outlier{suffix}.edgekit.json").read_text())[
        "options"]["keep_float"] == ["fc2"]
    clean = tmp_path / f"clean{suffix}"
    result = _budgeted(mlps, "clean.pt2", to, clean, "--max-accuracy-drop", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [t["stage"] for t in _budget(clean)["trials"]] == ["full"]
    assert json.loads((tmp_path / f"clean{suffix}.edgekit.json").read_text())["options"]["keep_float"] == []
    if to != "executorch":  # the recipe makes the same file again (ExecuTorch programs are checked elsewhere)
        again = tmp_path / f"again{suffix}"
        made = run_edgekit("convert", mlps / "outlier.pt2", "--recipe", tmp_path / f"outlier{suffix}.edgekit.json",
                           "-o", again, "--data", mlps / "test.npz")
        assert made.returncode == 0, made.stderr[-2000:]
        assert _sha256(again) == _sha256(out)


@pytest.mark.slow
def test_an_unreachable_budget_exits_1_keeping_the_best_model_with_the_figures(mlps, tmp_path):
    # On TFLite every layer kept float leaves nothing to quantize, which the route refuses (a trial that failed,
    # not the end of the search); with any layer int8 the cosine stays well under 0.9999999.
    out = tmp_path / "best.tflite"
    result = run_edgekit("convert", mlps / "outlier.pt2", "--to", "tflite", "--quantize", "int8", "-o", out,
                         "--calibration", mlps / "calib.npz", "--data", mlps / "test.npz",
                         "--min-cosine", "0.9999999")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "accuracy budget not met" in result.stderr and "Traceback" not in result.stderr
    assert "figures   float" in result.stdout and out.exists()
    budget = _budget(out)
    assert not budget["met"] and "fc2" in json.loads((tmp_path / "best.tflite.edgekit.json").read_text())[
        "options"]["keep_float"]
    assert any("refused" in t for t in budget["trials"])
    assert budget["float"]["best"]["cosine"] > budget["float"]["full"]["cosine"]


@pytest.mark.slow
def test_budget_refusals_are_one_line_usage_errors(mlps, tmp_path):
    unlabelled = run_edgekit("convert", mlps / "outlier.pt2", "--to", "onnx", "--quantize", "int8", "-o",
                             tmp_path / "x.onnx", "--calibration", "random", "--max-accuracy-drop", "1")
    assert unlabelled.returncode == 2 and "labelled data" in unlabelled.stderr
    assert not (tmp_path / "x.onnx").exists()
    unquantized = run_edgekit("convert", mlps / "outlier.pt2", "--to", "onnx", "-o", tmp_path / "y.onnx",
                              "--min-cosine", "0.99")
    assert unquantized.returncode == 2 and "--quantize" in unquantized.stderr
    clash = run_edgekit("convert", mlps / "outlier.pt2", "--recipe", tmp_path / "none.edgekit.json",
                        "--quantize", "int8")
    assert clash.returncode == 2 and "--recipe" in clash.stderr and "--quantize" in clash.stderr
    missing = run_edgekit("convert", mlps / "outlier.pt2", "--recipe", tmp_path / "none.edgekit.json")
    assert missing.returncode == 3 and "sidecar" in missing.stderr


def test_edgekit_toml_takes_a_budget_for_the_pipeline(tmp_path):
    from edgekit.pipeline.gate import parse_config

    config = parse_config({"pipeline": {"max_accuracy_drop": 2, "min_cosine": 0.99},
                           "thresholds": {"max_accuracy_drop": 0.02}}, tmp_path / "edgekit.toml")
    assert (config.max_accuracy_drop, config.min_cosine) == (2.0, 0.99)
    assert config.thresholds.max_accuracy_drop == 0.02  # the gate's threshold is another thing (a fraction)
    for bad in ({"min_cosine": 2}, {"max_accuracy_drop": -1}, {"max_accuracy_drop": True}, {"min_cosine": "x"}):
        with pytest.raises(UsageError, match="pipeline"):
            parse_config({"pipeline": bad}, tmp_path / "edgekit.toml")


def test_the_pipeline_report_says_what_stayed_float_and_what_it_cost():
    from edgekit.pipeline.report import PipelineReport, Row, RowStatus, budget_lines, markdown

    row = Row("outlier", "tflite", "int8", RowStatus.PASSED, size_bytes=10_444, cosine=0.986, accuracy_delta=-0.0034,
              kept_float=("fc2",), budget={"met": True, "full_size_bytes": 7_885, "full_cosine": -0.0325,
                                           "full_accuracy_drop_points": 81.82, "conversions": 3})
    plain = Row("outlier", "tflite", "fp32", RowStatus.PASSED)
    report = PipelineReport((), (plain, row), (), {}, {}, 1.0, "2026-12-03T00:00:00Z", "0")
    lines = budget_lines(report)
    assert lines == ["outlier → tflite int8: budget met; kept float: fc2; 10.2 KiB (fully quantized 7.7 KiB); "
                     "cosine -0.03250 → 0.98600; top-1 drop 81.82 → 0.34 pt; 3 conversions"]
    assert "### Accuracy budget: what stayed float" in markdown(report) and lines[0] in markdown(report)
    assert Row.from_dict(row.to_dict()) == row


@pytest.mark.slow
def test_check_runs_the_budget_edgekit_toml_asks_for(mlps, tmp_path):
    (tmp_path / "edgekit.toml").write_text(
        f'[pipeline]\nmodels = ["{mlps / "outlier.pt2"}"]\nto = ["onnx"]\nquantize = ["int8"]\n'
        f'data = "{mlps / "test.npz"}"\ncalibration = "{mlps / "calib.npz"}"\ncompat = []\nmax_accuracy_drop = 2\n'
        '[thresholds]\nmax_accuracy_drop = 0.02\n')
    result = run_edgekit("check", "--config", tmp_path / "edgekit.toml")
    assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]
    report = json.loads((tmp_path / "edgekit-check" / "report.json").read_text())
    row = report["rows"][0]
    assert row["kept_float"] == ["fc2"] and row["budget"]["met"] and row["budget"]["full_accuracy_drop_points"] > 30
    assert report["options"]["budget"] == {"min_cosine": None, "max_accuracy_drop": 2.0}
    assert "kept float: fc2" in (tmp_path / "edgekit-check" / "report.md").read_text()
