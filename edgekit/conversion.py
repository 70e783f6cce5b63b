"""``edgekit convert``: plan a route, calibrate on real data, convert, verify, record provenance.

Intermediate steps go to a scratch directory; the final artifact and its sidecar are staged beside the
output and renamed into place together only after the artifact was loaded and run once in its own
runtime. An existing output is never replaced without ``force``; a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.converters.base import ConvertOptions, StepInput, StepReport
from edgekit.converters.planning import plan
from edgekit.toolkit.contract.artifact import Artifact, read_sidecar, sidecar_path
from edgekit.toolkit.contract.domains import STATED
from edgekit.toolkit.contract.errors import BackendError, InvalidInputError, UsageError, option
from edgekit.toolkit.contract.formats import Format, Sniffed, extensions, output_formats, sniff
from edgekit.toolkit.contract.iospec import Dim, IOSpec, Layout, dtype_adaptations, example_feeds, with_domains
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.data import calibration as calibration_data
from edgekit.toolkit.fsutil import atomic_paths, check_writable_target, scratch_directory, sha256_of
from edgekit.toolkit.reports import ModelDetails
from edgekit.toolkit.safety.isolation import phase
from edgekit.toolkit.sysinfo import package_versions

if TYPE_CHECKING:
    from edgekit.validators.parity import ParityReport
    from edgekit.validators.tolerances import Overrides

CONVERSION_REPORT_VERSION = 1


@dataclass(frozen=True)
class ConversionResult:
    artifact: Artifact
    steps: tuple[StepReport, ...]
    seconds: float
    warnings: tuple[str, ...]
    details: ModelDetails
    parity: ParityReport | None = None  # None with --no-validate
    quant_report: dict[str, Any] | None = None  # convert --layer-report: each layer's quantization error

    @property
    def passed(self) -> bool:
        """False when parity validation ran and failed (the artifact is kept, marked failed)."""
        return self.parity is None or self.parity.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "edgekit_report": "convert",
            "version": CONVERSION_REPORT_VERSION,
            "artifact": str(self.artifact.path),
            "sidecar": str(sidecar_path(self.artifact.path)),
            "format": self.artifact.format.value,
            "route": list(self.artifact.route),
            "quantize": self.artifact.options.get("quantize"),
            "size_bytes": self.artifact.path.stat().st_size if self.artifact.path.is_file() else None,
            "seconds": self.seconds,
            "steps": [s.to_dict() for s in self.steps],
            "warnings": list(self.warnings),
            "io_spec": self.artifact.io_spec.to_dict(),
            "delegation": self.details.delegation,
            "parity": self.parity.to_dict() if self.parity is not None else None,
            **({"quant_report": self.quant_report} if self.quant_report is not None else {}),
        }


@dataclass(frozen=True)
class _Source:
    path: Path
    sniffed: Sniffed
    sidecar: Artifact | None
    io_spec: IOSpec


def default_output(source: Path, to: Format, quant: QuantMode) -> Path:
    """``model.int8.tflite`` beside ``model.pt2``."""
    return source.with_name(f"{stem_of(source)}{quant.spec.file_tag}{to.spec.suffix}")


def stem_of(path: Path) -> str:
    """The file name without any model format's extension (``digits_cnn`` of ``digits_cnn.pt2``)."""
    name = path.name
    for suffix in sorted({s for exts in extensions().values() for s in exts if s}, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def convert(
    model: str | os.PathLike[str],
    to: Format,
    options: ConvertOptions | None = None,
    *,
    output: str | os.PathLike[str] | None = None,
    force: bool = False,
    via: Format | None = None,
    input_shapes: dict[str, tuple[Dim, ...]] | None = None,
    input_ranges: dict[str, tuple[float, float]] | None = None,
    validation_data: str | None = None,
    validation_samples: int | None = None,
    overrides: Overrides | None = None,
    extra: dict[str, Any] | None = None,
) -> ConversionResult:
    """``validation_data``/``validation_samples``: what parity runs on (default: the source's own test
    split, as ``edgekit validate`` chooses); ``overrides``: thresholds replacing the profile's (an accuracy
    budget's); ``extra``: more facts for the sidecar's ``extra``."""
    start = time.perf_counter()
    options = options or ConvertOptions()
    if to not in output_formats():
        supported = ", ".join(f.value for f in output_formats())
        raise UsageError(f"{option('to', to.value)}: a conversion does not write {to.spec.label}",
                         hint=f"it writes: {supported}")
    source = _load_source(Path(model), input_shapes or {}, input_ranges or {})
    route = plan(source.sniffed.format, to, options.quantize, via=via, quantizer=options.quantizer)
    if options.quantize is not QuantMode.NONE and route[-1].quantizer:
        # the tool that made it is the recipe's, so `--recipe` makes it again when a route's default changes
        options = replace(options, quantizer=route[-1].quantizer)
    out = Path(output) if output is not None else default_output(source.path, to, options.quantize)
    _check_output(out, to, source.path, force)
    calibration = _calibration(options, source)
    warnings: list[str] = []
    if calibration is not None and not calibration.real and options.quantize.spec.needs_calibration:
        warnings.append("calibrated on random data: the quantized model's accuracy is unknown")
    reports: list[StepReport] = []
    with scratch_directory("edgekit-route-") as scratch:
        current = StepInput(source.path, source.sniffed.format, source.io_spec, options, QuantMode.NONE, calibration,
                            origin=source.path)
        for index, spec in enumerate(route):
            last = index == len(route) - 1
            step = replace(current, quantize=options.quantize if last else QuantMode.NONE)
            phase(f"converting {step.path.name} with {spec.name}")
            converter = spec.load()(spec)
            if last:
                with atomic_paths(out, sidecar_path(out), force=force) as (staged, staged_sidecar):
                    reports.append(converter.convert(step, staged))
                    phase(f"loading and running the converted {to.value} model")
                    artifact, details = _verify(staged, out, to, source, route, options, reports)
                    phase("validating parity against the original")
                    parity = (_validate(source, staged, options, validation_data, validation_samples, overrides)
                              if options.validate else None)
                    if parity is not None:
                        artifact = replace(artifact, extra={**artifact.extra, "parity": _parity_summary(parity)})
                    if extra:
                        artifact = replace(artifact, extra={**artifact.extra, **extra})
                    staged_sidecar.write_text(artifact.sidecar_text())
            else:
                intermediate = Path(scratch) / f"step{index}{spec.to.spec.suffix}"
                reports.append(converter.convert(step, intermediate))
                current = replace(step, path=intermediate, format=spec.to)
    warnings += [w for r in reports for w in r.warnings]
    return ConversionResult(artifact, tuple(reports), time.perf_counter() - start, tuple(warnings), details, parity)


def _validate(source: _Source, staged: Path, options: ConvertOptions, data: str | None,
              samples: int | None, overrides: Overrides | None = None) -> ParityReport:
    """Parity of the new artifact against the original model (not an intermediate step), judged by the
    profile of the requested precision, on the original's own data when it has some."""
    from edgekit.validators.parity import DEFAULT_SAMPLES, validate
    from edgekit.validators.tolerances import profile_for

    # The reference runs at the shapes and value ranges the source was converted at (--input-shape,
    # --input-range), not at its own symbolic defaults.
    shapes = {ts.name: ts.shape for ts in source.io_spec.inputs if ts.shape is not None}
    ranges = {ts.name: (ts.domain.low, ts.domain.high) for ts in source.io_spec.inputs
              if ts.domain is not None and ts.domain.source == STATED}
    return validate(source.path, staged, data=data, samples=samples or DEFAULT_SAMPLES,
                    profile=profile_for(options.quantize.value), overrides=overrides, input_shapes=shapes,
                    input_ranges=ranges)


def _parity_summary(report: ParityReport) -> dict[str, Any]:
    return {"verdict": report.verdict, "profile": report.profile.value, "data": report.data_source,
            "accuracy": report.accuracy, "failures": report.failures(),
            "cosine": {o.reference_name: o.metrics.cosine for o in report.outputs if o.metrics is not None},
            "max_abs": {o.reference_name: o.metrics.max_abs for o in report.outputs if o.metrics is not None}}


def _load_source(path: Path, input_shapes: dict[str, tuple[Dim, ...]],
                 input_ranges: dict[str, tuple[float, float]]) -> _Source:
    """The source's contract, from its verified sidecar when there is one (no framework load), else from
    loading it in its runtime under the safety policy."""
    from edgekit.targets import check_loading_policy, open_runtime

    sniffed = sniff(path)
    sidecar = read_sidecar(path) if path.is_file() else None
    if sidecar is not None and not input_shapes and all(t.shape is not None for t in sidecar.io_spec.inputs):
        # No runtime opens the source here, but the converters parse it next: the policy applies first.
        # (Intermediate files of a route are edgekit's own output and are not re-checked.)
        check_loading_policy(sniffed)
        return _Source(path, sniffed, sidecar, with_domains(sidecar.io_spec, {}, ranges=input_ranges, origin=str(path)))
    with open_runtime(path, input_shapes=input_shapes, io_hint=sidecar.io_spec if sidecar else None,
                      sniffed=sniffed, input_ranges=input_ranges) as runtime:
        spec = runtime.io_spec
    missing = [ts.name for ts in spec.inputs if ts.shape is None]
    if missing:
        raise UsageError(f"{path}: the shapes of {missing} are unknown",
                         hint=f"give {option('input_shapes')} NAME=D1,D2,…")
    return _Source(path, sniffed, sidecar, spec)


def _check_output(out: Path, to: Format, source: Path, force: bool) -> None:
    if out.resolve() == source.resolve():
        raise UsageError(f"{option('output', out)} is the source model itself", hint="choose another output path")
    if out.suffix and out.suffix not in to.spec.extensions:
        raise UsageError(f"{option('output', out)}: {to.value} artifacts are saved as "
                         f"{' or '.join(to.spec.extensions)}",
                         hint=f"use {option('output', out.with_suffix(to.spec.suffix))}")
    for path in (out, sidecar_path(out)):
        check_writable_target(path, force=force)


def _calibration(options: ConvertOptions, source: _Source) -> calibration_data.CalibrationSet | None:
    quant = options.quantize
    if not quant.spec.needs_calibration:
        return None
    found = calibration_data.resolve(options.calibration, source.io_spec, sidecar=source.sidecar,
                                     samples=options.calibration_samples)
    if found is None:
        raise UsageError(
            f"{option('quantize', quant.value)} needs calibration data and {source.path.name} has none of its own",
            hint="give --calibration digits|FILE.npz|IMAGE_DIR, or --calibration random to accept unknown accuracy",
        )
    return found


def _verify(staged: Path, out: Path, to: Format, source: _Source, route: list, options: ConvertOptions,
            reports: list[StepReport]) -> tuple[Artifact, ModelDetails]:
    """Load the staged artifact in its runtime and run it once; describe its contract and delegation."""
    from edgekit.targets import open_runtime

    runtime = open_runtime(staged)
    try:
        runtime.load()
    except InvalidInputError as exc:  # the converter wrote a model its own runtime refuses
        reason = exc.message.replace(f"{staged}: ", "").replace(str(staged), out.name)
        hint = f"nothing was written; try another {option('quantize')} mode or route"
        if options.keep_float:  # measured: onnxruntime's own graph optimizer refuses some partly quantized graphs
            hint = f"nothing was written; keep fewer or other layers float ({option('keep_float')}), or none"
        raise BackendError(f"{out.name}: the converter wrote a model its runtime refuses ({reason})",
                           hint=hint) from None
    with runtime:
        spec = _carried_from_source(runtime.io_spec, source, options)
        try:
            runtime.run(example_feeds(spec))
        except Exception as exc:
            raise BackendError(f"{out.name}: the converted model does not run: {exc}") from None
        details = runtime.describe()
    upstream = source.sidecar
    data = upstream.data_path if upstream is not None else None
    artifact = Artifact(
        path=out, format=to, io_spec=spec, sha256=sha256_of(staged),
        route=(source.sniffed.format.value, *(s.to.value for s in route)),
        source_sha256=sha256_of(source.path),
        options={**options.to_dict(), **calibration_data.pinned(options.calibration, out.parent)},
        versions={k: v for k, v in package_versions().items() if v},
        labels=upstream.labels if upstream else (),
        preprocessing=_preprocessing(upstream, options, to),
        data=os.path.relpath(data, out.parent) if data is not None and data.is_file() else None,
        data_sha256=sha256_of(data) if data is not None and data.is_file() else None,
        metrics=dict(upstream.metrics) if upstream else {},
        extra={"source": str(source.path), "converters": [s.name for s in route],
               "steps": [r.to_dict() for r in reports], "delegation": details.delegation,
               "conversion_seconds": sum(r.seconds for r in reports),
               **({"kept_float": kept} if (kept := [r.details["keep_float"] for r in reports
                                                    if "keep_float" in r.details]) else {}),
               **({"dtype_adaptation": adapted} if (adapted := dtype_adaptations(source.io_spec, spec)) else {}),
               **({"source_input_names": renamed} if (renamed := _source_names(source, spec)) else {})},
    )
    return artifact, details


def _source_names(source: _Source, spec: IOSpec) -> dict[str, str]:
    """Inputs the converter renamed (by position) → their name in the original model, through the chain."""
    from edgekit.toolkit.data.feeds import source_names

    earlier = source_names(source.sidecar)
    return {ours.name: earlier.get(theirs.name, theirs.name)
            for ours, theirs in zip(spec.inputs, source.io_spec.inputs, strict=False) if ours.name != theirs.name}


def _carried_from_source(spec: IOSpec, source: _Source, options: ConvertOptions) -> IOSpec:
    """Carry each input's layout and value domain over from the source, matched by position (exporters
    rename inputs: args_0, input_0); ``--nhwc`` makes image inputs channels-last."""
    inputs = []
    for index, ts in enumerate(spec.inputs):
        upstream = source.io_spec.inputs[index] if index < len(source.io_spec.inputs) else None
        if ts.shape is not None and len(ts.shape) == 4:
            layout = upstream.layout if upstream is not None else Layout.UNKNOWN
            ts = replace(ts, layout=Layout.NHWC if options.nhwc else (layout or ts.layout))
        if ts.domain is None and upstream is not None and upstream.domain is not None:
            ts = replace(ts, domain=upstream.domain)
        inputs.append(ts)
    return IOSpec(tuple(inputs), spec.outputs)


def _preprocessing(upstream: Artifact | None, options: ConvertOptions, to: Format):
    if upstream is None or upstream.preprocessing is None:
        return None
    if options.nhwc and to is Format.TFLITE:
        return replace(upstream.preprocessing, layout=Layout.NHWC)
    return upstream.preprocessing
