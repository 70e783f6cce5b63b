"""``edgekit inspect``: what a model file is, what it takes and returns, and whether it runs."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from edgekit.toolkit.contract.artifact import read_sidecar
from edgekit.toolkit.contract.errors import EdgekitError, option
from edgekit.toolkit.contract.formats import Format, sniff
from edgekit.toolkit.contract.iospec import Dim, example_feeds
from edgekit.toolkit.fsutil import sha256_of
from edgekit.toolkit.reports import InspectReport, ModelDetails, SmokeRun


def inspect_model(
    path: str | os.PathLike[str],
    *,
    input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
    smoke_run: bool = True,
    input_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> InspectReport:
    """Sniff, load (under the safety policy) and describe a model; optionally run it once.

    Raises the error tree's InvalidInputError / UnsafeModelError / BackendError for files that cannot
    be inspected; a model that loads but fails its smoke run is a report with ``passed == False``.
    """
    from edgekit.targets import check_loading_policy, open_runtime

    path = Path(path)
    sniffed = sniff(path)
    warnings = [sniffed.extension_warning] if sniffed.extension_warning else []
    size = _size_of(path)
    digest = sha256_of(path)
    if sniffed.format is Format.TORCH_PICKLE:
        check_loading_policy(sniffed)
        return InspectReport(str(path), sniffed.format, "state_dict", size, digest, None, "none",
                             _describe_state_dict(path), None, tuple(warnings))
    sidecar = read_sidecar(path) if path.is_file() else None
    runtime = open_runtime(path, input_shapes=input_shapes, io_hint=sidecar.io_spec if sidecar else None,
                           sniffed=sniffed, input_ranges=input_ranges)
    with runtime:
        spec = runtime.io_spec
        source = runtime.contract_source + (f" + {option('input_shapes')}" if input_shapes else "")
        details = runtime.describe()
        smoke = _smoke_run(runtime) if smoke_run else None
    if any(ts.shape is None for ts in spec.inputs):
        warnings.append(f"input shapes are unknown: pass {option('input_shapes')} NAME=D1,D2,… to complete the "
                        "contract")
    if smoke and smoke.ok:
        for ts in spec.outputs:
            got = smoke.output_shapes.get(ts.name)
            if got is not None and not ts.accepts(got):
                warnings.append(f"output {ts.name!r} declared {list(ts.shape or [])} but produced {got}")
    return InspectReport(str(path), sniffed.format, sniffed.kind, size, digest, spec, source, details, smoke,
                         tuple(warnings))


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _smoke_run(runtime) -> SmokeRun | None:
    spec = runtime.io_spec
    if any(ts.shape is None for ts in spec.inputs):
        return None
    feeds = example_feeds(spec)
    start = time.perf_counter()
    try:
        outputs = runtime.run(feeds)
    except EdgekitError as exc:
        return SmokeRun(False, time.perf_counter() - start, {}, exc.one_line())
    seconds = time.perf_counter() - start
    return SmokeRun(True, seconds, {name: list(value.shape) for name, value in outputs.items()})


def _describe_state_dict(path: Path) -> ModelDetails:
    from edgekit.toolkit.contract import extras

    extras.require(("torch",), f"describing the state_dict {path.name}")
    import torch

    data = torch.load(str(path), map_location="cpu", weights_only=True)
    tensors = _tensors_in(data)
    dtypes: dict[str, int] = {}
    for t in tensors:
        name = str(t.dtype).removeprefix("torch.")
        dtypes[name] = dtypes.get(name, 0) + 1
    return ModelDetails(
        parameters=sum(t.numel() for t in tensors),
        quantization={"weight_dtypes": dtypes},
        notes=(
            f"weights only: {len(tensors)} tensors and no architecture; it runs once combined with the "
            "model's code (torch.export.save a .pt2 to make it self-contained)",
        ),
    )


def _tensors_in(data: object) -> list:
    import torch

    if isinstance(data, torch.Tensor):
        return [data]
    if isinstance(data, dict):
        return [t for value in data.values() for t in _tensors_in(value)]
    if isinstance(data, (list, tuple)):
        return [t for value in data for t in _tensors_in(value)]
    return []
