"""The Converter interface: one subclass per edge (source format → target format).

``Converter.convert`` validates the quantization mode against the edge's spec, times the work and maps
framework exceptions to the error tree; subclasses implement only ``_convert_impl``, which writes the
artifact to the path it is given and returns what it learned (exporter used, warnings).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.toolkit.contract.errors import (
    BackendError,
    EdgekitError,
    MissingDependencyError,
    UsageError,
    first_line,
    option,
)
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.contract.registry import ConverterSpec
from edgekit.toolkit.data.calibration import CalibrationSet

KEEP_FLOAT_ROUTES = "--to tflite, --to onnx, or torch → executorch"


@dataclass(frozen=True)
class ConvertOptions:
    quantize: QuantMode = QuantMode.NONE
    calibration: str | None = None  # digits | FILE.npz | IMAGE_DIR | random; None: the model's own data
    calibration_samples: int = 100
    nhwc: bool = False  # torch → tflite: channels-last inputs/outputs (what Android camera code feeds)
    script: bool = False  # torch → torchscript: torch.jit.script instead of trace
    opset: int | None = None  # onnx: opset version; None: the exporter's default
    validate: bool = True  # parity against the original on its own data, verdict in the sidecar
    keep_float: tuple[str, ...] = ()  # layer paths, globs or op types the quantizer leaves in float
    quantizer: str | None = None  # the quantization tool (registry.QUANTIZERS); None: the route's default
    # Fill StepReport.units, the layers the quantizer could leave float (what an accuracy budget probes); not a
    # conversion option: it changes no byte of the artifact, and the sidecar does not record it.
    list_units: bool = field(default=False, compare=False)
    # Called by a quantizing step with its Twin (the float graph it quantized, and each tensor's layer): what
    # per-layer error reports read (quant-report, an accuracy budget's ranking). Not a conversion option either.
    tap: Callable[[Twin], None] | None = field(default=None, compare=False, repr=False)
    # torch → executorch: lower a debug program whose every op's value is also an output (ExecuTorch's
    # intermediate-output taps; the specs in StepReport.details["taps"]), what localize reads. Not a conversion
    # option: nobody ships that program, and the sidecar does not record it.
    debug_taps: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.keep_float:
            from edgekit.toolkit.contract.layers import check_patterns

            object.__setattr__(self, "keep_float", check_patterns(self.keep_float))
            if self.quantize is QuantMode.NONE:
                raise UsageError(f"{option('keep_float')} keeps layers out of quantization, and nothing is quantized",
                                 hint=f"add {option('quantize', 'int8')} (or another mode)")
        if self.calibration_samples < 1:
            raise UsageError(f"{option('calibration_samples')} must be ≥ 1, got {self.calibration_samples}")
        if self.opset is not None and not 1 <= self.opset <= 1000:
            raise UsageError(f"{option('opset', self.opset)}: not an ONNX opset version",
                             hint=f"e.g. {option('opset', 17)}")

    def to_dict(self) -> dict[str, Any]:
        return {"quantize": self.quantize.value, "calibration": self.calibration,
                "calibration_samples": self.calibration_samples, "nhwc": self.nhwc, "script": self.script,
                "opset": self.opset, "validate": self.validate, "keep_float": list(self.keep_float),
                "quantizer": self.quantizer}


@dataclass(frozen=True)
class Twin:
    """What a quantizing converter shows ``ConvertOptions.tap``: the float graph its quantizer read, so a per-layer
    error report compares like with like (the quantized model's tensors keep that graph's names).

    ``kind`` says what the rest holds: ``tflite`` and ``onnx`` a float model file (valid during the call: copy it),
    ``pt2e`` the float and the converted (quantize–dequantize) torch modules of PT2E, whose nodes carry their
    origin (torchao's numeric debugger pairs them). ``units`` maps each tensor (TFLite, ONNX) or graph node (PT2E)
    to the name ``--keep-float`` takes its layer by."""

    kind: str  # tflite | onnx | pt2e
    tool: str  # the quantizer that made the candidate, as the report credits it
    units: dict[str, str]
    float_model: Path | None = None
    modules: tuple[Any, Any] | None = None  # pt2e: (float GraphModule, converted GraphModule)


@dataclass(frozen=True)
class StepInput:
    """What one conversion step works from."""

    path: Path
    format: Format
    io_spec: IOSpec
    options: ConvertOptions
    quantize: QuantMode  # this step's mode: intermediate steps are float
    calibration: CalibrationSet | None
    origin: Path | None = None  # the user's source file, which error messages name (``path`` may be a scratch step)

    @property
    def source_name(self) -> str:
        return (self.origin or self.path).name


@dataclass
class StepReport:
    """What a converter reports about its step; ``details`` holds exporter-specific facts."""

    converter: str
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # With ConvertOptions.list_units: the names --keep-float takes one layer by, in the model's order (kept out
    # of to_dict: a model's whole layer list does not belong in its sidecar).
    units: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"converter": self.converter, "seconds": self.seconds, "details": self.details,
                "warnings": self.warnings}


class Converter(ABC):
    """One edge of the registry: what it converts from and to, and the modes it supports, are its spec's
    (``self.spec``); a converter holds no copy of them."""

    keeps_float = False  # honours --keep-float (set by the converters whose backend can leave layers float)

    def __init__(self, spec: ConverterSpec) -> None:
        self.spec = spec

    def convert(self, step: StepInput, out: Path) -> StepReport:
        if step.quantize not in self.spec.quant_modes:
            supported = ", ".join(q.value for q in self.spec.quant_modes)
            raise UsageError(f"{self.spec.name} does not support {option('quantize', step.quantize.value)}",
                             hint=f"supported: {supported}")
        if step.quantize.spec.needs_calibration and step.calibration is None:
            raise UsageError(f"{option('quantize', step.quantize.value)} needs calibration data")
        if step.options.keep_float and step.quantize is not QuantMode.NONE and not self.keeps_float:
            raise UsageError(f"{option('keep_float')} is not supported by {self.spec.name} yet",
                             hint=f"it works on the routes whose quantizer can leave layers float: {KEEP_FLOAT_ROUTES}")
        report = StepReport(self.spec.name)
        start = time.perf_counter()
        try:
            self._convert_impl(step, out, report)
        except (EdgekitError, MissingDependencyError):
            raise
        except MemoryError:
            raise
        except Exception as exc:
            from edgekit.toolkit.safety.policy.allocations import allocation_error, allocation_failure

            if allocation_failure(exc):  # a framework's allocator gave up: a resource limit (exit 6), not a bug
                raise allocation_error(f"{step.path.name}: {self.spec.name}", exc) from None
            raise BackendError(f"{step.path.name}: {self.spec.name} failed: {first_line(exc)}",
                               hint="rerun with --debug for the exporter's traceback") from exc
        report.seconds = time.perf_counter() - start
        if step.quantize.spec.needs_calibration and step.calibration is not None:
            report.details["calibration"] = step.calibration.source
        if not out.exists() or (out.is_file() and out.stat().st_size == 0):
            raise BackendError(f"{self.spec.name} reported success but wrote no model")
        return report

    @abstractmethod
    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        """Write the converted model to ``out``; record exporter facts and warnings in ``report``."""
