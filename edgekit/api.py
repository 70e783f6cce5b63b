"""The Python API: every command as a function, keyword-only options, results with ``.passed``.

    import edgekit
    result = edgekit.convert("model.pt2", to="tflite", quantize="int8")      # ConversionResult
    report = edgekit.validate("model.pt2", result.artifact.path)             # ParityReport, .passed
    bench = edgekit.bench([result.artifact.path], threads=[1, 2])           # BenchReport

What the CLI's global options do is a parameter here: ``trust`` (lift the loading policy's code refusals,
never its pickle or native-code ones), ``timeout`` and ``memory_limit_mb`` (what the isolated worker may
spend), ``isolate`` (load and convert in a forked worker, as the CLI does; edgekit runs in-process instead
when the calling process has a framework loaded already, since forking it would be unsafe, and the limits
then cannot be enforced). Formats and modes are given as text or as ``Format``/``QuantMode`` values; a bad
value is a ``UsageError`` naming the parameter. Errors are the ``edgekit.toolkit.contract.errors`` tree:
each has ``.exit_code`` and a one-line ``str()``; ``exit_code(result)`` maps a result to the exit code the
CLI would return, from one place.

Importing this module imports no framework; each function loads what it needs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgekit.toolkit.contract.errors import UsageError, option
from edgekit.toolkit.contract.formats import Format, output_formats
from edgekit.toolkit.contract.options import Device, Layout, QuantMode

if TYPE_CHECKING:
    from edgekit.conversion import ConversionResult
    from edgekit.importing import ImportResult
    from edgekit.inspection import InspectReport
    from edgekit.localization import LocalizeReport
    from edgekit.packaging import KeyPair, PackageResult, VerifyResult
    from edgekit.pipeline.gate import Verdict
    from edgekit.pipeline.report import PipelineReport
    from edgekit.pipeline.run import Observer
    from edgekit.quant_report import QuantReport
    from edgekit.targets.bench import BenchReport
    from edgekit.toolkit.contract.compat import CompatReport
    from edgekit.toolkit.contract.iospec import Dim
    from edgekit.training import TrainResult
    from edgekit.validators.parity import ParityReport

T = TypeVar("T")
PathLike = str | os.PathLike[str]
Shapes = Mapping[str, Sequence["Dim"]] | None
Ranges = Mapping[str, tuple[float, float]] | None  # input name → (low, high), as --input-range NAME=LOW:HIGH


def _run(phase: str, work: Callable[[], T], *, trust: bool, timeout: float | None, memory_limit_mb: int | None,
         isolate: bool) -> T:
    from edgekit.toolkit.safety.isolation import Limits, run_isolated
    from edgekit.toolkit.safety.policy import trusting

    limits = Limits.defaults(timeout=timeout, memory_mb=memory_limit_mb)
    with trusting(trust):
        return run_isolated(work, phase_name=phase, limits=limits) if isolate else work()


def _value(vocabulary: type, value: Any, name: str, allowed: Iterable[Any] | None = None) -> Any:
    choices = tuple(allowed) if allowed is not None else tuple(vocabulary)
    if str(value) not in choices:
        raise UsageError(f"{option(name, str(value))}: not one of {', '.join(str(c) for c in choices)}",
                         hint=f"e.g. {option(name, str(choices[0]))}")
    return vocabulary(str(value))


def _ranges(input_ranges: Ranges) -> dict[str, tuple[float, float]]:
    """``{"input_ids": (0, 30522)}``: integers take [low, high), reals [low, high]."""
    ranges = {}
    for name, bounds in (input_ranges or {}).items():
        low, high = bounds
        ranges[str(name)] = (float(low), float(high))
    return ranges


def _shapes(input_shapes: Shapes) -> dict[str, tuple[Dim, ...]]:
    return {name: tuple(dims) for name, dims in (input_shapes or {}).items()}


def inspect_model(path: PathLike, *, input_shapes: Shapes = None, smoke_run: bool = True,
                  input_ranges: Ranges = None, trust: bool = False,
                  timeout: float | None = None, memory_limit_mb: int | None = None,
                  isolate: bool = True) -> InspectReport:
    """What a model is: format, I/O contract, ops, size; one inference on seeded inputs unless ``smoke_run``
    is False. ``.passed`` is False when the model loads but does not run."""
    from edgekit.inspection import inspect_model as inspect

    shapes = _shapes(input_shapes)
    ranges = _ranges(input_ranges)
    return _run(f"inspecting {path}", lambda: inspect(path, input_shapes=shapes, smoke_run=smoke_run,
                                                      input_ranges=ranges),
                trust=trust, timeout=timeout, memory_limit_mb=memory_limit_mb, isolate=isolate)


def compat(model: PathLike, *, targets: Iterable[str] | None = None, trust: bool = False,
           timeout: float | None = None, memory_limit_mb: int | None = None, isolate: bool = True) -> CompatReport:
    """Will ``model`` (a .tflite, .onnx or .pte) run on each target (default: every target of its format; a device
    profile's name stands for the targets it implies): per operator supported / unsupported / unknown, with the
    reason and the evidence. ``.passed`` only when every operator of every target is supported."""
    from edgekit.targets.compat import check_compat

    chosen = list(targets) if targets is not None else None
    # The files are data, not code, but native readers parse them: a crafted file crashes a worker, not the caller.
    return _run(f"checking {model}", lambda: check_compat(model, chosen), trust=trust, timeout=timeout,
                memory_limit_mb=memory_limit_mb, isolate=isolate)


def convert(source: PathLike, *, to: Format | str, quantize: QuantMode | str = "none",
            calibration: str | None = None, calibration_samples: int = 100, output: PathLike | None = None,
            force: bool = False, via: Format | str | None = None, nhwc: bool = False, script: bool = False,
            opset: int | None = None, input_shapes: Shapes = None, input_ranges: Ranges = None,
            data: str | None = None, validate: bool = True, keep_float: Sequence[str] = (),
            quantizer: str | None = None,
            min_cosine: float | None = None, max_accuracy_drop: float | None = None, layer_report: bool = False,
            trust: bool = False, timeout: float | None = None, memory_limit_mb: int | None = None,
            isolate: bool = True) -> ConversionResult:
    """Convert ``source`` (a model file, a SavedModel directory, or ``package.module:factory`` with
    ``input_shapes``) to ``to``, planning the route; written atomically with its sidecar. With ``validate``
    (default) parity against the original decides ``.passed`` — a FAIL keeps the artifact, marked failed.
    ``keep_float``: layer paths, globs or op types the quantizer leaves in float. ``quantizer``: the quantization
    tool where a route has several (torch → TFLite: ``ai-edge-quantizer``, or ``pt2e`` for int8-io, its default,
    and dynamic); None takes the route's default for the mode (see ``routes``). ``min_cosine`` /
    ``max_accuracy_drop`` (points of top-1): an accuracy budget — layers are left float, most costly first,
    until the quantized model meets it (``.passed``); the search is in the sidecar's ``extra.budget``.
    ``layer_report``: each quantized layer's error against the float graph, in ``.quant_report`` (see
    :func:`quant_report`)."""
    from edgekit.conversion import convert as convert_model
    from edgekit.converters.base import ConvertOptions

    options = ConvertOptions(_value(QuantMode, quantize, "quantize"), calibration, calibration_samples, nhwc,
                             script, opset, validate, tuple(keep_float), quantizer)
    to_format = _value(Format, to, "to", output_formats())
    via_format = _value(Format, via, "via") if via is not None else None
    shapes, ranges = _shapes(input_shapes), _ranges(input_ranges)
    budget = None
    if min_cosine is not None or max_accuracy_drop is not None:
        from edgekit.budget import Budget

        budget = Budget(min_cosine, max_accuracy_drop)

    if layer_report and options.quantize is QuantMode.NONE:
        raise UsageError(f"{option('layer_report')} reports quantization error, and nothing is quantized",
                         hint=f"add {option('quantize', 'int8')} (or another mode)")

    def made(path: str, chosen: ConvertOptions) -> ConversionResult:
        if budget is not None:
            from edgekit.budget import budgeted_convert

            return budgeted_convert(path, to_format, chosen, budget, output=output, force=force, via=via_format,
                                    input_shapes=shapes, input_ranges=ranges, data=data).result
        return convert_model(path, to_format, chosen, output=output, force=force, via=via_format,
                             input_shapes=shapes, input_ranges=ranges, validation_data=data)

    def work() -> ConversionResult:
        with _factory_as_file(str(source), shapes) as path:
            if not layer_report:
                return made(path, options)
            from dataclasses import replace

            from edgekit.quant_report import TwinCollector, report_on
            from edgekit.toolkit.fsutil import scratch_directory

            with scratch_directory("edgekit-layers-") as scratch:
                collect = TwinCollector(Path(scratch))
                result = made(path, replace(options, tap=collect, list_units=True))
                report = report_on(result, collect.twins, Path(path), result.artifact.path, Path(scratch), data=data,
                                   input_shapes=shapes, input_ranges=ranges)
            return replace(result, quant_report=report.to_dict())

    return _run(f"converting {source} to {to_format.value}", work, trust=trust, timeout=timeout,
                memory_limit_mb=memory_limit_mb, isolate=isolate)


@contextlib.contextmanager
def _factory_as_file(model: str, shapes: dict[str, tuple[Dim, ...]]) -> Iterator[str]:
    """A ``package.module:factory`` source is imported to a scratch .pt2/.keras first."""
    from edgekit.importing import FACTORY, ImportOptions, import_model
    from edgekit.toolkit.fsutil import scratch_directory

    if Path(model).exists() or not FACTORY.match(model):
        yield model
        return
    with scratch_directory("edgekit-factory-") as scratch:
        imported = import_model(model, Path(scratch) / "model", ImportOptions(input_shapes=shapes))
        yield str(imported.artifact.path)


def validate(reference: PathLike, candidate: PathLike, *, data: str | None = None, samples: int = 500,
             profile: str = "auto", atol: float | Mapping[str, float] | None = None,
             rtol: float | Mapping[str, float] | None = None, input_ranges: Ranges = None, trust: bool = False,
             timeout: float | None = None, memory_limit_mb: int | None = None, isolate: bool = True) -> ParityReport:
    """Numerical parity of ``candidate`` against ``reference`` on identical real inputs (the model's own test
    split by default, else ``data``: digits, FILE.npz, IMAGE_DIR or random). ``profile``: auto (from the
    candidate's precision), fp32, fp16, dynamic or int8; ``atol``/``rtol``: one value for every output or a
    mapping output name → value. ``.passed`` is the verdict."""
    from edgekit.validators.parity import validate as validate_models
    from edgekit.validators.tolerances import Profile

    chosen = _value(Profile, profile, "profile", [p.value for p in Profile])
    overrides, ranges = _overrides(atol, rtol), _ranges(input_ranges)
    return _run(f"validating {candidate} against {reference}", lambda: validate_models(
        reference, candidate, data=data, samples=samples, profile=chosen, overrides=overrides,
        input_ranges=ranges),
        trust=trust, timeout=timeout, memory_limit_mb=memory_limit_mb, isolate=isolate)


def quant_report(model: PathLike, artifact: PathLike, *, data: str | None = None, samples: int = 32,
                 trust: bool = False, timeout: float | None = None, memory_limit_mb: int | None = None,
                 isolate: bool = True) -> QuantReport:
    """Which layers cost ``artifact`` (an edgekit-quantized .tflite, .onnx or .pte) its accuracy against
    ``model``, the source it was converted from: each layer's SQNR, cosine and max |Δ| against the float graph and
    its estimated share of the final-output error, worst first (``.analysis.layers``; ``.to_dict()``)."""
    from edgekit.quant_report import quant_report as report

    return _run(f"reporting {artifact}'s layers", lambda: report(model, artifact, data=data, samples=samples),
                trust=trust, timeout=timeout, memory_limit_mb=memory_limit_mb, isolate=isolate)


def localize(reference: PathLike, candidate: PathLike, *, data: str | None = None, samples: int = 32,
             profile: str = "auto", taps: bool = False, taps_source: PathLike | None = None,
             input_ranges: Ranges = None, trust: bool = False, timeout: float | None = None,
             memory_limit_mb: int | None = None, isolate: bool = True) -> LocalizeReport:
    """Where ``candidate`` (a conversion of ``reference``) parts from it: both run on the same inputs with every
    intermediate value captured, the values paired by the names the converters keep (up to layout and
    quantization) and judged under the candidate's precision profile. ``.origin`` is the first failing pair whose
    feeders pass (None when none fails); ``.passed``; ``.to_dict()``. ``taps``: an ExecuTorch candidate is lowered
    again from its source (``taps_source``, default the one its sidecar names) with every op's value tapped."""
    from edgekit.localization import localize as run_localize
    from edgekit.validators.tolerances import Profile

    chosen = _value(Profile, profile, "profile", [p.value for p in Profile])
    ranges = _ranges(input_ranges)
    return _run(f"localizing {candidate} against {reference}", lambda: run_localize(
        reference, candidate, data=data, samples=samples, profile=chosen.value, taps=taps, taps_source=taps_source,
        input_ranges=ranges),
        trust=trust, timeout=timeout, memory_limit_mb=memory_limit_mb, isolate=isolate)


def _tolerance(value: float | Mapping[str, float] | None, name: str) -> tuple[float | None, tuple]:
    """(every output, per output) from one number, or a mapping output name → number (``"*"``: every other)."""
    if value is None:
        return None, ()
    values = dict(value) if isinstance(value, Mapping) else {"*": value}
    for key, number in values.items():
        if not isinstance(number, int | float) or isinstance(number, bool) or not 0 <= number < float("inf"):
            raise UsageError(f"{option(name)} must be a finite number ≥ 0, got {number!r} for {key!r}")
    everywhere = values.pop("*", None)
    return (float(everywhere) if everywhere is not None else None), tuple((k, float(v)) for k, v in values.items())


def _overrides(atol: float | Mapping[str, float] | None, rtol: float | Mapping[str, float] | None) -> Any:
    from edgekit.validators.tolerances import Overrides

    (atol_all, atol_per), (rtol_all, rtol_per) = _tolerance(atol, "atol"), _tolerance(rtol, "rtol")
    return Overrides(atol_all, rtol_all, atol_per, rtol_per)


def bench(models: Iterable[PathLike], *, device: Device | str | None = None, threads: Iterable[int] | None = None,
          target: str | None = None, warmup: int = 10, runs: int = 100, min_seconds: float = 1.0,
          data: str | None = None, cpus: Iterable[int] | None = None, input_ranges: Ranges = None,
          trust: bool = False,
          timeout: float | None = None, memory_limit_mb: int | None = None, isolate: bool = True) -> BenchReport:
    """On-device-style latency of each model at each thread count: warmed up, at least ``runs`` runs and
    ``min_seconds``, percentiles, load time, RSS and delegation. ``target``: a device profile
    (mobile-cpu-1t, mobile-cpu-4t, desktop-cpu, mcu-int8, cuda); an explicit ``device`` wins over its."""
    from edgekit.targets.bench import BenchOptions
    from edgekit.targets.bench import bench as bench_models
    from edgekit.targets.profiles import profile

    chosen = profile(target) if target else None
    pins = tuple(cpus) if cpus is not None else None
    options = BenchOptions(warmup=warmup, runs=runs, min_seconds=min_seconds, cpus=pins)
    paths = [str(m) for m in models]
    counts = list(threads) if threads is not None else None
    ranges = _ranges(input_ranges)
    return _run("benchmarking", lambda: bench_models(paths, options=options, threads=counts, profile=chosen,
                                                     data=data, device=device, input_ranges=ranges),
                trust=trust, timeout=timeout, memory_limit_mb=memory_limit_mb, isolate=isolate)


def run_pipeline(models: Iterable[PathLike] = (), *, out: PathLike, to: Iterable[Format | str] | str = "all",
                 quantize: Iterable[QuantMode | str] | str = "all", data: str | None = None,
                 calibration: str | None = None, samples: int = 500, bench: bool = True,
                 device: Device | str = Device.CPU, threads: int = 1, min_seconds: float = 0.25,
                 epochs: int | None = None, seed: int = 0, force: bool = False, trust: bool = False,
                 executor: str = "process", jobs: int | None = None, ray_address: str | None = None,
                 compat: Iterable[str] | str = "all", min_cosine: float | None = None,
                 max_accuracy_drop: float | None = None, timeout: float | None = None,
                 memory_limit_mb: int | None = None, observer: Observer | None = None,
                 write_reports: bool = True) -> PipelineReport:
    """Every model (none: the digits CNN, trained in PyTorch and in Keras) through every route × mode asked
    for: convert, validate, bench; rows that fail never stop the others. With ``write_reports`` the JSON,
    Markdown, JUnit and HTML reports land in ``out``. ``executor``: ``process`` (default: ``jobs`` crash-
    isolated workers that keep frameworks imported across rows; a crash, ``timeout`` seconds or
    ``memory_limit_mb`` per cell marks one row ``crashed``), ``serial`` (in this process) or ``ray`` (Ray tasks
    on a local Ray, or on the cluster at ``ray_address``). ``process`` runs in this process when a framework
    is loaded here already (the report's ``executor_run`` says so). ``compat``: the compatibility targets (or
    device profiles) each artifact is checked on, ``all`` (default) or ``none``; each row reports them.
    ``min_cosine`` / ``max_accuracy_drop`` (points of top-1): an accuracy budget for every quantized row, as
    :func:`convert` takes it; each such row records what stayed float and what it cost."""
    from dataclasses import replace

    from edgekit.pipeline.executors import ExecutorOptions
    from edgekit.pipeline.run import DEFAULT_BENCH, PipelineOptions, parse_formats, parse_quant_modes, prepare_out
    from edgekit.pipeline.run import run_pipeline as run
    from edgekit.pipeline.run import write_reports as write
    from edgekit.toolkit.safety.policy import trusting

    cells = ExecutorOptions.parse(executor, jobs=jobs, ray_address=ray_address, timeout=timeout,
                                  memory_mb=memory_limit_mb)
    formats = parse_formats(to if isinstance(to, str) else ",".join(str(f) for f in to))
    modes = parse_quant_modes(quantize if isinstance(quantize, str) else ",".join(str(q) for q in quantize))
    timing = replace(DEFAULT_BENCH, min_seconds=min_seconds, threads=threads, device=_value(Device, device, "device"))
    options = PipelineOptions(to=formats, quantize=modes, data=data, calibration=calibration, samples=samples,
                              epochs=epochs, seed=seed, bench=timing if bench else None, executor=cells,
                              compat=_compat_targets(compat), min_cosine=min_cosine,
                              max_accuracy_drop=max_accuracy_drop)
    prepare_out(out, force)
    with trusting(trust):
        report = run([Path(m) for m in models], Path(out), options, force=force, observer=observer)
    if write_reports:
        write(report, out, force=force)
    return report


def _compat_targets(compat: Iterable[str] | str) -> tuple[str, ...]:
    names = [n.strip() for n in compat.split(",")] if isinstance(compat, str) else [str(n) for n in compat]
    return () if names == ["none"] else tuple(n for n in names if n)


@dataclass(frozen=True)
class CheckResult:
    """``check``'s outcome: the pipeline report (with the violations in it) and the verdict."""

    config: Path
    report: PipelineReport
    verdict: Verdict

    @property
    def passed(self) -> bool:
        return self.verdict.passed


def check(config: PathLike = "edgekit.toml", *, force: bool = False, junit: PathLike | None = None,
          write_baseline: PathLike | None = None, trust: bool = False, executor: str | None = None,
          jobs: int | None = None, ray_address: str | None = None, timeout: float | None = None,
          memory_limit_mb: int | None = None, observer: Observer | None = None) -> CheckResult:
    """The CI gate: run what the TOML config asks for (latency only when a threshold or ``write_baseline``
    needs it), judge every threshold, write the reports into the config's ``out`` (and the JUnit XML to
    ``junit``, this run's report to ``write_baseline``). ``.passed`` is the verdict; ``.verdict.violations``
    names each violated threshold with both values. ``executor``, ``jobs`` and ``ray_address`` override the
    config's (``run_pipeline`` says what each does)."""
    from dataclasses import replace

    from edgekit.pipeline.executors import ExecutorOptions
    from edgekit.pipeline.gate import judge, load_baseline, load_config
    from edgekit.pipeline.run import DEFAULT_BENCH, PipelineOptions, parse_formats, parse_quant_modes, prepare_out
    from edgekit.pipeline.run import run_pipeline as run
    from edgekit.pipeline.run import write_reports as write
    from edgekit.toolkit.fsutil import write_bytes_atomic
    from edgekit.toolkit.safety.policy import trusting

    cfg = load_config(config)
    baseline = load_baseline(cfg.baseline) if cfg.baseline is not None and cfg.needs_latency else None
    measure = cfg.needs_latency or write_baseline is not None
    options = PipelineOptions(
        to=parse_formats(",".join(cfg.to)), quantize=parse_quant_modes(",".join(cfg.quantize)), data=cfg.data,
        calibration=cfg.calibration, samples=cfg.samples, epochs=cfg.epochs, seed=cfg.seed,
        bench=replace(DEFAULT_BENCH, min_seconds=cfg.min_seconds, threads=cfg.threads) if measure else None,
        executor=ExecutorOptions.parse(executor or cfg.executor, jobs=jobs if jobs is not None else cfg.jobs,
                                       ray_address=ray_address or cfg.ray_address, timeout=timeout,
                                       memory_mb=memory_limit_mb),
        compat=cfg.compat_targets, min_cosine=cfg.min_cosine, max_accuracy_drop=cfg.max_accuracy_drop)
    extra = tuple(Path(p) if p is not None else None for p in (junit, write_baseline))
    prepare_out(cfg.out, force, *extra)
    with trusting(trust):
        report = run(cfg.models, cfg.out, options, force=force, observer=observer)
    verdict = judge(report, cfg, baseline)
    report = replace(report, violations=verdict.violations)
    files = write(report, cfg.out, force=force)
    for path, kind in ((junit, "junit"), (write_baseline, "json")):
        if path is not None:
            write_bytes_atomic(path, files[kind].read_bytes(), force=force)
    return CheckResult(Path(config), report, verdict)


def keygen(output: PathLike, *, force: bool = False) -> KeyPair:
    """A new Ed25519 key pair for ``package(sign_key=…)`` / ``verify_bundle(public_key=…)``: the private key at
    ``output`` (mode 0600), the public one beside it as ``KEY.pub.pem``."""
    from edgekit.packaging import generate_keypair

    return generate_keypair(output, force=force)


def package(model: PathLike, *, output: PathLike, name: str | None = None, labels: PathLike | None = None,
            bench_seconds: float = 0.5, sign_key: PathLike | None = None, data: PathLike | None = None,
            force: bool = False, trust: bool = False,
            timeout: float | None = None, memory_limit_mb: int | None = None, isolate: bool = True) -> PackageResult:
    """A mobile bundle (.zip) of a .tflite, .pte or .onnx: the model, model.json, goldens (from ``data``, a .npz
    with one array per input name, else the model's own test split), labels, USAGE.md; signed with
    ``sign_key`` (Ed25519) when given."""
    from edgekit.packaging import package as package_model

    return _run(f"packaging {model}", lambda: package_model(model, output, name=name, labels=labels,
                                                             bench_seconds=bench_seconds, force=force,
                                                             sign_key=sign_key, data=data),
                trust=trust, timeout=timeout, memory_limit_mb=memory_limit_mb, isolate=isolate)


def verify_bundle(bundle: PathLike, *, public_key: PathLike | None = None, trust: bool = False,
                  timeout: float | None = None, memory_limit_mb: int | None = None,
                  isolate: bool = True) -> VerifyResult:
    """Every check of a bundle (names, sha256s, the model's format, the signature with ``public_key``, the
    goldens re-run); ``.passed`` is the verdict, ``.checks`` lists each."""
    from edgekit.packaging import verify

    return _run(f"verifying {bundle}", lambda: verify(bundle, public_key=public_key), trust=trust, timeout=timeout,
                memory_limit_mb=memory_limit_mb, isolate=isolate)


def import_model(source: str, *, output: PathLike, input_shapes: Shapes = None, weights: PathLike | None = None,
                 labels: PathLike | None = None, scale: float = 1.0, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, layout: Layout | str | None = None, seed: int = 0,
                 force: bool = False, trust: bool = False, timeout: float | None = None,
                 memory_limit_mb: int | None = None, isolate: bool = True) -> ImportResult:
    """Bring a model in (a file, ``package.module:factory``, ``keras:<Application>``) as an artifact with its
    contract: torch → .pt2, Keras → .keras, the rest copied; loaded and run once first."""
    from edgekit.importing import ImportOptions
    from edgekit.importing import import_model as import_source

    options = ImportOptions(input_shapes=_shapes(input_shapes), weights=Path(weights) if weights else None,
                            labels=Path(labels) if labels else None, scale=scale,
                            mean=tuple(mean) if mean is not None else None, std=tuple(std) if std is not None else None,
                            layout=_value(Layout, layout, "layout", ["nchw", "nhwc"]) if layout else None, seed=seed)
    return _run(f"importing {source}", lambda: import_source(source, output, options, force=force), trust=trust,
                timeout=timeout, memory_limit_mb=memory_limit_mb, isolate=isolate)


def train(*, framework: str, arch: str, output: PathLike, data: str = "digits", epochs: int | None = None,
          seed: int = 0, batch_size: int = 32, learning_rate: float | None = None, image_size: int | None = None,
          force: bool = False, on_epoch: Callable[[Any], None] | None = None, timeout: float | None = None,
          memory_limit_mb: int | None = None, isolate: bool = True) -> TrainResult:
    """Train a small real model offline (digits or an .npz) in torch or keras: mlp, cnn or mobilenetv2.

    Runs in an isolated worker like the other commands: past ``memory_limit_mb`` (default 80% of RAM) it
    stops with exit 6 rather than meeting the kernel's OOM killer. ``on_epoch`` is called in this process.
    No default timeout: training time is the caller's choice of epochs and data, not a hang."""
    from dataclasses import replace

    from edgekit.models import Arch, Framework
    from edgekit.toolkit.safety.isolation import Limits, report_progress, run_isolated
    from edgekit.training import TrainOptions
    from edgekit.training import train as train_model

    options = TrainOptions(_value(Framework, framework, "framework", [f.value for f in Framework]),
                           _value(Arch, arch, "arch", [a.value for a in Arch]), data, epochs, seed, batch_size,
                           learning_rate, image_size)
    limits = replace(Limits.defaults(timeout=timeout, memory_mb=memory_limit_mb), timeout=timeout)
    if not isolate:
        return train_model(options, output, force=force, on_epoch=on_epoch or (lambda _stats: None))
    return run_isolated(lambda: train_model(options, output, force=force, on_epoch=report_progress),
                        phase_name=f"training {options.arch} in {options.framework}", limits=limits,
                        on_progress=on_epoch)


def exit_code(result: Any) -> int:
    """The exit code the CLI returns for a result: 0 when it passed; else the result's own failure code
    (a model that loads but does not run: 5) or 1 (a check that ran and failed)."""
    from edgekit.toolkit.contract.errors import ExitCode

    if getattr(result, "passed", True):
        return int(ExitCode.OK)
    return int(getattr(result, "failure_exit_code", ExitCode.CHECK_FAILED))
