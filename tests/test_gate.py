"""`edgekit check` config parsing and threshold judging (pure logic, nothing runs)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_pipeline_report import _latency, make_report

from edgekit.pipeline.gate import Thresholds, judge, load_config, parse_config
from edgekit.pipeline.report import RowStatus
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError

CONFIG = Path("/project/edgekit.toml")


def test_parse_resolves_paths_against_the_config_directory():
    config = parse_config({"pipeline": {"models": ["m/a.pt2"], "to": ["onnx"], "quantize": "int8", "out": "o",
                                        "data": "data/x.npz"},
                           "thresholds": {"min_accuracy": 0.9, "baseline": "base.json"}}, CONFIG)
    assert config.models == (Path("/project/m/a.pt2"),) and config.out == Path("/project/o")
    assert config.to == ("onnx",) and config.quantize == ("int8",) and config.data == "/project/data/x.npz"
    assert config.baseline == Path("/project/base.json") and config.thresholds.min_accuracy == 0.9
    assert not config.needs_latency


@pytest.mark.parametrize(("data", "message"), [
    ({"pipline": {}}, "unknown table"),
    ({"pipeline": {"modles": ["x"]}}, "unknown \\[pipeline\\] key"),
    ({"thresholds": {"min_acuracy": 0.9}}, "unknown threshold 'min_acuracy'"),
    ({"thresholds": {"max_size_bytes": "big"}}, "must be a finite number"),
    ({"thresholds": {"max_p50_ratio": -1}}, "must be a finite number ≥ 0"),
    ({"thresholds": {"max_size_bytes": float("nan")}}, "must be a finite number ≥ 0"),
    ({"thresholds": {"min_accuracy": float("inf")}}, "must be a finite number ≥ 0"),
    ({"thresholds": 5}, "\\[thresholds\\] must be a table"),
    ({"pipeline": {"threads": 0}}, "integer from 1 to 1024"),
    ({"thresholds": {"require_parity": 1}}, "true or false"),
    ({"thresholds": {"coreml": {"max_size_bytes": 1}}}, "names no format or quantization mode"),
    ({"pipeline": {"threads": 1.5}}, "must be an integer"),
    ({"pipeline": {"models": []}}, "non-empty list"),
])
def test_config_mistakes_are_usage_errors_naming_the_key(data, message):
    with pytest.raises(UsageError, match=message):
        parse_config(data, CONFIG)


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(InvalidInputError, match="no such config file"):
        load_config(tmp_path / "edgekit.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[thresholds\nmin_accuracy = ")
    with pytest.raises(InvalidInputError, match="bad.toml: not valid TOML"):
        load_config(bad)


def test_override_precedence_format_precision_then_format_then_precision():
    config = parse_config({"thresholds": {"max_size_bytes": 1, "onnx": {"max_size_bytes": 2},
                                          "int8": {"max_size_bytes": 3}, "onnx.int8": {"max_size_bytes": 4},
                                          "min_accuracy": 0.5}}, CONFIG)
    rows = {(r.format, r.precision): r for r in make_report().rows}
    assert config.thresholds_for(rows[("onnx", "int8")]).max_size_bytes == 4
    assert config.thresholds_for(replace(rows[("onnx", "int8")], precision="fp16")).max_size_bytes == 2
    assert config.thresholds_for(rows[("executorch", "int8")]).max_size_bytes == 3
    assert config.thresholds_for(rows[("tflite", "none")]).max_size_bytes == 1
    assert config.thresholds_for(rows[("onnx", "int8")]).min_accuracy == 0.5  # inherited from the global table


def passing_report():
    report = make_report()
    return replace(report, rows=tuple(replace(r, status=RowStatus.PASSED, reason="") for r in report.rows[:2]))


def test_loose_thresholds_pass():
    config = parse_config({"thresholds": {"min_accuracy": 0.8, "max_accuracy_drop": 0.1,
                                          "max_size_bytes": 1_000_000}}, CONFIG)
    assert judge(passing_report(), config).passed


@pytest.mark.parametrize(("thresholds", "named"), [
    ({"min_accuracy": 0.95}, "accuracy 0.9000 < min_accuracy 0.9500"),
    ({"max_accuracy_drop": 0.05}, "accuracy drop 0.0750 > max_accuracy_drop 0.0500"),
    ({"max_size_bytes": 100_000}, "size 158000 bytes > max_size_bytes 100000"),
])
def test_each_tightened_threshold_is_named_with_both_values(thresholds, named):
    verdict = judge(passing_report(), parse_config({"thresholds": thresholds}, CONFIG))
    assert not verdict.passed
    assert any(named in v for v in verdict.violations), verdict.violations


def test_failed_rows_violate_require_parity_unless_switched_off():
    report = make_report()
    strict = judge(report, parse_config({}, CONFIG))
    assert len(strict.violations) == 2 and all("require_parity" in v for v in strict.violations)
    assert judge(report, parse_config({"thresholds": {"require_parity": False}}, CONFIG)).passed


def test_p50_ratio_against_a_baseline():
    baseline = passing_report()
    slower = replace(baseline, rows=tuple(replace(r, latency=_latency(r.latency.p50 * 3)) for r in baseline.rows))
    config = parse_config({"thresholds": {"max_p50_ratio": 2.0}}, CONFIG)
    assert config.needs_latency
    assert judge(baseline, config, baseline).passed
    verdict = judge(slower, config, baseline)
    assert len(verdict.violations) == 2 and "3.00× the baseline" in verdict.violations[0]
    assert "max_p50_ratio 2.0" in verdict.violations[0]
    no_baseline = judge(slower, config, None)
    assert "no baseline is configured" in no_baseline.violations[0]


def test_a_row_missing_from_the_baseline_is_a_note_not_a_violation():
    report = passing_report()
    baseline = replace(report, rows=report.rows[:1])
    verdict = judge(report, parse_config({"thresholds": {"max_p50_ratio": 2.0}}, CONFIG), baseline)
    assert verdict.passed and "no baseline latency" in verdict.notes[0]


def test_thresholds_default_to_requiring_parity_only():
    assert Thresholds() == Thresholds(None, None, None, None, True)
