"""The Runtime interface every format implements.

The public methods validate and map failures to the error tree; subclasses implement only
``_load_impl`` (returns the I/O contract), ``_run_impl`` (ordered inputs → ordered outputs) and
``_describe_impl`` (ops, parameters, quantization).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.toolkit.contract.errors import (
    BackendError,
    EdgekitError,
    InvalidInputError,
    ResourceLimitError,
    UsageError,
    first_line,
    option,
)
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import Dim, Domain, IOSpec, apply_input_shapes, example_feeds, tensor, with_domains
from edgekit.toolkit.contract.options import Device
from edgekit.toolkit.reports import ModelDetails
from edgekit.toolkit.safety.policy.allocations import allocation_error, allocation_failure


@dataclass(frozen=True)
class RuntimeOptions:
    threads: int | None = None  # None: the runtime's default
    device: Device = Device.CPU

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads <= 0:
            raise UsageError(f"threads must be ≥ 1, got {self.threads}", hint="e.g. --threads 1")


class Runtime(ABC):
    format: ClassVar[Format]
    devices: ClassVar[tuple[Device, ...]] = (Device.CPU,)
    # Where the I/O contract came from; subclasses that fall back to other sources say so.
    contract_source: str = "model"
    # Whether options.threads was enforced (subclasses set it when their framework honoured it).
    threads_applied: bool = False

    def __init__(
        self,
        path: str | Path,
        *,
        options: RuntimeOptions | None = None,
        input_shapes: Mapping[str, tuple[Dim, ...]] | None = None,
        io_hint: IOSpec | None = None,
        input_ranges: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.options = options or RuntimeOptions()
        self._input_shapes = dict(input_shapes or {})
        self._input_ranges = dict(input_ranges or {})
        self._io_hint = io_hint  # a contract from the artifact's sidecar, for formats that do not carry one
        self._io: IOSpec | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> Runtime:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self) -> Runtime:
        if self._io is not None:
            return self
        self._check_device()
        try:
            spec = self._load_impl()
        except EdgekitError:
            raise
        except MemoryError:
            raise ResourceLimitError(f"{self.path}: out of memory while loading", hint="free memory") from None
        except Exception as exc:
            if allocation_failure(exc):
                raise allocation_error(f"{self.path}", exc) from None
            raise InvalidInputError(
                f"{self.path}: could not load as {self.format}: {first_line(exc)}",
                hint="the file may be truncated or made by an incompatible exporter; re-export it",
            ) from exc
        spec = apply_input_shapes(spec, self._input_shapes)
        for ts in spec.inputs:
            ts.check_size(where=f"{self.path}: ")
        spec = with_domains(spec, self._found_domains(spec), hint=self._io_hint, ranges=self._input_ranges,
                            origin=str(self.path))
        self._io = spec
        if not spec.outputs:
            self._io = IOSpec(spec.inputs, self._discover_outputs(spec))
        return self

    def _found_domains(self, spec: IOSpec) -> dict[str, Domain]:
        """What the graph shows of the inputs' domains; reading it never fails a load (the default stands)."""
        if not any(np.dtype(t.dtype).kind in "iu" for t in spec.inputs):
            return {}
        try:
            return self._domains_impl(spec)
        except EdgekitError:
            raise
        except Exception:
            return {}

    def close(self) -> None:
        """Release the model; subclasses holding native resources extend this."""
        self._io = None

    @property
    def io_spec(self) -> IOSpec:
        if self._io is None:
            self.load()
        assert self._io is not None
        return self._io

    # -- inference -------------------------------------------------------------------------------
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self.io_spec
        ordered = self._check_feeds(spec, feeds)
        outputs = self._invoke(ordered)
        if len(outputs) != len(spec.outputs):
            raise BackendError(
                f"{self.path}: model returned {len(outputs)} outputs, its contract lists {len(spec.outputs)}"
            )
        return dict(zip(spec.output_names, outputs, strict=True))

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], Any]:
        """A zero-argument call running one inference on ``feeds``, with every input conversion done
        now, outside any timed region. Outputs are not converted back (that is not inference time)."""
        ordered = self._check_feeds(self.io_spec, feeds)
        return self._prepare_impl(ordered)

    def _prepare_impl(self, inputs: list[np.ndarray]) -> Callable[[], Any]:
        return lambda: self._run_impl(inputs)

    def _invoke(self, ordered: list[np.ndarray]) -> list[np.ndarray]:
        try:
            return [np.asarray(o) for o in self._run_impl(ordered)]
        except EdgekitError:
            raise
        except MemoryError:
            raise ResourceLimitError(
                f"{self.path}: out of memory during inference", hint="use a smaller input"
            ) from None
        except Exception as exc:
            if allocation_failure(exc):
                raise allocation_error(f"{self.path}", exc) from None
            raise BackendError(f"{self.path}: {self.format} inference failed: {first_line(exc)}") from exc

    def _check_feeds(self, spec: IOSpec, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        missing = [n for n in spec.input_names if n not in feeds]
        extra = [n for n in feeds if n not in spec.input_names]
        if missing or extra:
            raise InvalidInputError(
                f"{self.path}: inputs do not match the model (missing {missing}, unexpected {extra})",
                hint=f"the model takes {spec.input_names}",
            )
        ordered = []
        for ts in spec.inputs:
            value = np.asarray(feeds[ts.name])
            if value.dtype.name != ts.dtype:
                raise InvalidInputError(
                    f"{self.path}: input {ts.name!r} is {value.dtype.name}, the model takes {ts.dtype}",
                    hint="convert the data to the model's dtype (edgekit never casts silently)",
                )
            if not ts.accepts(value.shape):
                raise InvalidInputError(
                    f"{self.path}: input {ts.name!r} has shape {list(value.shape)}, "
                    f"the model takes {list(ts.shape or [])}",
                    hint=f"reshape the data or pass {option('input_shapes')} for symbolic dimensions",
                )
            ordered.append(value)
        return ordered

    def _discover_outputs(self, spec: IOSpec) -> tuple:
        """For formats that do not record outputs: run once on seeded inputs and read them off."""
        if any(ts.shape is None for ts in spec.inputs):
            return ()
        outputs = self._invoke([example_feeds(spec)[n] for n in spec.input_names])
        return tuple(tensor(f"output_{i}", o.shape, o.dtype) for i, o in enumerate(outputs))

    # -- introspection ---------------------------------------------------------------------------
    def describe(self) -> ModelDetails:
        self.load()
        try:
            return self._describe_impl()
        except EdgekitError:
            raise
        except Exception as exc:
            return ModelDetails(notes=(f"introspection failed: {first_line(exc)}",))

    def _check_device(self) -> None:
        if self.options.device not in self.devices:
            supported = ", ".join(d.value for d in self.devices)
            raise UsageError(
                f"{self.format} models run on {supported} only, not {self.options.device}",
                hint=f"use {option('device', self.devices[0].value)}",
            )
        if self.options.device is Device.CUDA:
            from edgekit.toolkit.sysinfo import cuda_info

            info = cuda_info()
            if not info.usable:
                raise InvalidInputError(f"{option('device', 'cuda')}: CUDA is not usable here: {info.reason}",
                                        hint=f"use {option('device', 'cpu')}")

    # -- for subclasses --------------------------------------------------------------------------
    @abstractmethod
    def _load_impl(self) -> IOSpec:
        """Load the model and return its I/O contract (outputs may be empty: discovered by a run)."""

    @abstractmethod
    def _run_impl(self, inputs: Sequence[np.ndarray]) -> Sequence[Any]:
        """Run one inference; inputs and outputs are in contract order."""

    def _describe_impl(self) -> ModelDetails:
        return ModelDetails()

    def _domains_impl(self, spec: IOSpec) -> dict[str, Domain]:
        """Integer inputs' domains as the loaded graph shows them (the table each one indexes)."""
        return {}


def histogram(names: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
