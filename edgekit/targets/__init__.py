"""Runtimes (one module per format) and the loading policy that picks one for a file.

Nothing here imports a framework at module level: ``open_runtime`` imports the one runtime module the
file's format needs, through the registry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.toolkit.contract.errors import InvalidInputError
from edgekit.toolkit.contract.formats import Format, Sniffed, sniff
from edgekit.toolkit.contract.registry import runtime_for

if TYPE_CHECKING:
    from edgekit.targets.base import Runtime, RuntimeOptions
    from edgekit.toolkit.contract.iospec import Dim, IOSpec


def check_loading_policy(sniffed: Sniffed) -> None:
    """Refuse code-bearing content before any framework parses the file (see edgekit.toolkit.safety.policy)."""
    from edgekit.toolkit.safety import policy

    policy.check_file(sniffed)


def open_runtime(
    path: str | os.PathLike[str],
    *,
    options: RuntimeOptions | None = None,
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    io_hint: IOSpec | None = None,
    sniffed: Sniffed | None = None,
    input_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Runtime:
    """A runtime for the model file at ``path`` (not yet loaded; use it as a context manager)."""
    sniffed = sniffed or sniff(path)
    check_loading_policy(sniffed)
    if sniffed.format is Format.TORCH_PICKLE:
        raise InvalidInputError(
            f"{sniffed.path}: holds weights only (a state_dict), no architecture to run",
            hint="export the model with torch.export.save to a .pt2, or script it with torch.jit",
        )
    runtime_cls = runtime_for(sniffed.format).load()
    return runtime_cls(Path(path), options=options, input_shapes=input_shapes, io_hint=io_hint,
                       input_ranges=input_ranges)
