"""Artifacts and their provenance sidecar ``<artifact>.edgekit.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.toolkit import jsonio
from edgekit.toolkit.artifact_paths import SIDECAR_SUFFIX, sidecar_path
from edgekit.toolkit.datasets import Preprocessing
from edgekit.toolkit.errors import InvalidInputError
from edgekit.toolkit.formats import Format
from edgekit.toolkit.fsutil import sha256_of, write_bytes_atomic
from edgekit.toolkit.iospec import IOSpec

SIDECAR_VERSION = 1
__all__ = ["SIDECAR_SUFFIX", "SIDECAR_VERSION", "Artifact", "read_sidecar", "sidecar_path"]


@dataclass(frozen=True)
class Artifact:
    """A model file with what produced it. ``route`` lists the formats it passed through."""

    path: Path
    format: Format
    io_spec: IOSpec
    sha256: str
    route: tuple[str, ...] = ()
    source_sha256: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    preprocessing: Preprocessing | None = None
    data: str | None = None  # file name (beside the artifact) of its calibration/test splits
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def data_path(self) -> Path | None:
        return self.path.parent / self.data if self.data else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "edgekit_sidecar_version": SIDECAR_VERSION,
            "artifact": self.path.name,
            "format": self.format.value,
            "sha256": self.sha256,
            "source_sha256": self.source_sha256,
            "route": list(self.route),
            "options": self.options,
            "versions": self.versions,
            "io_spec": self.io_spec.to_dict(),
            "labels": list(self.labels),
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing else None,
            "data": self.data,
            "metrics": self.metrics,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, directory: Path) -> Artifact:
        return cls(
            path=directory / data["artifact"],
            format=Format(data["format"]),
            io_spec=IOSpec.from_dict(data["io_spec"]),
            sha256=data["sha256"],
            route=tuple(data.get("route", ())),
            source_sha256=data.get("source_sha256"),
            options=dict(data.get("options", {})),
            versions=dict(data.get("versions", {})),
            labels=tuple(data.get("labels", ())),
            preprocessing=Preprocessing.from_dict(data["preprocessing"]) if data.get("preprocessing") else None,
            data=data.get("data"),
            metrics=dict(data.get("metrics", {})),
            extra=dict(data.get("extra", {})),
        )

    def sidecar_text(self) -> str:
        return jsonio.dumps(self.to_dict()) + "\n"

    def write_sidecar(self, *, force: bool = False) -> Path:
        return write_bytes_atomic(sidecar_path(self.path), self.sidecar_text().encode(), force=force)


def read_sidecar(artifact: str | os.PathLike[str]) -> Artifact | None:
    """The sidecar of ``artifact`` if there is one that describes this very file (sha256 matches).

    A sidecar left over from an older file of the same name is ignored rather than trusted.
    """
    artifact = Path(artifact)
    path = sidecar_path(artifact)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        record = Artifact.from_dict(data, directory=artifact.parent)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInputError(
            f"{path}: unreadable edgekit sidecar ({exc})", hint="delete it or regenerate it"
        ) from None
    if record.sha256 != sha256_of(artifact):
        return None
    return record
