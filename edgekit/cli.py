"""The ``edgekit`` command: parse, call one library function (``edgekit.api``), render (``edgekit.render``),
and turn the result or the error tree into an exit code.

Only typer and edgekit's framework-free core are imported at start-up; each command imports what it needs
when it runs, so ``edgekit --help`` stays fast. The global options are parameters of the library calls
(``trust``, ``timeout``, ``memory_limit_mb``), not environment variables.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from edgekit import __version__
from edgekit.models import Arch, Framework
from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.errors import (
    EdgekitError,
    ExitCode,
    Terminated,
    UsageError,
    first_line,
    speaking_as_cli,
)
from edgekit.toolkit.contract.formats import output_formats
from edgekit.toolkit.contract.options import Device, Layout, QuantMode, quant_mode_help
from edgekit.toolkit.stdio import framework_output_to_log, to_user
from edgekit.toolkit.text import terminal_safe
from edgekit.validators.tolerances import Profile

EXIT_CODES_HELP = (
    "Exit codes: 0 ok · 1 check failed · 2 usage error · 3 invalid or unsupported input · "
    "4 refused for safety · 5 conversion/runtime failure · 6 resource limit or timeout · 70 internal error · "
    "130 interrupted · 143/129 terminated by SIGTERM/SIGHUP."
)
# validate and bench took `--json FILE` to write the report; --json now prints it, --json-out FILE writes it.
DEPRECATED_JSON_FILE = ("validate", "bench")

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
    verbose = False
    trust = False
    timeout: float | None = None
    memory_limit: int | None = None


def _err(text: str, *, lines: bool = False) -> None:
    """One stderr line (``lines``: a --debug traceback, newlines kept): names from a model in it are data, so
    control characters show in a visible form (``toolkit.text.terminal_safe``) instead of moving, colouring or
    ringing the terminal, or starting a line of their own."""
    typer.echo(terminal_safe(text, keep="\n\t" if lines else ""), err=True)


def _frameworks_quiet(command: str) -> Any:
    """The frameworks' output while a command works (TF/absl logs, C++ stderr, warnings, logged tracebacks):
    to a per-run log named in one line on stderr, or left on stderr with --verbose; stdout stays clean."""
    return framework_output_to_log(command, verbose=_State.verbose)


def _limits() -> dict[str, Any]:
    """The global options, as the library's keyword arguments."""
    return {"trust": _State.trust, "timeout": _State.timeout, "memory_limit_mb": _State.memory_limit}


F = TypeVar("F", bound=Callable[..., Any])


def _log_note(exc: BaseException) -> str:
    """Where the failed command's framework output went (``framework_output_to_log``), for its one error line;
    with --debug it gets a line of its own above the traceback."""
    log = getattr(exc, "framework_log", None)
    if log and _State.debug:
        _err(f"edgekit: framework output → {log}")
    return f" [framework output: {log}]" if log else ""


def handle_errors(command: F) -> F:
    """Turn the error tree into one stderr line and its exit code; tracebacks only with --debug."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with speaking_as_cli():
                return command(*args, **kwargs)
        except EdgekitError as exc:
            note = _log_note(exc)
            if _State.debug:
                raise
            _err(f"edgekit: error: {exc.one_line()}{note}")
            raise typer.Exit(int(exc.exit_code)) from None
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as exc:
            note = _log_note(exc)
            if _State.debug:
                raise
            _err(f"edgekit: {_interrupted(exc)} (outputs in progress were removed){note}")
            raise typer.Exit(getattr(exc, "exit_code", 130)) from None
        except MemoryError as exc:
            note = _log_note(exc)
            if _State.debug:
                raise
            _err(f"edgekit: error: out of memory (fix: use a smaller model or input, or free memory){note}")
            raise typer.Exit(int(ExitCode.RESOURCE_LIMIT)) from None
        except Exception as exc:  # a bug in edgekit or an unexpected framework failure
            note = _log_note(exc)
            if _State.debug:
                trace = getattr(exc, "trace", None)  # from an isolated worker
                if trace:
                    _err(trace, lines=True)
                raise
            _err(
                f"edgekit: internal error: {type(exc).__name__}: {first_line(exc)} "
                f"(rerun with --debug for the traceback){note}")
            raise typer.Exit(int(ExitCode.INTERNAL)) from None

    return wrapper  # type: ignore[return-value]


def _finish(result: Any, failure: str | None = None) -> None:
    """Exit with the result's code (``edgekit.api.exit_code``: one place for result → code); ``failure`` is
    the line to print first when it did not pass."""
    from edgekit.api import exit_code

    code = exit_code(result)
    if code:
        if failure:
            _err(f"edgekit: {failure}")
        raise typer.Exit(code)


def _write_json(path: Path | None, data: dict[str, Any], force: bool) -> None:
    if path is not None:
        from edgekit.toolkit.fsutil import write_bytes_atomic

        write_bytes_atomic(path, (jsonio.dumps(data) + "\n").encode(), force=force)


def _report_outputs(data: dict[str, Any], *, json_out: bool, render: Callable[[], None], json_file: Path | None,
                    html_file: Path | None, html: Callable[[dict[str, Any]], str], force: bool) -> None:
    """A report command's outputs: JSON on stdout or the terminal rendering, then the JSON and HTML files."""
    if json_out:
        typer.echo(jsonio.dumps(data))
    else:
        render()
    _write_json(json_file, data, force)
    if html_file is not None:
        from edgekit.toolkit.fsutil import write_bytes_atomic

        write_bytes_atomic(html_file, html(data).encode(), force=force)


def _check_outputs(force: bool, *paths: Path | None) -> None:
    from edgekit.toolkit.fsutil import check_writable_target

    for path in paths:
        if path is not None:
            check_writable_target(path, force=force)


def _numbers(name: str, text: str | None, kind: type) -> list[Any] | None:
    if text is None:
        return None
    try:
        return [kind(v) for v in text.split(",")]
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise UsageError(f"--{name} {text!r} is not a comma-separated list of {what}",
                         hint=f"e.g. --{name} {'1,2' if kind is int else '0.5,0.5'}") from None


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_version_callback),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    verbose: bool = typer.Option(False, "--verbose", help="Show the frameworks' own output (TF/absl logs, "
                                 "warnings, native stderr) on stderr instead of in a per-run log (named when "
                                 "written; in $EDGEKIT_LOG_DIR, default ~/.local/state/edgekit/logs)."),
    trust: bool = typer.Option(False, "--trust", help="Load models whose code the loading policy refuses (Keras "
                               "Lambda/custom layers, TorchScript and .pt2 code, ONNX external data outside the "
                               "model's directory), with a warning. Pickles and native code stay refused."),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds a model load/conversion may take in its "
                                         "isolated worker (default 3600; exit 6 when exceeded)."),
    memory_limit: int | None = typer.Option(None, "--memory-limit", metavar="MIB", help="Resident memory the "
                                            "worker may use (exit 6 when exceeded; default: 80% of RAM)."),
) -> None:
    if timeout is not None and not timeout > 0:
        raise typer.BadParameter(f"must be > 0, got {timeout}", param_hint="--timeout")
    if memory_limit is not None and memory_limit < 1:
        raise typer.BadParameter(f"must be ≥ 1 MiB, got {memory_limit}", param_hint="--memory-limit")
    _State.debug, _State.trust, _State.timeout, _State.memory_limit = debug, trust, timeout, memory_limit
    _State.verbose = verbose




_EXECUTOR_HELP = ("Where the cells run: process (crash-isolated workers that keep each framework imported; a "
                  "crash, --timeout or --memory-limit ends only its row), serial (this process, for debugging) or "
                  "ray (Ray tasks; pip install 'edgekit[ray]').")
_JOBS_HELP = "process: workers side by side (default 1); ray: CPUs of the local Ray (default: all). Benchmarks " \
             "on one machine always take turns."
_RAY_HELP = ("--executor ray: join the Ray cluster at this address (default: start a local Ray for the run; "
             "RAY_ADDRESS is never used silently).")
_RANGE_HELP = ("Values an input takes where the model does not show them (repeatable): integers [LOW, HIGH), "
               "e.g. input_ids=0:30522; reals [LOW, HIGH].")


@app.command()
@handle_errors
def info(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")) -> None:
    """Versions, CPU and ISA flags, CUDA, installed extras, runtimes, routes and compat targets.

    Backend versions come from package metadata (no framework is imported); CUDA is probed through the
    driver itself. Each extra (pip install 'edgekit[onnx]') is listed as present, partly present (with what
    is missing) or absent.
    """
    from edgekit.render import render_info
    from edgekit.toolkit.contract import extras
    from edgekit.toolkit.contract.compat import COMPAT_TARGETS
    from edgekit.toolkit.contract.registry import CONVERTERS, RUNTIMES
    from edgekit.toolkit.sysinfo import environment_fingerprint

    env = environment_fingerprint()
    data = {"edgekit": __version__, **env, "extras": extras.status(),
            "runtimes": [spec.to_dict() for spec in RUNTIMES], "routes": [spec.to_dict() for spec in CONVERTERS],
            "compat_targets": [t.to_dict() for t in COMPAT_TARGETS.values()]}
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
    input_range: list[str] = typer.Option([], "--input-range", metavar="NAME=LOW:HIGH", help=_RANGE_HELP),
) -> None:
    """What a model is: format, I/O contract, ops, size.

    Also parameters, delegation and quantization where the format exposes them, and one inference on
    seeded inputs to prove the model runs (--no-run to skip).
    """
    from edgekit.api import inspect_model
    from edgekit.render import render_inspect
    from edgekit.toolkit.contract.domains import parse_input_ranges
    from edgekit.toolkit.contract.iospec import parse_input_shapes

    with _frameworks_quiet("inspect"):
        report = inspect_model(model, input_shapes=parse_input_shapes(input_shape), smoke_run=run,
                               input_ranges=parse_input_ranges(input_range), **_limits())
    if json_out:
        typer.echo(jsonio.dumps(report.to_dict()))
    else:
        render_inspect(report)
    error = report.smoke_run.error if report.smoke_run else ""
    _finish(report, f"error: {model}: the model loads but does not run: {error}")


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

    Writes the model, <model>.data.npz (calibration and test splits, preprocessed, with labels; at most
    256 MiB of inputs each) and the sidecar with the I/O contract, labels, preprocessing and test accuracy.
    Inputs are resized batch by batch, and training runs in a worker under --memory-limit (exit 6 when
    exceeded); --timeout applies only when given.
    """
    from edgekit.api import train as train_model
    from edgekit.render import render_epoch, render_train

    def on_epoch(stats: Any) -> None:  # epoch progress reaches stderr; the frameworks' output goes to the log
        with to_user():
            render_epoch(stats)

    with _frameworks_quiet("train"):
        result = train_model(framework=framework.value, arch=arch.value, output=output, data=data, epochs=epochs,
                             seed=seed, batch_size=batch_size, learning_rate=learning_rate, image_size=image_size,
                             force=force, on_epoch=None if json_out else on_epoch,
                             timeout=_State.timeout, memory_limit_mb=_State.memory_limit)
    if json_out:
        typer.echo(jsonio.dumps(result.to_dict()))
    else:
        render_train(result)


_FORMATS_HELP = ", ".join(f.value for f in output_formats())


@app.command()
@handle_errors
def convert(
    model: str = typer.Argument(..., show_default=False, help="Model file, SavedModel directory, or "
                                "package.module:factory (with --input-shape)."),
    to: str | None = typer.Option(None, "--to", metavar="FORMAT", help=f"{_FORMATS_HELP} (required unless "
                                  "--recipe gives it)."),
    quantize: str = typer.Option("none", "--quantize", metavar="MODE", help=f"{quant_mode_help()} (see `edgekit "
                                 "routes` for what each route supports)."),
    calibration: str | None = typer.Option(None, "--calibration", help="digits, FILE.npz, IMAGE_DIR or random; "
                                           "default: the model's own data from train/import."),
    calibration_samples: int = typer.Option(100, "--calibration-samples", help="How many samples to calibrate on."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Default: beside the input, e.g. "
                                       "model.int8.tflite."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output."),
    via: str | None = typer.Option(None, "--via", metavar="FORMAT", help="Route through this format (e.g. --via "
                                   "onnx)."),
    nhwc: bool = typer.Option(False, "--nhwc", help="torch → tflite: channels-last image inputs."),
    script: bool = typer.Option(False, "--script", help="torch → torchscript by scripting: refused for .pt2 "
                                "sources, which hold a traced graph (script in your code, then import)."),
    opset: int | None = typer.Option(None, "--opset", help="ONNX opset version."),
    input_shape: list[str] = typer.Option([], "--input-shape", metavar="NAME=D1,D2,…",
                                          help="Input shapes where the source records none."),
    input_range: list[str] = typer.Option([], "--input-range", metavar="NAME=LOW:HIGH", help=_RANGE_HELP),
    data: str | None = typer.Option(None, "--data", help="Parity data: FILE.npz (one array per input name), "
                                    "digits, IMAGE_DIR or random; default: the model's own test split."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Check parity against the original "
                                  "(default); a FAIL keeps the artifact, marked failed, and exits 1."),
    keep_float: list[str] = typer.Option([], "--keep-float", metavar="PATTERN", help="Leave matching layers "
                                         "float when quantizing: a layer/module path (head, enc.fc_in), a glob, "
                                         "or an op type (LayerNorm, Softmax); repeatable."),
    quantizer: str | None = typer.Option(None, "--quantizer", metavar="TOOL", help="The quantization tool, where "
                                         "a route has several: torch → tflite has ai-edge-quantizer (every mode) "
                                         "and pt2e (int8-io, its default; dynamic); see edgekit routes."),
    min_cosine: float | None = typer.Option(None, "--min-cosine", metavar="C", help="Accuracy budget: leave the "
                                            "costliest layers float until every output's cosine is ≥ C."),
    max_accuracy_drop: float | None = typer.Option(None, "--max-accuracy-drop", metavar="POINTS", help="Accuracy "
                                                   "budget on labelled data: at most POINTS of top-1 lost."),
    recipe: Path | None = typer.Option(None, "--recipe", metavar="SIDECAR", help="Make the artifact a sidecar "
                                       "records again (its --to, --via, --quantize, --quantizer, --keep-float, "
                                       "calibration): the same bytes from the same source."),
    layer_report: bool = typer.Option(False, "--layer-report", help="Also report each quantized layer's error "
                                      "against the float graph (as quant-report does; in --json too)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Convert a model: edgekit convert model.pt2 --to tflite.

    Plans the route (composing converters when there is no direct one), calibrates on real data,
    loads and runs the artifact once, and writes it atomically with its provenance sidecar.
    """
    from edgekit.api import convert as convert_model
    from edgekit.render import render_convert
    from edgekit.toolkit.contract.domains import parse_input_ranges
    from edgekit.toolkit.contract.iospec import parse_input_shapes

    made: dict[str, Any] = {"to": to, "via": via, "quantize": quantize, "calibration": calibration,
                            "calibration_samples": calibration_samples, "nhwc": nhwc, "script": script, "opset": opset,
                            "keep_float": keep_float, "quantizer": quantizer, "min_cosine": min_cosine,
                            "max_accuracy_drop": max_accuracy_drop}
    if recipe is not None:
        made = _from_recipe(recipe, made, model)
    elif to is None:
        raise UsageError("convert needs --to FORMAT", hint=f"one of: {_FORMATS_HELP}; or --recipe SIDECAR")
    with _frameworks_quiet("convert"):
        result = convert_model(model, **made, output=output, force=force,
                               input_shapes=parse_input_shapes(input_shape),
                               input_ranges=parse_input_ranges(input_range), data=data, validate=validate,
                               layer_report=layer_report, **_limits())
    for warning in result.warnings:
        _err(f"edgekit: warning: {warning}")
    if json_out:
        typer.echo(jsonio.dumps(result.to_dict()))
    else:
        render_convert(result)
        if result.quant_report is not None:
            from edgekit.render import render_quant_report

            render_quant_report(result.quant_report)
    failures = "; ".join(result.parity.failures()) if result.parity is not None else ""
    if "budget" in result.artifact.extra:
        kept = ", ".join(result.artifact.options.get("keep_float", [])) or "nothing"
        _finish(result, f"accuracy budget not met: the best model found (kept float: {kept}) is kept, marked "
                        f"failed in its sidecar: {failures}")
    _finish(result, f"parity FAIL (artifact kept, marked failed in its sidecar): {failures}")


def _from_recipe(recipe: Path, given: dict[str, Any], model: str) -> dict[str, Any]:
    """convert's options from a recorded recipe; an option that the recipe sets, given too, is a usage error."""
    from edgekit.budget import read_recipe
    from edgekit.toolkit.fsutil import sha256_of

    defaults = {"to": None, "via": None, "quantize": "none", "calibration": None, "calibration_samples": 100,
                "nhwc": False, "script": False, "opset": None, "keep_float": [], "quantizer": None, "min_cosine": None,
                "max_accuracy_drop": None}
    clash = [name for name, value in given.items() if value != defaults[name]]
    if clash:
        flags = ", ".join("--" + name.replace("_", "-") for name in clash)
        raise UsageError(f"--recipe {recipe.name} sets {flags} itself", hint=f"drop {flags}, or drop --recipe")
    read = read_recipe(recipe)
    source = Path(model)
    if read.source_sha256 and source.is_file() and sha256_of(source) != read.source_sha256:
        _err(f"edgekit: warning: {read.path.name} was recorded for another source file than {source.name} "
             "(sha256 differs): the artifact will not be the same file")
    return read.to_kwargs()


@app.command()
@handle_errors
def compat(
    model: Path = typer.Argument(..., help="A .tflite, .onnx or .pte file.", show_default=False),
    target: list[str] = typer.Option(
        [], "--target", metavar="TARGET", show_default=False,
        help="Repeatable: tflite-xnnpack, tflite-gpu, litert, onnx-nnapi, onnx-coreml, onnxruntime, "
             "executorch-xnnpack, executorch, all, or a device profile (android-gpu, mobile-cpu-4t, …). "
             "Default: every target of the model's format."),
    ops: bool = typer.Option(False, "--ops", help="List every operator, not only those that do not run."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    json_file: Path | None = typer.Option(None, "--json-out", metavar="FILE", help="Write the report (JSON) here."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --json-out file."),
) -> None:
    """Will this artifact run on a device class, and where: every operator per target.

    Each operator is supported, unsupported or unknown, with the reason and the evidence it rests on:
    static rule (the target's published rules), compiler check (what its partitioner recorded in the file)
    or runtime check on this machine. Exit 1 when any requested target has an operator that is not
    supported, 0 when all run.
    """
    from edgekit.api import compat as check
    from edgekit.render import render_compat

    _check_outputs(force, json_file)
    with _frameworks_quiet("compat"):
        report = check(model, targets=target or None, **_limits())
    if json_out:
        typer.echo(jsonio.dumps(report.to_dict()))
    else:
        render_compat(report, every_op=ops)
    _write_json(json_file, report.to_dict(), force)
    failing = [t for t in report.targets if t.support.value != "supported"]
    _finish(report, f"{model}: not every operator runs on {', '.join(t.target for t in failing)}" if failing else None)


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
    data: str | None = typer.Option(None, "--data", help="FILE.npz (one array per input name, optional labels; "
                                    "or test_x/test_y), digits, IMAGE_DIR or random; default: the model's own test "
                                    "split from train/import."),
    samples: int = typer.Option(500, "--samples", help="At most this many samples."),
    input_range: list[str] = typer.Option([], "--input-range", metavar="NAME=LOW:HIGH", help=_RANGE_HELP),
    profile: Profile = typer.Option(Profile.AUTO, "--profile", help="auto (from the candidate's precision), fp32, "
                                    "fp16, dynamic or int8."),
    atol: list[str] = typer.Option([], "--atol", metavar="[NAME=]X", help="Elementwise absolute tolerance, for all "
                                   "outputs or one (repeatable)."),
    rtol: list[str] = typer.Option([], "--rtol", metavar="[NAME=]Y", help="Elementwise relative tolerance."),
    json_out: bool = typer.Option(False, "--json", help="Print the versioned JSON report on stdout."),
    json_file: Path | None = typer.Option(None, "--json-out", metavar="FILE", help="Write the versioned JSON "
                                          "report here."),
    junit_file: Path | None = typer.Option(None, "--junit", help="Write JUnit XML (a test case per output and check)."),
    localize_on_fail: bool = typer.Option(False, "--localize", help="On FAIL, run edgekit localize on the same data "
                                          "and print where the numbers part (the layer, its module path)."),
    force: bool = typer.Option(False, "--force", help="Replace existing report files."),
) -> None:
    """Numerical parity of a converted model against its original: PASS (exit 0) or FAIL (exit 1).

    Both models run on identical real inputs; per output: max/mean/p99 absolute error, max relative
    error, cosine, SNR, top-1/top-5 agreement (on decisive samples), non-finite counts, and accuracy of both
    with labels.
    """
    from edgekit.api import validate as validate_models
    from edgekit.render import render_parity
    from edgekit.toolkit.contract.domains import parse_input_ranges
    from edgekit.toolkit.fsutil import write_bytes_atomic
    from edgekit.validators.tolerances import parse_tolerances

    _check_outputs(force, json_file, junit_file)
    with _frameworks_quiet("validate"):
        report = validate_models(reference, candidate, data=data, samples=samples, profile=profile.value,
                                 atol=parse_tolerances("atol", atol), rtol=parse_tolerances("rtol", rtol),
                                 input_ranges=parse_input_ranges(input_range), **_limits())
    if json_out:
        typer.echo(jsonio.dumps(report.to_dict()))
    else:
        render_parity(report)
    _write_json(json_file, report.to_dict(), force)
    if junit_file is not None:
        write_bytes_atomic(junit_file, report.to_junit().encode(), force=force)
    if localize_on_fail and not report.passed:
        from edgekit.api import localize as localize_models
        from edgekit.render import render_localize

        with _frameworks_quiet("localize"):
            found = localize_models(reference, candidate, data=data, samples=min(samples, 32), profile=profile.value,
                                    input_ranges=parse_input_ranges(input_range), **_limits())
        if json_out:
            typer.echo(jsonio.dumps({"localize": found.to_dict()}))
        else:
            render_localize(found.to_dict())
    _finish(report, f"parity FAIL: {'; '.join(report.failures())}")


@app.command()
@handle_errors
def localize(
    reference: Path = typer.Argument(..., show_default=False, help="The original model (.pt2, .keras/.h5, .onnx, "
                                     ".tflite)."),
    candidate: Path = typer.Argument(..., show_default=False, help="Its conversion (.onnx, .tflite, .pte, .pt2)."),
    data: str | None = typer.Option(None, "--data", help="FILE.npz (one array per input name), digits, IMAGE_DIR "
                                    "or random; default: the model's own test split, else its synthetic inputs."),
    samples: int = typer.Option(32, "--samples", help="At most this many samples."),
    input_range: list[str] = typer.Option([], "--input-range", metavar="NAME=LOW:HIGH", help=_RANGE_HELP),
    profile: Profile = typer.Option(Profile.AUTO, "--profile", help="auto (from the candidate's precision), fp32, "
                                    "fp16, dynamic or int8: how each layer is judged."),
    taps: bool = typer.Option(False, "--taps", help="ExecuTorch: lower the program again from its source by its "
                              "recipe with every op's value tapped (intermediate_output_tap), to see inside "
                              "delegates."),
    taps_source: Path | None = typer.Option(None, "--taps-source", metavar="FILE", help="The .pt2 the program was "
                                            "converted from (default: the one its sidecar names)."),
    top: int = typer.Option(10, "--top", help="Layers shown in the terminal (JSON and HTML hold all)."),
    json_out: bool = typer.Option(False, "--json", help="Print the versioned JSON report on stdout."),
    json_file: Path | None = typer.Option(None, "--json-out", metavar="FILE", help="Write the JSON report here."),
    html_file: Path | None = typer.Option(None, "--html", metavar="FILE", help="Write an HTML page: the error of "
                                          "every layer against its depth, the origin marked."),
    me_file: Path | None = typer.Option(None, "--me-json", metavar="FILE", help="Write Model Explorer node data "
                                        "(each candidate tensor's SQNR), to overlay on the candidate's graph."),
    force: bool = typer.Option(False, "--force", help="Replace existing report files."),
) -> None:
    """Where a conversion's numbers part from its original's: the first layer that fails while its inputs pass.

    Runs both on the same inputs with every intermediate value captured (FX interpreter, Keras layers, onnxruntime
    with every node output, LiteRT with all tensors preserved, ExecuTorch taps), pairs them by the names converters
    keep (up to NCHW/NHWC and quantization), judges each under the candidate's precision profile and names the
    origin: reference and candidate names, module path, op. Exit 0 when no layer fails, 1 when one does.
    """
    from edgekit.api import localize as localize_models
    from edgekit.localization import localize_html
    from edgekit.render import render_localize
    from edgekit.toolkit.contract.domains import parse_input_ranges

    _check_outputs(force, json_file, html_file, me_file)
    with _frameworks_quiet("localize"):
        report = localize_models(reference, candidate, data=data, samples=samples, profile=profile.value, taps=taps,
                                 taps_source=taps_source, input_ranges=parse_input_ranges(input_range), **_limits())
    data_out = report.to_dict()
    _report_outputs(data_out, json_out=json_out, render=lambda: render_localize(data_out, top=top),
                    json_file=json_file, html_file=html_file, html=localize_html, force=force)
    if me_file is not None:
        from edgekit.validators.localize import model_explorer_data

        _write_json(me_file, model_explorer_data(report.localization), force)
    origin = data_out["origin"]
    if origin is not None:
        from edgekit.render import short_tensor_name

        where = f"origin {origin['module_path'] or origin['reference_name']} ({origin['reference_name']} ↔ " \
                f"{short_tensor_name(origin['candidate_name'], 60)}; {origin['detail']})"
    else:
        where = "the deployed outputs differ while no layer fails (see the notes)"
    _finish(report, f"localize: {where}")


@app.command("quant-report")
@handle_errors
def quant_report(
    model: Path = typer.Argument(..., show_default=False, help="The source the artifact was converted from."),
    artifact: Path = typer.Argument(..., show_default=False, help="The quantized artifact (with its edgekit "
                                    "sidecar, whose recipe is followed)."),
    data: str | None = typer.Option(None, "--data", help="FILE.npz (one array per input name), digits, IMAGE_DIR "
                                    "or random; default: the model's own test split."),
    samples: int = typer.Option(32, "--samples", help="At most this many samples."),
    top: int = typer.Option(15, "--top", help="Layers shown in the terminal (JSON and HTML hold all)."),
    json_out: bool = typer.Option(False, "--json", help="Print the versioned JSON report on stdout."),
    json_file: Path | None = typer.Option(None, "--json-out", metavar="FILE", help="Write the JSON report here."),
    html_file: Path | None = typer.Option(None, "--html", metavar="FILE", help="Write an HTML page with the "
                                          "layers' shares plotted."),
    force: bool = typer.Option(False, "--force", help="Replace existing report files."),
) -> None:
    """Which layers cost a quantized model its accuracy: per layer SQNR, cosine, max |Δ| and share of the error.

    Converts the model again by the artifact's recipe, runs the float graph the quantizer read beside the
    quantized one through the backend's own instrument (LiteRT preserve-all-tensors, onnxruntime
    qdq_loss_debug, torchao's numeric debugger) and ranks the layers, worst first. Exit 0 with a report.
    """
    from edgekit.api import quant_report as report_layers
    from edgekit.quant_report import quant_report_html
    from edgekit.render import render_quant_report

    _check_outputs(force, json_file, html_file)
    with _frameworks_quiet("quant-report"):
        report = report_layers(model, artifact, data=data, samples=samples, **_limits())
    data_out = report.to_dict()
    _report_outputs(data_out, json_out=json_out, render=lambda: render_quant_report(data_out, top=top),
                    json_file=json_file, html_file=html_file, html=quant_report_html, force=force)


@app.command()
@handle_errors
def bench(
    models: list[Path] = typer.Argument(..., show_default=False, help="One or more models; several are "
                                        "compared side by side (speed-up versus the first)."),
    device: Device | None = typer.Option(None, "--device", show_default=False, help="cpu or cuda (default: the "
                                         "--target profile's device, else cpu); given, it wins over the profile's."),
    threads: str | None = typer.Option(None, "--threads", help="Thread counts to run, e.g. 1,2 (default 1)."),
    target: str | None = typer.Option(None, "--target", help="Device profile: mobile-cpu-1t, mobile-cpu-4t, "
                                      "desktop-cpu, mcu-int8, cuda (its compat targets are reported too)."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed runs first (reported)."),
    runs: int = typer.Option(100, "--runs", help="At least this many timed runs …"),
    min_seconds: float = typer.Option(1.0, "--min-seconds", help="… and at least this many seconds of them."),
    data: str | None = typer.Option(None, "--data", help="FILE.npz (one array per input name) or random; default: "
                                    "the model's own test data."),
    input_range: list[str] = typer.Option([], "--input-range", metavar="NAME=LOW:HIGH", help=_RANGE_HELP),
    cpus: str | None = typer.Option(None, "--cpus", help="Pin to these CPUs, e.g. 0,1."),
    json_out: bool = typer.Option(False, "--json", help="Print the report (versioned JSON) on stdout."),
    json_file: Path | None = typer.Option(None, "--json-out", metavar="FILE", help="Write the report (versioned "
                                          "JSON) here."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --json-out file."),
) -> None:
    """On-device-style latency: warmed up, thread-controlled, percentiles.

    Reports load time, first inference, p50/p90/p99, CV (flagged unstable above 10%), RSS increase,
    size and delegation (TFLite ops on XNNPACK, ExecuTorch delegated share, ONNX Runtime nodes per
    execution provider), with the environment fingerprint in the JSON.
    """
    from edgekit.api import bench as bench_models
    from edgekit.render import render_bench
    from edgekit.toolkit.contract.domains import parse_input_ranges

    _check_outputs(force, json_file)
    with _frameworks_quiet("bench"):
        report = bench_models(models, device=device, threads=_numbers("threads", threads, int), target=target,
                              warmup=warmup, runs=runs, min_seconds=min_seconds, data=data,
                              cpus=_numbers("cpus", cpus, int), input_ranges=parse_input_ranges(input_range),
                              **_limits())
    if json_out:
        typer.echo(jsonio.dumps(report.to_dict()))
    else:
        render_bench(report)
    _write_json(json_file, report.to_dict(), force)
    if json_file is not None and not json_out:
        typer.echo(terminal_safe(f"report: {json_file}"))


@app.command()
@handle_errors
def pipeline(
    models: list[Path] | None = typer.Argument(None, show_default=False, help="Models to start from; none: train "
                                               "the digits CNN in PyTorch and in Keras (seeded)."),
    to: str = typer.Option("all", "--to", help=f"all, or some of {','.join(f.value for f in output_formats())}."),
    quantize: str = typer.Option("all", "--quantize", help=f"all, or some of {','.join(q.value for q in QuantMode)} "
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
    executor: str = typer.Option("process", "--executor", help=_EXECUTOR_HELP),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help=_JOBS_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=_RAY_HELP),
    compat: str = typer.Option("all", "--compat", help="Compatibility targets each artifact is checked on (the "
                               "report's compat column): all, none, or comma-separated targets/device profiles, "
                               "e.g. tflite-gpu,onnx-nnapi (see edgekit compat)."),
    min_cosine: float | None = typer.Option(None, "--min-cosine", metavar="C", help="Accuracy budget for every "
                                            "quantized row (as convert's): layers left float until cosine ≥ C."),
    max_accuracy_drop: float | None = typer.Option(None, "--max-accuracy-drop", metavar="POINTS", help="Accuracy "
                                                   "budget on labelled data: at most POINTS of top-1 lost per row."),
) -> None:
    """Model → every applicable route × precision: convert, validate, bench, report.

    One failing row never stops the others, and a crashing converter ends only its own row (crashed).
    Writes report.json, report.md, junit.xml and a self-contained report.html (plots embedded) in --out;
    exit 1 when any row failed to convert, failed parity or crashed.
    """
    from edgekit.api import run_pipeline
    from edgekit.pipeline.executors import ExecutorOptions
    from edgekit.pipeline.run import prepare_out, report_paths
    from edgekit.render import pipeline_progress
    from edgekit.targets.compat import parse_targets

    ExecutorOptions.parse(executor, jobs=jobs, ray_address=ray_address)  # a bad choice fails before any file
    parse_targets([n.strip() for n in compat.split(",") if n.strip() not in ("", "none")], "compat")  # … this too
    prepare_out(out, force)
    with pipeline_progress(out, force) as progress:
        report = run_pipeline(models or [], out=out, to=to, quantize=quantize, data=data, calibration=calibration,
                              samples=samples, bench=bench, device=device, threads=threads, min_seconds=min_seconds,
                              epochs=epochs, seed=seed, force=force, executor=executor, jobs=jobs,
                              ray_address=ray_address, compat=compat, min_cosine=min_cosine,
                              max_accuracy_drop=max_accuracy_drop, observer=progress.observer, **_limits())
        progress.show(report, report_paths(out))
    _finish(report)


@app.command()
@handle_errors
def check(
    config: Path = typer.Option(Path("edgekit.toml"), "--config", "-c", help="The gate's TOML config (see README)."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write the JUnit XML here (always in the out "
                                      "directory)."),
    write_baseline: Path | None = typer.Option(None, "--write-baseline", help="Save this run's report (with "
                                               "latency) as the baseline for max_p50_ratio."),
    force: bool = typer.Option(False, "--force", help="Replace outputs of an earlier check run."),
    executor: str | None = typer.Option(None, "--executor", help=_EXECUTOR_HELP + " Default: the config's "
                                        "executor, else process."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help=_JOBS_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=_RAY_HELP),
) -> None:
    """CI gate: run what edgekit.toml asks for and hold its thresholds (exit 1 listing each violation).

    Thresholds: min_accuracy, max_accuracy_drop, max_p50_ratio (against a baseline report),
    max_size_bytes, require_parity; globally or per FORMAT, MODE or FORMAT.MODE.
    """
    from edgekit.api import check as run_check
    from edgekit.pipeline.executors import ExecutorOptions
    from edgekit.pipeline.gate import load_config
    from edgekit.pipeline.run import prepare_out, report_paths
    from edgekit.render import pipeline_progress

    cfg = load_config(config)
    ExecutorOptions.parse(executor or cfg.executor, jobs=jobs if jobs is not None else cfg.jobs,
                          ray_address=ray_address or cfg.ray_address)  # a bad choice fails before any file
    out = cfg.out
    prepare_out(out, force, junit, write_baseline)
    with pipeline_progress(out, force) as progress:
        result = run_check(config, force=force, junit=junit, write_baseline=write_baseline, executor=executor,
                           jobs=jobs, ray_address=ray_address, observer=progress.observer, **_limits())
        progress.show(result.report, report_paths(out))
    if write_baseline is not None:
        typer.echo(terminal_safe(f"baseline: {write_baseline}"))
    for note in result.verdict.notes:
        _err(f"edgekit: note: {note}")
    for violation in result.verdict.violations:
        _err(f"edgekit: check failed: {violation}")
    if result.passed:
        typer.echo(terminal_safe(f"check passed: {len(result.report.rows)} artifacts hold every threshold of {config}"))
    _finish(result, f"check FAILED: {len(result.verdict.violations)} violation(s) of {config}")


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
    data: Path | None = typer.Option(None, "--data", help="Golden vectors from this FILE.npz (one array per "
                                     "input name); default: the model's own test split, else seeded random."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle."),
    json_out: bool = typer.Option(False, "--json", help="Print model.json (or the verification) as JSON."),
) -> None:
    """Bundle a model for a mobile app: model, model.json contract, goldens, labels, Android snippet.

    edgekit package model.int8.tflite -o digits.zip [--sign KEY.pem];
    edgekit package --verify digits.zip [--public-key KEY.pub.pem]
    """
    from edgekit import api
    from edgekit.render import render_package, render_verify, verification_dict, verify_failure

    if verify_bundle is not None:
        if model is not None or output is not None or sign is not None:
            raise UsageError("--verify takes only the bundle (and --public-key)",
                             hint="edgekit package --verify BUNDLE.zip [--public-key KEY.pub.pem]")
        with _frameworks_quiet("package-verify"):
            verified = api.verify_bundle(verify_bundle, public_key=public_key, **_limits())
        if json_out:
            typer.echo(jsonio.dumps(verification_dict(verified)))
        else:
            render_verify(verified)
        _finish(verified, verify_failure(verified))
        return
    if public_key is not None:
        raise UsageError("--public-key goes with --verify",
                         hint="sign with --sign KEY.pem; check with edgekit package --verify BUNDLE.zip "
                              "--public-key KEY.pub.pem")
    if model is None or output is None:
        raise UsageError("package needs MODEL and -o BUNDLE.zip (or --verify BUNDLE.zip)",
                         hint="edgekit package model.tflite -o model.zip")
    with _frameworks_quiet("package"):
        result = api.package(model, output=output, name=name, labels=labels, bench_seconds=bench_seconds,
                             sign_key=sign, data=data, force=force, **_limits())
    if json_out:
        typer.echo(jsonio.dumps(result.manifest))
    else:
        render_package(result, sign)


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
    from edgekit.api import keygen as make_keys
    from edgekit.render import render_keygen

    render_keygen(make_keys(output, force=force))


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
    from edgekit.api import import_model
    from edgekit.render import render_import
    from edgekit.toolkit.contract.iospec import parse_input_shapes

    with _frameworks_quiet("import"):
        result = import_model(source, output=output, input_shapes=parse_input_shapes(input_shape), weights=weights,
                              labels=labels, scale=scale, mean=_numbers("mean", mean, float),
                              std=_numbers("std", std, float), layout=layout, seed=seed, force=force, **_limits())
    if json_out:
        typer.echo(jsonio.dumps(result.to_dict()))
    else:
        render_import(result)


def upgrade_arguments(argv: list[str]) -> list[str]:
    """``validate``/``bench`` ``--json FILE`` (the old spelling, a value ending in .json) becomes ``--json-out
    FILE``, with a deprecation line; ``--json`` alone now prints the report."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in DEPRECATED_JSON_FILE:
        return argv
    upgraded = list(argv)
    for index, arg in enumerate(argv[:-1]):
        if arg == "--json" and argv[index + 1].endswith(".json"):
            upgraded[index] = "--json-out"
            _err(f"edgekit: warning: `{command} --json FILE` is deprecated: use --json-out FILE (--json alone "
                 "prints the report); the old spelling goes in the next release")
    return upgraded


def _interrupted(exc: BaseException) -> str:
    return f"terminated by {exc}" if isinstance(exc, Terminated) else "interrupted"


def _terminate(signum: int, _frame: Any) -> None:
    """SIGTERM/SIGHUP → ``Terminated`` in the main thread: the Ctrl-C clean-up runs. Later signals are ignored
    until the process exits, so a second SIGTERM cannot cut that clean-up short (SIGKILL still ends it)."""
    import signal

    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    raise Terminated(signum)


def install_signal_handlers() -> None:
    import signal

    for number in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(number) is signal.SIG_DFL:  # ignored by the caller (nohup): stays ignored
            signal.signal(number, _terminate)


def main() -> None:
    """Console-script entry point."""
    install_signal_handlers()
    try:
        app(args=upgrade_arguments(sys.argv[1:]), prog_name="edgekit")
    except KeyboardInterrupt as exc:
        _err(f"edgekit: {_interrupted(exc)}")
        sys.exit(getattr(exc, "exit_code", 130))
