"""Where an artifact's companion files live (dependency-free, so renderers can name them cheaply)."""

from __future__ import annotations

import os
from pathlib import Path

SIDECAR_SUFFIX = ".edgekit.json"


def sidecar_path(artifact: str | os.PathLike[str]) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SIDECAR_SUFFIX)
