"""Pipeline reports from synthetic rows: JSON round trip, Markdown, JUnit, and the HTML's embedded plots."""

from __future__ import annotations

import base64
import io
import re
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from conftest import strict_json

from edgekit.pipeline.html import html_report
from edgekit.pipeline.report import Latency, PipelineReport, Row, RowStatus, Source, junit_xml, markdown, table_cells
from edgekit.toolkit import jsonio


def _latency(p50: float) -> Latency:
    return Latency(p50=p50, p90=p50 * 1.1, p99=p50 * 1.3, cv=0.05, runs=50, threads=1, device="cpu")


def make_report(*, with_latency: bool = True) -> PipelineReport:
    src = Source("digits_cnn_torch", "/m/digits_cnn_torch.pt2", "torch-exported", accuracy=0.975,
                 trained_seconds=8.0, latency=_latency(4e-4) if with_latency else None)
    percentiles = (0.0, 1e-7, 1e-6, 1e-5, 3e-5, 1e-4, 4e-4, 1e-3, 2e-3)
    rows = (
        Row("digits_cnn_torch", "tflite", "none", RowStatus.PASSED, route=("torch-exported", "tflite"),
            artifact="/a/x.tflite", size_bytes=158_000, convert_seconds=4.5, profile="fp32", accuracy=0.975,
            accuracy_delta=0.0, max_abs=9.5e-6, cosine=1.0, error_percentiles=percentiles,
            latency=_latency(1e-5) if with_latency else None, speedup=40.0 if with_latency else None,
            delegation="XNNPACK 8/8 ops"),
        Row("digits_cnn_torch", "onnx", "int8", RowStatus.PARITY_FAILED, reason="output: cosine 0.98 < 0.99",
            artifact="/a/x.int8.onnx", size_bytes=52_000, convert_seconds=2.1, profile="int8", accuracy=0.90,
            accuracy_delta=-0.075, max_abs=3.0, cosine=0.98, error_percentiles=tuple(v * 100 for v in percentiles),
            latency=_latency(4e-5) if with_latency else None, speedup=10.0 if with_latency else None),
        Row("digits_cnn_torch", "executorch", "int8", RowStatus.CONVERSION_FAILED,
            reason="--quantize int8 needs calibration data"),
    )
    return PipelineReport((src,), rows, ("digits_cnn_torch → tflite int8: no route",), {"threads": 1},
                          {"cpu": {"model": "Test CPU"}}, 12.5, "2026-11-22T00:00:00+00:00", "0.1.0")


def test_json_round_trip_and_counts():
    report = make_report()
    data = strict_json(jsonio.dumps(report.to_dict()))
    assert data["edgekit_report"] == "pipeline" and data["version"] == 1 and data["passed"] is False
    assert data["counts"] == {"passed": 1, "parity-failed": 1, "conversion-failed": 1, "crashed": 0}
    assert PipelineReport.from_dict(data) == report
    assert report.row("digits_cnn_torch", "onnx", "int8").status is RowStatus.PARITY_FAILED
    with pytest.raises(ValueError, match="pipeline report"):
        PipelineReport.from_dict({**data, "version": 99})


def test_table_cells_say_fp32_for_the_unquantized_row():
    cells = dict(zip(("source", "format", "precision", "status"), table_cells(make_report().rows[0]), strict=False))
    assert cells["precision"] == "fp32" and cells["status"] == "passed"


def test_markdown_has_the_table_failures_and_the_routes_left_out():
    text = markdown(make_report())
    assert text.startswith("## edgekit pipeline: FAIL")
    table = [line for line in text.splitlines() if line.startswith("| digits_cnn_torch | ")]
    assert len(table) == 3 + 1  # three artifacts and the source row
    assert "cosine 0.98 < 0.99" in text and "needs calibration data" in text
    assert "1 combinations have no route" in text
    assert "97.50% (+0.00)" in text and "90.00% (-7.50)" in text


def test_junit_marks_parity_failures_as_failures_and_conversion_failures_as_errors():
    root = ET.fromstring(junit_xml(make_report()))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["onnx.int8"].find("failure") is not None
    assert cases["executorch.int8"].find("error") is not None
    assert cases["tflite.none"].find("failure") is None and cases["tflite.none"].find("error") is None


def test_junit_lists_check_violations_in_their_own_suite():
    from dataclasses import replace

    report = replace(make_report(), violations=("x → onnx int8: size 52000 bytes > max_size_bytes 1000",))
    root = ET.fromstring(junit_xml(report))
    suite = next(s for s in root.iter("testsuite") if s.get("name") == "edgekit.check")
    assert suite.find("testcase/failure").get("message").endswith("max_size_bytes 1000")
    assert root.get("failures") == "2"


def embedded_images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img[^>]+src="data:image/png;base64,([^"]+)"', html)]


def assert_non_blank_png(data: bytes) -> None:
    import matplotlib.image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(io.BytesIO(data), format="png")[..., :3]
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    # Drawn, not an empty frame: a good share of pixels is neither white nor one flat colour.
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert not_white > 0.02 and pixels.std() > 0.05


def test_html_is_self_contained_with_three_non_empty_plots():
    html = html_report(make_report())
    images = embedded_images(html)
    assert len(images) == 3 == html.count("<img")
    for image in images:
        assert_non_blank_png(image)
    assert not re.search(r'(src|href)="(?!data:)', html), "no external resource"
    assert "<script" not in html
    assert "needs calibration data" in html and "XNNPACK 8/8 ops" in html


def test_html_says_what_was_not_measured_instead_of_drawing_empty_plots():
    html = html_report(make_report(with_latency=False))
    assert len(embedded_images(html)) == 1  # only the error distribution has data
    assert "Latency vs size: not measured" in html and "Accuracy vs latency: not measured" in html


def test_error_percentiles_come_from_parity_metrics():
    from edgekit.validators.metrics import ERROR_PERCENTILES, compare

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 10))
    metrics = compare(ref, ref + rng.normal(scale=1e-3, size=ref.shape))
    assert len(metrics.abs_error_percentiles) == len(ERROR_PERCENTILES)
    assert list(metrics.abs_error_percentiles) == sorted(metrics.abs_error_percentiles)
    assert metrics.abs_error_percentiles[-1] == pytest.approx(metrics.max_abs)
