"""Terminal rendering of results (Rich). The only place where numbers are formatted for people.

Every table goes through ``_emit_table``: drawn as a table when it fits the terminal at its natural width,
otherwise stacked — one heading line per row, then its cells as label/value pairs packed to the width — so
that no number or header is ever cut to "…" (an 80-column terminal shows every digit).

Names from a model (files, nodes, tensors, layers, and the messages that quote them) are data: each goes through
``_name`` (controls made visible, brackets taken literally), and the consoles here show the control characters
of any other text in their visible form as well (``DataConsole``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from edgekit.toolkit.contract.artifact_paths import sidecar_path
from edgekit.toolkit.contract.errors import option
from edgekit.toolkit.delegation import delegation_summary
from edgekit.toolkit.text import terminal_safe
from edgekit.toolkit.units import human_bytes, human_seconds

if TYPE_CHECKING:  # type-only: rendering `routes` or `info` must not import numpy
    from edgekit.conversion import ConversionResult
    from edgekit.importing import ImportResult
    from edgekit.packaging import KeyPair, PackageResult, VerifyResult
    from edgekit.pipeline.report import PipelineReport
    from edgekit.targets.bench import BenchReport
    from edgekit.toolkit.contract.compat import CompatReport
    from edgekit.toolkit.contract.iospec import TensorSpec
    from edgekit.toolkit.reports import InspectReport
    from edgekit.training import TrainResult
    from edgekit.training.types import EpochStats
    from edgekit.validators.parity import ParityReport


class DataConsole(Console):
    """A console whose text never carries a control character to the terminal: an escape sequence, carriage
    return, bell, backspace or bidi override in a string it prints shows as ``\\x1b``, ``\\r``, ``\\u202e``
    (newlines and tabs stay); the styles the console adds itself are unaffected. Emoji codes stay text."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**{"emoji": False, **options})

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(terminal_safe(text, keep="\n\t"), **options)


def _name(value: object) -> str:
    """A name from a model, a path, or a message that quotes one, as console markup: its control characters in
    their visible form, its brackets literal (``[/x]`` is not a closing tag)."""
    return escape(terminal_safe(value))


console = DataConsole(highlight=False, soft_wrap=True)

TOP_OPS = 15
STACK_INDENT = 4  # the label/value pairs of a stacked row, under its heading
PAIR_GAP = 3  # spaces between two label/value pairs on one line
LONG_VALUE = 24  # a value wider than this gets a line of its own in a stacked row (wrapped at spaces)
NATURAL_WIDTH = 100_000


def _emit_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None,
                right: Collection[str] = (), key: Sequence[int] = (0,), sep: str = "  ",
                headings: Sequence[str] | None = None, out: Console | None = None) -> None:
    """``rows`` (markup strings, one per header) as a table when it fits ``out`` at its natural width,
    else stacked: each row's ``key`` cells joined by ``sep`` (or its entry of ``headings``) as a heading,
    then its other non-empty cells as "header value" pairs. Either way nothing is truncated."""
    out = out or console
    table = Table(title=title, title_justify="left")
    for header in headers:
        table.add_column(header, justify="right" if header in right else "left")
    for row in rows:
        table.add_row(*row)
    # Measured with room to spare: measured at the terminal's width, a table reports the squeezed width.
    if Measurement.get(out, out.options.update_width(NATURAL_WIDTH), table).maximum <= out.width:
        out.print(table)
        return
    if title:
        out.print(title)
    _print_stacked(headers, rows, key=key, sep=sep, headings=headings, out=out)


def _print_stacked(headers: Sequence[str], rows: Sequence[Sequence[str]], *, key: Sequence[int], sep: str,
                   headings: Sequence[str] | None, out: Console) -> None:
    """Each row as a heading, then its cells in column order as label/value pairs: runs of short columns
    packed several to a line, aligned across rows; each long column (a value wider than LONG_VALUE in any
    row) on a line of its own, wrapped at spaces (a word wider than the terminal folds, never "…"). Empty
    cells are left out."""
    columns = [i for i in range(len(headers)) if i not in key]
    long = {i for i in columns if any(_visible(row[i]) > LONG_VALUE for row in rows)}
    short = [i for i in columns if i not in long]
    label_width = max((_visible(headers[i]) for i in short), default=0)
    value_width = max((_visible(row[i]) for row in rows for i in short), default=0)
    per_line = max(1, (out.width - STACK_INDENT + PAIR_GAP) // (label_width + 1 + value_width + PAIR_GAP))
    for index, row in enumerate(rows):
        heading = headings[index] if headings is not None else sep.join(row[i] for i in key if row[i])
        out.print(f"[bold]{heading}[/bold]")
        line: list[str] = []  # the short pairs waiting to be printed, in column order
        for i in columns:
            if not _visible(row[i]):
                continue
            if i in long:
                _flush(line, out)
                text = Text.from_markup(f"[dim]{headers[i]}[/dim] {row[i]}", emoji=False)
                out.print(Padding(text, (0, 0, 0, STACK_INDENT), expand=False), soft_wrap=False)
                continue
            line.append(_pad(f"[dim]{headers[i]}[/dim]", label_width) + " " + _pad(row[i], value_width))
            if len(line) == per_line:
                _flush(line, out)
        _flush(line, out)


def _flush(line: list[str], out: Console) -> None:
    if line:
        out.print(" " * STACK_INDENT + (" " * PAIR_GAP).join(line).rstrip())
        line.clear()


def _visible(markup: str) -> int:
    return Text.from_markup(markup, emoji=False).cell_len


def _pad(markup: str, width: int) -> str:
    return markup + " " * (width - _visible(markup))


def _shape(ts: TensorSpec) -> str:
    return "?" if ts.shape is None else _name("[" + ", ".join(str(d) for d in ts.shape) + "]")


def _quant(ts: TensorSpec) -> str:
    if ts.quant is None:
        return ""
    if len(ts.quant.scale) == 1:
        return f"scale {ts.quant.scale[0]:.6g}, zp {ts.quant.zero_point[0]}"
    return f"per-axis {ts.quant.axis} ({len(ts.quant.scale)} scales)"


def render_inspect(report: InspectReport) -> None:
    details = report.details
    kind = f" ({report.kind})" if report.kind else ""
    console.print(f"[bold]{_name(report.path)}[/bold]")
    console.print(f"  format      {report.format.value}{_name(kind)}")
    console.print(f"  size        {human_bytes(report.size_bytes)}  sha256 {report.sha256[:16]}…")
    params = "unknown" if details.parameters is None else f"{details.parameters:,}"
    console.print(f"  parameters  {params}")
    if report.io_spec is not None:
        # One row per tensor; a column added here shows in both layouts (stacked: one "header value" pair).
        rows = [[direction, _name(ts.name), _shape(ts), _name(ts.dtype), _name(_values(ts)) if direction == "in"
                 else "", ts.layout.value, _quant(ts)]
                for direction, specs in (("in", report.io_spec.inputs), ("out", report.io_spec.outputs))
                for ts in specs]
        _emit_table(("", "name", "shape", "dtype", "values", "layout", "quantization"), rows,
                    title=f"I/O contract — source: {_name(report.contract_source)}", key=(0, 1))
        for ts in report.io_spec.inputs:
            if _integral(ts.dtype):
                source = ts.domain.source if ts.domain is not None else \
                    f"not shown by the model: fed 0/1; give {option('input_ranges')} {ts.name}=LOW:HIGH"
                console.print(f"  values      {_name(ts.name)}: {_name(_values(ts))} — {_name(source)}")
    if details.ops:
        total = sum(details.ops.values())
        shown = list(details.ops.items())[:TOP_OPS]
        more = len(details.ops) - len(shown)
        ops = ", ".join(f"{name}×{count}" for name, count in shown) + (f", … {more} more kinds" if more else "")
        console.print(f"  operators   {total} ({len(details.ops)} kinds): {_name(ops)}")
    for label, data in (("delegation", details.delegation), ("quantization", details.quantization)):
        if data:
            console.print(f"  {label:<11} " + _name(", ".join(f"{k}={_compact(v)}" for k, v in data.items())))
    for note in details.notes:
        console.print(f"  note        {_name(note)}")
    smoke = report.smoke_run
    if smoke is not None:
        if smoke.ok:
            outs = ", ".join(f"{k} {v}" for k, v in smoke.output_shapes.items())
            console.print(f"  smoke run   [green]ok[/green] in {smoke.seconds * 1e3:.1f} ms → {_name(outs)}")
        else:
            console.print(f"  smoke run   [red]failed[/red]: {_name(smoke.error)}")
    for warning in report.warnings:
        console.print(f"  [yellow]warning[/yellow]     {_name(warning)}")


def _values(ts: Any) -> str:
    """An input's value domain as inspect shows it ("int [0, 120)"); unknown integer domains say so."""
    if ts.domain is not None:
        return ts.domain.describe()
    return "unknown" if _integral(ts.dtype) else ""


def _integral(dtype: str) -> bool:
    return dtype.startswith(("int", "uint")) or dtype == "bool"


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def render_epoch(stats: EpochStats) -> None:
    console.print(
        f"  epoch {stats.epoch:>3}/{stats.epochs}  loss {stats.loss:.4f}  train {stats.train_accuracy:.1%}  "
        f"val {stats.val_accuracy:.1%}  {stats.seconds:.1f} s"
    )


def render_train(result: TrainResult) -> None:
    artifact = result.artifact
    console.print(
        f"[bold]test accuracy {result.test_accuracy:.2%}[/bold] on {result.test_samples} held-out images "
        f"({result.seconds:.1f} s in all)"
    )
    size = human_bytes(artifact.path.stat().st_size)
    console.print(f"  model     {_name(artifact.path)}  ({artifact.format.value}, {size})")
    console.print(f"  data      {_name(artifact.data_path)}  (calibration and test splits)")
    console.print(f"  sidecar   {_name(sidecar_path(artifact.path))}")


def render_import(result: ImportResult) -> None:
    artifact = result.artifact
    size = human_bytes(_size(artifact.path))
    console.print(f"[bold]imported[/bold] ({_name(result.source_kind)}) → {_name(artifact.path)}  "
                  f"({artifact.format.value}, {size})")
    for direction, specs in (("in ", artifact.io_spec.inputs), ("out", artifact.io_spec.outputs)):
        for ts in specs:
            console.print(f"  {direction}  {_name(ts.name)}  {_shape(ts)}  {_name(ts.dtype)}  {ts.layout.value}")
    if artifact.labels:
        shown = ", ".join(artifact.labels[:5]) + (", …" if len(artifact.labels) > 5 else "")
        console.print(f"  labels  {len(artifact.labels)}: {_name(shown)}")
    console.print(f"  sidecar {_name(sidecar_path(artifact.path))}  ({result.seconds:.1f} s)")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def render_convert(result: ConversionResult) -> None:
    artifact = result.artifact
    size = human_bytes(_size(artifact.path))
    quant = artifact.options.get("quantize", "none")
    console.print(f"[bold]converted[/bold] → {_name(artifact.path)}  ({artifact.format.value}, {_name(quant)}, "
                  f"{size}) in {result.seconds:.1f} s")
    console.print(f"  route     {_name(' → '.join(artifact.route))}")
    for step in result.steps:
        facts = ", ".join(f"{k}={v}" for k, v in step.details.items())
        console.print(f"  step      {_name(step.converter)} ({step.seconds:.1f} s)"
                      f"{': ' + _name(facts) if facts else ''}")
    for direction, specs in (("in ", artifact.io_spec.inputs), ("out", artifact.io_spec.outputs)):
        for ts in specs:
            console.print(f"  {direction}       {_name(ts.name)}  {_shape(ts)}  {_name(ts.dtype)}  {ts.layout.value}  "
                          f"{_quant(ts)}")
    if result.details.delegation:
        console.print("  delegation " + _name(", ".join(f"{k}={_compact(v)}"
                                                        for k, v in result.details.delegation.items())))
    parity = result.parity
    if parity is None:
        console.print("  parity    not checked (--no-validate)")
    else:
        colour = "green" if parity.passed else "red"
        cosine = min((o.metrics.cosine for o in parity.outputs if o.metrics is not None), default=float("nan"))
        accuracy = ""
        if parity.accuracy is not None:
            accuracy = (f", accuracy {parity.accuracy['reference']:.2%} → {parity.accuracy['candidate']:.2%} "
                        f"({parity.accuracy['delta'] * 100:+.2f} points)")
        console.print(f"  parity    [{colour}]{parity.verdict}[/{colour}] (profile {parity.profile.value}, "
                      f"cosine {cosine:.6f}{accuracy}; {_name(parity.data_source)})")
    if "budget" in artifact.extra:
        render_budget(artifact.extra["budget"], artifact.options.get("keep_float", []))
    console.print(f"  sidecar   {_name(sidecar_path(artifact.path))}")


def render_budget(budget: dict[str, Any], kept: list[str]) -> None:
    """The accuracy budget's search, one line per measured conversion, then what was kept float."""
    wanted = " and ".join(part for part in (
        f"cosine ≥ {budget['budget']['min_cosine']}" if budget["budget"].get("min_cosine") is not None else "",
        f"top-1 drop ≤ {budget['budget']['max_accuracy_drop']} pt"
        if budget["budget"].get("max_accuracy_drop") is not None else "") if part)
    console.print(f"  budget    {wanted}")
    ranking = budget.get("ranking") or {}
    if ranking.get("layers"):
        shown = ", ".join(f"{layer['layer']} {100 * layer['share']:.0f}%" for layer in ranking["layers"][:5])
        console.print(f"  ranked    by the layers' share of the error ({_name(ranking['by'])}): {_name(shown)}"
                      + (" …" if len(ranking["layers"]) > 5 else ""))
    elif ranking.get("failed"):
        console.print(f"  ranked    by probing each layer (the per-layer report failed: {_name(ranking['failed'])})")
    for trial in budget["trials"]:
        drop = trial["accuracy_drop_points"]
        figures = (f"cosine {trial['cosine']:.6f}" if trial["cosine"] is not None else "cosine -") + (
            f", drop {drop:+.2f} pt" if drop is not None else "") + f", {human_bytes(trial['size_bytes'])}" + (
            f", p50 {human_seconds(trial['p50_seconds'])}" if trial.get("p50_seconds") is not None else "")
        what = {"full": "everything quantized", "probe": f"probe: {trial['layer']} float",
                "greedy": f"keep {trial['layer']} float", "undone": f"keep {trial['layer']} float: no better, undone"}
        mark = "[green]✓[/green]" if trial["passed"] else " "
        if trial.get("refused"):
            figures = f"refused by the route ({trial['refused']})"
        console.print(f"    {mark} {_name(what[trial['stage']])}: {_name(figures)}")
    colour, verdict = ("green", "met") if budget["met"] else ("red", "NOT met (the best model found is kept)")
    console.print(f"  budget    [{colour}]{verdict}[/{colour}]; kept float: {_name(', '.join(kept)) or 'nothing'}")
    if "float" in budget:
        def figures(trial: dict[str, Any]) -> str:
            drop = trial["accuracy_drop_points"]
            cosine = f"cosine {trial['cosine']:.6f}" if trial["cosine"] is not None else "cosine -"
            return f"{human_bytes(trial['size_bytes'])}, {cosine}" + (f", drop {drop:+.2f} pt"
                                                                     if drop is not None else "")

        console.print(f"  figures   float {human_bytes(budget['float']['size_bytes'])}; fully quantized "
                      f"{figures(budget['float']['full'])}; best {figures(budget['float']['best'])}")


def render_quant_report(report: dict[str, Any], top: int = 15) -> None:
    """The worst layers first: share of the final error, SQNR, cosine, max |Δ|; the instrument and notes."""
    def number(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    cells = [[_name(layer["layer"]) + ("" if layer["keep_float"] else " [dim](no --keep-float unit)[/dim]"),
              _name(", ".join(layer["ops"][:4]) + ("…" if len(layer["ops"]) > 4 else "")),
              f"{100 * layer['share']:.1f}%", number(layer["sqnr_db"], ".1f"), number(layer["cosine"], ".5f"),
              number(layer["max_abs_diff"], ".4g"), "int" if layer["quantized"] else "float"]
             for layer in report["layers"][:top]]
    _emit_table(("layer", "ops", "share", "SQNR dB", "cosine", "max |Δ|", "stored"), cells,
                title=f"Per-layer quantization error: {_name(Path(report['artifact']).name)} "
                      f"({_name(report['quantize'])}), worst first")
    more = len(report["layers"]) - top
    if more > 0:
        console.print(f"  … {more} more layers (--top, --json)")
    explained = report.get("explained")
    console.print(f"  quantizer {_name(report['quantizer'])}; tensors by {_name(report['instrument'])}")
    console.print(f"  data      {_name(report['data'])}; {report['matched_tensors']} of {report['graph_tensors']} "
                  "tensors paired")
    console.print(f"  share     {_name(report['share_method'])}" + (
        f"; their sum is {explained:.2f}× the measured final error" if explained is not None else ""))
    for name, figures in report["instrumented_outputs"].items():
        deployed = next(iter(report["deployed"].get("outputs", {}).values()), {}) if report["deployed"] else {}
        console.print(f"  output    {_name(name)}: cosine {number(figures['cosine'], '.5f')} instrumented"
                      + (f", {deployed['cosine']:.5f} deployed" if deployed.get("cosine") is not None else ""))
    if not report["same_bytes"]:
        console.print("  [yellow]the recipe did not make the artifact's bytes again: these are the re-made "
                      "model's layers[/yellow]")
    for note in report["notes"]:
        console.print(f"  note      {_name(note)}")


def short_tensor_name(name: str, width: int = 40) -> str:
    """A converter's long tensor name as a reader scans it: a fused litert-torch/TFLiteConverter name by the last
    segment of its first scoped location ('…/torch.nn.modules.linear.Linear_fc2'), else its tail."""
    if len(name) <= width:
        return name
    scoped = [part for part in name.split(";") if "/" in part]
    if scoped:
        tail = "…/" + scoped[0].rsplit("/", 1)[-1]
        return tail if len(tail) <= width else "…" + tail[-(width - 1):]
    return "…" + name[-(width - 1):]


def render_localize(report: dict[str, Any], top: int = 10) -> None:
    """The origin first, then the worst layers by the error they add; matching, instruments, deployed outputs."""
    from edgekit.localization import left_out, passed_summary

    def number(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    def row(pair: dict[str, Any]) -> list[str]:
        m = pair["metrics"]
        colour = {"origin": "red", "propagated": "yellow", "absorbed": "magenta"}.get(pair["status"], "green")
        where = pair["module_path"] or pair["reference_name"]
        cand = short_tensor_name(pair["candidate_name"])
        return [_name(where), _name(f"{pair['reference_name']} ↔ {cand}"), _name(pair["op"]),
                _name(pair["layout"] or "-"), f"[{colour}]{_name(pair['status'])}[/{colour}]",
                number(m["sqnr_db"], ".1f"),
                number(m["cosine"], ".5f"), number(m["max_abs_diff"], ".4g")]

    pairs = {p["reference_name"]: p for p in report["pairs"]}
    shown = [*report["origins"], *(n for n in report["worst"] if n not in report["origins"])][:top]
    cells = [row(pairs[name]) for name in shown] if not report["passed"] else []
    head = ("module", "reference ↔ candidate", "op", "layout", "status", "SQNR dB", "cosine", "max |Δ|")
    if cells:
        _emit_table(head, cells, title=f"Where {_name(Path(report['candidate']).name)} parts from "
                                       f"{_name(Path(report['reference']).name)}: origin first, then the layers "
                                       "adding most error")
    origin = report["origin"]
    if origin is not None:
        local = origin.get("local")
        console.print(f"[red]origin[/red]    {_name(origin['module_path'] or origin['reference_name'])} "
                      f"({_name(origin['op'])}): reference {_name(origin['reference_name'])} ↔ candidate "
                      f"{_name(short_tensor_name(origin['candidate_name'], 60))}; {_name(origin['detail'])}"
                      + (f"; fused with {_name(', '.join(origin['fused']))}" if origin["fused"] else ""))
        if local and "metrics" in local:
            console.print(f"  alone     {_name(local['meaning'])} ({_name(local['detail'])})")
    elif report["passed"]:
        why = passed_summary(report).rstrip(".")
        console.print(f"[green]PASS[/green]      {_name(why)} ({_name(report['rule'])})")
    unmatched = report["unmatched"]
    console.print(f"  matched   {100 * report['matched_share']:.0f}% of {report['reference_values']} reference values "
                  f"({report['matched']} paired, {len(report['fused'])} fused into a pair{left_out(report)})"
                  + (f"; unmatched: {_name(', '.join(unmatched[:8]))}{'…' if len(unmatched) > 8 else ''}"
                     if unmatched else ""))
    console.print(f"  rule      {_name(report['rule'])}; data {_name(report['data'])}")
    console.print(f"  traced    reference: {_name(report['instruments']['reference'])}; candidate: "
                  f"{_name(report['instruments']['candidate'])}")
    for name, figures in report["deployed"].get("outputs", {}).items():
        instrumented = figures.get("instrumented") or {}
        console.print(f"  output    {_name(name)}: deployed {'PASS' if figures['passed'] else 'FAIL'} (cosine "
                      f"{number(figures['cosine'], '.5f')}, max |Δ| {number(figures['max_abs_diff'], '.3g')}); "
                      f"instrumented cosine {number(instrumented.get('cosine'), '.5f')}")
    for note in report["notes"]:
        console.print(f"  note      {_name(note)}")


def render_routes(rows: list[dict[str, Any]]) -> None:
    cells = [[row["source"], row["to"], escape(row["converter"]), ", ".join(row["quantize"]),
              (row.get("quantizer") or "-") + (f" (default: {', '.join(row['default_for'])})"
                                               if row.get("default_for") else ""),
              _status(row["missing"])] for row in rows]
    _emit_table(("source", "to", "converter", "quantize", "quantizer", "status"), cells,
                title="Conversion routes (edgekit convert MODEL --to FORMAT --quantize MODE)", key=(0, 1), sep=" → ")
    console.print("Routes compose: e.g. keras → onnx → int8 onnx, torch-exported → onnx → fp16 onnx. Where an edge "
                  "has several quantizers, the first listed is the default unless another says it is for that "
                  "mode; --quantizer TOOL picks one.")


def render_bench(report: BenchReport) -> None:
    latency, costs = [], []
    for result, speedup in zip(report.results, report.speedups(), strict=True):
        stats, name = result.stats, _name(Path(result.model).name)
        threads = "-" if result.threads is None else str(result.threads) + ("" if result.threads_applied else "*")
        cv = f"{stats.cv:.1%}" + (" [red]unstable[/red]" if result.unstable else "")
        latency.append([name, _name(result.precision), threads, *map(human_seconds, (stats.p50, stats.p90, stats.p99)),
                        cv, f"{speedup:.2f}×", _name(delegation_summary(result.delegation))])
        costs.append([name, threads, *map(human_seconds, (result.load_seconds, result.first_inference_seconds,
                                                          stats.mean, stats.min, stats.max)),
                      human_bytes(max(result.rss_increase_bytes, 0)), human_bytes(result.file_size_bytes)])
    _emit_table(("model", "precision", "threads", "p50", "p90", "p99", "CV", "vs 1st", "delegation"), latency,
                title="Latency (single batch, warmed up)", right=("threads", "p50", "p90", "p99", "CV"))
    _emit_table(("model", "threads", "load", "first run", "mean", "min", "max", "RSS +", "size"), costs,
                title="Costs", right=("threads", "load", "first run", "mean", "min", "max", "RSS +", "size"))
    if any(not r.threads_applied and r.threads is not None for r in report.results):
        console.print("  * the runtime could not enforce this thread count (see threads_applied in the JSON)")
    for result in report.results:
        name = _name(Path(result.model).name)
        for reason in result.unstable_reasons:
            console.print(f"  [yellow]unstable[/yellow] {name} ({result.threads} threads): {_name(reason)}")
        cpu_ops = result.delegation.get("cpu_operators")
        if cpu_ops and result.format == "tflite":
            names = ", ".join(f"{k}×{v}" for k, v in cpu_ops.items())
            console.print(f"  [yellow]not delegated[/yellow] {name}: {_name(names)} on LiteRT's own CPU kernels")
    for note in report.notes:
        console.print(f"  [yellow]note:[/yellow] {_name(note)}")
    for model, cells in report.compat.items():
        for target, cell in cells.items():
            console.print(f"  compat {_name(Path(model).name)} {_name(target)}: {_support(cell['support'])} "
                          f"{_name(cell['summary'])}")
    if report.results:
        sources = ", ".join(dict.fromkeys(r.input_source for r in report.results))
        console.print(f"inputs: {_name(sources)}; ≥ {min(r.stats.runs for r in report.results)} timed runs each")


SUPPORT_STYLE = {"supported": "green", "unsupported": "red", "unknown": "yellow"}


def _support(value: str) -> str:
    return f"[{SUPPORT_STYLE.get(value, 'yellow')}]{_name(value)}[/{SUPPORT_STYLE.get(value, 'yellow')}]"


def render_compat(report: CompatReport, *, every_op: bool = False) -> None:
    """One line per target, then the operators that do not run (every operator with ``every_op``), then notes."""
    _emit_table(("target", "evidence", "verdict", "detail"),
                [[t.target, t.evidence.value, _support(t.support.value), _name(t.summary())] for t in report.targets],
                title=f"Compatibility of {_name(report.model)} ({_name(report.format)})", key=(0,))
    rows = [[t.target, "" if op.index is None else str(op.index), _name(op.op), _support(op.support.value),
             op.evidence.value, _name(op.reason)]
            for t in report.targets for op in t.ops if (every_op or op.support.value != "supported")
            and not (len(t.ops) == 1 and op.index is None)]  # a one-row target's detail says it all
    if rows:
        _emit_table(("target", "#", "op", "support", "evidence", "reason"), rows,
                    title="Operators" if every_op else "Operators that do not run there", key=(0, 1, 2), sep=" ",
                    right=("#",))
    for t in report.targets:
        facts = ", ".join(f"{k} {_compact(v)}" for k, v in t.facts.items() if v not in (None, [], {}, ""))
        if facts:
            console.print(f"  {t.target}: {_name(facts)}")
        for note in t.notes:
            console.print(f"  [yellow]note:[/yellow] {t.target}: {_name(note)}")


def render_parity(report: ParityReport) -> None:
    colour = "green" if report.passed else "red"
    console.print(f"[bold {colour}]{report.verdict}[/bold {colour}]  {_name(report.candidate)} vs "
                  f"{_name(report.reference)}  (profile {report.profile.value}; {_name(report.data_source)})")
    for step in report.adaptations:
        console.print(f"  adapted   {_name(step)}")
    rows = []
    for out in report.outputs:
        m = out.metrics
        name = _name(out.reference_name if out.reference_name == out.candidate_name else
                     f"{out.reference_name}↔{out.candidate_name}")
        checks = ", ".join(f"{c.name} {_check_state(c)}" for c in out.checks)
        if m is None:
            rows.append([name, *["-"] * 8, checks])
            continue
        rows.append([name, f"{m.max_abs:.3g}", f"{m.mean_abs:.3g}", f"{m.p99_abs:.3g}", f"{m.max_rel:.3g}",
                     f"{m.cosine:.6f}", f"{m.snr_db:.1f}", _agreement(m.top1_agreement, m.top1_decisive, m),
                     _agreement(m.top5_agreement, m.top5_decisive, m), checks])
    _emit_table(("output", "max |Δ|", "mean |Δ|", "p99 |Δ|", "max rel", "cosine", "SNR dB", "top-1", "top-5",
                 "checks"), rows, right=("max |Δ|", "mean |Δ|", "p99 |Δ|", "max rel", "cosine", "SNR dB", "top-1",
                                         "top-5"))
    if report.accuracy is not None:
        acc = report.accuracy
        console.print(f"  accuracy  reference {acc['reference']:.2%}  candidate {acc['candidate']:.2%}  "
                      f"delta {acc['delta'] * 100:+.2f} points")
    for out in report.outputs:
        for check in out.checks:
            if not check.judged:
                console.print(f"  [yellow]not judged[/yellow] {_name(out.reference_name)}: {check.name} "
                              f"({_name(check.detail.removeprefix('not judged: '))})")
            elif check.passed and check.name == "top1_agreement" and _some_indecisive(out.metrics):
                console.print(f"  top-1     {_name(out.reference_name)}: {_name(check.detail)}")
    for note in report.notes:
        console.print(f"  note      {_name(note)}")
    for line in report.failures():
        console.print(f"  [red]fail[/red]      {_name(line)}")


def _check_state(check: Any) -> str:
    if not check.judged:
        return "[yellow]not judged[/yellow]"
    return "ok" if check.passed else "[red]FAIL[/red]"


def _some_indecisive(metrics: Any) -> bool:
    return metrics is not None and bool(metrics.top1_indecisive)


def _agreement(value: float | None, decisive: int | None, metrics: Any) -> str:
    """An agreement share, with the decisive count when some samples were within the noise floor (reports
    written before margin-aware agreement have no count)."""
    if decisive is None or metrics.class_samples is None or decisive == metrics.class_samples:
        return _share(value)
    return f"{_share(value)} ({decisive}/{metrics.class_samples})"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _status(missing: list[str]) -> str:
    return "[green]available[/green]" if not missing else f"[red]missing {', '.join(missing)}[/red]"


def render_info(data: dict[str, Any]) -> None:
    cpu, cuda = data["cpu"], data["cuda"]
    console.print(f"[bold]edgekit {data['edgekit']}[/bold]  Python {data['python']}  {data['platform']}")
    cores = f"{cpu['usable_cores']} usable of {cpu['logical_cores']} cores"
    console.print(f"  CPU   {cpu['model']} ({cpu['arch']}), {cores}")
    console.print(f"  ISA   {' '.join(cpu['isa_flags']) or 'none of the tracked flags'}")
    if cuda["usable"]:
        names = ", ".join(cuda["names"])
        console.print(f"  CUDA  usable: {cuda['devices']} device(s) {names}, driver {cuda['driver_version']}")
    else:
        console.print(f"  CUDA  not usable: {cuda['reason']}")

    _emit_table(("package", "version"), [[name, version or "[dim]not installed[/dim]"]
                                         for name, version in data["versions"].items()], title="Backends")

    colours = {"present": "green", "partly present": "yellow", "absent": "dim"}
    extras = []
    for row in data.get("extras", []):
        state = row["status"]
        if row["missing"] and state != "absent":
            state += f": missing {', '.join(row['missing'])}"
        colour = colours.get(row["status"], "default")
        extras.append([row["extra"], f"[{colour}]{escape(state)}[/{colour}]", escape(row["purpose"])])
    _emit_table(("extra", "status", "for"), extras,
                title=escape("Extras (install with: pip install 'edgekit[NAME,…]')"))

    _emit_table(("format", "runtime", "devices", "status"),
                [[rt["format"], escape(rt["runtime"]), ", ".join(rt["devices"]), _status(rt["missing"])]
                 for rt in data["runtimes"]], title="Runtimes")

    _emit_table(("target", "format", "evidence", "status"),
                [[t["target"], t["format"], t["evidence"], _status(t["missing"])]
                 for t in data.get("compat_targets", [])], title="Compatibility targets (edgekit compat)")
    if not data["routes"]:
        console.print("Conversion routes: none registered in this version.")
        return
    _emit_table(("route", "converter", "quantize", "status"),
                [[f"{route['source']} → {route['to']}", escape(route["converter"]), ", ".join(route["quantize"]),
                  _status(route["missing"])] for route in data["routes"]], title="Conversion routes")


def render_pipeline(report: PipelineReport, files: dict[str, Path], target: Console | None = None) -> None:
    from edgekit.pipeline.report import TABLE_COLUMNS, RowStatus, budget_lines, count_line, table_cells

    out = target or console
    colours = {RowStatus.PASSED: "green", RowStatus.PARITY_FAILED: "red", RowStatus.CONVERSION_FAILED: "yellow",
               RowStatus.CRASHED: "magenta"}
    for src in report.sources:
        accuracy = "-" if src.accuracy is None else f"{src.accuracy:.2%}"
        trained = f", trained in {src.trained_seconds:.1f} s" if src.trained_seconds is not None else ""
        note = f"  ({_name(src.note)})" if src.note else ""
        out.print(f"[bold]{_name(src.name)}[/bold]  {_name(src.format)}, accuracy {accuracy}{trained}, eager p50 "
                  f"{human_seconds(src.latency.p50 if src.latency else None)}{note}")
    rows = []
    for row in report.rows:
        cells = [_name(cell) for cell in table_cells(row)]
        colour = colours[row.status]
        cells[3] = f"[{colour}]{cells[3]}[/{colour}]"
        rows.append(cells)
    _emit_table(TABLE_COLUMNS, rows, title="edgekit pipeline", right=("size", "p50", "p90", "vs eager"),
                key=(0, 1, 2), headings=[f"{cells[0]} → {cells[1]} {cells[2]}" for cells in rows], out=out)
    for line in budget_lines(report):
        out.print(f"  budget {_name(line)}")
    for row in report.rows:
        if row.status is not RowStatus.PASSED:
            out.print(f"  [{colours[row.status]}]{row.status.value}[/{colours[row.status]}] {_name(row.label)}: "
                      f"{_name(row.reason)}")
    counts = report.counts()
    out.print(f"{len(report.rows)} artifacts: {count_line(counts)}; {len(report.not_applicable)} combinations have "
              f"no route (listed in the report)")
    executor = report.options.get("executor_run")
    if executor:
        out.print(f"cells ran on {_name(executor)}")
    for kind in ("html", "markdown", "json", "junit"):
        if kind in files:
            out.print(f"  {kind:<9}{_name(files[kind])}")
    out.print(f"pipeline time: {report.seconds:.1f} s")


class PipelineProgress:
    """What ``pipeline_progress`` yields: the ``observer`` to hand the pipeline; ``show(report, files)`` ends the
    progress bar and draws the final table (wide when piped, as in CI)."""

    def __init__(self, observer: Any, progress: Any, table: Console) -> None:
        self.observer, self._progress, self._table = observer, progress, table

    def show(self, report: PipelineReport, files: dict[str, Path]) -> None:
        self._progress.stop()
        render_pipeline(report, files, self._table)


@contextlib.contextmanager
def pipeline_progress(out: Path, force: bool) -> Iterator[PipelineProgress]:
    """While the block runs, the frameworks' own output (Python and C++, fds 1 and 2) goes to
    ``pipeline.log`` in ``out`` and the terminal shows a progress bar with one line per finished row."""
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from edgekit.pipeline.report import RowStatus
    from edgekit.pipeline.run import PIPELINE_LOG, Observer
    from edgekit.toolkit.stdio import framework_output_to_file

    log = out / PIPELINE_LOG
    colours = {RowStatus.PASSED: "green", RowStatus.PARITY_FAILED: "red", RowStatus.CONVERSION_FAILED: "yellow",
               RowStatus.CRASHED: "magenta"}
    with framework_output_to_file(log, replace=force) as (stdout_fd, stderr_fd):
        stdout = os.fdopen(os.dup(stdout_fd), "w", encoding="utf-8")
        stderr = os.fdopen(os.dup(stderr_fd), "w", encoding="utf-8")
        with stdout, stderr:
            terminal = DataConsole(file=stderr, highlight=False, soft_wrap=True)
            progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=terminal, transient=True)

            class Bar(Observer):
                def __init__(self) -> None:
                    self.task = progress.add_task("starting", total=None)

                def planned(self, total: int) -> None:
                    progress.update(self.task, total=total)

                def stage(self, text: str) -> None:  # the description is markup: a name in it is escaped
                    progress.update(self.task, description=_name(text))

                def row_done(self, row: Any) -> None:
                    colour = colours[row.status]
                    p50 = "" if row.latency is None else f"  p50 {row.latency.p50 * 1e3:.3f} ms"
                    reason = f": {row.reason}" if row.status is not RowStatus.PASSED else ""
                    progress.console.print(f"[{colour}]{row.status.value:>17}[/{colour}]  {_name(row.source)} → "
                                           f"{_name(row.format)} {_name(row.precision)}{p50}{_name(reason)}")
                    progress.advance(self.task)

            terminal.print(f"framework output: {_name(log)}")
            table = DataConsole(file=stdout, highlight=False, soft_wrap=True, width=None if stdout.isatty() else 200)
            with progress:
                yield PipelineProgress(Bar(), progress, table)


def render_package(result: PackageResult, signed_with: Path | None) -> None:
    from edgekit.packaging import public_key_path

    manifest = result.manifest
    console.print(f"packaged {_name(manifest['model']['file'])} ({_name(manifest['model']['format'])}, "
                  f"{_name(manifest['model']['precision'])}) → {_name(result.bundle)} in {result.seconds:.1f} s")
    for member, digest in manifest["files"].items():
        console.print(f"  {_name(member):<22} {_name(digest[:16])}…")
    parity = manifest.get("parity")
    console.print(f"  parity  {_name(parity['verdict']) if parity else 'not recorded (no edgekit sidecar)'}")
    latency = manifest.get("latency")
    if latency:
        console.print(f"  latency p50 {latency['p50_ms']:.3f} ms on {_name(latency['measured_on'])} (1 thread)")
    if result.signed_by and signed_with is not None:
        console.print(f"  signed  by ed25519 key {result.signed_by} (signature.json)")
        public = public_key_path(signed_with)
        console.print(f"verify with: edgekit package --verify {result.bundle} --public-key "
                      f"{public if public.is_file() else 'KEY.pub.pem'}")
    else:
        console.print(f"verify with: edgekit package --verify {result.bundle}")


def verification_dict(result: VerifyResult) -> dict[str, Any]:
    return {"bundle": str(result.bundle), "passed": result.passed,
            "checks": [{"name": n, "passed": ok, "detail": d} for n, ok, d in result.checks]}


def render_verify(result: VerifyResult) -> None:
    for name, ok, detail in result.checks:
        console.print(f"  {'ok  ' if ok else 'FAIL'}  {_name(name)}: {_name(detail)}")
    console.print(f"{_name(result.bundle)}: {'verified' if result.passed else 'VERIFICATION FAILED'}")


def verify_failure(result: VerifyResult) -> str:
    """The one error line of a failed verification, with the fix that fits it."""
    bad_signature = any(name == "signature" and not ok for name, ok, _ in result.checks)
    fix = ("do not use it: it is not the bundle that key signed; get it again from its publisher, or check that "
           "--public-key is theirs" if bad_signature else "package the model again; do not edit a bundle by hand")
    return f"error: {terminal_safe(result.bundle)}: {terminal_safe('; '.join(result.failures()))} (fix: {fix})"


def render_keygen(keys: KeyPair) -> None:
    console.print(f"private key  {keys.private_key} (mode 0600; keep it secret, out of bundles and repositories)")
    console.print(f"public key   {keys.public_key} (give it to whoever verifies your bundles)")
    console.print(f"fingerprint  {keys.fingerprint} (sha256 of the raw Ed25519 public key)")
    console.print(f"sign with:   edgekit package MODEL -o BUNDLE.zip --sign {keys.private_key}")
    console.print(f"verify with: edgekit package --verify BUNDLE.zip --public-key {keys.public_key}")
