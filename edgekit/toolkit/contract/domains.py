"""Input value domains: which values an input may take, so that every synthetic feed is one the model accepts.

A token-id input indexes an embedding table of V rows: any id outside ``[0, V)`` is out of range
("index out of range in self" in torch, a Gather bounds error in ONNX Runtime). The domain is read from
the model wherever its graph shows it (the table an integer input indexes, in every format edgekit
loads), stated by the user (``--input-range NAME=LOW:HIGH``) where it does not, and recorded in the
I/O contract so artifacts converted from the model carry it.

Kinds:
- ``integer``: ``[low, high)``, half-open like ``range`` and an embedding's row count;
- ``real``: ``[low, high]``; without bounds, seeded standard-normal values are drawn;
- ``boolean``: 0 and 1 (also for integer masks).

An integer input whose domain nothing shows gets ``[0, 2)``: the one range every index table and every
mask accepts. That default is labelled as assumed, never presented as read from the model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.toolkit.contract.errors import InvalidInputError, UsageError, option

INTEGER, REAL, BOOLEAN = "integer", "real", "boolean"
KINDS = (INTEGER, REAL, BOOLEAN)
ASSUMED = "assumed"  # the source of a default domain nothing in the model showed
STATED = "stated"  # --input-range
INDEXES = "indexes"  # the source of a domain read from the table an input indexes
MASK_NAME = re.compile(r"(^|_)(attention_)?mask$|^mask(_|$)", re.IGNORECASE)

__all__ = ["ASSUMED", "BOOLEAN", "INTEGER", "REAL", "STATED", "Domain", "default_domain", "index_domains",
           "parse_input_ranges"]
MAX_TRACE = 64  # ops walked back from a lookup to the graph input feeding it


@dataclass(frozen=True)
class Domain:
    kind: str
    low: float | None = None
    high: float | None = None  # exclusive for integers, inclusive for reals
    source: str = ""  # where it was read, in words: "embedding table 'bert.embeddings.word_embeddings' (120 rows)"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"domain kind {self.kind!r} is not one of {', '.join(KINDS)}")
        for bound in (self.low, self.high):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))
                                      or not math.isfinite(bound)):
                raise ValueError(f"domain bound {bound!r} is not a finite number")
        if self.kind == INTEGER and (self.low is None or self.high is None or self.high <= self.low):
            raise ValueError(f"an integer domain needs low < high, got [{self.low}, {self.high})")
        if self.kind == REAL and None not in (self.low, self.high) and self.high < self.low:
            raise ValueError(f"a real domain needs low ≤ high, got [{self.low}, {self.high}]")

    @property
    def assumed(self) -> bool:
        return self.source == ASSUMED

    def describe(self) -> str:
        """``int [0, 120)``, ``bool``, ``real [0, 1]``, ``real`` (unbounded)."""
        if self.kind == BOOLEAN:
            return "bool {0, 1}"
        if self.kind == INTEGER:
            return f"int [{_num(self.low)}, {_num(self.high)})"
        if self.low is None and self.high is None:
            return "real"
        return f"real [{_num(self.low) if self.low is not None else '-inf'}, " \
               f"{_num(self.high) if self.high is not None else 'inf'}]"

    def sample(self, rng: np.random.Generator, shape: Sequence[int], dtype: np.dtype) -> np.ndarray:
        """Seeded values inside the domain, in ``dtype``."""
        dtype = np.dtype(dtype)
        if self.kind == BOOLEAN:
            return rng.integers(0, 2, size=shape).astype(dtype)
        if self.kind == INTEGER:
            assert self.low is not None and self.high is not None
            return rng.integers(int(self.low), int(self.high), size=shape).astype(dtype)
        if self.low is None and self.high is None:
            return rng.standard_normal(shape).astype(dtype)
        low = self.low if self.low is not None else self.high - 3.0  # type: ignore[operator]
        high = self.high if self.high is not None else low + 3.0
        return rng.uniform(low, high, size=shape).astype(dtype)

    def violations(self, values: np.ndarray) -> tuple[float, float] | None:
        """The smallest and largest value when some lie outside the domain, else None."""
        values = np.asarray(values)
        if values.size == 0:
            return None
        if self.kind == BOOLEAN:
            outside = (values != 0) & (values != 1)
        elif self.kind == INTEGER:
            outside = (values < self.low) | (values >= self.high) | (values != np.round(values))  # type: ignore
        else:
            outside = np.zeros(values.shape, dtype=bool)
            if self.low is not None:
                outside |= values < self.low
            if self.high is not None:
                outside |= values > self.high
        if not outside.any():
            return None
        return float(values.min()), float(values.max())

    def check(self, name: str, values: np.ndarray, origin: str) -> None:
        """Data outside the domain is an error naming both (exit 3), never fed to the model."""
        found = self.violations(values)
        if found is not None:
            raise InvalidInputError(
                f"{origin}: input {name!r} holds values {_num(found[0])}..{_num(found[1])}, outside its domain "
                f"{self.describe()} ({self.source or 'stated'})",
                hint="give data the model accepts (token ids below the vocabulary size, 0/1 masks)")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": self.low, "high": self.high, "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Domain:
        """From a sidecar or bundle (a file edgekit did not necessarily write): a bad field is a ValueError."""
        if not isinstance(data, Mapping) or not isinstance(data.get("kind"), str):
            raise ValueError("a domain is an object with a kind")
        source = data.get("source", "")
        if not isinstance(source, str):
            raise ValueError("a domain's source must be a string")
        return cls(data["kind"], data.get("low"), data.get("high"), source[:200])


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def default_domain(name: str, dtype: str) -> Domain:
    """What an input gets when nothing in the model and nothing the user said shows its domain."""
    kind = np.dtype(dtype).kind
    if kind == "b":
        return Domain(BOOLEAN, source="dtype")
    if kind in "iu":
        if MASK_NAME.search(name):
            return Domain(INTEGER, 0, 2, source=f"a mask, by its name {name!r}")
        return Domain(INTEGER, 0, 2, source=ASSUMED)
    return Domain(REAL, source=ASSUMED)


def index_domain(rows: int, table: str) -> Domain:
    """The domain of an input that indexes ``rows`` rows of ``table`` (an embedding or Gather)."""
    return Domain(INTEGER, 0, int(rows), source=f"{INDEXES} {table} ({int(rows)} rows)")


def index_domains(lookups: Iterable[tuple[Hashable, int, str]], *, inputs: Mapping[Hashable, str],
                  producers: Mapping[Hashable, tuple[str, Sequence[Hashable]]],
                  pass_through: Collection[str]) -> dict[str, Domain]:
    """Domains of the graph inputs that index tables, for any graph format.

    ``lookups``: (the value used as indices, the table's row count, the table's name) per gather or
    embedding op; ``producers``: value → (op kind, its input values, data first); ``inputs``: graph input
    value → input name. Each indices value is walked back through ``pass_through`` ops (reshapes, casts:
    they keep values) to a graph input; an input indexing several tables gets the smallest.
    """
    found: dict[str, Domain] = {}
    for value, rows, table in lookups:
        for _ in range(MAX_TRACE):
            if value in inputs:
                break
            producer = producers.get(value)
            if producer is None or producer[0] not in pass_through or not producer[1]:
                break
            value = producer[1][0]
        name = inputs.get(value)
        if name is not None and rows > 0 and (name not in found or rows < (found[name].high or 0)):
            found[name] = index_domain(rows, table)
    return found


_RANGE = re.compile(r"^(?:(?P<name>[^=]+)=)?(?P<low>[^:=]+):(?P<high>[^:=]+)$")


def parse_input_ranges(values: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Parse repeated ``--input-range NAME=LOW:HIGH`` (the name may be left out for one input):
    integers ``[LOW, HIGH)``, reals ``[LOW, HIGH]``."""
    ranges: dict[str, tuple[float, float]] = {}
    for raw in values:
        match = _RANGE.match(raw.strip())
        if not match:
            raise UsageError(f"{option('input_ranges', raw)} is not NAME=LOW:HIGH",
                             hint=f"e.g. {option('input_ranges', 'input_ids=0:30522')}")
        name = (match.group("name") or "").strip() or "*"
        try:
            low, high = float(match.group("low")), float(match.group("high"))
        except ValueError:
            raise UsageError(f"{option('input_ranges', raw)}: LOW and HIGH must be numbers",
                             hint=f"e.g. {option('input_ranges', 'input_ids=0:30522')}") from None
        if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
            raise UsageError(f"{option('input_ranges', raw)}: needs finite LOW < HIGH",
                             hint=f"e.g. {option('input_ranges', 'input_ids=0:30522')}")
        if name in ranges:
            raise UsageError(f"{option('input_ranges')} given twice for {name!r}", hint="give each input once")
        ranges[name] = (low, high)
    if "*" in ranges and len(ranges) > 1:
        raise UsageError(f"{option('input_ranges')} without a name is only allowed for a single input",
                         hint="use NAME=LOW:HIGH")
    return ranges


def stated_domain(name: str, dtype: str, low: float, high: float, found: Domain | None,
                  origin: str) -> Domain:
    """The domain the user stated for an input, checked against what the model shows: ids beyond the
    table it indexes (or a non-integer range for an integer input) is a usage error naming both."""
    kind = np.dtype(dtype).kind
    where = f"{origin}: {option('input_ranges', f'{name}={_num(low)}:{_num(high)}')}"
    if kind in "iub":
        if not (float(low).is_integer() and float(high).is_integer()):
            raise UsageError(f"{where}: input {name!r} is {dtype}; its range needs integer bounds",
                             hint="integer ranges are [LOW, HIGH), e.g. 0:120")
        if kind == "b":
            if low < 0 or high > 2:
                raise UsageError(f"{where}: input {name!r} is boolean", hint="booleans take 0:2")
            return Domain(BOOLEAN, source=STATED)
        stated = Domain(INTEGER, int(low), int(high), source=STATED)
        # Only a table read from the graph binds; a guess (by dtype or name) gives way to what the user says.
        if found is not None and found.kind == INTEGER and found.source.startswith(INDEXES) \
                and (stated.low < found.low or stated.high > found.high):  # type: ignore[operator]
            raise UsageError(f"{where} contradicts the model: input {name!r} {found.source}, so its domain is "
                             f"{found.describe()}", hint=f"give a range inside {found.describe()}")
        if kind in "iu":
            info = np.iinfo(dtype)
            if low < info.min or high - 1 > info.max:
                raise UsageError(f"{where}: does not fit input {name!r}'s {dtype}",
                                 hint=f"give a range inside [{info.min}, {info.max}]")
        return stated
    return Domain(REAL, float(low), float(high), source=STATED)
