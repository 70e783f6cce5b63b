"""End to end: `edgekit check` passes within its thresholds and exits 1 naming a tightened one."""

from __future__ import annotations

import shutil
from xml.etree import ElementTree as ET

import pytest
from conftest import run_edgekit, strict_json

from edgekit.pipeline.report import PipelineReport

pytestmark = pytest.mark.slow


@pytest.fixture
def project(default_pipeline, tmp_path):
    """A project directory holding the trained digits CNN (model, data split, sidecar)."""
    models = default_pipeline[0] / "models"
    for path in models.glob("digits_cnn_torch.pt2*"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def write_config(project, thresholds: str, *, out: str = "check") -> None:
    (project / "edgekit.toml").write_text(f"""
[pipeline]
models = ["digits_cnn_torch.pt2"]
to = ["onnx"]
quantize = ["none", "int8"]
out = "{out}"

[thresholds]
{thresholds}
""")


def check(project, *args):
    return run_edgekit("check", "--config", project / "edgekit.toml", *args)


def test_check_passes_within_thresholds_and_writes_reports(project):
    write_config(project, "min_accuracy = 0.9\nmax_accuracy_drop = 0.02\nmax_size_bytes = 1_000_000")
    result = check(project, "--junit", project / "gate.xml")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "check passed: 2 artifacts" in result.stdout
    report = PipelineReport.from_dict(strict_json((project / "check" / "report.json").read_text()))
    assert {(r.format, r.precision) for r in report.rows} == {("onnx", "none"), ("onnx", "int8")}
    assert report.violations == () and all(r.latency is None for r in report.rows)  # no latency threshold: no bench
    assert ET.fromstring((project / "gate.xml").read_text()).get("failures") == "0"


@pytest.mark.parametrize(("thresholds", "named"), [
    ("min_accuracy = 0.999", "min_accuracy 0.9990"),
    ("max_size_bytes = 1000", "max_size_bytes 1000"),
    # an override tightens one row only (a size: int8 may gain accuracy on this model, as it does here)
    ('max_size_bytes = 1_000_000\n[thresholds."onnx.int8"]\nmax_size_bytes = 1000', "onnx int8: size"),
])
def test_check_exits_1_naming_the_tightened_threshold(project, thresholds, named):
    write_config(project, thresholds)
    result = check(project)
    assert result.returncode == 1, result.stderr[-2000:]
    violations = [line for line in result.stderr.splitlines() if line.startswith("edgekit: check failed:")]
    assert violations and all(named in line for line in violations), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    report = strict_json((project / "check" / "report.json").read_text())
    assert report["violations"] and named in report["violations"][0]
    junit = ET.fromstring((project / "check" / "junit.xml").read_text())
    assert any(s.get("name") == "edgekit.check" for s in junit.iter("testsuite"))


def test_check_p50_ratio_against_a_written_baseline(project):
    write_config(project, "min_accuracy = 0.9", out="first")
    first = check(project, "--write-baseline", project / "baseline.json")
    assert first.returncode == 0, first.stderr[-2000:]
    baseline = PipelineReport.from_dict(strict_json((project / "baseline.json").read_text()))
    assert all(r.latency is not None for r in baseline.rows)  # a baseline is measured
    write_config(project, 'baseline = "baseline.json"\nmax_p50_ratio = 1000.0', out="loose")
    assert check(project).returncode == 0
    write_config(project, 'baseline = "baseline.json"\nmax_p50_ratio = 0.001', out="tight")
    tight = check(project)
    assert tight.returncode == 1 and "max_p50_ratio 0.001" in tight.stderr


def test_check_config_errors(project):
    assert check(project).returncode == 3  # no edgekit.toml yet
    (project / "edgekit.toml").write_text("[thresholds]\nmin_acuracy = 0.9\n")
    result = check(project)
    assert result.returncode == 2 and "unknown threshold 'min_acuracy'" in result.stderr
    write_config(project, 'baseline = "missing.json"\nmax_p50_ratio = 1.5')
    result = check(project)
    assert result.returncode == 3 and "missing.json: baseline not found" in result.stderr
