"""The ``edgekit`` command: parse, call one library function, render, map errors to exit codes.

Only typer and edgekit's framework-free toolkit are imported at start-up; each command imports what it
needs when it runs, so ``edgekit --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from edgekit import __version__
from edgekit.toolkit.errors import EdgekitError, ExitCode

EXIT_CODES_HELP = (
    "Exit codes: 0 ok · 1 check failed · 2 usage error · 3 invalid or unsupported input · "
    "4 refused for safety · 5 conversion/runtime failure · 6 resource limit or timeout · 70 internal error."
)

app = typer.Typer(
    name="edgekit",
    help="Take a model from where it was made to where it runs: inspect, convert, validate, bench, package.\n\n"
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
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug in edgekit or an unexpected framework failure
            if _State.debug:
                raise
            typer.echo(
                f"edgekit: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                err=True,
            )
            raise typer.Exit(int(ExitCode.INTERNAL)) from None

    return wrapper  # type: ignore[return-value]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_version_callback),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    _State.debug = debug


@app.command()
@handle_errors
def info(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")) -> None:
    """Versions, CPU and ISA flags, CUDA, runtimes and routes.

    Backend versions come from package metadata (no framework is imported); CUDA is probed through the
    driver itself.
    """
    from edgekit.render import render_info
    from edgekit.toolkit.registry import CONVERTERS, RUNTIMES
    from edgekit.toolkit.sysinfo import environment_fingerprint

    env = environment_fingerprint()
    runtimes = [
        {"format": s.format.value, "runtime": s.description, "devices": [d.value for d in s.devices],
         "missing": s.missing()}
        for s in RUNTIMES
    ]
    routes = [
        {"source": s.source.value, "target": s.target.value, "name": s.name,
         "quantize": [q.value for q in s.quant_modes], "missing": s.missing()}
        for s in CONVERTERS
    ]
    data = {"edgekit": __version__, **env, "runtimes": runtimes, "routes": routes}
    if json_out:
        typer.echo(json.dumps(data, indent=2))
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
    from edgekit.toolkit.iospec import parse_input_shapes

    report = inspect_model(model, input_shapes=parse_input_shapes(input_shape), smoke_run=run)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_inspect(report)
    if not report.passed:
        error = report.smoke_run.error if report.smoke_run else ""
        typer.echo(f"edgekit: error: {model}: the model loads but does not run: {error}", err=True)
        raise typer.Exit(int(ExitCode.BACKEND_FAILURE))


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="edgekit")
    except KeyboardInterrupt:
        typer.echo("edgekit: interrupted", err=True)
        sys.exit(130)
