"""Names from a model are data wherever they are shown (red-team classes 6–8): a ``$…$`` in a file or node name
never reaches mathtext (it failed every plot, and with it report.html, report.md and junit.xml: exit 70), control
characters never reach junit.xml (not well-formed), report.md or the terminal raw, and HTML or Markdown in a name
is text in report.md. A plot that fails anyway costs its own figure, never a report.
"""

from __future__ import annotations

import io
import re
import shutil
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from conftest import run_edgekit
from test_pipeline_report import embedded_images, make_report
from test_redteam import Victim

from edgekit.toolkit.text import escape_controls, html_text, markdown_cell, plot_label, terminal_safe, xml_text

# what a terminal acts on: C0 but newline (tab is harmless, but names show it too), DEL, C1, bidi controls
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
MATH = ["$\\frac{a}{b}$", "$$", "$\\bad$", "a $x$ b $$"]
HTML = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]
CONTROLS = ["\x1b[31mred\x1b[0m", "\x07bell", "\rcr", "back\x08space", "\x9b31m", "\u202eevil", "\u2066iso\u2069",
            "nul\x00"]
# a file name cannot hold "/" (so no closing tag, no "</script>") nor NUL; \x1b, \x07, \r and U+202E it can
FILE_NAME = "e $$ $x$ <script> <img src=x onerror=alert(1)> | a | b | \x1b[31mred \x07 \r [bold]x \u202e.onnx"


# -- the helpers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", CONTROLS)
def test_terminal_safe_shows_every_control_character_in_a_visible_form(text):
    shown = terminal_safe(text)
    assert not RAW_CONTROL.search(shown) and "\n" not in shown
    assert terminal_safe(shown) == shown  # nothing left to escape: applying it twice changes nothing
    assert terminal_safe("\x1b[31m\r\x07\x08\u202e") == "\\x1b[31m\\r\\x07\\x08\\u202e"
    assert terminal_safe("a\nb\tc", keep="\n\t") == "a\nb\tc" and terminal_safe("a\nb") == "a\\nb"
    assert terminal_safe("lone \udc80") == "lone \\udc80"  # a surrogate-escaped file name byte: encodable now
    assert terminal_safe("naïve → ✓ 名前") == "naïve → ✓ 名前"


@pytest.mark.parametrize("text", HTML + CONTROLS + ["| a | b |", "*b* _i_ `c` [l](u) \\ # ~x~", "line\nbreak"])
def test_markdown_cell_is_literal_text_in_a_table(text):
    cell = markdown_cell(text)
    assert "<script" not in cell and "<img" not in cell and not RAW_CONTROL.search(cell) and "\n" not in cell
    row = f"| {cell} | x |"
    assert len(re.findall(r"(?<!\\)\|", row)) == 3  # the name's pipes do not add columns
    for special in "*`[]~#":
        assert special not in cell.replace("\\" + special, "")  # each escaped


def test_markdown_cell_keeps_ordinary_text_readable():
    assert markdown_cell("digits_cnn_torch") == "digits_cnn_torch"  # inside a word "_" cannot open emphasis
    assert markdown_cell("_x_") == "\\_x\\_"
    assert markdown_cell("output: cosine 0.98 < 0.99") == "output: cosine 0.98 < 0.99"
    assert markdown_cell("a <b> & c&d") == "a &lt;b&gt; & c&amp;d"
    assert markdown_cell("> quote") == "&gt; quote" and markdown_cell("- item") == "\\- item"
    assert markdown_cell("1. x") == "1\\. x" and markdown_cell("12.3 KiB") == "12.3 KiB" and markdown_cell("-") == "-"


def test_xml_text_keeps_junit_well_formed_for_every_character_xml_forbids():
    everything = "".join(chr(c) for c in range(0x20)) + "\x7f\x9b\ud800\udfff\ufffe\uffff\u202e"
    element = ET.Element("failure", message=xml_text(everything))
    element.text = xml_text(everything)
    again = ET.fromstring(ET.tostring(element, encoding="unicode").encode("utf-8"))
    assert "\\x1b" in again.text and "\\x00" in again.text and "\\ud800" in again.text and "\\u202e" in again.text


def test_html_text_escapes_markup_and_controls():
    assert html_text('<img src=x onerror="a">\x1b') == "&lt;img src=x onerror=&quot;a&quot;&gt;\\x1b"


@pytest.mark.parametrize("name", MATH + CONTROLS + ["x" * 500])
def test_plot_labels_are_never_mathtext(name):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib import cbook

    label = plot_label(name)
    assert not cbook.is_math_text(label) and len(label) <= 80 * 2 and not RAW_CONTROL.search(label)
    fig, ax = plt.subplots()
    try:
        ax.set_title(label)
        ax.barh([0], [1.0])
        ax.set_yticks([0], labels=[label])
        fig.savefig(io.BytesIO(), format="png")  # mathtext would raise here for "$$" or "$\bad$"
        if len(name) < 80:  # matplotlib shows the name itself: its "\$" are read back as "$"
            assert ax.title._preprocess_math(label) == (escape_controls(name), False)
    finally:
        plt.close(fig)


# -- reports built in-process --------------------------------------------------------------------------------


def _hostile_report():
    """The synthetic report of test_pipeline_report with a source named like a hostile file and rows whose
    reasons quote hostile node names."""
    base = make_report()
    name = "".join(MATH + HTML + CONTROLS) + " | a | b | [bold]x[/x]"
    source = replace(base.sources[0], name=name, path=f"/m/{name}.onnx")
    rows = tuple(replace(row, source=name, reason=row.reason and f"{row.reason}: node {name}") for row in base.rows)
    return replace(base, sources=(source,), rows=rows, not_applicable=(f"{name} → tflite int8: no route",),
                   violations=(f"{name} → onnx int8: accuracy 0.9 < min_accuracy 0.95",))


def _assert_reports_hold(markdown_text: str, junit_text: str, html_page: str) -> None:
    assert "<script" not in markdown_text and "<img" not in markdown_text
    assert not RAW_CONTROL.search(markdown_text)
    table = [line for line in markdown_text.splitlines() if line.startswith("| ")]
    # sources: 4 columns, artifacts: 12 (the header's "max |Δ|" too); a name's pipes add none
    assert [len(re.findall(r"(?<!\\)\|", line)) for line in table] == [5, 5, 13, 13, 13, 13]
    root = ET.fromstring(junit_text.encode("utf-8"))  # well-formed
    assert root.get("tests") == "4" and not RAW_CONTROL.search(junit_text)
    assert "<script" not in html_page and "<img src=x" not in html_page and not RAW_CONTROL.search(html_page)


def test_hostile_names_in_every_report():
    from edgekit.pipeline.html import html_report
    from edgekit.pipeline.report import junit_xml, markdown

    report = _hostile_report()
    page = html_report(report)
    _assert_reports_hold(markdown(report), junit_xml(report), page)
    assert len(embedded_images(page)) == 3  # every plot drawn, names and all
    assert "could not be drawn" not in page


def test_a_plot_that_fails_leaves_every_report_written_with_a_note(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from edgekit.pipeline import html
    from edgekit.pipeline.run import REPORT_NAMES, write_reports

    def broken(report):
        plt.subplots()  # a figure it leaves open: closed for it
        raise ValueError("mathtext: Expected end of text, found '$'")

    monkeypatch.setattr(html, "PLOTS", (*html.PLOTS[:2], ("Error distribution per artifact", broken)))
    figures = set(plt.get_fignums())
    written = write_reports(_hostile_report(), tmp_path)
    assert set(written) == set(REPORT_NAMES) and all(path.is_file() for path in written.values())
    page = (tmp_path / "report.html").read_text()
    assert "Error distribution per artifact: the plot could not be drawn (ValueError: mathtext: Expected end of " \
           "text, found &#x27;$&#x27;)" in page
    assert len(embedded_images(page)) == 2 and set(plt.get_fignums()) == figures
    _assert_reports_hold((tmp_path / "report.md").read_text(), (tmp_path / "junit.xml").read_text(), page)


def test_a_quant_report_page_without_its_chart_says_why(monkeypatch):
    from edgekit.pipeline import html
    from edgekit.quant_report import quant_report_html

    layer = {"layer": "$$ <script>x</script> \x1b[31m", "ops": ["MatMul"], "share": 1.0, "sqnr_db": 20.0,
             "cosine": 0.99, "max_abs_diff": 0.1, "quantized": True}
    report = {"artifact": "/a/q $\\bad$.onnx", "route": ["onnx", "onnx"], "quantize": "int8", "quantizer": "q",
              "instrument": "i", "data": "random", "share_method": "first-order", "layers": [layer], "notes": []}
    assert "data:image/png;base64," in quant_report_html(report)  # "$$" and "$\bad$" drawn as text
    monkeypatch.setattr(html, "_png", lambda fig: (_ for _ in ()).throw(RuntimeError("no backend")))
    page = quant_report_html(report)
    assert "the plot could not be drawn (RuntimeError: no backend)" in page and "<script>" not in page
    assert "\\x1b[31m" in page and not RAW_CONTROL.search(page)


def test_the_terminal_shows_names_escaped_and_their_brackets_literal():
    from rich.console import Console

    from edgekit import render

    out = io.StringIO()
    report = _hostile_report()
    render.render_pipeline(report, {"html": Path("/o/report.html")}, Console(file=out, width=300, highlight=False))
    text = out.getvalue()
    assert not RAW_CONTROL.search(text) and "\\x1b[31mred" in text and "\\u202eevil" in text
    assert "[bold]x[/x]" in text  # markup in a name is text, not a style (nor a MarkupError: exit 70)
    data = io.StringIO()
    render.DataConsole(file=data, width=200).print("any text \x1b[2J\x07 :smile:\nnext\tline")
    assert data.getvalue() == "any text \\x1b[2J\\x07 :smile:\nnext    line\n"


# -- the commands, end to end --------------------------------------------------------------------------------


def _hostile_onnx(path: Path, marker: Path) -> Path:
    """A MatMul → Add → Relu model whose input, output, initializer, node and graph names carry every class:
    mathtext, HTML, Markdown, rich markup, control characters and a shell substitution that would create
    ``marker`` if anything ran a name."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    shell = f"$(touch {marker}) `touch {marker}`"
    inp = "in " + MATH[0] + HTML[0] + CONTROLS[0] + "[bold]rich[/bold][/x]"
    out = "out " + MATH[1] + HTML[1] + "| a | b |" + "".join(CONTROLS[1:-1]) + "*b* _i_ `c` \\"
    mid = "mid " + "".join(MATH + HTML + CONTROLS[:-1]) + shell
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W " + MATH[2] + CONTROLS[0])
    bias = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "B " + HTML[1] + CONTROLS[-1])
    nodes = [helper.make_node("MatMul", [inp, weight.name], [mid], name="mm " + MATH[3] + HTML[0] + shell),
             helper.make_node("Add", [mid, bias.name], ["add " + CONTROLS[1]], name="add [/x] " + CONTROLS[2]),
             helper.make_node("Relu", ["add " + CONTROLS[1]], [out], name="relu " + CONTROLS[5] + "[red]")]
    graph = helper.make_graph(nodes, "g " + HTML[0], [helper.make_tensor_value_info(inp, onnx.TensorProto.FLOAT,
                                                                                    [1, 8])],
                              [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, [1, 4])], [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _assert_terminal_clean(result) -> None:
    for stream in (result.stdout, result.stderr):
        assert not RAW_CONTROL.search(stream), repr(RAW_CONTROL.findall(stream))
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr[-2000:]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Every command that takes the hostile model, run once: pipeline (onnx routes, benched), convert to int8,
    quant-report, inspect, validate; the victim directory and the marker are checked by each test."""
    victim = Victim()
    work = tmp_path_factory.mktemp("names")
    model = _hostile_onnx(work / FILE_NAME, victim.marker)
    quantized = work / "q.onnx"
    runs = {
        "pipeline": run_edgekit("pipeline", model, "--out", work / "out", "--to", "onnx", "--min-seconds", "0.01",
                                "--calibration", "random", cwd=work),
        "convert": run_edgekit("convert", model, "--to", "onnx", "--quantize", "int8", "--calibration", "random",
                               "-o", quantized, cwd=work),
    }
    runs["quant-report"] = run_edgekit("quant-report", model, quantized, "--html", work / "layers.html",
                                       "--json-out", work / "layers.json", cwd=work)
    runs["inspect"] = run_edgekit("inspect", model, cwd=work)
    runs["validate"] = run_edgekit("validate", model, quantized, cwd=work)
    yield work, runs, victim
    victim.assert_untouched()
    shutil.rmtree(victim.path, ignore_errors=True)


@pytest.mark.slow
def test_pipeline_writes_every_report_for_a_hostile_file_and_node_names(hostile):
    work, runs, victim = hostile
    result = runs["pipeline"]
    assert result.returncode == 0, result.stderr[-2000:]  # not 70: every row passes, every report is written
    out = work / "out"
    assert {p.name for p in out.iterdir()} >= {"report.html", "report.md", "report.json", "junit.xml"}
    page = (out / "report.html").read_text()
    assert len(embedded_images(page)) == 2  # latency vs size and the error distribution, "$$" in every label
    markdown_text = (out / "report.md").read_text()
    assert "<script" not in markdown_text and "<img" not in markdown_text and not RAW_CONTROL.search(markdown_text)
    junit = ET.parse(out / "junit.xml").getroot()
    assert junit.get("tests") == "4" and "\\x1b[31mred" in junit.find("testsuite").get("name")
    assert "<script" not in page and "<img src=x" not in page
    _assert_terminal_clean(result)
    assert "[bold]x" in result.stdout and "\\x1b[31mred" in result.stdout  # shown as written, never interpreted
    assert not victim.marker.exists()
    victim.assert_untouched()


SHOWN = {"convert": ("[bold]rich[/bold][/x]", "\\x07bell"), "inspect": ("[bold]rich[/bold][/x]", "\\x1b[31mred"),
         "quant-report": ("$$<img src=x onerror=alert(1)>", "\\x07bell"), "validate": ("\\x07bell", "\\u202eevil")}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(SHOWN))
def test_every_command_shows_hostile_names_as_text(hostile, command):
    work, runs, victim = hostile
    result = runs[command]
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_terminal_clean(result)
    for text in SHOWN[command]:  # as written: a closing tag is text (no MarkupError, exit 70), ESC is "\x1b"
        assert text in result.stdout, result.stdout[-2000:]
    if command == "quant-report":
        page = (work / "layers.html").read_text()
        assert "data:image/png;base64," in page and "could not be drawn" not in page
        assert "<script>" not in page and "<img src=x" not in page and (work / "layers.json").is_file()
    assert not victim.marker.exists()
    victim.assert_untouched()
