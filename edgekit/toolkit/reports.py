"""Result types: raw numbers in dataclasses with a JSON round-trip. Rendering lives in the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgekit.toolkit.contract.errors import ExitCode
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec

INSPECT_REPORT_VERSION = 1


@dataclass(frozen=True)
class ModelDetails:
    """What a format exposes about the model beyond its I/O contract. ``None`` means not knowable."""

    parameters: int | None = None
    ops: dict[str, int] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)
    delegation: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameters": self.parameters,
            "ops": dict(self.ops),
            "quantization": dict(self.quantization),
            "delegation": dict(self.delegation),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelDetails:
        return cls(
            parameters=data.get("parameters"),
            ops=dict(data.get("ops", {})),
            quantization=dict(data.get("quantization", {})),
            delegation=dict(data.get("delegation", {})),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class SmokeRun:
    """One inference on seeded inputs shaped by the contract: proof the model runs."""

    ok: bool
    seconds: float
    output_shapes: dict[str, list[int]]
    error: str = ""


@dataclass(frozen=True)
class InspectReport:
    path: str
    format: Format
    kind: str
    size_bytes: int
    sha256: str
    io_spec: IOSpec | None
    contract_source: str
    details: ModelDetails
    smoke_run: SmokeRun | None = None
    warnings: tuple[str, ...] = ()
    failure_exit_code: ClassVar[ExitCode] = ExitCode.BACKEND_FAILURE  # not passed: it loads but does not run

    @property
    def passed(self) -> bool:
        return self.smoke_run is None or self.smoke_run.ok

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "edgekit_report": "inspect",
            "version": INSPECT_REPORT_VERSION,
            "path": self.path,
            "format": self.format.value,
            "kind": self.kind,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "io_spec": self.io_spec.to_dict() if self.io_spec else None,
            "contract_source": self.contract_source,
            "details": self.details.to_dict(),
            "smoke_run": None if self.smoke_run is None else {
                "ok": self.smoke_run.ok,
                "seconds": self.smoke_run.seconds,
                "output_shapes": self.smoke_run.output_shapes,
                "error": self.smoke_run.error,
            },
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InspectReport:
        smoke = data.get("smoke_run")
        return cls(
            path=data["path"],
            format=Format(data["format"]),
            kind=data.get("kind", ""),
            size_bytes=int(data["size_bytes"]),
            sha256=data["sha256"],
            io_spec=IOSpec.from_dict(data["io_spec"]) if data.get("io_spec") else None,
            contract_source=data.get("contract_source", ""),
            details=ModelDetails.from_dict(data.get("details", {})),
            smoke_run=None if smoke is None else SmokeRun(
                bool(smoke["ok"]), float(smoke["seconds"]),
                {k: list(v) for k, v in smoke["output_shapes"].items()}, smoke.get("error", ""),
            ),
            warnings=tuple(data.get("warnings", ())),
        )

