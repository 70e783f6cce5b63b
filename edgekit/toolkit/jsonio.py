"""Strict JSON for every report and record edgekit writes.

Python's ``json`` writes ``Infinity`` and ``NaN`` for non-finite floats, which is not JSON (RFC 8259):
JavaScript's ``JSON.parse``, Go's ``encoding/json`` and Rust's ``serde_json`` reject the whole file.
Parity reports hold such values routinely (the SNR of a bit-exact conversion is +inf; every error metric
of an output with no finite value is inf), so a CI job gating on ``edgekit validate --json`` could not
parse the report of the best possible result. Here non-finite floats are written as the strings
``"Infinity"``, ``"-Infinity"`` and ``"NaN"``, which JavaScript's ``Number()``, Python's ``float()``,
Go's ``strconv.ParseFloat`` and Rust's ``f64::from_str`` all read back, and the encoder refuses anything
else that is not strict JSON. Reading is typed: a report class revives the strings only in its float
fields, so a tensor that happens to be named ``"NaN"`` stays a name.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

NONFINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def dumps(obj: Any) -> str:
    """``json.dumps(obj, indent=2)`` with non-finite floats as ``"Infinity"``/``"-Infinity"``/``"NaN"``."""
    return json.dumps(_encode(obj), indent=2, allow_nan=False)


def _encode(obj: Any) -> Any:
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, dict):
        return {key: _encode(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_encode(value) for value in obj]
    return obj


def revive(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a dataclass's dict read from JSON) with the non-finite markers turned back into floats,
    in the fields ``cls`` declares as floats (``float``, ``float | None``, ``tuple[float, ...]``)."""
    floats = {f.name for f in dataclasses.fields(cls) if "float" in str(f.type)}
    return {key: _float(value) if key in floats else value for key, value in data.items()}


def _float(value: Any) -> Any:
    if isinstance(value, str) and value in NONFINITE:
        return NONFINITE[value]
    if isinstance(value, list | tuple):
        return [_float(v) for v in value]
    return value


# -- reading what others wrote -----------------------------------------------------------------------------

MAX_DEPTH = 200  # Keras configs of nested models reach ~40; past this a document is an attack on the reader
MAX_BYTES = 256 << 20


class JSONLimitError(ValueError):
    """A document that is not JSON, or JSON nested deeper / larger than edgekit reads."""


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """``json.loads`` for documents from files edgekit did not write (model configs, sidecars, bundle
    manifests, baselines): nesting and size are bounded, so a crafted document is a ValueError the caller
    reports as invalid input, never a RecursionError or a reader that the next layer (Keras' deserialiser
    recursing per level) chokes on."""
    if len(text) > max_bytes:
        raise JSONLimitError(f"{len(text)} bytes of JSON (at most {max_bytes})")
    try:
        value = json.loads(text)
    except RecursionError:
        raise JSONLimitError(f"JSON nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as exc:
        raise JSONLimitError(f"not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise JSONLimitError(f"not JSON ({exc})") from None
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise JSONLimitError(f"JSON nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, dict | list))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return value


def load_file(path: str | os.PathLike[str], *, what: str, max_depth: int = MAX_DEPTH,
              max_bytes: int = MAX_BYTES) -> Any:
    """:func:`loads` of a JSON file the user named (a baseline, a recipe), read as a regular file only (a FIFO or
    a device is exit 3 naming it, never a read that blocks: :func:`edgekit.toolkit.fsutil.read_regular_file`).
    OSErrors of the open (missing, unreadable) are the caller's to word."""
    from edgekit.toolkit.fsutil import read_regular_file

    return loads(read_regular_file(path, what=what, limit=max_bytes), max_depth=max_depth, max_bytes=max_bytes)
