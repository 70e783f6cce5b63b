"""benchmarks/coverage.py: its table, rates and ordering on made-up cells (fast), and one real cell end to end
(a torch two-input/two-output module → ONNX float, in the script's own subprocesses)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "coverage.py"


def _coverage():
    spec = importlib.util.spec_from_file_location("coverage_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def _run(cov):
    columns = [cov.Column("tflite", "none"), cov.Column("tflite", "int8"), cov.Column("onnx", "none")]
    cells = [cov.Cell("a", "tflite", "none", cov.PASSED, seconds=3.0),
             cov.Cell("a", "tflite", "int8", cov.PARITY_FAILED, "out: cosine 0.9 < 0.99", 1, 4.0),
             cov.Cell("a", "onnx", "none", cov.FAILED, "tf2onnx failed (fix: …)", 5, 5.0, traceback_leak=True),
             cov.Cell("bb", "tflite", "none", cov.PASSED, seconds=2.0),
             cov.Cell("bb", "tflite", "int8", cov.PASSED, seconds=2.0),
             cov.Cell("bb", "onnx", "none", cov.NO_ROUTE, "no route")]
    return cov.Run(["a", "bb"], columns, cells, "2026-01-01T00:00:00+00:00", 60.0, {"edgekit": "0"})


def test_table_reasons_and_rates_count_only_applicable_cells():
    cov = _coverage()
    text = cov.report(_run(cov), as_markdown=False)
    lines = text.splitlines()
    assert "tflite" in lines[0] and "onnx" in lines[0]
    assert lines[3].startswith("a ") and "✅" in lines[3] and "❎" in lines[3] and "❌⚠" in lines[3]
    assert "❎ a → tflite int8: out: cosine 0.9 < 0.99" in text
    assert "❌ a → onnx none: tf2onnx failed (fix: …)" in text and "traceback in" in text
    assert "bb → onnx" not in text  # a missing route is no failure
    assert "none/fp16/dynamic: 2/3 ✅ (67%), 0 ❎, 1 ❌" in text
    assert "int8 family: 1/2 ✅ (50%), 1 ❎, 0 ❌" in text
    assert "traceback leaks: 1 cell(s)" in text
    markdown = cov.markdown(_run(cov))
    assert markdown.splitlines()[0] == "| model | tflite<br>fp32 | tflite<br>int8 | onnx<br>fp32 |"
    assert "| bb | ✅ | ✅ | — |" in markdown


def test_json_round_trip_and_float_modes_scheduled_first():
    cov = _coverage()
    run = _run(cov)
    assert cov.Run.from_dict(json.loads(json.dumps(run.to_dict()))).cells == run.cells
    order = cov.schedule(["a", "bb"], run.columns)
    assert [c.mode for _, c in order][-2:] == ["int8", "int8"]


@pytest.mark.slow
def test_one_real_cell_passes_without_a_traceback(tmp_path):
    out = tmp_path / "cells.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--models", "torch-two-io", "--routes", "onnx,torchscript",
                           "--modes", "none", "--work", str(tmp_path / "work"), "--json-out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    cells = json.loads(out.read_text())["cells"]
    assert [(c["to"], c["mode"], c["status"]) for c in cells] == [("onnx", "none", "✅"),
                                                                   ("torchscript", "none", "✅")]
    assert not any(c["traceback_leak"] for c in cells)
    assert all(c["output_lines"] == 0 for c in cells)  # the user's terminal showed edgekit's lines only
    assert "none/fp16/dynamic: 2/2 ✅ (100%)" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
