"""The extras table (edgekit/toolkit/contract/extras.py): in step with pyproject.toml and the registries, the
missing-dependency hint names the right extra, and `info` lists each extra's presence without importing it."""

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from conftest import strict_json
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.pipeline import html
from edgekit.pipeline.report import PipelineReport
from edgekit.toolkit.contract import extras
from edgekit.toolkit.contract.errors import ExitCode, MissingDependencyError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.registry import CONVERTERS, RUNTIMES, RuntimeSpec
from edgekit.toolkit.data import datasets
from edgekit.toolkit.safety.policy import keras as keras_policy

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OPTIONAL = PYPROJECT["project"]["optional-dependencies"]
NOT_BACKENDS = {"dev", "fuzz"}  # extras for working on edgekit, not for running it
SELF = re.compile(r"^edgekit\[(?P<names>[^\]]+)\]$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")

runner = CliRunner()


def _split(requirements):
    """pyproject's list for one extra → (distribution names, the edgekit[...] extras it includes)."""
    names, includes = set(), set()
    for requirement in requirements:
        own = SELF.match(requirement.replace(" ", ""))
        if own:
            includes |= set(own["names"].split(","))
        else:
            names.add(NAME.match(requirement)[0].lower())
    return names, includes


def _hide(monkeypatch, *hidden):
    """find_spec reports ``hidden`` modules as not installed (everything else as it is)."""
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name.partition(".")[0] in hidden else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


def test_extras_match_pyproject_both_ways():
    assert set(OPTIONAL) - NOT_BACKENDS == {e.name for e in extras.EXTRAS}
    for extra in extras.EXTRAS:
        names, includes = _split(OPTIONAL[extra.name])
        assert names == {p.distribution for p in extra.packages}, extra.name
        assert includes == set(extra.includes), extra.name


def test_base_install_holds_no_backend():
    base = {NAME.match(r)[0].lower() for r in PYPROJECT["project"]["dependencies"]}
    backends = {p.distribution for e in extras.EXTRAS for p in e.packages}
    assert base.isdisjoint(backends)
    assert {"typer", "rich", "numpy"} <= base


def test_torch_pin_stays_exact():
    assert "torch==2.13.0" in OPTIONAL["torch"]
    assert "executorch==1.4.1" in OPTIONAL["executorch"]


def test_all_includes_every_backend_extra():
    assert extras.included("all") == {e.name for e in extras.EXTRAS}
    assert set(_split(OPTIONAL["all"])[1]) == {e.name for e in extras.EXTRAS} - {"all"}


def test_each_module_belongs_to_exactly_one_extra():
    modules = [p.module for e in extras.EXTRAS for p in e.packages]
    assert len(modules) == len(set(modules))


def test_lean_extras_leave_torch_and_tensorflow_out():
    lean = {p.module for name in ("onnx", "litert") for p in extras.packages_of(name)}
    assert lean.isdisjoint({"torch", "tensorflow", "keras", "litert_torch", "executorch"})


@pytest.mark.parametrize("spec", [*RUNTIMES, *CONVERTERS], ids=lambda s: str(s.key))
def test_every_required_module_maps_to_an_extra(spec):
    unmapped = [m for m in spec.requires if m not in extras.MODULE_EXTRA]
    assert unmapped == [], f"{spec.impl} requires {unmapped}, which no extra installs"
    # Installing the hinted extras is enough for the spec.
    hinted = set().union(*(extras.packages_of(name) for name in extras.extras_for(spec.requires)))
    assert set(spec.requires) <= {p.module for p in hinted}


@pytest.mark.parametrize(("missing", "hint"), [
    (["onnxruntime"], "pip install 'edgekit[onnx]'"),
    (["onnxruntime", "onnx"], "pip install 'edgekit[onnx]'"),
    (["ai_edge_litert"], "pip install 'edgekit[litert]'"),
    (["h5py"], "pip install 'edgekit[tensorflow]'"),
    (["sklearn"], "pip install 'edgekit[digits]'"),
    (["matplotlib"], "pip install 'edgekit[report]'"),
    (["torch", "onnx", "onnxscript"], "pip install 'edgekit[torch,onnx]'"),
    (["executorch", "torch", "torchao"], "pip install 'edgekit[executorch]'"),  # [executorch] includes [torch]
    (["torch", "litert_torch", "ai_edge_quantizer", "ai_edge_litert"], "pip install 'edgekit[torch-tflite]'"),
    (["edgekit_no_such_module_xyz"], "pip install edgekit_no_such_module_xyz"),
])
def test_install_hint_names_the_fewest_extras(missing, hint):
    assert extras.install_hint(missing) == hint


def test_missing_backend_is_one_line_exit_5_naming_the_extra(monkeypatch):
    _hide(monkeypatch, "onnxruntime")
    with pytest.raises(MissingDependencyError) as excinfo:
        RUNTIMES.get(Format.ONNX).load()
    assert excinfo.value.exit_code == ExitCode.BACKEND_FAILURE == 5
    assert excinfo.value.one_line() == ("running onnx models needs onnxruntime, which is not installed "
                    "(fix: pip install 'edgekit[onnx]')")


def test_unknown_module_still_names_itself():
    spec = RuntimeSpec(Format.ONNX, "nowhere:Nothing", ("edgekit_no_such_module_xyz", "onnxruntime"))
    assert extras.is_installed("onnxruntime")  # only the unknown one is missing
    with pytest.raises(MissingDependencyError, match="pip install edgekit_no_such_module_xyz"):
        spec.load()


@pytest.mark.parametrize(("module", "extra", "call"), [
    ("sklearn", "digits", datasets.load_digits),
    ("h5py", "tensorflow", lambda: keras_policy.read_h5_config(Path("model.h5"))),
    ("matplotlib", "report", html._pyplot),
])
def test_lazy_imports_outside_the_registry_name_their_extra(monkeypatch, module, extra, call):
    _hide(monkeypatch, module)
    with pytest.raises(MissingDependencyError) as excinfo:
        call()
    assert excinfo.value.one_line().endswith(f"(fix: pip install 'edgekit[{extra}]')")


def test_report_html_without_matplotlib_says_the_plots_need_report(monkeypatch):
    report = PipelineReport((), (), (), {}, {}, 1.0, "2026-01-01T00:00:00+00:00", "0.1.0")
    assert "No plots in this report" not in html.html_report(report)
    _hide(monkeypatch, "matplotlib")
    page = html.html_report(report)
    assert "No plots in this report: they need matplotlib" in page
    assert "pip install &#x27;edgekit[report]&#x27;" in page and "<img" not in page


def test_status_present_partial_absent(monkeypatch):
    _hide(monkeypatch, "onnxscript", "ai_edge_litert", "sklearn")
    rows = {row["extra"]: row for row in extras.status()}
    assert rows["onnx"]["status"] == extras.PARTIAL and rows["onnx"]["missing"] == ["onnxscript"]
    assert rows["litert"]["status"] == extras.ABSENT and rows["litert"]["missing"] == ["ai-edge-litert"]
    assert rows["digits"]["status"] == extras.ABSENT
    assert rows["torch"]["status"] == extras.PARTIAL and rows["torch"]["missing"] == ["scikit-learn"]
    assert rows["all"]["status"] == extras.PARTIAL


def test_info_lists_extras_with_a_hidden_module(monkeypatch, console_reads_columns):
    _hide(monkeypatch, "onnxscript", "matplotlib")
    data = strict_json(runner.invoke(app, ["info", "--json"]).stdout)
    rows = {row["extra"]: row for row in data["extras"]}
    assert set(rows) == {e.name for e in extras.EXTRAS}
    assert rows["onnx"]["status"] == "partly present" and rows["onnx"]["missing"] == ["onnxscript"]
    assert rows["report"]["status"] == "absent"
    assert rows["litert"]["status"] == "present"
    human = runner.invoke(app, ["info"], env={"COLUMNS": "200"})  # wide enough to draw the table (not stacked)
    assert human.exit_code == 0, human.output
    assert "Extras" in human.stdout and "edgekit[NAME" in human.stdout
    section = human.stdout.split("Extras", 1)[1].split("Runtimes", 1)[0]
    onnx_row = next(line for line in section.splitlines() if line.startswith("│ onnx "))
    assert "partly present" in onnx_row


def test_info_extras_import_no_framework():
    import subprocess
    import sys

    code = ("import sys; from edgekit.toolkit.contract import extras; extras.status(); "
            "print([m for m in ('torch', 'tensorflow', 'onnx', 'onnxruntime', 'ai_edge_litert', 'sklearn', "
            "'matplotlib', 'h5py') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
