"""A self-contained ``report.html``: the table and three plots (matplotlib, PNG embedded as data URIs),
no external file, script or font, so it opens from a CI artifact store or an e-mail attachment.

Plots: latency vs size, accuracy vs latency, and the |Δ| distribution per artifact (box plots drawn
from the percentiles parity recorded). A plot is drawn only when there is something to draw; the
page says what was not measured instead of showing an empty frame, and what could not be drawn (``drawn``):
a plot never costs the page. Names are labels as they are (``plot_label``: mathtext never parses them).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

from edgekit.pipeline.report import (
    TABLE_COLUMNS,
    PipelineReport,
    Row,
    RowStatus,
    budget_lines,
    count_line,
    table_cells,
    timed_on,
)
from edgekit.toolkit.text import html_text, plot_label
from edgekit.toolkit.units import human_seconds

FORMAT_MARKERS = {"tflite": "o", "onnx": "s", "torchscript": "^", "executorch": "D"}
STATUS_COLOURS = {RowStatus.PASSED: "#1a7f37", RowStatus.PARITY_FAILED: "#cf222e",
                  RowStatus.CONVERSION_FAILED: "#6e7781", RowStatus.CRASHED: "#9a6700"}
CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em; color: #1f2328; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; white-space: nowrap; }
th { background: #f6f8fa; }
td.passed { color: #1a7f37; font-weight: 600; } td.parity-failed { color: #cf222e; font-weight: 600; }
td.conversion-failed { color: #6e7781; font-weight: 600; } td.crashed { color: #9a6700; font-weight: 600; }
.verdict-pass { color: #1a7f37; } .verdict-fail { color: #cf222e; }
figure { margin: 1em 0; } img.plot { max-width: 100%; border: 1px solid #d0d7de; }
.muted { color: #57606a; }
"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot() -> Any:
    from edgekit.toolkit.contract import extras

    extras.require(("matplotlib",), "the plots in report.html")
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display: render to memory
    import matplotlib.pyplot as plt

    return plt


def drawn(draw: Callable[..., str | None], *args: Any) -> tuple[str | None, str]:
    """``draw(*args)``: a PNG as base64 (None when there is nothing to draw) and ``""``; or, where drawing failed
    (matplotlib missing, a label it could not lay out, a figure too large), ``(None, why)`` for the page to say
    in the plot's place: a plot never costs the report. Text is drawn without TeX (``text.usetex`` off), so
    ``plot_label``'s escapes are what matplotlib reads; figures a failed plot left open are closed."""
    from edgekit.toolkit.contract.errors import first_line

    try:
        plt = _pyplot()
        import matplotlib

        before = set(plt.get_fignums())
        try:
            with matplotlib.rc_context({"text.usetex": False}):
                return draw(*args), ""
        finally:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)
    except Exception as exc:  # whatever a plot raises, the page that holds it is still written
        return None, f"{type(exc).__name__}: {first_line(exc)}"


def figure_html(title: str, image: str | None, failed: str, *, empty: str = "not measured in this run") -> str:
    """The plot ``drawn`` made as a figure; else a line saying why there is none (``failed``, else ``empty``)."""
    if image is not None:
        return (f'<figure><img class="plot" alt="{html_text(title)}" src="data:image/png;base64,{image}">'
                f"<figcaption>{html_text(title)}</figcaption></figure>")
    if failed:
        return f'<p class="muted">{html_text(title)}: the plot could not be drawn ({html_text(failed)}).</p>'
    return f'<p class="muted">{html_text(title)}: {html_text(empty)}.</p>'


def _colours(report: PipelineReport) -> dict[str, str]:
    palette = ["#0969da", "#bc4c00", "#8250df", "#1a7f37", "#cf222e", "#6e7781"]
    return {s.name: palette[i % len(palette)] for i, s in enumerate(report.sources)}


def _legend_handles(plt: Any, report: PipelineReport, rows: list[Row]) -> list[Any]:
    from matplotlib.lines import Line2D

    colours = _colours(report)
    handles = [Line2D([], [], color=colours[s.name], marker="o", linestyle="", label=plot_label(s.name))
               for s in report.sources if any(r.source == s.name for r in rows)]
    handles += [Line2D([], [], color="#57606a", marker=m, linestyle="", label=f) for f, m in FORMAT_MARKERS.items()
                if any(r.format == f for r in rows)]
    return handles


def _scatter(ax: Any, report: PipelineReport, rows: list[Row], xy: Any) -> None:
    """One marker per row: colour by source, shape by format, red edge where parity failed, labelled with
    the precision."""
    colours = _colours(report)
    for row in rows:
        x, y = xy(row)
        ax.scatter(x, y, marker=FORMAT_MARKERS.get(row.format, "o"), s=60, color=colours[row.source],
                   edgecolors="black" if row.status is RowStatus.PASSED else "red", linewidths=0.8)
        ax.annotate(plot_label(row.precision), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)


def _finish_scatter(plt: Any, fig: Any, ax: Any, report: PipelineReport, rows: list[Row], xlabel: str,
                    ylabel: str, title: str) -> str:
    """Labels, grid and the source/format legend of a `_scatter` plot; the figure as a PNG data string."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=_legend_handles(plt, report, rows), fontsize=8, loc="best")
    return _png(fig)


def latency_vs_size(report: PipelineReport) -> str | None:
    rows = [r for r in report.rows if r.latency is not None and r.size_bytes]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    _scatter(ax, report, rows, lambda r: (r.size_bytes / 1024, r.latency.p50 * 1e3))
    ax.set_xscale("log")
    ax.set_yscale("log")
    return _finish_scatter(plt, fig, ax, report, rows, "artifact size (KiB, log)", "p50 latency (ms, log)",
                           "Latency vs size (single batch)")


def accuracy_vs_latency(report: PipelineReport) -> str | None:
    rows = [r for r in report.rows if r.latency is not None and r.accuracy is not None]
    if not rows:
        return None
    plt = _pyplot()
    colours = _colours(report)
    fig, ax = plt.subplots(figsize=(8, 5))
    _scatter(ax, report, rows, lambda r: (r.latency.p50 * 1e3, r.accuracy * 100))
    for src in report.sources:
        if src.latency is not None and src.accuracy is not None:
            ax.scatter(src.latency.p50 * 1e3, src.accuracy * 100, marker="*", s=180, color=colours[src.name],
                       edgecolors="black", linewidths=0.8)
            ax.annotate(f"{plot_label(src.name)} (eager)", (src.latency.p50 * 1e3, src.accuracy * 100),
                        textcoords="offset points", xytext=(6, -10), fontsize=7)
    ax.set_xscale("log")
    return _finish_scatter(plt, fig, ax, report, rows, "p50 latency (ms, log)", "top-1 accuracy (%)",
                           "Accuracy vs latency (stars: the eager source model)")


def error_distribution(report: PipelineReport) -> str | None:
    """|Δ| against the source per artifact: box (p25–p75, median), whiskers p1–p99, dots at the max."""
    rows = [r for r in report.rows if r.error_percentiles is not None]
    if not rows:
        return None
    plt = _pyplot()
    floor = 1e-9  # exact zeros cannot sit on a log axis: drawn at the floor
    stats = []
    for row in rows:
        p = [max(v, floor) for v in row.error_percentiles or ()]
        # ERROR_PERCENTILES = (0, 1, 5, 25, 50, 75, 95, 99, 100)
        stats.append({"label": plot_label(row.label), "whislo": p[1], "q1": p[3], "med": p[4], "q3": p[5],
                      "whishi": p[7], "fliers": [p[8]]})
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.5))
    boxes = ax.bxp(stats, orientation="horizontal", showfliers=True, patch_artist=True)
    for patch, row in zip(boxes["boxes"], rows, strict=True):
        patch.set_facecolor(STATUS_COLOURS[row.status])
        patch.set_alpha(0.55)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("|output − source output| (log; box p25–p75, whiskers p1–p99, dot max)")
    ax.set_title("Error distribution per artifact (red: parity failed)")
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def _plots_missing() -> str | None:
    """None where matplotlib is importable; else the install line, and the page says the plots need it."""
    from edgekit.toolkit.contract import extras

    return None if extras.is_installed("matplotlib") else extras.install_hint(["matplotlib"])


PLOTS = (("Latency vs size", latency_vs_size), ("Accuracy vs latency", accuracy_vs_latency),
         ("Error distribution per artifact", error_distribution))


def html_report(report: PipelineReport) -> str:
    esc = html_text
    verdict = "PASS" if report.passed and not report.violations else "FAIL"
    counts = report.counts()
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>edgekit pipeline report: {verdict}</title><style>{CSS}</style></head><body>",
        f'<h1>edgekit pipeline: <span class="verdict-{verdict.lower()}">{verdict}</span></h1>',
        f'<p class="muted">{len(report.rows)} artifacts: {count_line(counts)} · {report.seconds:.0f} s · '
        f'{esc(report.created)} · edgekit {esc(report.edgekit_version)} · '
        f'{esc(str(report.environment.get("cpu", {}).get("model", "unknown CPU")))}</p>',
        "<h2>Sources</h2><table><tr><th>source</th><th>format</th><th>accuracy</th><th>eager p50</th>"
        "<th>path</th></tr>",
    ]
    for src in report.sources:
        accuracy = "-" if src.accuracy is None else f"{src.accuracy:.2%}"
        parts.append(f"<tr><td>{esc(src.name)}</td><td>{esc(src.format)}</td><td>{accuracy}</td>"
                     f"<td>{human_seconds(src.latency.p50 if src.latency else None)}</td><td>{esc(src.path)}</td></tr>")
    parts.append("</table><h2>Artifacts</h2><table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in TABLE_COLUMNS)
                 + "</tr>")
    for row in report.rows:
        cells = table_cells(row)
        parts.append("<tr>" + "".join(
            f'<td class="{row.status.value}">{esc(c)}</td>' if i == 3 else f"<td>{esc(c)}</td>"
            for i, c in enumerate(cells)) + "</tr>")
    parts.append("</table>")
    problems = [r for r in report.rows if r.status is not RowStatus.PASSED]
    if problems or report.violations:
        parts.append("<h2>Failures</h2><ul>")
        parts += [f"<li><b>{esc(r.label)}</b> ({r.status.value}): {esc(r.reason)}</li>" for r in problems]
        parts += [f"<li><b>check</b>: {esc(v)}</li>" for v in report.violations]
        parts.append("</ul>")
    kept = budget_lines(report)
    if kept:
        parts.append("<h2>Accuracy budget: what stayed float</h2><ul>")
        parts += [f"<li>{esc(line)}</li>" for line in kept]
        parts.append("</ul>")
    parts += [f'<p class="muted">{esc(line)}</p>' for line in timed_on(report)]
    parts.append("<h2>Plots</h2>")
    plots_hint = _plots_missing()
    if plots_hint is not None:
        parts.append('<p class="muted">No plots in this report: they need matplotlib, which is not installed '
                     f"(<code>{esc(plots_hint)}</code>). The tables above hold every figure they would show.</p>")
    for title, draw in PLOTS if plots_hint is None else ():
        parts.append(figure_html(title, *drawn(draw, report)))
    if report.not_applicable:
        parts.append(f"<h2>No route ({len(report.not_applicable)})</h2><ul>")
        parts += [f'<li class="muted">{esc(n)}</li>' for n in report.not_applicable]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
