"""``edgekit pipeline``: from a model (or the embedded default) to every applicable route × precision,
each converted, validated on real data and benched, with the reports written together at the end.

The default trains the digits CNN in PyTorch and in Keras (seeded), so every route is exercised. One
row failing (conversion error, parity failure, bench error) never stops the others: its status and
one-line reason go into the table. Each cell (a training, a reference bench, a row) is a task for the
executor (``executors``): by default persistent crash-isolated workers, so a converter that segfaults or
aborts ends only its own row (``crashed``) while each framework stays imported across rows; ``serial`` runs
them in this process, ``ray`` as Ray tasks. This process imports no framework, whichever runs the cells.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.conversion import stem_of
from edgekit.pipeline.executors import Executor, ExecutorOptions, open_executor
from edgekit.pipeline.report import Latency, PipelineReport, Row, RowStatus, Source
from edgekit.targets.bench import BenchOptions
from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.errors import EdgekitError, InvalidInputError, UsageError, first_line, option
from edgekit.toolkit.contract.formats import Format, output_formats, sniff
from edgekit.toolkit.contract.options import Device, QuantMode
from edgekit.toolkit.delegation import delegation_summary
from edgekit.toolkit.nodes import Window, bench_slot
from edgekit.toolkit.safety.isolation import phase

# Short, so the whole default matrix stays within minutes; `edgekit bench` is the place for long runs.
DEFAULT_BENCH = BenchOptions(warmup=5, runs=50, min_seconds=0.25)
DEFAULT_MODELS = (("digits_cnn_torch", "torch"), ("digits_cnn_keras", "keras"))
REPORT_NAMES = {"json": "report.json", "markdown": "report.md", "junit": "junit.xml", "html": "report.html"}
REPORT_FILES = tuple(REPORT_NAMES.values())
PIPELINE_LOG = "pipeline.log"
PIPELINE_DIRS = ("models", "artifacts")  # inside --out, beside the reports


@dataclass(frozen=True)
class PipelineOptions:
    to: tuple[Format, ...] = field(default_factory=output_formats)  # the formats each source is converted to
    quantize: tuple[QuantMode, ...] = field(default_factory=lambda: tuple(QuantMode))
    data: str | None = None  # default models: what they train on; given models: parity/bench/calibration data
    calibration: str | None = None
    samples: int = 500  # parity samples per artifact
    bench: BenchOptions | None = DEFAULT_BENCH  # None: no latency
    epochs: int | None = None  # default models only
    seed: int = 0
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)
    compat: tuple[str, ...] = ("all",)  # compat targets (or profiles) each artifact is checked on; () for none
    # an accuracy budget for every quantized row (convert --min-cosine / --max-accuracy-drop, points of top-1)
    min_cosine: float | None = None
    max_accuracy_drop: float | None = None

    def __post_init__(self) -> None:
        from edgekit.targets.compat import parse_targets

        object.__setattr__(self, "compat", tuple(parse_targets(self.compat, "compat")) if self.compat else ())
        wrong = [f.value for f in self.to if f not in output_formats()]
        if wrong:
            raise UsageError(f"{option('to', ','.join(wrong))}: a conversion does not write that",
                             hint=f"formats: {', '.join(f.value for f in output_formats())} or all")
        if not self.to or not self.quantize:
            raise UsageError(f"{option('to')} and {option('quantize')} each need at least one value")
        if self.samples < 1:
            raise UsageError(f"{option('samples')} must be ≥ 1, got {self.samples}")
        self.budget  # noqa: B018 (a budget out of range fails here, before any row)

    @property
    def budget(self) -> Any:
        if self.min_cosine is None and self.max_accuracy_drop is None:
            return None
        from edgekit.budget import Budget

        return Budget(self.min_cosine, self.max_accuracy_drop)

    def to_dict(self) -> dict[str, Any]:
        bench = self.bench
        return {"to": [f.value for f in self.to], "quantize": [q.value for q in self.quantize],
                "data": self.data, "calibration": self.calibration, "samples": self.samples,
                "bench": None if bench is None else {"warmup": bench.warmup, "runs": bench.runs,
                                                     "min_seconds": bench.min_seconds, "device": bench.device.value},
                "threads": bench.threads if bench else None, "epochs": self.epochs, "seed": self.seed,
                "compat": list(self.compat),
                "budget": {"min_cosine": self.min_cosine, "max_accuracy_drop": self.max_accuracy_drop}
                if self.budget is not None else None, **self.executor.to_dict()}


@dataclass(frozen=True)
class Job:
    """One row to produce: a source converted to ``to`` at ``quant``."""

    source: Source
    to: Format
    quant: QuantMode
    output: Path


class Observer:
    """What the pipeline tells its caller while it runs (the CLI draws a progress bar)."""

    def planned(self, total: int) -> None: ...

    def stage(self, text: str) -> None: ...

    def row_done(self, row: Row) -> None: ...


@dataclass
class _Plan:
    jobs: list[Job] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)


def parse_formats(text: str) -> tuple[Format, ...]:
    if text.strip() == "all":
        return output_formats()
    try:
        return tuple(dict.fromkeys(Format(v.strip()) for v in text.split(",") if v.strip()))
    except ValueError as exc:
        raise UsageError(f"{option('to', text)}: {exc}",
                         hint=f"formats: {', '.join(f.value for f in output_formats())} or all") from None


def parse_quant_modes(text: str) -> tuple[QuantMode, ...]:
    if text.strip() == "all":
        return tuple(QuantMode)
    try:
        return tuple(dict.fromkeys(QuantMode(v.strip()) for v in text.split(",") if v.strip()))
    except ValueError as exc:
        raise UsageError(f"{option('quantize', text)}: {exc}",
                         hint=f"modes: {', '.join(q.value for q in QuantMode)} or all") from None


def run_pipeline(
    models: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    options: PipelineOptions | None = None,
    *,
    force: bool = False,
    observer: Observer | None = None,
) -> PipelineReport:
    """Train or take the sources, plan the rows, then convert + validate + bench each on the executor;
    reports are written by the caller (``write_reports``)."""
    start = time.perf_counter()
    options = options or PipelineOptions()
    observer = observer or Observer()
    out = Path(out)
    _check_device(options)
    given = [Path(m) for m in models]
    for path in given:
        if not path.exists():
            raise InvalidInputError(f"{path}: no such model file or directory", hint="check the path")
    out.mkdir(parents=True, exist_ok=True)
    if not force:
        earlier = [p for d in ("models", "artifacts") if (out / d).is_dir() for p in (out / d).iterdir()]
        if earlier:
            raise UsageError(f"{option('out', out)} already holds models or artifacts of an earlier run "
                             f"({earlier[0].name}, …)",
                             hint=f"give {option('force', True)} to replace them, or another {option('out')}")
    with open_executor(options.executor) as executor:
        executor.prepare(out)
        sources = [_given_source(p) for p in given] if given else \
            _train_defaults(executor, out / "models", options, force, observer)
        plan = _plan(sources, out / "artifacts", options)
        (out / "artifacts").mkdir(exist_ok=True)
        observer.planned(len(plan.jobs) + len(sources))
        sources, rows = _run_cells(executor, sources, plan.jobs, options, force, observer)
    from edgekit.toolkit.sysinfo import environment_fingerprint

    return PipelineReport(
        sources=tuple(sources), rows=tuple(rows), not_applicable=tuple(plan.not_applicable),
        options={**options.to_dict(), "executor_run": executor.description},
        environment=environment_fingerprint(), seconds=time.perf_counter() - start,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), edgekit_version=__version__,
    )


def _family(source_format: str, target: Format | None = None) -> str:
    """Cells of one family import the same frameworks: the executor keeps them on one warm worker."""
    return source_format if target is None else f"{source_format}→{target.value}"


def _run_cells(executor: Executor, sources: list[Source], jobs: list[Job], options: PipelineOptions, force: bool,
               observer: Observer) -> tuple[list[Source], list[Row]]:
    """The reference benches and every row, as the executor's tasks; a crashed cell is a ``crashed`` row."""
    from edgekit.toolkit.safety.pool import Task

    tasks = [Task(("source", i), reference_cell, (src, options), _family(src.format), f"benching {src.name}")
             for i, src in enumerate(sources)]
    ordered = sorted(range(len(jobs)), key=lambda i: (_family(jobs[i].source.format, jobs[i].to), i))
    tasks += [Task(("row", i), row_cell, (jobs[i], options, force), _family(jobs[i].source.format, jobs[i].to),
                   f"converting {jobs[i].source.name} → {jobs[i].to.value} {jobs[i].quant.value}")
              for i in ordered]
    labels = {("source", i): f"bench {src.name} (eager reference)" for i, src in enumerate(sources)}
    labels |= {("row", i): f"{job.source.name} → {job.to.value} {job.quant.value}" for i, job in enumerate(jobs)}
    done_sources: dict[int, Source] = {}
    done_rows: dict[int, Row] = {}
    for outcome in executor.run(tasks, on_start=lambda task: observer.stage(labels[task.key])):
        kind, index = outcome.task.key
        if kind == "source":
            src = sources[index]
            value = outcome.value if isinstance(outcome.value, Source) else \
                replace(src, note=f"eager bench failed: {_failure(outcome)}")
            done_sources[index] = value
            observer.row_done(Row(src.name, src.format, "reference", RowStatus.PASSED, latency=value.latency))
        else:
            job = jobs[index]
            row = outcome.value if isinstance(outcome.value, Row) else _failed_row(job, outcome)
            done_rows[index] = row
            observer.row_done(row)
    sources = [done_sources[i] for i in range(len(sources))]
    by_name = {s.name: s for s in sources}
    rows = [_with_speedup(done_rows[i], by_name[jobs[i].source.name]) for i in range(len(jobs))]
    return sources, rows


def _failure(outcome: Any) -> str:
    if outcome.crash is not None:
        return outcome.crash.message
    if outcome.error is not None:
        return outcome.error.one_line()
    if outcome.internal is not None:
        return f"{outcome.internal.name}: {outcome.internal.line}"
    return f"unexpected result {type(outcome.value).__name__}"


def _failed_row(job: Job, outcome: Any) -> Row:
    """A row whose cell did not return one: its worker crashed (``crashed``), or the cell raised."""
    status = RowStatus.CRASHED if outcome.crash is not None else RowStatus.CONVERSION_FAILED
    written = job.output.is_file()  # a crash while benching leaves a complete artifact (writes are atomic)
    notes = (f"executor: {outcome.crash.kind}",) if outcome.crash is not None else ()
    return Row(job.source.name, job.to.value, job.quant.value, status, reason=_failure(outcome),
               artifact=str(job.output) if written else None,
               size_bytes=job.output.stat().st_size if written else None, notes=notes)


def _with_speedup(row: Row, source: Source) -> Row:
    reference = source.latency
    if row.latency is None or reference is None or not row.latency.p50 > 0:
        return row
    return replace(row, speedup=reference.p50 / row.latency.p50)


def _check_device(options: PipelineOptions) -> None:
    if options.bench is not None and options.bench.device is Device.CUDA:
        from edgekit.toolkit.sysinfo import cuda_info

        info = cuda_info()
        if not info.usable:
            raise InvalidInputError(f"{option('device', 'cuda')}: CUDA is not usable here: {info.reason}",
                                    hint=f"use {option('device', 'cpu')}")


def _train_defaults(executor: Executor, directory: Path, options: PipelineOptions, force: bool,
                    observer: Observer) -> list[Source]:
    """The embedded default: the digits CNN trained in PyTorch and in Keras with the same seed. A training
    that fails or crashes ends the run (its rows could not exist)."""
    from edgekit.toolkit.safety.pool import Task

    directory.mkdir(parents=True, exist_ok=True)
    tasks = [Task(("train", i), train_cell, (name, framework, directory, options, force), framework,
                  f"training {name}") for i, (name, framework) in enumerate(DEFAULT_MODELS)]
    trained: dict[int, Source] = {}
    for outcome in executor.run(tasks, on_start=lambda task: observer.stage(
            f"train {DEFAULT_MODELS[task.key[1]][0]} ({DEFAULT_MODELS[task.key[1]][1]}, digits CNN)")):
        if outcome.error is not None:
            raise outcome.error
        if not isinstance(outcome.value, Source):
            from edgekit.toolkit.safety.isolation import WorkerCrashedError

            raise WorkerCrashedError(f"training {DEFAULT_MODELS[outcome.task.key[1]][0]}: {_failure(outcome)}",
                                     hint="rerun with --debug, or --executor serial to see it in this process")
        trained[outcome.task.key[1]] = outcome.value
    return [trained[i] for i in range(len(DEFAULT_MODELS))]


def train_cell(name: str, framework: str, directory: Path, options: PipelineOptions, force: bool) -> Source:
    from edgekit.models import Arch, Framework
    from edgekit.training import TrainOptions, train

    train_options = TrainOptions(Framework(framework), Arch.CNN, data=options.data or "digits",
                                 epochs=options.epochs, seed=options.seed)
    result = train(train_options, directory / name, force=force)
    return Source(name, str(result.artifact.path), result.artifact.format.value,
                  accuracy=result.test_accuracy, trained_seconds=result.seconds)


def _given_source(path: Path) -> Source:
    from edgekit.toolkit.contract.artifact import read_sidecar

    sniffed = sniff(path)
    sidecar = read_sidecar(path) if path.is_file() else None
    accuracy = sidecar.metrics.get("test_accuracy") if sidecar else None
    return Source(stem_of(path) or path.name, str(path), sniffed.format.value, accuracy=accuracy)


def _plan(sources: list[Source], directory: Path, options: PipelineOptions) -> _Plan:
    """Every (format, quant mode) a route exists for; the rest are listed as not applicable."""
    from edgekit.converters.planning import plan

    result = _Plan()
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise UsageError(f"two models share the name {sorted({n for n in names if names.count(n) > 1})}",
                         hint="rename one: artifacts are named after their source")
    for src in sources:
        for to in options.to:
            for quant in options.quantize:
                try:
                    plan(Format(src.format), to, quant)
                except UsageError as exc:
                    result.not_applicable.append(f"{src.name} → {to.value} {quant.value}: {exc.message}")
                    continue
                name = f"{src.name}.{quant.spec.precision}{to.spec.suffix}"
                result.jobs.append(Job(src, to, quant, directory / name))
    if not result.jobs:
        raise UsageError(f"no route applies to these models with the {option('to')}/{option('quantize')} chosen",
                         hint="see `edgekit routes` for what each source format reaches")
    return result


def reference_cell(src: Source, options: PipelineOptions) -> Source:
    """The source's own (eager) latency: what each row's speedup is measured against."""
    if options.bench is None:
        return src
    phase(f"benchmarking {src.name} (eager reference)")
    try:
        latency, _, _, node = _bench(Path(src.path), options, _given_data(src, options))
    except EdgekitError as exc:
        return replace(src, note=f"eager bench failed: {exc.one_line()}")
    return replace(src, latency=latency, bench_node=node.node)


def _bench(path: Path, options: PipelineOptions, data: str | None) -> tuple[Latency, str, list[str], Window]:
    """One short ``edgekit bench`` run, holding this node's bench slot; a given .npz feeds it (digits/image
    directories only validate)."""
    from edgekit.targets.bench import bench_one
    from edgekit.toolkit.contract.registry import runtime_for

    assert options.bench is not None
    bench = options.bench
    notes = []
    fmt = sniff(path).format
    if bench.device is Device.CUDA and Device.CUDA not in runtime_for(fmt).devices:
        bench = replace(bench, device=Device.CPU)
        notes.append(f"benched on CPU: the {fmt.value} runtime has no CUDA path")
    with bench_slot() as window:
        result = bench_one(path, bench, data=data if data is not None and data.endswith(".npz") else None)
    stats = result.stats
    latency = Latency(stats.p50, stats.p90, stats.p99, stats.cv, stats.runs, result.threads, result.device,
                      result.unstable)
    notes += [f"unstable timing: {reason}" for reason in result.unstable_reasons]
    return latency, delegation_summary(result.delegation), notes, window


def row_cell(job: Job, options: PipelineOptions, force: bool) -> Row:
    from edgekit.conversion import convert
    from edgekit.converters.base import ConvertOptions

    base = Row(job.source.name, job.to.value, job.quant.value, RowStatus.CONVERSION_FAILED)
    data = _given_data(job.source, options)
    convert_options = ConvertOptions(quantize=job.quant, calibration=options.calibration or data)
    budgeted: dict[str, Any] = {}
    try:
        if options.budget is not None and job.quant is not QuantMode.NONE:
            result, budgeted = _budgeted(job, convert_options, options, data, force)
        else:
            result = convert(job.source.path, job.to, convert_options, output=job.output, force=force,
                             validation_data=data, validation_samples=options.samples)
    except EdgekitError as exc:
        return replace(base, reason=exc.one_line())
    except Exception as exc:  # a converter's own failure must not stop the other rows
        return replace(base, reason=f"{type(exc).__name__}: {first_line(exc)}")
    parity = result.parity
    assert parity is not None
    metrics = [o.metrics for o in parity.outputs if o.metrics is not None]
    row = replace(
        base,
        status=RowStatus.PASSED if parity.passed else RowStatus.PARITY_FAILED,
        reason="; ".join(parity.failures()),
        route=tuple(result.artifact.route), artifact=str(job.output), size_bytes=job.output.stat().st_size,
        convert_seconds=result.seconds, profile=parity.profile.value, data=parity.data_source,
        accuracy=parity.accuracy["candidate"] if parity.accuracy else None,
        accuracy_delta=parity.accuracy["delta"] if parity.accuracy else None,
        max_abs=max((m.max_abs for m in metrics), default=None),
        cosine=min((m.cosine for m in metrics), default=None),
        error_percentiles=metrics[0].abs_error_percentiles if metrics else None,
        delegation=delegation_summary(result.details.delegation),
        notes=tuple(result.warnings),
        kept_float=tuple(result.artifact.options.get("keep_float", ())) if budgeted else (),
        budget=budgeted or None,
    )
    row = _compat(row, job, options)
    if options.bench is None:
        return row
    phase(f"benchmarking {job.output.name}")
    try:
        latency, delegation, notes, window = _bench(job.output, options, data)
    except EdgekitError as exc:
        return replace(row, notes=(*row.notes, f"bench failed: {exc.one_line()}"))
    except Exception as exc:
        return replace(row, notes=(*row.notes, f"bench failed: {type(exc).__name__}: {first_line(exc)}"))
    return replace(row, latency=latency, delegation=delegation or row.delegation, notes=(*row.notes, *notes),
                   bench_node=window.node, bench_window=(window.started, window.ended))


def _budgeted(job: Job, convert_options: Any, options: PipelineOptions, data: str | None,
              force: bool) -> tuple[Any, dict[str, Any]]:
    """The row's conversion inside the accuracy budget, and what keeping layers float cost against the fully
    quantized model (its size and figures); a route that can leave no layer float converts plainly, noted."""
    from edgekit.budget import budgeted_convert
    from edgekit.conversion import convert

    try:
        found = budgeted_convert(job.source.path, job.to, convert_options, options.budget, output=job.output,
                                 force=force, data=data)
    except UsageError as exc:
        if "no layer it can leave float" not in exc.message and "--keep-float" not in exc.message:
            raise
        result = convert(job.source.path, job.to, convert_options, output=job.output, force=force,
                         validation_data=data, validation_samples=options.samples)
        return result, {"met": result.passed, "note": f"no budget search: {exc.message}"}
    full = found.trials[0]
    return found.result, {"met": found.met, "full_size_bytes": full.size, "full_cosine": full.cosine,
                          "full_accuracy_drop_points": full.drop, "conversions": len(found.trials) + 1}


def _compat(row: Row, job: Job, options: PipelineOptions) -> Row:
    """The artifact's verdict on each compat target of its format (a check that cannot run becomes a note)."""
    from edgekit.toolkit.contract.compat import targets_for

    targets = targets_for(job.to, options.compat)
    if not targets:
        return row
    from edgekit.targets.compat import check_compat

    phase(f"checking {job.output.name} on {', '.join(targets)}")
    try:
        return replace(row, compat=check_compat(job.output, targets).cells())
    except EdgekitError as exc:
        return replace(row, notes=(*row.notes, f"compat check failed: {exc.one_line()}"))
    except Exception as exc:  # a checker's own failure must not cost the row
        return replace(row, notes=(*row.notes, f"compat check failed: {type(exc).__name__}: {first_line(exc)}"))


def _given_data(src: Source, options: PipelineOptions) -> str | None:
    """``--data`` calibrates and validates models given to the pipeline; a model the pipeline trained
    uses its own held-out splits (``--data`` was what it trained on)."""
    return options.data if src.trained_seconds is None else None


def prepare_out(out: str | os.PathLike[str], force: bool, *more: Path | None) -> None:
    """Create ``out``; fail before any work when a report (or ``more``) would be replaced without ``force``, or
    when a directory edgekit writes into inside ``out`` is a symbolic link leading elsewhere."""
    from edgekit.toolkit.fsutil import check_writable_target

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option('out', out)}: cannot create the directory: {exc.strerror}",
                         hint="choose a writable path") from None
    for name in PIPELINE_DIRS:
        if (out / name).is_symlink():  # edgekit writes only inside the out directory
            raise UsageError(f"{option('out', out)}: {name} is a symbolic link (to {os.readlink(out / name)})",
                             hint=f"remove {out / name}, or choose another {option('out')}")
    for path in (*(out / name for name in REPORT_FILES), *more):  # the log refuses itself when opened
        if path is not None:
            check_writable_target(path, force=force)


def report_paths(out: str | os.PathLike[str]) -> dict[str, Path]:
    """Where ``write_reports`` puts each report: json, markdown, junit, html."""
    return {kind: Path(out) / name for kind, name in REPORT_NAMES.items()}


def write_reports(report: PipelineReport, out: str | os.PathLike[str], *, force: bool = True) -> dict[str, Path]:
    """report.json, report.md, junit.xml and report.html in ``out``, each written atomically."""
    from edgekit.pipeline.html import html_report
    from edgekit.pipeline.report import junit_xml, markdown
    from edgekit.toolkit.fsutil import write_bytes_atomic

    contents = {"json": jsonio.dumps(report.to_dict()) + "\n", "markdown": markdown(report),
                "junit": junit_xml(report), "html": html_report(report)}
    return {kind: write_bytes_atomic(Path(out) / REPORT_NAMES[kind], text.encode(), force=force)
            for kind, text in contents.items()}

