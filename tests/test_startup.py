"""`edgekit --help` must not import any ML framework, and ruff (incl. the heavy-import ban) stays clean."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "tensorflow", "keras", "onnxruntime", "onnx", "executorch", "ai_edge_litert", "litert_torch",
         "tf2onnx", "numpy", "ray")
ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
sys.argv = ["edgekit", *sys.argv[1:]]
from edgekit.cli import main
try:
    main()
except SystemExit:
    pass
print("\\nLOADED=" + json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["inspect", "--help"], ["info", "--help"],
                                  ["convert", "--help"], ["routes", "--json"], ["train", "--help"],
                                  ["validate", "--help"], ["bench", "--help"], ["import", "--help"],
                                  ["pipeline", "--help"], ["check", "--help"], ["package", "--help"],
                                  ["keygen", "--help"]])
def test_cli_start_imports_no_framework(argv):
    code = PROBE.format(heavy=repr(HEAVY))
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.rsplit("LOADED=", 1)[1])
    assert loaded == [], f"edgekit {' '.join(argv)} imported {loaded}"


def test_importing_edgekit_imports_no_framework():
    code = f"import sys, edgekit; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment (pip install -e '.[dev]')")
    result = subprocess.run([str(ruff), "check", "edgekit", "tests", "benchmarks", "fuzz"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
