"""Runtimes (one module per format) and the loading policy that picks one for a file.

Nothing here imports a framework at module level: ``open_runtime`` imports the one runtime module the
file's format needs, through the registry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.toolkit.errors import InvalidInputError, UnsafeModelError
from edgekit.toolkit.formats import Format, Sniffed, sniff
from edgekit.toolkit.registry import runtime_for

if TYPE_CHECKING:
    from edgekit.targets.base import Runtime, RuntimeOptions
    from edgekit.toolkit.iospec import Dim, IOSpec

UNSAFE_TORCH_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
PICKLE_HINT = (
    "save weights only (torch.save(model.state_dict(), path)) or export the program "
    "(torch.export.save(torch.export.export(model, args), 'model.pt2'))"
)


def check_torch_environment() -> None:
    """torch.load honours this variable by unpickling anything; edgekit refuses to run under it."""
    if os.environ.get(UNSAFE_TORCH_ENV, "").strip() not in ("", "0"):
        raise UnsafeModelError(
            f"{UNSAFE_TORCH_ENV} is set, which makes torch.load unpickle arbitrary code",
            hint=f"unset {UNSAFE_TORCH_ENV}",
        )


def check_torch_pickle(sniffed: Sniffed) -> None:
    """Refuse a pickle that references anything beyond tensors and containers (it would run code)."""
    from edgekit.toolkit.pickles import scan_torch_pickle

    scan = scan_torch_pickle(sniffed.path)
    if scan.is_code_bearing:
        names = ", ".join(f"{m}.{n}" for m, n in scan.disallowed[:3])
        more = f" and {len(scan.disallowed) - 3} more" if len(scan.disallowed) > 3 else ""
        raise UnsafeModelError(
            f"{sniffed.path}: pickled whole model; unpickling it would import {names}{more} and run its code",
            hint=PICKLE_HINT,
        )


def check_loading_policy(sniffed: Sniffed) -> None:
    """Refuse code-bearing content before any framework parses the file (see edgekit.toolkit.policy)."""
    from edgekit.toolkit import policy

    if sniffed.format in (Format.TORCH_PICKLE, Format.TORCH_EXPORTED, Format.TORCHSCRIPT):
        check_torch_environment()
    if sniffed.format is Format.TORCH_PICKLE:
        check_torch_pickle(sniffed)
    elif sniffed.format in (Format.KERAS, Format.KERAS_H5):
        policy.check_keras_file(Path(sniffed.path), h5=sniffed.format is Format.KERAS_H5)
    elif sniffed.format is Format.ONNX:
        policy.check_onnx_file(Path(sniffed.path))


def open_runtime(
    path: str | os.PathLike[str],
    *,
    options: RuntimeOptions | None = None,
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    io_hint: IOSpec | None = None,
    sniffed: Sniffed | None = None,
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
    return runtime_cls(Path(path), options=options, input_shapes=input_shapes, io_hint=io_hint)
