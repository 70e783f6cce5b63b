"""What a worker sends back: data, never objects. A reply is JSON plus raw array bytes, decoded without pickle.

A worker runs untrusted models (native code that a crafted file may take over), so whatever it sends is read
as hostile. Pickle is a program for a stack machine, not a data format: an unpickler with a module allow-list
still resolves dotted names (``("edgekit.x", "os.system")``) and hands out whatever a listed module imported.
So replies are encoded here instead, in a format whose reader can only build:

- JSON's ``None``, booleans, numbers (NaN and infinities included), strings and lists;
- tagged nodes (a one-key object whose key starts with ``$``): tuples, dicts (any JSON-built keys), sets,
  frozensets, bytes, complex numbers, ``Path``, ``datetime``/``timedelta``, numpy dtypes, arrays and scalars of
  plain numeric, boolean or string dtypes (their bytes travel raw after the JSON, never as objects);
- an instance of one of the edgekit data types listed in ``REPLY_TYPES`` (explicit ``module: names`` pairs, no
  prefixes, no dotted names), rebuilt field by field without running any of the class's code (no ``__init__``,
  no ``__setstate__``, no ``__post_init__``); enum and open-vocabulary values are looked up by value.

Anything else is refused on both sides: the worker cannot encode it (a bug: its reply is an internal error),
and the parent reads a reply naming it as unreadable (``ReplyError``; the caller treats the worker as crashed).
The parent → worker direction (tasks) stays pickle: the parent is the trusted side.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import importlib
import json
import math
import struct
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edgekit.toolkit.contract.tables import OpenValue

_LENGTH = struct.Struct("!Q")
# Array dtypes that are plain bytes (no object pointers, no structured fields): bool, ints, floats, complex,
# fixed-width str and bytes.
_ARRAY_KINDS = frozenset("biufcUS")
MAX_DEPTH = 200  # nesting of the decoded value; a reply deeper than this is refused, not a RecursionError

# The edgekit data types a reply may hold, by module. Explicit on purpose: a new result type is added here,
# and tests/test_replies.py checks this list against every dataclass and enum edgekit defines.
REPLY_TYPES: dict[str, tuple[str, ...]] = {
    "edgekit.api": ("CheckResult",),
    "edgekit.budget": ("Budget", "Trial", "BudgetResult", "Recipe"),
    "edgekit.conversion": ("ConversionResult", "_Source"),
    "edgekit.converters._ai_edge": ("TFLiteOp",),
    "edgekit.converters.base": ("ConvertOptions", "Twin", "StepInput", "StepReport"),
    "edgekit.converters.keras_onnx": ("FrozenGraph",),
    "edgekit.converters.keras_tflite": ("RecurrentPlan",),
    "edgekit.importing": ("ImportOptions", "ImportResult", "_Job"),
    "edgekit.localization": ("LocalizeReport",),
    "edgekit.models": ("Arch", "Framework"),
    "edgekit.packaging.bundle": ("PackageResult",),
    "edgekit.packaging.verify": ("VerifyResult",),
    "edgekit.pipeline.executors": ("ExecutorKind", "ExecutorOptions"),
    "edgekit.pipeline.gate": ("Thresholds", "CheckConfig", "Verdict"),
    "edgekit.pipeline.report": ("RowStatus", "Latency", "Source", "Row", "PipelineReport"),
    "edgekit.pipeline.run": ("PipelineOptions", "Job", "_Plan"),
    "edgekit.quant_report": ("QuantReport",),
    "edgekit.targets.base": ("RuntimeOptions",),
    "edgekit.targets.bench": ("BenchOptions", "LatencyStats", "BenchResult", "BenchReport", "Timing"),
    "edgekit.targets.compat.gpu_rules": ("TensorSig", "OpSig"),
    "edgekit.targets.compat.tflite": ("FlatModel",),
    "edgekit.targets.profiles": ("DeviceProfile",),
    "edgekit.targets.tensors": ("Node", "Pair"),
    "edgekit.targets.traces": ("Value", "Trace"),
    "edgekit.toolkit.contract.artifact": ("Artifact",),
    "edgekit.toolkit.contract.compat": ("Support", "Evidence", "OpCompat", "TargetCompat", "CompatReport",
                                        "CompatTarget"),
    "edgekit.toolkit.contract.domains": ("Domain",),
    "edgekit.toolkit.contract.errors": ("ExitCode",),
    "edgekit.toolkit.contract.formats": ("Format", "Sniffed"),
    "edgekit.toolkit.contract.iospec": ("QuantParams", "TensorSpec", "IOSpec"),
    "edgekit.toolkit.contract.layers": ("Layer",),
    "edgekit.toolkit.contract.options": ("QuantMode", "Device", "Layout"),
    "edgekit.toolkit.data.calibration": ("CalibrationSet",),
    "edgekit.toolkit.data.datasets": ("Preprocessing", "Dataset", "Splits"),
    "edgekit.toolkit.data.feeds": ("FeedSet",),
    "edgekit.toolkit.nodes": ("Window",),
    "edgekit.toolkit.reports": ("ModelDetails", "SmokeRun", "InspectReport"),
    "edgekit.toolkit.safety.pickles": ("PickleScan", "TensorShape"),
    "edgekit.toolkit.safety.policy.onnx": ("ExternalRef",),
    "edgekit.toolkit.stdio": ("LogSummary",),
    "edgekit.toolkit.sysinfo": ("CpuInfo", "CudaInfo"),
    "edgekit.training": ("TrainOptions", "TrainResult"),
    "edgekit.training.batches": ("LazyImages",),
    "edgekit.training.types": ("EpochStats",),
    "edgekit.validators.layerwise": ("TensorError", "LayerError", "Analysis"),
    "edgekit.validators.localize": ("Match", "Pairing", "PairError", "LayerRule", "PairResult", "Localization"),
    "edgekit.validators.metrics": ("OutputMetrics",),
    "edgekit.validators.parity": ("Check", "OutputParity", "ParityReport"),
    "edgekit.validators.tolerances": ("Profile", "Tolerance", "Overrides"),
}
# Data types that never travel in a reply (they hold code, keys or the parent's own bookkeeping).
NEVER_REPLIED: dict[str, tuple[str, ...]] = {
    "edgekit.packaging.signing": ("KeyPair",),
    "edgekit.toolkit.contract.extras": ("Package", "Extra"),
    "edgekit.toolkit.contract.formats": ("FormatSpec",),
    "edgekit.toolkit.contract.options": ("QuantModeSpec",),
    "edgekit.toolkit.contract.registry": ("RuntimeSpec", "ConverterSpec"),
    "edgekit.toolkit.safety.isolation": ("Guard", "Limits", "_Watch"),
    "edgekit.toolkit.safety.pickles": ("_Effect",),
    "edgekit.toolkit.safety.pool": ("Task", "Crashed", "Outcome", "_Worker"),
}
_ALLOWED = frozenset(f"{module}:{name}" for module, names in REPLY_TYPES.items() for name in names)


class ReplyError(ValueError):
    """A reply that is not one this module writes: unreadable, or naming something outside the lists."""


# -- encoding (in the worker) ---------------------------------------------------------------------------


def encode(value: Any) -> bytes:
    """``value`` as a reply body: an 8-byte JSON length, the JSON, then the raw bytes its arrays refer to."""
    blobs: list[bytes] = []
    offset = [0]

    def blob(data: bytes) -> list[int]:
        start = offset[0]
        blobs.append(data)
        offset[0] += len(data)
        return [start, len(data)]

    def walk(item: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise TypeError(f"a reply nests deeper than {MAX_DEPTH} levels")
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:  # the common cases first
            return item
        if kind is float:
            return item if math.isfinite(item) else {"$float": repr(item)}
        if kind is list:
            return [walk(v, depth + 1) for v in item]
        if kind is dict:
            return {"$dict": [[walk(k, depth + 1), walk(v, depth + 1)] for k, v in item.items()]}
        if kind is tuple:
            return {"$tuple": [walk(v, depth + 1) for v in item]}
        if isinstance(item, enum.Enum | OpenValue):
            return {"$enum": [_type_name(kind), walk(item.value, depth + 1)]}
        if kind is set or kind is frozenset:
            return {f"${kind.__name__}": [walk(v, depth + 1) for v in item]}
        if kind is bytes or kind is bytearray:
            return {"$bytes": blob(bytes(item))}
        if kind is complex:
            return {"$complex": [repr(item.real), repr(item.imag)]}
        if isinstance(item, PurePosixPath):
            return {"$path": str(item)}
        if kind is datetime.datetime:
            return {"$datetime": item.isoformat()}
        if kind is datetime.timedelta:
            return {"$timedelta": [item.days, item.seconds, item.microseconds]}
        if isinstance(item, np.dtype):
            return {"$dtype": _plain_dtype(item).str}
        if isinstance(item, np.ndarray | np.generic):
            array = np.asarray(item)
            dtype = _plain_dtype(array.dtype)
            node = [dtype.str, list(array.shape), blob(np.ascontiguousarray(array).tobytes())]
            return {"$array" if isinstance(item, np.ndarray) else "$scalar": node}
        if isinstance(item, int | str | float):  # a subclass of a builtin that is not an enum: its plain value
            return walk(kind.__mro__[[c in (int, str, float) for c in kind.__mro__].index(True)](item), depth)
        record = _record_fields(kind)
        if record is not None:
            name, names = record
            return {"$data": [name, {field: walk(getattr(item, field), depth + 1) for field in names}]}
        raise TypeError(f"a reply cannot carry {kind.__module__}.{kind.__qualname__}")

    text = json.dumps(walk(value, 0), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return _LENGTH.pack(len(text)) + text + b"".join(blobs)


@functools.cache
def _record_fields(kind: type) -> tuple[str, tuple[str, ...]] | None:
    """A listed dataclass's ``module:Name`` and field names; None for a type that is no dataclass (TypeError for
    one that is not listed)."""
    if not dataclasses.is_dataclass(kind):
        return None
    name = _type_name(kind)
    if name not in _ALLOWED:
        raise TypeError(f"{name} is not a reply type (edgekit.toolkit.safety.replies.REPLY_TYPES)")
    return name, tuple(f.name for f in dataclasses.fields(kind))


def _type_name(kind: type) -> str:
    return f"{kind.__module__}:{kind.__qualname__}"


def _plain_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise TypeError(f"a reply cannot carry arrays of dtype {dtype}")
    return dtype


# -- decoding (in the parent) ---------------------------------------------------------------------------


def decode(body: bytes) -> Any:
    """The value ``encode`` wrote; ``ReplyError`` for anything else (see the module doc)."""
    if len(body) < _LENGTH.size:
        raise ReplyError("a reply shorter than its header")
    (size,) = _LENGTH.unpack_from(body)
    if size > len(body) - _LENGTH.size:
        raise ReplyError("a reply whose JSON runs past its end")
    blobs = memoryview(body)[_LENGTH.size + size:]
    try:
        tree = json.loads(bytes(body[_LENGTH.size:_LENGTH.size + size]), parse_constant=_no_constant)
        return _Decoder(blobs).value(tree, 0)
    except ReplyError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError, AttributeError,
            UnicodeDecodeError) as exc:
        raise ReplyError(f"a malformed reply ({type(exc).__name__}: {str(exc)[:200]})") from None


def _no_constant(literal: str) -> Any:
    raise ReplyError(f"a reply with the JSON extension {literal}")


class _Decoder:
    def __init__(self, blobs: memoryview) -> None:
        self.blobs = blobs

    def value(self, node: Any, depth: int) -> Any:
        kind = type(node)
        if kind is str or kind is int or kind is float or kind is bool or node is None:  # what json.loads makes
            return node
        if depth > MAX_DEPTH:
            raise ReplyError(f"a reply nests deeper than {MAX_DEPTH} levels")
        if kind is list:
            return [self.value(v, depth + 1) for v in node]
        if not (isinstance(node, dict) and len(node) == 1):
            raise ReplyError("a reply with an untagged JSON object")
        ((tag, body),) = node.items()
        handler = _TAGS.get(tag)
        if handler is None:
            raise ReplyError(f"a reply with the unknown tag {tag[:40]!r}")
        return handler(self, body, depth + 1)

    def items(self, body: Any, depth: int) -> list[Any]:
        if not isinstance(body, list):
            raise ReplyError("a reply whose container is not a list")
        return [self.value(v, depth) for v in body]

    def blob(self, where: Any) -> memoryview:
        if not (isinstance(where, list) and len(where) == 2 and all(type(v) is int and v >= 0 for v in where)):
            raise ReplyError("a reply with a malformed byte reference")
        start, length = where
        if start + length > len(self.blobs):
            raise ReplyError("a reply whose bytes run past its end")
        return self.blobs[start:start + length]

    def array(self, body: Any) -> np.ndarray:
        if not (isinstance(body, list) and len(body) == 3 and isinstance(body[0], str) and isinstance(body[1], list)):
            raise ReplyError("a reply with a malformed array")
        dtype = np.dtype(body[0])
        if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise ReplyError(f"a reply with an array of dtype {body[0][:40]!r}")
        shape = body[1]
        if not all(type(d) is int and d >= 0 for d in shape) or len(shape) > 64:
            raise ReplyError("a reply with a malformed array shape")
        data = self.blob(body[2])
        if math.prod(shape) * dtype.itemsize != len(data):
            raise ReplyError("a reply whose array bytes do not match its shape")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()

    def data(self, body: Any, depth: int) -> Any:
        if not (isinstance(body, list) and len(body) == 2 and isinstance(body[0], str) and isinstance(body[1], dict)):
            raise ReplyError("a reply with a malformed record")
        kind = _reply_type(body[0])
        if not dataclasses.is_dataclass(kind):
            raise ReplyError(f"{body[0]} is not a record type")
        fields = {f.name for f in dataclasses.fields(kind)}
        given = body[1]
        if set(given) != fields:
            raise ReplyError(f"a {body[0]} with the fields {sorted(given)[:20]}, not {sorted(fields)}")
        instance = object.__new__(kind)
        for name, node in given.items():
            object.__setattr__(instance, name, self.value(node, depth))
        return instance

    def enum_value(self, body: Any, depth: int) -> Any:
        if not (isinstance(body, list) and len(body) == 2 and isinstance(body[0], str)):
            raise ReplyError("a reply with a malformed enum value")
        kind = _reply_type(body[0])
        if not (isinstance(kind, type) and issubclass(kind, enum.Enum | OpenValue)):
            raise ReplyError(f"{body[0]} is not an enum type")
        raw = self.value(body[1], depth)
        if not isinstance(raw, int | str):
            raise ReplyError(f"a {body[0]} value that is neither a number nor a string")
        return kind(raw)


def _reply_type(name: str) -> type:
    """The listed type ``module:Name`` names, imported from edgekit; ``ReplyError`` for any other name."""
    if name not in _ALLOWED:
        raise ReplyError(f"a reply naming {name[:120]!r}, which is not a reply type")
    module_name, _, qualname = name.partition(":")
    kind = getattr(importlib.import_module(module_name), qualname, None)
    if not (isinstance(kind, type) and kind.__module__ == module_name and kind.__qualname__ == qualname):
        raise ReplyError(f"{name} does not name a class defined there")
    return kind


def _finite_or_special(text: Any) -> float:
    if text not in ("nan", "inf", "-inf"):
        raise ReplyError("a reply with a malformed special float")
    return float(text)


def _complex(body: Any) -> complex:
    if not (isinstance(body, list) and len(body) == 2 and all(isinstance(v, str) for v in body)):
        raise ReplyError("a reply with a malformed complex number")
    return complex(float(body[0]), float(body[1]))


def _timedelta(body: Any) -> datetime.timedelta:
    if not (isinstance(body, list) and len(body) == 3 and all(type(v) is int for v in body)):
        raise ReplyError("a reply with a malformed timedelta")
    return datetime.timedelta(days=body[0], seconds=body[1], microseconds=body[2])


def _string(body: Any) -> str:
    if not isinstance(body, str):
        raise ReplyError("a reply with a malformed string node")
    return body


def _dict(decoder: _Decoder, body: Any, depth: int) -> dict[Any, Any]:
    pairs = decoder.items(body, depth)
    if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
        raise ReplyError("a reply with a malformed dict")
    return {key: value for key, value in pairs}


_TAGS: dict[str, Any] = {
    "$tuple": lambda d, body, depth: tuple(d.items(body, depth)),
    "$dict": _dict,
    "$set": lambda d, body, depth: set(d.items(body, depth)),
    "$frozenset": lambda d, body, depth: frozenset(d.items(body, depth)),
    "$bytes": lambda d, body, depth: bytes(d.blob(body)),
    "$float": lambda d, body, depth: _finite_or_special(body),
    "$complex": lambda d, body, depth: _complex(body),
    "$path": lambda d, body, depth: Path(_string(body)),
    "$datetime": lambda d, body, depth: datetime.datetime.fromisoformat(_string(body)),
    "$timedelta": lambda d, body, depth: _timedelta(body),
    "$dtype": lambda d, body, depth: _plain_dtype(np.dtype(_string(body))),
    "$array": lambda d, body, depth: d.array(body),
    "$scalar": lambda d, body, depth: d.array(body)[()],
    "$data": lambda d, body, depth: d.data(body, depth),
    "$enum": lambda d, body, depth: d.enum_value(body, depth),
}
