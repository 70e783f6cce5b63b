"""A quiet terminal: the frameworks' output (native stderr, warnings, logging, logged tracebacks) goes to a
per-run log named in one `edgekit:` line; `--verbose` keeps it on stderr; `--debug` still shows tracebacks."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import run_edgekit, strict_json

from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.stdio import framework_output_to_log

NOTICE = re.compile(r"^edgekit: framework output \((\d+) lines?\) → (.+\.log)$")
XNNPACK = "Created TensorFlow Lite XNNPACK delegate"


def _quiet(result, log_dir: Path) -> str:
    """Every stderr line is edgekit's own; exactly one names the log, which exists under ``log_dir``: its text."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert all(line.startswith("edgekit:") for line in lines), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    notices = [m for m in map(NOTICE.match, lines) if m]
    assert len(notices) == 1, result.stderr
    log = Path(notices[0].group(2))
    assert log.parent == log_dir and log.is_file()
    text = log.read_text()
    assert text.count("\n") == int(notices[0].group(1))
    return text


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"EDGEKIT_LOG_DIR": str(tmp_path / "logs"), "TF_CPP_MIN_LOG_LEVEL": "0", **extra}


def test_native_stderr_goes_to_the_log_and_verbose_shows_it(samples, tmp_path):
    model = samples[Format.TFLITE]
    quiet = run_edgekit("bench", model, "--warmup", "1", "--runs", "3", "--min-seconds", "0", "--json",
                        env_extra=_env(tmp_path))
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert strict_json(quiet.stdout)["results"]  # --json stays clean
    assert XNNPACK in _quiet(quiet, tmp_path / "logs")  # litert's C++ stderr, from the isolated worker
    loud = run_edgekit("--verbose", "bench", model, "--warmup", "1", "--runs", "3", "--min-seconds", "0", "--json",
                       env_extra=_env(tmp_path / "verbose"))
    assert loud.returncode == 0 and XNNPACK in loud.stderr and not NOTICE.search(loud.stderr)
    assert strict_json(loud.stdout)["results"] and not (tmp_path / "verbose" / "logs").exists()


def test_errors_stay_one_line_and_debug_shows_the_traceback(samples, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(samples[Format.TFLITE].read_bytes()[:3000])
    plain = run_edgekit("inspect", broken, env_extra=_env(tmp_path))
    lines = plain.stderr.strip().splitlines()
    assert plain.returncode == 3 and len(lines) == 1 and lines[0].startswith("edgekit: error:"), plain.stderr
    debug = run_edgekit("--debug", "inspect", broken, env_extra=_env(tmp_path))
    assert debug.returncode != 0 and "Traceback (most recent call last)" in debug.stderr


NOISY_FACTORY = '''
import logging, os, sys, warnings

import torch


def noisy():
    """What frameworks do while they work: warn, log a traceback they recovered from, talk on C++ stderr."""
    warnings.warn("torch.foo is deprecated", FutureWarning)
    try:
        max(())
    except ValueError:
        logging.getLogger("tf2onnx.optimizer").exception("Failed to apply optimize_transpose")
    os.write(2, b"[cpuinfo_utils.cpp:125] native noise\\n")
    print("framework progress on stdout")
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 2))
'''


@pytest.mark.slow
def test_warnings_logging_and_logged_tracebacks_go_to_the_log(tmp_path):
    (tmp_path / "noisy_factory.py").write_text(textwrap.dedent(NOISY_FACTORY))
    env = _env(tmp_path, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    result = run_edgekit("import", "noisy_factory:noisy", "-o", tmp_path / "m", "--input-shape", "input=1,4", "--json",
                         env_extra=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert strict_json(result.stdout)["artifact"].endswith(".pt2")
    log = _quiet(result, tmp_path / "logs")
    for chatter in ("FutureWarning: torch.foo is deprecated", "Failed to apply optimize_transpose",
                    "Traceback (most recent call last)", "[cpuinfo_utils.cpp:125] native noise",
                    "framework progress on stdout"):
        assert chatter in log, log


def test_in_process_capture_routes_edgekit_lines_to_the_user(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("EDGEKIT_LOG_DIR", str(tmp_path))
    handler = logging.StreamHandler()  # made during the capture: it holds the router afterwards
    with framework_output_to_log("demo") as summary:
        handler.stream = sys.stderr
        os.write(2, b"I0000 native line\n")
        subprocess.run([sys.executable, "-c", "import sys; print('child', file=sys.stderr)"], check=True)
        print("to stdout")
        handler.emit(logging.makeLogRecord({"msg": "third-party record", "levelno": logging.ERROR}))
        print("edgekit: warning: for the user", file=sys.stderr)
    (log,) = summary
    captured = capfd.readouterr()
    assert "edgekit: warning: for the user" in captured.err and f"(4 lines) → {log.path}" in captured.err
    assert "native" not in captured.err + captured.out and "to stdout" not in captured.out
    assert log.path.read_text().splitlines() == ["I0000 native line", "child", "to stdout", "third-party record"]
    handler.emit(logging.makeLogRecord({"msg": "after the capture", "levelno": logging.ERROR}))
    assert "after the capture" in capfd.readouterr().err  # the released router writes through, never to a closed file
    with framework_output_to_log("silent") as nothing:
        pass
    assert nothing[0].path is None and [p.name for p in tmp_path.iterdir()] == [log.path.name]


@pytest.mark.slow
def test_keras_mobilenetv3_to_onnx_prints_no_traceback_and_no_tf_info(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    source = tmp_path / "mnv3.keras"
    keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3)).save(source)
    result = run_edgekit("convert", source, "--to", "onnx", "-o", tmp_path / "mnv3.onnx", "--no-validate",
                         env_extra=_env(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not re.search(r"^[IWE]\d{4} ", result.stderr, re.M)
    assert "absl" in _quiet(result, tmp_path / "logs")  # TF's own start-up lines landed in the log
    assert "converted →" in result.stdout
