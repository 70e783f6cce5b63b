"""Artifacts and their provenance sidecar ``<artifact>.edgekit.json``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.artifact_paths import SIDECAR_SUFFIX, sidecar_path
from edgekit.toolkit.contract.errors import InvalidInputError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec
from edgekit.toolkit.data.datasets import Preprocessing
from edgekit.toolkit.fsutil import NAME_MAX, sha256_of, write_bytes_atomic

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
    data: str | None = None  # path, relative to the artifact's directory, of its calibration/test splits
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    data_sha256: str | None = None  # binds ``data`` to the file it named when the sidecar was written

    @property
    def data_path(self) -> Path | None:
        """The data file, when it is beside the artifact or is the very file the sidecar recorded: a sidecar
        edgekit did not write could otherwise name any .npz on this machine (say, someone's private data
        set) and have it packaged into a bundle's goldens. A path that leaves the artifact's directory must
        match ``data_sha256``, which an attacker cannot compute for a file they have not seen."""
        if not self.data:
            return None
        path = self.path.parent / self.data
        if "/" not in self.data or not path.is_file():
            return path
        if self.data_sha256 is None or sha256_of(path) != self.data_sha256:
            raise InvalidInputError(
                f"{sidecar_path(self.path)}: data {self.data!r} lies outside the artifact's directory and is not "
                "the file this sidecar recorded (sha256)", hint="convert the model again to refresh its sidecar, "
                                                               "or pass --data/--calibration explicitly")
        return path

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
            "data_sha256": self.data_sha256,
            "metrics": self.metrics,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, directory: Path) -> Artifact:
        return cls(
            path=directory / _file_name(data["artifact"], "artifact"),
            format=Format(data["format"]),
            io_spec=IOSpec.from_dict(data["io_spec"]),
            sha256=data["sha256"],
            route=tuple(data.get("route", ())),
            source_sha256=data.get("source_sha256"),
            options=dict(data.get("options", {})),
            versions=dict(data.get("versions", {})),
            labels=tuple(data.get("labels", ())),
            preprocessing=Preprocessing.from_dict(data["preprocessing"]) if data.get("preprocessing") else None,
            data=_relative_path(data["data"], "data") if data.get("data") is not None else None,
            data_sha256=_sha256_text(data.get("data_sha256")),
            metrics=dict(data.get("metrics", {})),
            extra=dict(data.get("extra", {})),
        )

    def sidecar_text(self) -> str:
        return jsonio.dumps(self.to_dict()) + "\n"

    def write_sidecar(self, *, force: bool = False) -> Path:
        return write_bytes_atomic(sidecar_path(self.path), self.sidecar_text().encode(), force=force)


def _file_name(value: Any, field_name: str) -> str:
    """A sidecar describes the file beside it: a bare name, never a path."""
    if not isinstance(value, str) or not value or value in (".", "..") or len(value) > 255 \
            or any(c in value for c in "/\\\0:"):
        raise ValueError(f"{field_name} {str(value)[:80]!r} is not a file name beside the sidecar")
    return value


def _relative_path(value: Any, field_name: str) -> str:
    """A path relative to the sidecar's directory, POSIX-separated (``../models/x.data.npz`` from a
    pipeline's artifacts/); never absolute, a drive, a backslash or a NUL."""
    if not isinstance(value, str) or not value or len(value) > 4096 or value.startswith("/") \
            or any(c in value for c in "\\\0:") or value in (".", ".."):
        raise ValueError(f"{field_name} {str(value)[:80]!r} is not a path relative to the sidecar's directory")
    return value


def _sha256_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"data_sha256 {str(value)[:80]!r} is not a sha256")
    return value


def read_sidecar(artifact: str | os.PathLike[str]) -> Artifact | None:
    """The sidecar of ``artifact`` if there is one that describes this very file (sha256 matches).

    A sidecar left over from an older file of the same name is ignored rather than trusted.
    """
    artifact = Path(artifact)
    path = sidecar_path(artifact)
    if len(os.fsencode(path.name)) > NAME_MAX or not path.is_file():  # a name too long for one cannot have one
        return None
    try:
        data = jsonio.loads(path.read_bytes())
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
