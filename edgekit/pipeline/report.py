"""The pipeline's result: one row per source × route × precision, raw numbers with a JSON round trip,
and the text reports made from it (Markdown for a pull request, JUnit XML for CI).

Framework-free and numpy-free: ``edgekit check`` reads baselines with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any
from xml.etree import ElementTree as ET

from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.text import markdown_cell, xml_text
from edgekit.toolkit.units import human_bytes, human_seconds

PIPELINE_REPORT_VERSION = 1


class RowStatus(StrEnum):
    PASSED = "passed"  # converted, and parity passed at the precision's profile
    PARITY_FAILED = "parity-failed"  # converted, but parity failed (the artifact is kept, marked failed)
    CONVERSION_FAILED = "conversion-failed"  # nothing was written; ``reason`` says why
    CRASHED = "crashed"  # its worker died (signal, abort, OOM) or passed --timeout; ``reason`` names it and the phase


@dataclass(frozen=True)
class Latency:
    """Seconds per single-batch inference (``edgekit bench``'s statistics, summarised)."""

    p50: float
    p90: float
    p99: float
    cv: float
    runs: int
    threads: int | None
    device: str
    unstable: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Latency:
        return cls(**jsonio.revive(cls, data))


@dataclass(frozen=True)
class Source:
    """A model the pipeline started from (trained here or given), with its eager reference latency."""

    name: str
    path: str
    format: str
    accuracy: float | None = None  # its own test accuracy, when it has labelled data
    trained_seconds: float | None = None  # when the pipeline trained it
    latency: Latency | None = None
    note: str = ""
    bench_node: str | None = None  # "hostname · CPU model" of the machine that timed it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Source:
        latency = data.get("latency")
        return cls(**{**jsonio.revive(cls, data), "latency": Latency.from_dict(latency) if latency else None})


@dataclass(frozen=True)
class Row:
    source: str
    format: str
    precision: str
    status: RowStatus
    reason: str = ""  # conversion-failed: the one-line error; parity-failed: the failed checks
    route: tuple[str, ...] = ()
    artifact: str | None = None
    size_bytes: int | None = None
    convert_seconds: float | None = None
    profile: str | None = None  # the tolerance profile parity was judged by
    data: str | None = None  # what parity ran on
    accuracy: float | None = None
    accuracy_delta: float | None = None  # candidate − reference, in [−1, 1]
    max_abs: float | None = None  # over all outputs
    cosine: float | None = None  # the lowest over all outputs
    error_percentiles: tuple[float, ...] | None = None  # |Δ| of the first output at ERROR_PERCENTILES
    latency: Latency | None = None
    speedup: float | None = None  # the source's eager p50 ÷ this row's p50
    delegation: str = ""
    compat: dict[str, dict[str, str]] = field(default_factory=dict)  # compat target → {"support", "summary"}
    notes: tuple[str, ...] = ()
    bench_node: str | None = None  # "hostname · CPU model" of the machine that timed it
    bench_window: tuple[float, float] | None = None  # when it held that node's bench slot (Unix seconds)
    kept_float: tuple[str, ...] = ()  # an accuracy budget's choice: the layers left float
    budget: dict[str, Any] | None = None  # with a budget: met, and the fully quantized model's size and figures

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.format, self.precision)

    @property
    def label(self) -> str:
        return f"{self.source} → {self.format} {self.precision}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        data = jsonio.revive(cls, data)
        percentiles = data.get("error_percentiles")
        latency = data.get("latency")
        return cls(**{**data, "status": RowStatus(data["status"]), "route": tuple(data.get("route", ())),
                      "compat": dict(data.get("compat", {})),
                      "error_percentiles": tuple(percentiles) if percentiles is not None else None,
                      "latency": Latency.from_dict(latency) if latency else None,
                      "notes": tuple(data.get("notes", ())), "kept_float": tuple(data.get("kept_float", ())),
                      "bench_window": tuple(data["bench_window"]) if data.get("bench_window") else None})


@dataclass(frozen=True)
class PipelineReport:
    sources: tuple[Source, ...]
    rows: tuple[Row, ...]
    not_applicable: tuple[str, ...]  # "digits_cnn_torch → tflite int8: no route …"
    options: dict[str, Any]
    environment: dict[str, Any]
    seconds: float
    created: str  # ISO 8601, UTC
    edgekit_version: str
    violations: tuple[str, ...] = field(default=())  # filled in by ``edgekit check``

    @property
    def passed(self) -> bool:
        return all(r.status is RowStatus.PASSED for r in self.rows)

    def counts(self) -> dict[str, int]:
        return {status.value: sum(1 for r in self.rows if r.status is status) for status in RowStatus}

    def row(self, source: str, fmt: str, precision: str) -> Row | None:
        return next((r for r in self.rows if r.key == (source, fmt, precision)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "edgekit_report": "pipeline", "version": PIPELINE_REPORT_VERSION, "edgekit": self.edgekit_version,
            "created": self.created, "seconds": self.seconds, "passed": self.passed, "counts": self.counts(),
            "options": self.options, "environment": self.environment,
            "sources": [s.to_dict() for s in self.sources], "rows": [r.to_dict() for r in self.rows],
            "not_applicable": list(self.not_applicable), "violations": list(self.violations),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineReport:
        if not isinstance(data, dict) or data.get("edgekit_report") != "pipeline" \
                or data.get("version") != PIPELINE_REPORT_VERSION:
            raise ValueError(f"not an edgekit pipeline report of version {PIPELINE_REPORT_VERSION}")
        return cls(tuple(Source.from_dict(s) for s in data["sources"]), tuple(Row.from_dict(r) for r in data["rows"]),
                   tuple(data.get("not_applicable", ())), dict(data.get("options", {})),
                   dict(data.get("environment", {})), float(data["seconds"]), str(data["created"]),
                   str(data.get("edgekit", "")), tuple(data.get("violations", ())))


# -- formatting shared by the terminal table, Markdown and HTML -------------------------------------------------


def fmt_accuracy(row: Row) -> str:
    if row.accuracy is None:
        return "-"
    delta = "" if row.accuracy_delta is None else f" ({row.accuracy_delta * 100:+.2f})"
    return f"{row.accuracy:.2%}{delta}"


def fmt_error(row: Row) -> str:
    if row.max_abs is None:
        return "-"
    cosine = "" if row.cosine is None else f" / {row.cosine:.5f}"
    return f"{row.max_abs:.3g}{cosine}"


def budget_lines(report: PipelineReport) -> list[str]:
    """For each row an accuracy budget chose for: what stayed float and what it cost against the fully quantized
    model (size, cosine, top-1 drop), or that it was not met."""
    lines = []
    for row in report.rows:
        budget = row.budget
        if budget is None:
            continue
        if "note" in budget:
            lines.append(f"{row.label}: {budget['note']}")
            continue
        full_cosine, drop = budget.get("full_cosine"), budget.get("full_accuracy_drop_points")
        figures = []
        if budget.get("full_size_bytes") is not None and row.size_bytes is not None:
            figures.append(f"{human_bytes(row.size_bytes)} (fully quantized {human_bytes(budget['full_size_bytes'])})")
        if full_cosine is not None and row.cosine is not None:
            figures.append(f"cosine {full_cosine:.5f} → {row.cosine:.5f}")
        if drop is not None and row.accuracy_delta is not None:
            figures.append(f"top-1 drop {drop:.2f} → {-row.accuracy_delta * 100:.2f} pt")
        kept = ", ".join(row.kept_float) or "nothing"
        verdict = "budget met" if budget.get("met") else "budget NOT met (best model kept)"
        lines.append(f"{row.label}: {verdict}; kept float: {kept}; {'; '.join(figures)}; "
                     f"{budget.get('conversions', 1)} conversions")
    return lines


def fmt_speedup(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}×"


TABLE_COLUMNS = ("source", "format", "precision", "status", "size", "accuracy (Δ pt)", "max |Δ| / cosine",
                 "p50", "p90", "vs eager", "delegation", "compat")


def fmt_compat(row: Row) -> str:
    """ "✓ 3 targets" when every target checked runs every op; else the targets that do not: "✗ tflite-gpu"."""
    if not row.compat:
        return "-"
    failing = [f"{'?' if cell['support'] == 'unknown' else '✗'} {target}" for target, cell in row.compat.items()
               if cell["support"] != "supported"]
    return ", ".join(failing) if failing else f"✓ {len(row.compat)} target{'s' if len(row.compat) > 1 else ''}"


def table_cells(row: Row) -> tuple[str, ...]:
    """The cells of one row of the results table, as text."""
    latency = row.latency
    precision = QuantMode(row.precision).spec.precision if row.precision in QuantMode else row.precision
    return (row.source, row.format, precision, row.status.value, human_bytes(row.size_bytes), fmt_accuracy(row),
            fmt_error(row), *(human_seconds(getattr(latency, q) if latency else None) for q in ("p50", "p90")),
            fmt_speedup(row.speedup), row.delegation or "-", fmt_compat(row))


def count_line(counts: dict[str, int]) -> str:
    """ "3 passed, 1 failed parity, 0 failed to convert" (", 1 crashed" when any did)."""
    text = (f"{counts['passed']} passed, {counts['parity-failed']} failed parity, "
            f"{counts['conversion-failed']} failed to convert")
    return text + (f", {counts['crashed']} crashed" if counts.get("crashed") else "")


def markdown(report: PipelineReport) -> str:
    """A summary to paste into a pull request: verdict, sources, the table, failures."""
    counts = report.counts()
    verdict = "PASS" if report.passed and not report.violations else "FAIL"
    lines = [
        f"## edgekit pipeline: {verdict}",
        "",
        f"{len(report.rows)} artifacts: {count_line(counts)} · {report.seconds:.0f} s · "
        f"edgekit {markdown_cell(report.edgekit_version)} · "
        f"{markdown_cell(report.environment.get('cpu', {}).get('model', 'unknown CPU'))}",
        "",
        "| source | format | accuracy | eager p50 |",
        "|---|---|---:|---:|",
    ]
    for src in report.sources:
        accuracy = "-" if src.accuracy is None else f"{src.accuracy:.2%}"
        lines.append(f"| {markdown_cell(src.name)} | {markdown_cell(src.format)} | {accuracy} | "
                     f"{human_seconds(src.latency.p50 if src.latency else None)} |")
    lines += ["", "| " + " | ".join(markdown_cell(c) for c in TABLE_COLUMNS) + " |",
              "|" + "|".join("---:" if c in ("size", "p50", "p90", "vs eager") else "---" for c in TABLE_COLUMNS) + "|"]
    for row in report.rows:
        cells = list(table_cells(row))
        cells[3] = {"passed": "✅ passed", "parity-failed": "❌ parity", "conversion-failed": "⛔ conversion",
                    "crashed": "💥 crashed"}[row.status.value]
        lines.append("| " + " | ".join(markdown_cell(c) for c in cells) + " |")
    kept = budget_lines(report)
    if kept:
        lines += ["", "### Accuracy budget: what stayed float", ""]
        lines += [f"- {markdown_cell(line)}" for line in kept]
    problems = [r for r in report.rows if r.status is not RowStatus.PASSED]
    if problems or report.violations:
        lines += ["", "### Failures", ""]
        lines += [f"- **{markdown_cell(r.label)}** ({r.status.value}): {markdown_cell(r.reason)}" for r in problems]
        lines += [f"- **check**: {markdown_cell(v)}" for v in report.violations]
    if report.not_applicable:
        lines += ["", f"<details><summary>{len(report.not_applicable)} combinations have no route</summary>", ""]
        lines += [f"- {markdown_cell(n)}" for n in report.not_applicable]
        lines += ["", "</details>"]
    lines += ["", "Latency: single batch, warmed up, "
              f"{report.options.get('threads', 1)} thread(s); 'vs eager' = the source framework's p50 ÷ the row's."]
    for line in timed_on(report):
        lines += ["", markdown_cell(line)]
    return "\n".join(lines) + "\n"


def timed_on(report: PipelineReport) -> list[str]:
    """Which machine(s) timed the rows; a warning when there were several (their latencies do not compare)."""
    counts: dict[str, int] = {}
    for node in [s.bench_node for s in report.sources] + [r.bench_node for r in report.rows]:
        if node:
            counts[node] = counts.get(node, 0) + 1
    if not counts:
        return []
    lines = ["Timed on: " + "; ".join(f"{node} ({count})" for node, count in counts.items())]
    if len(counts) > 1:
        lines.append(f"Warning: latency was measured on {len(counts)} machines; compare rows only within one "
                     "(each row's bench_node in report.json).")
    return lines


def junit_xml(report: PipelineReport) -> str:
    """One test suite per source, one test case per artifact: a parity failure is a <failure>, a conversion
    failure or a crashed worker an <error>; ``check`` violations are failures of a separate ``edgekit.check`` suite."""
    root = ET.Element("testsuites", name="edgekit.pipeline")
    total = failures = errors = 0
    for src in report.sources:
        rows = [r for r in report.rows if r.source == src.name]
        suite = ET.SubElement(root, "testsuite", name=f"edgekit.pipeline.{src.name}", tests=str(len(rows)),
                              failures=str(sum(r.status is RowStatus.PARITY_FAILED for r in rows)),
                              errors=str(sum(r.status in (RowStatus.CONVERSION_FAILED, RowStatus.CRASHED)
                                             for r in rows)), skipped="0")
        for row in rows:
            case = ET.SubElement(suite, "testcase", classname=f"pipeline.{src.name}",
                                 name=f"{row.format}.{row.precision}",
                                 time=f"{row.convert_seconds or 0.0:.3f}")
            if row.status is RowStatus.PARITY_FAILED:
                ET.SubElement(case, "failure", message=row.reason, type="parity").text = row.reason
            elif row.status is RowStatus.CONVERSION_FAILED:
                ET.SubElement(case, "error", message=row.reason, type="conversion").text = row.reason
            elif row.status is RowStatus.CRASHED:
                ET.SubElement(case, "error", message=row.reason, type="crashed").text = row.reason
            props = ET.SubElement(case, "properties")
            for key, value in (("artifact", row.artifact), ("size_bytes", row.size_bytes),
                               ("p50_seconds", row.latency.p50 if row.latency else None),
                               ("accuracy", row.accuracy), ("cosine", row.cosine), ("bench_node", row.bench_node)):
                if value is not None:
                    ET.SubElement(props, "property", name=key, value=str(value))
            for target, cell in row.compat.items():
                ET.SubElement(props, "property", name=f"compat.{target}", value=cell["support"])
        total += len(rows)
        failures += int(suite.get("failures", "0"))
        errors += int(suite.get("errors", "0"))
    if report.violations:
        suite = ET.SubElement(root, "testsuite", name="edgekit.check", tests=str(len(report.violations)),
                              failures=str(len(report.violations)), errors="0", skipped="0")
        for index, violation in enumerate(report.violations):
            case = ET.SubElement(suite, "testcase", classname="check", name=f"threshold.{index}")
            ET.SubElement(case, "failure", message=violation, type="threshold").text = violation
        total += len(report.violations)
        failures += len(report.violations)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    for element in root.iter():  # names and messages quote the model: no character XML 1.0 cannot hold
        if element.text:
            element.text = xml_text(element.text)
        for key, value in element.attrib.items():
            element.set(key, xml_text(value))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
