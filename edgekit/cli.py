"""The ``edgekit`` command: parse, call one library function, render, map errors to exit codes.

Only typer and edgekit's framework-free toolkit are imported at start-up; each command imports what it
needs when it runs, so ``edgekit --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer

from edgekit import __version__
from edgekit.models import Arch, Framework
from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.errors import EdgekitError, ExitCode, UsageError, first_line
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.options import Device, Layout, QuantMode
from edgekit.toolkit.stdio import framework_output_to_stderr
from edgekit.validators.tolerances import Profile

EXIT_CODES_HELP = (
    "Exit codes: 0 ok · 1 check failed · 2 usage error · 3 invalid or unsupported input · "
    "4 refused for safety · 5 conversion/runtime failure · 6 resource limit or timeout · 70 internal error · "
    "130 interrupted."
)

app = typer.Typer(
    name="edgekit",
    help="Take a model from where it was made to where it runs: train or import it, inspect it, convert it, "
    "validate its parity, bench it, bundle it for an app; or all at once with `edgekit pipeline`.\n\n"
    + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _State:
    debug = False


F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(command: F) -> F:
    """Turn the error tree into one stderr line and its exit code; tracebacks only with --debug."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EdgekitError as exc:
            if _State.debug:
                raise
            typer.echo(f"edgekit: error: {exc.one_line()}", err=True)
            raise typer.Exit(int(exc.exit_code)) from None
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            if _State.debug:
                raise
            typer.echo("edgekit: interrupted (outputs in progress were removed)", err=True)
            raise typer.Exit(130) from None
        except MemoryError:
            if _State.debug:
                raise
            typer.echo("edgekit: error: out of memory (fix: use a smaller model or input, or free memory)", err=True)
            raise typer.Exit(int(ExitCode.RESOURCE_LIMIT)) from None
        except Exception as exc:  # a bug in edgekit or an unexpected framework failure
            if _State.debug:
                trace = getattr(exc, "trace", None)  # from an isolated worker
                if trace:
                    typer.echo(trace, err=True)
                raise
            typer.echo(
                f"edgekit: internal error: {type(exc).__name__}: {first_line(exc)} "
                "(rerun with --debug for the traceback)",
                err=True,
            )
            raise typer.Exit(int(ExitCode.INTERNAL)) from None

    return wrapper  # type: ignore[return-value]


def _isolated(phase: str, work: Callable[[], Any]) -> Any:
    """Native loading and conversion run in a child process (crash → exit 5, --timeout/--memory-limit →
    exit 6; see edgekit.toolkit.safety.isolation)."""
    from edgekit.toolkit.safety.isolation import run_isolated

    return run_isolated(work, phase_name=phase)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_version_callback),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    trust: bool = typer.Option(False, "--trust", help="Load models whose code the loading policy refuses (Keras "
                               "Lambda/custom layers, TorchScript and .pt2 code, ONNX external data outside the "
                               "model's directory), with a warning. Pickles and native code stay refused."),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds a model load/conversion may take in its "
                                         "isolated worker (default 3600; exit 6 when exceeded)."),
    memory_limit: int | None = typer.Option(None, "--memory-limit", metavar="MIB", help="Resident memory the "
                                            "worker may use (exit 6 when exceeded; default: 80% of RAM)."),
) -> None:
    from edgekit.toolkit.safety import isolation, policy

    _State.debug = debug
    policy.set_trusted(trust)
    if timeout is not None:
        if not timeout > 0:
            raise typer.BadParameter(f"must be > 0, got {timeout}", param_hint="--timeout")
        os.environ[isolation.TIMEOUT_ENV] = str(timeout)
    if memory_limit is not None:
        if memory_limit < 1:
            raise typer.BadParameter(f"must be ≥ 1 MiB, got {memory_limit}", param_hint="--memory-limit")
        os.environ[isolation.MEMORY_ENV] = str(memory_limit)


@app.command()
@handle_errors
def info(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")) -> None:
    """Versions, CPU and ISA flags, CUDA, runtimes and routes.

    Backend versions come from package metadata (no framework is imported); CUDA is probed through the
    driver itself.
    """
    from edgekit.render import render_info
    from edgekit.toolkit.contract.registry import CONVERTERS, RUNTIMES
    from edgekit.toolkit.sysinfo import environment_fingerprint

    env = environment_fingerprint()
    data = {"edgekit": __version__, **env, "runtimes": [spec.to_dict() for spec in RUNTIMES],
            "routes": [spec.to_dict() for spec in CONVERTERS]}
    if json_out:
        typer.echo(jsonio.dumps(data))
    else:
        render_info(data)


@app.command()
@handle_errors
def inspect(
    model: Path = typer.Argument(..., help="Model file or SavedModel directory.", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    input_shape: list[str] = typer.Option(
        [], "--input-shape", metavar="NAME=D1,D2,…",
        help="Input shape where the format does not record one (repeatable), e.g. x=1,3,32,32.",
    ),
    run: bool = typer.Option(True, "--run/--no-run", help="Run one inference on seeded inputs to prove it runs."),
) -> None:
    """What a model is: format, I/O contract, ops, size.

    Also parameters, delegation and quantization where the format exposes them, and one inference on
    seeded inputs to prove the model runs (--no-run to skip).
    """
    from edgekit.inspection import inspect_model
    from edgekit.render import render_inspect
    from edgekit.toolkit.contract.iospec import parse_input_shapes

    with framework_output_to_stderr():
        shapes = parse_input_shapes(input_shape)
        report = _isolated(f"inspecting {model}", lambda: inspect_model(model, input_shapes=shapes, smoke_run=run))
    if json_out:
        typer.echo(jsonio.dumps(report.to_dict()))
    else:
        render_inspect(report)
    if not report.passed:
        error = report.smoke_run.error if report.smoke_run else ""
        typer.echo(f"edgekit: error: {model}: the model loads but does not run: {error}", err=True)
        raise typer.Exit(int(ExitCode.BACKEND_FAILURE))


@app.command()
@handle_errors
def train(
    framework: Framework = typer.Option(..., "--framework", help="torch (saved as .pt2) or keras (.keras)."),
    arch: Arch = typer.Option(..., "--arch", help="mlp, cnn or mobilenetv2."),
    output: Path = typer.Option(..., "-o", "--output", help="Model path; the extension is added if missing."),
    data: str = typer.Option("digits", "--data", help="digits (bundled with scikit-learn) or a FILE.npz "
                             "with x (N,H,W[,C]), y (N,) and optional labels."),
    epochs: int | None = typer.Option(None, "--epochs", help="Default: mlp 30, cnn 15, mobilenetv2 5."),
    seed: int = typer.Option(0, "--seed", help="Seeds the split, the init and the batch order."),
    batch_size: int = typer.Option(32, "--batch-size"),
    learning_rate: float | None = typer.Option(None, "--learning-rate", help="Adam; default 1e-3 (mlp), 2e-3."),
    image_size: int | None = typer.Option(None, "--image-size", help="Resize inputs (mobilenetv2 default 96)."),
    force: bool = typer.Option(False, "--force", help="Replace existing outputs."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON (no progress lines)."),
) -> None:
    """Train a small real model offline (digits or your .npz).

    Writes the model, <model>.data.npz (calibration and test splits, preprocessed, with labels) and the
    sidecar with the I/O contract, labels, preprocessing and test accuracy.
    """
    from edgekit.render import render_epoch, render_train
    from edgekit.training import TrainOptions
    from edgekit.training import train as train_model

    options = TrainOptions(framework, arch, data, epochs, seed, batch_size, learning_rate, image_size)
    with framework_output_to_stderr():  # epoch progress goes to stderr with the frameworks' own output
        result = train_model(options, output, force=force,
                             on_epoch=(lambda stats: None) if json_out else render_epoch)
    if json_out:
        typer.echo(jsonio.dumps(result.to_dict()))
    else:
        render_train(result)


@app.command()
@handle_errors
def convert(
    model: str = typer.Argument(..., show_default=False, help="Model file, SavedModel directory, or "
                                "package.module:factory (with --input-shape)."),
    to: Format = typer.Option(..., "--to", help="tflite, onnx, torchscript or executorch."),
    quantize: QuantMode = typer.Option(QuantMode.NONE, "--quantize", help="none, fp16, dynamic, int8, int8-io, "
                                       "int16x8 (see `edgekit routes` for what each route supports)."),
    calibration: str | None = typer.Option(None, "--calibration", help="digits, FILE.npz, IMAGE_DIR or random; "
                                           "default: the model's own data from train/import."),
    calibration_samples: int = typer.Option(100, "--calibration-samples", help="How many samples to calibrate on."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Default: beside the input, e.g. "
                                       "model.int8.tflite."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output."),
    via: Format | None = typer.Option(None, "--via", help="Route through this format (e.g. --via onnx)."),
    nhwc: bool = typer.Option(False, "--nhwc", help="torch → tflite: channels-last image inputs."),
    script: bool = typer.Option(False, "--script", help="torch → torchscript by scripting: refused for .pt2 "
                                "sources, which hold a traced graph (script in your code, then import)."),
    opset: int | None = typer.Option(None, "--opset", help="ONNX opset version."),
    input_shape: list[str] = typer.Option([], "--input-shape", metavar="NAME=D1,D2,…",
                                          help="Input shapes where the source records none."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Check parity against the original "
                                  "(default); a FAIL keeps the artifact, marked failed, and exits 1."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Convert a model: edgekit convert model.pt2 --to tflite.

    Plans the route (composing converters when there is no direct one), calibrates on real data,
    loads and runs the artifact once, and writes it atomically with its provenance sidecar.
    """
    from edgekit.conversion import convert as convert_model
    from edgekit.converters.base import ConvertOptions
    from edgekit.render import render_convert
    from edgekit.toolkit.contract.iospec import parse_input_shapes

    options = ConvertOptions(quantize, calibration, calibration_samples, nhwc, script, opset, validate)
    shapes = parse_input_shapes(input_shape)
    def work() -> Any:
        with _factory_as_file(model, shapes) as source:
            return convert_model(source, to, options, output=output, force=force, via=via, input_shapes=shapes)

    with framework_output_to_stderr():
        result = _isolated(f"converting {model} to {to.value}", work)
    for warning in result.warnings:
        typer.echo(f"edgekit: warning: {warning}", err=True)
    if json_out:
        typer.echo(jsonio.dumps(result.to_dict()))
    else:
        render_convert(result)
    if not result.passed:
        assert result.parity is not None
        typer.echo(f"edgekit: parity FAIL (artifact kept, marked failed in its sidecar): "
                   f"{'; '.join(result.parity.failures())}", err=True)
        raise typer.Exit(int(ExitCode.CHECK_FAILED))


@contextlib.contextmanager
def _factory_as_file(model: str, shapes: dict) -> Iterator[str]:
    """A ``package.module:factory`` source is imported to a scratch .pt2/.keras first."""
    from edgekit.importing import FACTORY, ImportOptions, import_model
    from edgekit.toolkit.fsutil import scratch_directory

    if Path(model).exists() or not FACTORY.match(model):
        yield model
        return
    with scratch_directory("edgekit-factory-") as scratch:
        imported = import_model(model, Path(scratch) / "model", ImportOptions(input_shapes=shapes))
        yield str(imported.artifact.path)


@app.command()
@handle_errors
def routes(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The conversion matrix: every route and the quantization modes it supports."""
    from edgekit.render import render_routes
    from edgekit.toolkit.contract.registry import CONVERTERS

    rows = [spec.to_dict() for spec in CONVERTERS]
    if json_out:
        typer.echo(jsonio.dumps(rows))
    else:
        render_routes(rows)


@app.command()
@handle_errors
def validate(
    reference: Path = typer.Argument(..., show_default=False, help="The original model."),
    candidate: Path = typer.Argument(..., show_default=False, help="The converted model."),
    data: str | None = typer.Option(None, "--data", help="digits, FILE.npz (test_x/test_y, or x/y), IMAGE_DIR or "
                                    "random; default: the model's own test split from train/import."),
    samples: int = typer.Option(500, "--samples", help="At most this many samples."),
    profile: Profile = typer.Option(Profile.AUTO, "--profile", help="auto (from the candidate's precision), fp32, "
                                    "fp16, dynamic or int8."),
    atol: list[str] = typer.Option([], "--atol", metavar="[NAME=]X", help="Elementwise absolute tolerance, for all "
                                   "outputs or one (repeatable)."),
    rtol: list[str] = typer.Option([], "--rtol", metavar="[NAME=]Y", help="Elementwise relative tolerance."),
    json_file: Path | None = typer.Option(None, "--json", help="Write the versioned JSON report here."),
    junit_file: Path | None = typer.Option(None, "--junit", help="Write JUnit XML (a test case per output and check)."),
    force: bool = typer.Option(False, "--force", help="Replace existing report files."),
) -> None:
    """Numerical parity of a converted model against its original: PASS (exit 0) or FAIL (exit 1).

    Both models run on identical real inputs; per output: max/mean/p99 absolute error, max relative
    error, cosine, SNR, top-1/top-5 agreement, non-finite counts, and accuracy of both with labels.
    """
    from edgekit.render import render_parity
    from edgekit.toolkit.fsutil import check_writable_target, write_bytes_atomic
    from edgekit.validators.parity import junit_xml
    from edgekit.validators.parity import validate as validate_models
    from edgekit.validators.tolerances import parse_overrides

    for path in (json_file, junit_file):
        if path is not None:
            check_writable_target(path, force=force)
    overrides = parse_overrides(atol, rtol)
    with framework_output_to_stderr():
        report = _isolated(f"validating {candidate} against {reference}", lambda: validate_models(
            reference, candidate, data=data, samples=samples, profile=profile, overrides=overrides))
    render_parity(report)
    if json_file is not None:
        write_bytes_atomic(json_file, (jsonio.dumps(report.to_dict()) + "\n").encode(), force=force)
    if junit_file is not None:
        write_bytes_atomic(junit_file, junit_xml(report).encode(), force=force)
    if not report.passed:
        typer.echo(f"edgekit: parity FAIL: {'; '.join(report.failures())}", err=True)
        raise typer.Exit(int(ExitCode.CHECK_FAILED))


def _ints(option: str, text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a comma-separated list of integers", hint=f"e.g. {option} 1,2") \
            from None


@app.command()
@handle_errors
def bench(
    models: list[Path] = typer.Argument(..., show_default=False, help="One or more models; several are "
                                        "compared side by side (speed-up versus the first)."),
    device: Device = typer.Option(Device.CPU, "--device", help="cpu or cuda."),
    threads: str | None = typer.Option(None, "--threads", help="Thread counts to run, e.g. 1,2 (default 1)."),
    target: str | None = typer.Option(None, "--target", help="Device profile: mobile-cpu-1t, mobile-cpu-4t, "
                                      "desktop-cpu, mcu-int8, cuda."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed runs first (reported)."),
    runs: int = typer.Option(100, "--runs", help="At least this many timed runs …"),
    min_seconds: float = typer.Option(1.0, "--min-seconds", help="… and at least this many seconds of them."),
    data: str | None = typer.Option(None, "--data", help="FILE.npz or random; default: the model's own test data."),
    cpus: str | None = typer.Option(None, "--cpus", help="Pin to these CPUs, e.g. 0,1."),
    json_file: Path | None = typer.Option(None, "--json", help="Write the report (versioned JSON) here."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --json file."),
) -> None:
    """On-device-style latency: warmed up, thread-controlled, percentiles.

    Reports load time, first inference, p50/p90/p99, CV (flagged unstable above 10%), RSS increase,
    size and delegation (TFLite ops on XNNPACK, ExecuTorch delegated share, ONNX Runtime nodes per
    execution provider), with the environment fingerprint in the JSON.
    """
    from edgekit.render import render_bench
    from edgekit.targets.bench import BenchOptions
    from edgekit.targets.bench import bench as bench_models
    from edgekit.targets.profiles import profile
    from edgekit.toolkit.fsutil import check_writable_target, write_bytes_atomic

    if json_file is not None:
        check_writable_target(json_file, force=force)
    chosen = profile(target) if target else None
    thread_counts = _ints("--threads", threads)
    pins = _ints("--cpus", cpus)
    options = BenchOptions(warmup=warmup, runs=runs, min_seconds=min_seconds, device=device,
                           cpus=tuple(pins) if pins else None)
    with framework_output_to_stderr():
        report = _isolated("benchmarking", lambda: bench_models(
            [str(m) for m in models], options=options, threads=thread_counts, profile=chosen, data=data))
    render_bench(report)
    if json_file is not None:
        write_bytes_atomic(json_file, (jsonio.dumps(report.to_dict()) + "\n").encode(), force=force)
        typer.echo(f"report: {json_file}")


@app.command()
@handle_errors
def pipeline(
    models: list[Path] | None = typer.Argument(None, show_default=False, help="Models to start from; none: train "
                                               "the digits CNN in PyTorch and in Keras (seeded)."),
    to: str = typer.Option("all", "--to", help="all, or some of tflite,onnx,torchscript,executorch."),
    quantize: str = typer.Option("all", "--quantize", help="all, or some of none,fp16,dynamic,int8,int8-io,int16x8 "
                                 "(each route runs the modes it supports; the rest are listed as having no route)."),
    data: str | None = typer.Option(None, "--data", help="Default models: what they train on (digits or FILE.npz). "
                                    "Given models: parity, calibration and bench data (default: their own)."),
    calibration: str | None = typer.Option(None, "--calibration", help="Calibration data for int8 modes "
                                           "(default: the model's own, else --data)."),
    device: Device = typer.Option(Device.CPU, "--device", help="Bench on cpu or cuda (runtimes without a CUDA "
                                  "path bench on CPU, noted in their row)."),
    threads: int = typer.Option(1, "--threads", help="Bench threads."),
    min_seconds: float = typer.Option(0.25, "--min-seconds", help="Bench each artifact at least this long."),
    bench: bool = typer.Option(True, "--bench/--no-bench", help="Measure latency (reference and every artifact)."),
    samples: int = typer.Option(500, "--samples", help="Parity samples per artifact (at most)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Default models: training epochs (default 15)."),
    seed: int = typer.Option(0, "--seed", help="Default models: split, init and batch-order seed."),
    out: Path = typer.Option(Path("edgekit-pipeline"), "--out", "-o", help="Directory for models, artifacts and "
                             "reports."),
    force: bool = typer.Option(False, "--force", help="Replace models, artifacts and reports already in --out."),
) -> None:
    """Model → every applicable route × precision: convert, validate, bench, report.

    One failing row never stops the others. Writes report.json, report.md, junit.xml and a
    self-contained report.html (plots embedded) in --out; exit 1 when any row failed to convert or
    failed parity.
    """
    from dataclasses import replace

    from edgekit.pipeline.run import DEFAULT_BENCH, PipelineOptions, parse_quant_modes, parse_targets, run_pipeline

    options = PipelineOptions(
        targets=parse_targets(to), quantize=parse_quant_modes(quantize), data=data, calibration=calibration,
        samples=samples, epochs=epochs, seed=seed,
        bench=replace(DEFAULT_BENCH, min_seconds=min_seconds, threads=threads, device=device) if bench else None,
    )
    _prepare_out(out, force)
    report, files = _run_with_progress(lambda observer: run_pipeline(models or [], out, options, force=force,
                                                                      observer=observer), out, force)
    if not report.passed:
        raise typer.Exit(int(ExitCode.CHECK_FAILED))


def _prepare_out(out: Path, force: bool, *more: Path | None) -> None:
    """Create the report directory; fail before any work when a report (or ``more``) would be replaced
    without --force."""
    from edgekit.pipeline.run import PIPELINE_DIRS, PIPELINE_LOG, REPORT_FILES
    from edgekit.toolkit.fsutil import check_writable_target

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the directory: {exc.strerror}",
                         hint="choose a writable path") from None
    for name in PIPELINE_DIRS:
        if (out / name).is_symlink():  # edgekit writes only inside --out
            raise UsageError(f"--out {out}: {name} is a symbolic link (to {os.readlink(out / name)})",
                             hint=f"remove {out / name}, or choose another --out")
    for path in (*(out / name for name in (*REPORT_FILES, PIPELINE_LOG)), *more):
        if path is not None:
            check_writable_target(path, force=force)


def _run_with_progress(run: Callable[[Any], Any], out: Path, force: bool,
                       finish: Callable[[Any], Any] = lambda report: report) -> tuple[Any, dict[str, Path]]:
    """Run a pipeline with a Rich progress bar on the terminal while the frameworks' own output goes to
    ``pipeline.log`` in ``out``; ``finish`` amends the report (``check`` adds its verdict); then write the
    reports and draw the table."""
    import os

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from edgekit.pipeline.report import RowStatus
    from edgekit.pipeline.run import PIPELINE_LOG, Observer, write_reports
    from edgekit.render import render_pipeline
    from edgekit.toolkit.stdio import framework_output_to_file

    log = out / PIPELINE_LOG
    with framework_output_to_file(log, replace=force) as (stdout_fd, stderr_fd):
        stdout = os.fdopen(os.dup(stdout_fd), "w", encoding="utf-8")
        stderr = os.fdopen(os.dup(stderr_fd), "w", encoding="utf-8")
        with stdout, stderr:
            terminal = Console(file=stderr, highlight=False, soft_wrap=True)
            progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=terminal, transient=True)
            colours = {RowStatus.PASSED: "green", RowStatus.PARITY_FAILED: "red",
                       RowStatus.CONVERSION_FAILED: "yellow"}

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
            with progress:
                report = finish(run(Bar()))
            files = write_reports(report, out, force=force)
            # Piped or logged (CI, make): wide enough for the whole table on one line per row.
            width = None if stdout.isatty() else 200
            render_pipeline(report, files, Console(file=stdout, highlight=False, soft_wrap=True, width=width))
    return report, files


@app.command()
@handle_errors
def check(
    config: Path = typer.Option(Path("edgekit.toml"), "--config", "-c", help="The gate's TOML config (see README)."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write the JUnit XML here (always in the out "
                                      "directory)."),
    write_baseline: Path | None = typer.Option(None, "--write-baseline", help="Save this run's report (with "
                                               "latency) as the baseline for max_p50_ratio."),
    force: bool = typer.Option(False, "--force", help="Replace outputs of an earlier check run."),
) -> None:
    """CI gate: run what edgekit.toml asks for and hold its thresholds (exit 1 listing each violation).

    Thresholds: min_accuracy, max_accuracy_drop, max_p50_ratio (against a baseline report),
    max_size_bytes, require_parity; globally or per FORMAT, PRECISION or FORMAT.PRECISION.
    """
    from dataclasses import replace

    from edgekit.pipeline.gate import judge, load_baseline, load_config
    from edgekit.pipeline.run import DEFAULT_BENCH, PipelineOptions, parse_quant_modes, parse_targets, run_pipeline
    from edgekit.toolkit.fsutil import write_bytes_atomic

    cfg = load_config(config)
    baseline = load_baseline(cfg.baseline) if cfg.baseline is not None and cfg.needs_latency else None
    measure = cfg.needs_latency or write_baseline is not None  # latency only when something uses it
    options = PipelineOptions(
        targets=parse_targets(",".join(cfg.to)), quantize=parse_quant_modes(",".join(cfg.quantize)), data=cfg.data,
        calibration=cfg.calibration, samples=cfg.samples, epochs=cfg.epochs, seed=cfg.seed,
        bench=replace(DEFAULT_BENCH, min_seconds=cfg.min_seconds, threads=cfg.threads) if measure else None,
    )
    _prepare_out(cfg.out, force, junit, write_baseline)
    verdicts = []

    def finish(report: Any) -> Any:
        verdicts.append(judge(report, cfg, baseline))
        return replace(report, violations=verdicts[0].violations)

    report, files = _run_with_progress(
        lambda observer: run_pipeline(cfg.models, cfg.out, options, force=force, observer=observer),
        cfg.out, force, finish)
    verdict = verdicts[0]
    if junit is not None:
        write_bytes_atomic(junit, files["junit"].read_bytes(), force=force)
    if write_baseline is not None:
        write_bytes_atomic(write_baseline, files["json"].read_bytes(), force=force)
        typer.echo(f"baseline: {write_baseline}")
    for note in verdict.notes:
        typer.echo(f"edgekit: note: {note}", err=True)
    if not verdict.passed:
        for violation in verdict.violations:
            typer.echo(f"edgekit: check failed: {violation}", err=True)
        typer.echo(f"edgekit: check FAILED: {len(verdict.violations)} violation(s) of {config}", err=True)
        raise typer.Exit(int(ExitCode.CHECK_FAILED))
    typer.echo(f"check passed: {len(report.rows)} artifacts hold every threshold of {config}")


@app.command()
@handle_errors
def package(
    model: Path | None = typer.Argument(None, show_default=False, help="A .tflite, .pte or .onnx model (with "
                                        "its sidecar, when edgekit made it)."),
    output: Path | None = typer.Option(None, "-o", "--output", help="The bundle (.zip)."),
    labels: Path | None = typer.Option(None, "--labels", help="Class labels (one per line, or a JSON list); "
                                       "default: the model's own."),
    name: str | None = typer.Option(None, "--name", help="Bundle name (default: the model file's stem)."),
    bench_seconds: float = typer.Option(0.5, "--bench-seconds", help="Latency summary measured for this long "
                                        "(0: none)."),
    sign: Path | None = typer.Option(None, "--sign", metavar="KEY.pem", help="Sign the bundle with this Ed25519 "
                                     "private key (PEM PKCS8 or OpenSSH, unencrypted; see edgekit keygen): adds "
                                     "signature.json, a signature of model.json, which holds every file's sha256."),
    verify_bundle: Path | None = typer.Option(None, "--verify", help="Verify this bundle instead: its zip and "
                                              "names, every sha256, the model's format, then the goldens re-run "
                                              "(exit 1 on any mismatch)."),
    public_key: Path | None = typer.Option(None, "--public-key", metavar="KEY.pub.pem", help="With --verify: "
                                           "require a valid signature by this Ed25519 public key (PEM or OpenSSH). "
                                           "Without it, verification proves internal consistency, not origin."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle."),
    json_out: bool = typer.Option(False, "--json", help="Print model.json (or the verification) as JSON."),
) -> None:
    """Bundle a model for a mobile app: model, model.json contract, goldens, labels, Android snippet.

    edgekit package model.int8.tflite -o digits.zip [--sign KEY.pem];
    edgekit package --verify digits.zip [--public-key KEY.pub.pem]
    """
    from edgekit.packaging import package as package_model
    from edgekit.packaging import public_key_path, verify

    if verify_bundle is not None:
        if model is not None or output is not None or sign is not None:
            raise UsageError("--verify takes only the bundle (and --public-key)",
                             hint="edgekit package --verify BUNDLE.zip [--public-key KEY.pub.pem]")
        with framework_output_to_stderr():
            result = _isolated(f"verifying {verify_bundle}", lambda: verify(verify_bundle, public_key=public_key))
        if json_out:
            typer.echo(jsonio.dumps({"bundle": str(result.bundle), "passed": result.passed,
                                     "checks": [{"name": n, "passed": ok, "detail": d} for n, ok, d in result.checks]}))
        else:
            for check_name, ok, detail in result.checks:
                typer.echo(f"  {'ok  ' if ok else 'FAIL'}  {check_name}: {detail}")
            typer.echo(f"{verify_bundle}: {'verified' if result.passed else 'VERIFICATION FAILED'}")
        if not result.passed:
            bad_signature = any(n == "signature" and not ok for n, ok, _ in result.checks)
            fix = ("do not use it: it is not the bundle that key signed; get it again from its publisher, or check "
                   "that --public-key is theirs" if bad_signature else "package the model again; do not edit a "
                   "bundle by hand")
            typer.echo(f"edgekit: error: {verify_bundle}: {'; '.join(result.failures())} (fix: {fix})", err=True)
            raise typer.Exit(int(ExitCode.CHECK_FAILED))
        return
    if public_key is not None:
        raise UsageError("--public-key goes with --verify",
                         hint="sign with --sign KEY.pem; check with edgekit package --verify BUNDLE.zip "
                              "--public-key KEY.pub.pem")
    if model is None or output is None:
        raise UsageError("package needs MODEL and -o BUNDLE.zip (or --verify BUNDLE.zip)",
                         hint="edgekit package model.tflite -o model.zip")
    with framework_output_to_stderr():
        result = _isolated(f"packaging {model}", lambda: package_model(
            model, output, name=name, labels=labels, bench_seconds=bench_seconds, force=force, sign_key=sign))
    manifest = result.manifest
    if json_out:
        typer.echo(jsonio.dumps(manifest))
        return
    typer.echo(f"packaged {manifest['model']['file']} ({manifest['model']['format']}, "
               f"{manifest['model']['precision']}) → {result.bundle} in {result.seconds:.1f} s")
    for member, digest in manifest["files"].items():
        typer.echo(f"  {member:<22} {digest[:16]}…")
    parity = manifest.get("parity")
    typer.echo(f"  parity  {parity['verdict'] if parity else 'not recorded (no edgekit sidecar)'}")
    latency = manifest.get("latency")
    if latency:
        typer.echo(f"  latency p50 {latency['p50_ms']:.3f} ms on {latency['measured_on']} (1 thread)")
    if result.signed_by and sign is not None:
        typer.echo(f"  signed  by ed25519 key {result.signed_by} (signature.json)")
        public = public_key_path(sign)
        typer.echo(f"verify with: edgekit package --verify {result.bundle} --public-key "
                   f"{public if public.is_file() else 'KEY.pub.pem'}")
    else:
        typer.echo(f"verify with: edgekit package --verify {result.bundle}")


@app.command()
@handle_errors
def keygen(
    output: Path = typer.Option(..., "-o", "--output", metavar="KEY.pem", help="The private key (PEM PKCS8, "
                                "mode 0600); its public half is written beside it as KEY.pub.pem."),
    force: bool = typer.Option(False, "--force", help="Replace existing key files."),
) -> None:
    """Make an Ed25519 key pair to sign bundles (package --sign) and check them (package --verify --public-key).

    edgekit keygen -o release.pem → release.pem (private: keep it secret) and release.pub.pem
    """
    from edgekit.packaging import generate_keypair

    keys = generate_keypair(output, force=force)
    typer.echo(f"private key  {keys.private_key} (mode 0600; keep it secret, out of bundles and repositories)")
    typer.echo(f"public key   {keys.public_key} (give it to whoever verifies your bundles)")
    typer.echo(f"fingerprint  {keys.fingerprint} (sha256 of the raw Ed25519 public key)")
    typer.echo(f"sign with:   edgekit package MODEL -o BUNDLE.zip --sign {keys.private_key}")
    typer.echo(f"verify with: edgekit package --verify BUNDLE.zip --public-key {keys.public_key}")


def _floats(option: str, text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a comma-separated list of numbers", hint=f"e.g. {option} 0.5,0.5") \
            from None


@app.command("import")
@handle_errors
def import_(
    source: str = typer.Argument(..., show_default=False,
                                 help="A model file or SavedModel directory, package.module:factory, or "
                                      "keras:<Application> (seeded random weights, no download)."),
    output: Path = typer.Option(..., "-o", "--output", help="Artifact path (extension added if missing)."),
    input_shape: list[str] = typer.Option([], "--input-shape", metavar="NAME=D1,D2,…",
                                          help="Input shape (repeatable); required for torch models."),
    weights: Path | None = typer.Option(None, "--weights", help="torch state_dict (.pt, loaded weights-only) or "
                                        "Keras .weights.h5 for the factory's model."),
    labels: Path | None = typer.Option(None, "--labels", help="Class labels: one per line, or a JSON list."),
    scale: float = typer.Option(1.0, "--scale", help="Raw pixel × scale before normalising (e.g. 0.00392157)."),
    mean: str | None = typer.Option(None, "--mean", help="Per-channel mean, e.g. 0.485,0.456,0.406."),
    std: str | None = typer.Option(None, "--std", help="Per-channel std, e.g. 0.229,0.224,0.225."),
    layout: Layout | None = typer.Option(None, "--layout", help="nchw or nhwc (default: from the contract)."),
    seed: int = typer.Option(0, "--seed", help="Seed for keras:<Application> weights."),
    force: bool = typer.Option(False, "--force", help="Replace an existing artifact."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Bring a model in: normalise it into an artifact with its contract.

    torch → .pt2, Keras → .keras; SavedModel, ONNX, TFLite, TorchScript and .pte are copied. The
    result is loaded and run once before it and its sidecar appear.
    """
    from edgekit.importing import ImportOptions, import_model
    from edgekit.render import render_import
    from edgekit.toolkit.contract.iospec import parse_input_shapes

    options = ImportOptions(
        input_shapes=parse_input_shapes(input_shape), weights=weights, labels=labels, scale=scale,
        mean=_floats("--mean", mean), std=_floats("--std", std), layout=layout, seed=seed,
    )
    with framework_output_to_stderr():
        result = _isolated(f"importing {source}", lambda: import_model(source, output, options, force=force))
    if json_out:
        typer.echo(jsonio.dumps(result.to_dict()))
    else:
        render_import(result)


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="edgekit")
    except KeyboardInterrupt:
        typer.echo("edgekit: interrupted", err=True)
        sys.exit(130)
