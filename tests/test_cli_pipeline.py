"""End to end: `edgekit pipeline` (the default digits matrix and given models), its reports, and the
HTML report rendered by a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from xml.etree import ElementTree as ET

import pytest
from conftest import route_matrix, run_edgekit, strict_json
from test_pipeline_report import assert_non_blank_png, embedded_images

from edgekit.pipeline.report import PipelineReport, RowStatus
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.sysinfo import cuda_info


def applicable(source: Format) -> set[tuple[str, str]]:
    return set(route_matrix(source))


@pytest.mark.slow
def test_default_pipeline_covers_every_route_and_passes_every_fp32_row(default_pipeline):
    out, result = default_pipeline
    assert result.returncode == 0, result.stderr[-3000:]
    report = PipelineReport.from_dict(strict_json((out / "report.json").read_text()))
    assert [s.name for s in report.sources] == ["digits_cnn_torch", "digits_cnn_keras"]
    for src, fmt in zip(report.sources, (Format.TORCH_EXPORTED, Format.KERAS), strict=True):
        rows = {(r.format, r.precision) for r in report.rows if r.source == src.name}
        assert rows == applicable(fmt), f"{src.name}: every applicable route × precision is a row"
        assert src.accuracy is not None and src.accuracy > 0.9 and src.latency is not None
    assert len(report.rows) == len(applicable(Format.TORCH_EXPORTED)) + len(applicable(Format.KERAS))
    fp32 = [r for r in report.rows if r.precision == "none"]
    assert fp32 and all(r.status is RowStatus.PASSED for r in fp32), [r.reason for r in fp32]
    for row in report.rows:
        assert row.status is RowStatus.PASSED, f"{row.label}: {row.reason}"
        assert row.accuracy is not None and row.size_bytes > 0 and row.latency is not None and row.speedup > 0
        assert row.data.startswith("360 samples of test_x")  # real held-out digits, not random data
        assert (out / "artifacts" / os.path.basename(row.artifact)).is_file()
    # the terminal table, the report paths and the pipeline time are printed
    assert "edgekit pipeline" in result.stdout and "report.html" in result.stdout
    assert "pipeline time:" in result.stdout
    assert (out / "pipeline.log").stat().st_size > 0  # the frameworks' chatter went to the log


@pytest.mark.slow
def test_default_pipeline_reports(default_pipeline):
    out, _ = default_pipeline
    report = PipelineReport.from_dict(strict_json((out / "report.json").read_text()))
    markdown = (out / "report.md").read_text()
    assert markdown.startswith("## edgekit pipeline: PASS")
    assert markdown.count("✅ passed") == len(report.rows)
    root = ET.fromstring((out / "junit.xml").read_text())
    assert root.get("tests") == str(len(report.rows)) and root.get("failures") == "0" and root.get("errors") == "0"
    html = (out / "report.html").read_text()
    images = embedded_images(html)
    assert len(images) == 3 == html.count("<img")
    for image in images:
        assert_non_blank_png(image)


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.slow
def test_report_html_renders_in_headless_chromium_with_its_plots(default_pipeline, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("EDGEKIT_REQUIRE_BROWSER"):
            pytest.fail("EDGEKIT_REQUIRE_BROWSER is set but no chromium is installed (.ci/run installs it)")
        pytest.skip("no chromium here (.ci/run installs Debian's chromium; `make report-screenshot` is the manual way)")
    out, _ = default_pipeline
    html = (out / "report.html").read_text()
    without_plots = tmp_path / "without_plots.html"
    without_plots.write_text(re.sub(r"<img [^>]*>", "", html))

    def marker_pixels(page) -> tuple[int, int]:
        import matplotlib.image

        shot = tmp_path / f"{page.stem}.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1400,4000", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, timeout=120, check=True)
        pixels = matplotlib.image.imread(shot)[..., :3]
        assert pixels.shape[:2] == (4000, 1400)
        saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
        blue = (pixels[..., 2] > 0.6) & (pixels[..., 0] < 0.2) & (saturation > 0.4)  # digits_cnn_torch markers
        orange = (pixels[..., 0] > 0.6) & (pixels[..., 2] < 0.2) & (saturation > 0.4)  # digits_cnn_keras markers
        return int(blue.sum()), int(orange.sum())

    # The same page with and without its images: the plots' markers are what the browser shows on screen.
    with_plots, bare = marker_pixels(out / "report.html"), marker_pixels(without_plots)
    assert with_plots[0] > 200 and with_plots[1] > 200, with_plots
    assert bare[0] < 20 and bare[1] < 20, bare


@pytest.mark.slow
def test_one_failing_row_never_stops_the_others(samples, tmp_path):
    """The tiny sample has no data of its own: int8 rows fail (no calibration data), float rows pass."""
    out = tmp_path / "out"
    result = run_edgekit("pipeline", samples[Format.TORCH_EXPORTED], "--to", "onnx,executorch",
                         "--quantize", "none,int8", "--no-bench", "--out", out)
    assert result.returncode == 1, result.stderr[-2000:]
    report = PipelineReport.from_dict(strict_json((out / "report.json").read_text()))
    status = {(r.format, r.precision): r for r in report.rows}
    assert status[("onnx", "none")].status is RowStatus.PASSED
    assert status[("executorch", "none")].status is RowStatus.PASSED
    for key in (("onnx", "int8"), ("executorch", "int8")):
        assert status[key].status is RowStatus.CONVERSION_FAILED
        assert "needs calibration data" in status[key].reason and "\n" not in status[key].reason
        assert not (out / "artifacts" / f"tiny_cnn.int8.{'onnx' if key[0] == 'onnx' else 'pte'}").exists()
    assert "conversion-failed" in result.stdout and "Traceback" not in result.stderr
    root = ET.fromstring((out / "junit.xml").read_text())
    assert root.get("errors") == "2"
    assert "report.html" in result.stdout


def test_existing_outputs_are_not_replaced_without_force(samples, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    result = run_edgekit("pipeline", samples[Format.ONNX], "--to", "onnx", "--quantize", "fp16", "--out", out)
    assert result.returncode == 2, result.stderr
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert (out / "report.json").read_text() == "{}"


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--to", "coreml"], 2, "--to coreml"),
    (["--quantize", "int3"], 2, "--quantize int3"),
    (["--samples", "0"], 2, "--samples must be ≥ 1"),
    (["missing.pt2"], 3, "missing.pt2: no such model"),
])
def test_bad_input_is_one_line_with_an_exit_code(tmp_path, args, code, message):
    result = run_edgekit("pipeline", *args, "--out", tmp_path / "out")
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgekit:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_no_route_for_the_choice_is_a_usage_error(samples, tmp_path):
    result = run_edgekit("pipeline", samples[Format.EXECUTORCH], "--to", "tflite", "--out", tmp_path / "out")
    assert result.returncode == 2 and "no route applies" in result.stderr


@pytest.mark.skipif(cuda_info().usable, reason="CUDA is usable here")
def test_cuda_where_unusable_exits_3_before_any_work(tmp_path):
    result = run_edgekit("pipeline", "--device", "cuda", "--out", tmp_path / "out")
    assert result.returncode == 3 and "CUDA is not usable" in result.stderr
    assert not (tmp_path / "out" / "models").exists()
