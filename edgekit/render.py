"""Terminal rendering of results (Rich). The only place where numbers are formatted for people."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgekit.toolkit.contract.artifact_paths import sidecar_path
from edgekit.toolkit.delegation import delegation_summary
from edgekit.toolkit.units import human_bytes, human_seconds

if TYPE_CHECKING:  # type-only: rendering `routes` or `info` must not import numpy
    from edgekit.conversion import ConversionResult
    from edgekit.importing import ImportResult
    from edgekit.packaging import KeyPair, PackageResult, VerifyResult
    from edgekit.pipeline.report import PipelineReport
    from edgekit.targets.bench import BenchReport
    from edgekit.toolkit.contract.iospec import TensorSpec
    from edgekit.toolkit.reports import InspectReport
    from edgekit.training import TrainResult
    from edgekit.training.types import EpochStats
    from edgekit.validators.parity import ParityReport

console = Console(highlight=False, soft_wrap=True)

TOP_OPS = 15


def _shape(ts: TensorSpec) -> str:
    return "?" if ts.shape is None else "[" + ", ".join(str(d) for d in ts.shape) + "]"


def _quant(ts: TensorSpec) -> str:
    if ts.quant is None:
        return ""
    if len(ts.quant.scale) == 1:
        return f"scale {ts.quant.scale[0]:.6g}, zp {ts.quant.zero_point[0]}"
    return f"per-axis {ts.quant.axis} ({len(ts.quant.scale)} scales)"


def render_inspect(report: InspectReport) -> None:
    details = report.details
    kind = f" ({report.kind})" if report.kind else ""
    console.print(f"[bold]{report.path}[/bold]")
    console.print(f"  format      {report.format.value}{kind}")
    console.print(f"  size        {human_bytes(report.size_bytes)}  sha256 {report.sha256[:16]}…")
    params = "unknown" if details.parameters is None else f"{details.parameters:,}"
    console.print(f"  parameters  {params}")
    if report.io_spec is not None:
        table = Table(title=f"I/O contract — source: {report.contract_source}", title_justify="left")
        for column in ("", "name", "shape", "dtype", "layout", "quantization"):
            table.add_column(column)
        for direction, specs in (("in", report.io_spec.inputs), ("out", report.io_spec.outputs)):
            for ts in specs:
                table.add_row(direction, ts.name, _shape(ts), ts.dtype, ts.layout.value, _quant(ts))
        console.print(table)
    if details.ops:
        total = sum(details.ops.values())
        shown = list(details.ops.items())[:TOP_OPS]
        more = len(details.ops) - len(shown)
        ops = ", ".join(f"{name}×{count}" for name, count in shown) + (f", … {more} more kinds" if more else "")
        console.print(f"  operators   {total} ({len(details.ops)} kinds): {ops}")
    for label, data in (("delegation", details.delegation), ("quantization", details.quantization)):
        if data:
            console.print(f"  {label:<11} " + ", ".join(f"{k}={_compact(v)}" for k, v in data.items()))
    for note in details.notes:
        console.print(f"  note        {note}")
    smoke = report.smoke_run
    if smoke is not None:
        if smoke.ok:
            outs = ", ".join(f"{k} {v}" for k, v in smoke.output_shapes.items())
            console.print(f"  smoke run   [green]ok[/green] in {smoke.seconds * 1e3:.1f} ms → {outs}")
        else:
            console.print(f"  smoke run   [red]failed[/red]: {smoke.error}")
    for warning in report.warnings:
        console.print(f"  [yellow]warning[/yellow]     {warning}")


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
    console.print(f"  model     {artifact.path}  ({artifact.format.value}, {size})")
    console.print(f"  data      {artifact.data_path}  (calibration and test splits)")
    console.print(f"  sidecar   {sidecar_path(artifact.path)}")


def render_import(result: ImportResult) -> None:
    artifact = result.artifact
    size = human_bytes(_size(artifact.path))
    console.print(f"[bold]imported[/bold] ({result.source_kind}) → {artifact.path}  ({artifact.format.value}, {size})")
    for direction, specs in (("in ", artifact.io_spec.inputs), ("out", artifact.io_spec.outputs)):
        for ts in specs:
            console.print(f"  {direction}  {ts.name}  {_shape(ts)}  {ts.dtype}  {ts.layout.value}")
    if artifact.labels:
        shown = ", ".join(artifact.labels[:5]) + (", …" if len(artifact.labels) > 5 else "")
        console.print(f"  labels  {len(artifact.labels)}: {shown}")
    console.print(f"  sidecar {sidecar_path(artifact.path)}  ({result.seconds:.1f} s)")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def render_convert(result: ConversionResult) -> None:
    artifact = result.artifact
    size = human_bytes(_size(artifact.path))
    quant = artifact.options.get("quantize", "none")
    console.print(f"[bold]converted[/bold] → {artifact.path}  ({artifact.format.value}, {quant}, {size}) "
                  f"in {result.seconds:.1f} s")
    console.print(f"  route     {' → '.join(artifact.route)}")
    for step in result.steps:
        facts = ", ".join(f"{k}={v}" for k, v in step.details.items())
        console.print(f"  step      {step.converter} ({step.seconds:.1f} s){': ' + facts if facts else ''}")
    for direction, specs in (("in ", artifact.io_spec.inputs), ("out", artifact.io_spec.outputs)):
        for ts in specs:
            console.print(f"  {direction}       {ts.name}  {_shape(ts)}  {ts.dtype}  {ts.layout.value}  {_quant(ts)}")
    if result.details.delegation:
        console.print("  delegation " + ", ".join(f"{k}={_compact(v)}" for k, v in result.details.delegation.items()))
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
                      f"cosine {cosine:.6f}{accuracy}; {parity.data_source})")
    console.print(f"  sidecar   {sidecar_path(artifact.path)}")


def render_routes(rows: list[dict[str, Any]]) -> None:
    table = Table(title="Conversion routes (edgekit convert MODEL --to FORMAT --quantize MODE)", title_justify="left")
    for column in ("source", "to", "converter", "quantize", "status"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["source"], row["to"], row["converter"], ", ".join(row["quantize"]),
                      _status(row["missing"]))
    console.print(table)
    console.print("Routes compose: e.g. keras → onnx → int8 onnx, torch-exported → onnx → fp16 onnx.")


def render_bench(report: BenchReport) -> None:
    from rich.markup import escape

    latency = Table(title="Latency (single batch, warmed up)", title_justify="left")
    for column in ("model", "precision", "threads", "p50", "p90", "p99", "CV", "vs 1st", "delegation"):
        latency.add_column(column, justify="right" if column in ("threads", "p50", "p90", "p99", "CV") else "left",
                           no_wrap=column == "model")
    costs = Table(title="Costs", title_justify="left")
    for column in ("model", "threads", "load", "first run", "mean", "min", "max", "RSS +", "size"):
        costs.add_column(column, justify="left" if column == "model" else "right")
    for result, speedup in zip(report.results, report.speedups(), strict=True):
        stats, name = result.stats, Path(result.model).name
        threads = "-" if result.threads is None else str(result.threads) + ("" if result.threads_applied else "*")
        cv = f"{stats.cv:.1%}" + (" [red]unstable[/red]" if result.unstable else "")
        latency.add_row(name, result.precision, threads, *map(human_seconds, (stats.p50, stats.p90, stats.p99)), cv,
                        f"{speedup:.2f}×", delegation_summary(result.delegation))
        costs.add_row(name, threads, *map(human_seconds, (result.load_seconds, result.first_inference_seconds,
                                                          stats.mean, stats.min, stats.max)),
                      human_bytes(max(result.rss_increase_bytes, 0)), human_bytes(result.file_size_bytes))
    console.print(latency)
    console.print(costs)
    if any(not r.threads_applied and r.threads is not None for r in report.results):
        console.print("  * the runtime could not enforce this thread count (see threads_applied in the JSON)")
    for result in report.results:
        name = Path(result.model).name
        for reason in result.unstable_reasons:
            console.print(f"  [yellow]unstable[/yellow] {name} ({result.threads} threads): {reason}")
        cpu_ops = result.delegation.get("cpu_operators")
        if cpu_ops and result.format == "tflite":
            names = ", ".join(f"{k}×{v}" for k, v in cpu_ops.items())
            console.print(f"  [yellow]not delegated[/yellow] {name}: {names} on LiteRT's own CPU kernels")
    for note in report.notes:
        console.print(f"  [yellow]note:[/yellow] {escape(note)}")
    if report.results:
        sources = ", ".join(dict.fromkeys(r.input_source for r in report.results))
        console.print(f"inputs: {sources}; ≥ {min(r.stats.runs for r in report.results)} timed runs each")


def render_parity(report: ParityReport) -> None:
    colour = "green" if report.passed else "red"
    console.print(f"[bold {colour}]{report.verdict}[/bold {colour}]  {report.candidate} vs {report.reference}  "
                  f"(profile {report.profile.value}; {report.data_source})")
    for step in report.adaptations:
        console.print(f"  adapted   {step}")
    table = Table(title_justify="left")
    for column in ("output", "max |Δ|", "mean |Δ|", "p99 |Δ|", "max rel", "cosine", "SNR dB", "top-1", "top-5",
                   "checks"):
        table.add_column(column, justify="left" if column in ("output", "checks") else "right")
    for out in report.outputs:
        m = out.metrics
        checks = ", ".join(f"{c.name} {'ok' if c.passed else '[red]FAIL[/red]'}" for c in out.checks)
        name = out.reference_name if out.reference_name == out.candidate_name else \
            f"{out.reference_name}↔{out.candidate_name}"
        if m is None:
            table.add_row(name, *["-"] * 8, checks)
            continue
        table.add_row(name, f"{m.max_abs:.3g}", f"{m.mean_abs:.3g}", f"{m.p99_abs:.3g}", f"{m.max_rel:.3g}",
                      f"{m.cosine:.6f}", f"{m.snr_db:.1f}", _share(m.top1_agreement), _share(m.top5_agreement),
                      checks)
    console.print(table)
    if report.accuracy is not None:
        acc = report.accuracy
        console.print(f"  accuracy  reference {acc['reference']:.2%}  candidate {acc['candidate']:.2%}  "
                      f"delta {acc['delta'] * 100:+.2f} points")
    for note in report.notes:
        console.print(f"  note      {note}")
    for line in report.failures():
        console.print(f"  [red]fail[/red]      {line}")


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

    versions = Table(title="Backends", title_justify="left")
    versions.add_column("package")
    versions.add_column("version")
    for name, version in data["versions"].items():
        versions.add_row(name, version or "[dim]not installed[/dim]")
    console.print(versions)

    from rich.markup import escape

    extras = Table(title=escape("Extras (install with: pip install 'edgekit[NAME,…]')"), title_justify="left")
    for column in ("extra", "status", "for"):
        extras.add_column(column)
    colours = {"present": "green", "partly present": "yellow", "absent": "dim"}
    for row in data.get("extras", []):
        state = row["status"]
        if row["missing"] and state != "absent":
            state += f": missing {', '.join(row['missing'])}"
        colour = colours.get(row["status"], "default")
        extras.add_row(row["extra"], f"[{colour}]{escape(state)}[/{colour}]", escape(row["purpose"]))
    console.print(extras)

    runtimes = Table(title="Runtimes", title_justify="left")
    for column in ("format", "runtime", "devices", "status"):
        runtimes.add_column(column)
    for rt in data["runtimes"]:
        runtimes.add_row(rt["format"], rt["runtime"], ", ".join(rt["devices"]), _status(rt["missing"]))
    console.print(runtimes)

    if not data["routes"]:
        console.print("Conversion routes: none registered in this version.")
        return
    routes = Table(title="Conversion routes", title_justify="left")
    for column in ("route", "converter", "quantize", "status"):
        routes.add_column(column)
    for route in data["routes"]:
        name = f"{route['source']} → {route['to']}"
        routes.add_row(name, route["converter"], ", ".join(route["quantize"]), _status(route["missing"]))
    console.print(routes)


def render_pipeline(report: PipelineReport, files: dict[str, Path], target: Console | None = None) -> None:
    from edgekit.pipeline.report import TABLE_COLUMNS, RowStatus, table_cells

    out = target or console
    colours = {RowStatus.PASSED: "green", RowStatus.PARITY_FAILED: "red", RowStatus.CONVERSION_FAILED: "yellow"}
    for src in report.sources:
        accuracy = "-" if src.accuracy is None else f"{src.accuracy:.2%}"
        trained = f", trained in {src.trained_seconds:.1f} s" if src.trained_seconds is not None else ""
        note = f"  ({src.note})" if src.note else ""
        out.print(f"[bold]{src.name}[/bold]  {src.format}, accuracy {accuracy}{trained}, eager p50 "
                  f"{human_seconds(src.latency.p50 if src.latency else None)}{note}")
    table = Table(title="edgekit pipeline", title_justify="left")
    for column in TABLE_COLUMNS:
        table.add_column(column, justify="right" if column in ("size", "p50", "p90", "vs eager") else "left")
    for row in report.rows:
        cells = list(table_cells(row))
        colour = colours[row.status]
        cells[3] = f"[{colour}]{cells[3]}[/{colour}]"
        table.add_row(*cells)
    out.print(table)
    for row in report.rows:
        if row.status is not RowStatus.PASSED:
            out.print(f"  [{colours[row.status]}]{row.status.value}[/{colours[row.status]}] {row.label}: {row.reason}")
    counts = report.counts()
    out.print(f"{len(report.rows)} artifacts: {counts['passed']} passed, {counts['parity-failed']} failed parity, "
              f"{counts['conversion-failed']} failed to convert; {len(report.not_applicable)} combinations have no "
              f"route (listed in the report)")
    for kind in ("html", "markdown", "json", "junit"):
        if kind in files:
            out.print(f"  {kind:<9}{files[kind]}")
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
    colours = {RowStatus.PASSED: "green", RowStatus.PARITY_FAILED: "red", RowStatus.CONVERSION_FAILED: "yellow"}
    with framework_output_to_file(log, replace=force) as (stdout_fd, stderr_fd):
        stdout = os.fdopen(os.dup(stdout_fd), "w", encoding="utf-8")
        stderr = os.fdopen(os.dup(stderr_fd), "w", encoding="utf-8")
        with stdout, stderr:
            terminal = Console(file=stderr, highlight=False, soft_wrap=True)
            progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=terminal, transient=True)

            class Bar(Observer):
                def __init__(self) -> None:
                    self.task = progress.add_task("starting", total=None)

                def planned(self, total: int) -> None:
                    progress.update(self.task, total=total)

                def stage(self, text: str) -> None:
                    progress.update(self.task, description=text)

                def row_done(self, row: Any) -> None:
                    colour = colours[row.status]
                    p50 = "" if row.latency is None else f"  p50 {row.latency.p50 * 1e3:.3f} ms"
                    reason = f": {row.reason}" if row.status is not RowStatus.PASSED else ""
                    progress.console.print(f"[{colour}]{row.status.value:>17}[/{colour}]  {row.source} → "
                                           f"{row.format} {row.precision}{p50}{reason}")
                    progress.advance(self.task)

            terminal.print(f"framework output: {log}")
            table = Console(file=stdout, highlight=False, soft_wrap=True, width=None if stdout.isatty() else 200)
            with progress:
                yield PipelineProgress(Bar(), progress, table)


def render_package(result: PackageResult, signed_with: Path | None) -> None:
    from edgekit.packaging import public_key_path

    manifest = result.manifest
    console.print(f"packaged {manifest['model']['file']} ({manifest['model']['format']}, "
                  f"{manifest['model']['precision']}) → {result.bundle} in {result.seconds:.1f} s")
    for member, digest in manifest["files"].items():
        console.print(f"  {member:<22} {digest[:16]}…")
    parity = manifest.get("parity")
    console.print(f"  parity  {parity['verdict'] if parity else 'not recorded (no edgekit sidecar)'}")
    latency = manifest.get("latency")
    if latency:
        console.print(f"  latency p50 {latency['p50_ms']:.3f} ms on {latency['measured_on']} (1 thread)")
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
        console.print(f"  {'ok  ' if ok else 'FAIL'}  {name}: {escape(detail)}")
    console.print(f"{result.bundle}: {'verified' if result.passed else 'VERIFICATION FAILED'}")


def verify_failure(result: VerifyResult) -> str:
    """The one error line of a failed verification, with the fix that fits it."""
    bad_signature = any(name == "signature" and not ok for name, ok, _ in result.checks)
    fix = ("do not use it: it is not the bundle that key signed; get it again from its publisher, or check that "
           "--public-key is theirs" if bad_signature else "package the model again; do not edit a bundle by hand")
    return f"error: {result.bundle}: {'; '.join(result.failures())} (fix: {fix})"


def render_keygen(keys: KeyPair) -> None:
    console.print(f"private key  {keys.private_key} (mode 0600; keep it secret, out of bundles and repositories)")
    console.print(f"public key   {keys.public_key} (give it to whoever verifies your bundles)")
    console.print(f"fingerprint  {keys.fingerprint} (sha256 of the raw Ed25519 public key)")
    console.print(f"sign with:   edgekit package MODEL -o BUNDLE.zip --sign {keys.private_key}")
    console.print(f"verify with: edgekit package --verify BUNDLE.zip --public-key {keys.public_key}")
