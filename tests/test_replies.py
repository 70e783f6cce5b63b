"""A worker's reply is data: what edgekit's results hold survives the trip, and nothing a hostile worker (or a Ray
node) writes makes the parent import or run anything — the red team's dotted-name and nested-pickle gadgets
first among them."""

from __future__ import annotations

import ast
import dataclasses
import datetime
import json
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from edgekit.toolkit.contract.errors import ExitCode
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, TensorSpec
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.safety import replies
from edgekit.toolkit.safety.isolation import WorkerCrashedError, read_message
from edgekit.toolkit.safety.replies import REPLY_TYPES, ReplyError, decode, encode

PACKAGE = Path(__file__).parents[1] / "edgekit"


def _pickle_global(module: str, name: str, argument: str) -> bytes:
    """Protocol 4: STACK_GLOBAL(module, name)(argument): the dotted ``name`` resolves past the module."""
    m, n, a = module.encode(), name.encode(), argument.encode()
    return (b"\x80\x04\x8c" + bytes([len(m)]) + m + b"\x94\x8c" + bytes([len(n)]) + n + b"\x94\x93\x8c"
            + bytes([len(a)]) + a + b"\x94\x85R.")


def _body(tree: object, blobs: bytes = b"") -> bytes:
    text = json.dumps(tree).encode()
    return struct.pack("!Q", len(text)) + text + blobs


def test_what_results_hold_survives_the_trip():
    spec = IOSpec((TensorSpec("image", (1, 3, 8, 8), "float32"),), (TensorSpec("logits", (1, 10), "float32"),))
    value = {
        "spec": spec, "format": Format.TFLITE, "mode": QuantMode.INT8, "code": ExitCode.RESOURCE_LIMIT,
        ("a", 1): [1, 2.5, float("nan"), float("inf"), -float("inf"), None, True, "ü\x00\n"],
        "sets": (frozenset({1, 2}), {"x"}), "bytes": b"\x00\xff", "path": Path("/tmp/m.tflite"),
        "when": datetime.datetime(2026, 12, 7, 17, 0, tzinfo=datetime.UTC), "took": datetime.timedelta(seconds=1.5),
        "arrays": [np.arange(6, dtype=np.int8).reshape(2, 3), np.zeros((0, 4), np.float16), np.array(3.5),
                   np.array(["ab", "c"]), np.array([1 + 2j], np.complex64), np.ones((2, 2), bool)[:, ::-1]],
        "scalars": [np.float32(0.25), np.int64(-7), np.bool_(True)], "dtype": np.dtype("<i2"), "complex": 1 - 2j,
        7: 2 ** 80,
    }
    back = decode(encode(value))
    assert back["spec"] == spec and back["format"] is Format.TFLITE and back["mode"] is QuantMode.INT8
    assert back["code"] is ExitCode.RESOURCE_LIMIT and back[7] == 2 ** 80 and back["complex"] == 1 - 2j
    floats = back[("a", 1)]
    assert floats[:2] == [1, 2.5] and math.isnan(floats[2]) and floats[3:] == [math.inf, -math.inf, None, True,
                                                                                "ü\x00\n"]
    assert back["sets"] == (frozenset({1, 2}), {"x"}) and back["bytes"] == b"\x00\xff"
    assert back["path"] == Path("/tmp/m.tflite") and back["when"] == value["when"] and back["took"] == value["took"]
    for got, want in zip(back["arrays"], value["arrays"], strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
        assert got.flags.writeable
    assert [type(s) for s in back["scalars"]] == [np.float32, np.int64, np.bool_] and back["dtype"] == np.dtype("<i2")


def test_a_result_that_is_not_data_cannot_be_sent():
    for value in (os.system, object(), np.array([object()]), Exception("x"), type, lambda: 1):
        with pytest.raises(TypeError):
            encode(value)

    @dataclasses.dataclass
    class Unlisted:
        x: int = 1

    with pytest.raises(TypeError, match="not a reply type"):
        encode(Unlisted())


def _defined_data_types() -> dict[str, set[str]]:
    """Every dataclass and enum edgekit defines at module level, read from the source (nothing imported)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.ClassDef):
                continue
            decorators = [ast.unparse(d) for d in node.decorator_list]
            bases = [ast.unparse(b) for b in node.bases]
            if any(d.startswith("dataclass") for d in decorators) or any("Enum" in b or b == "OpenValue"
                                                                          for b in bases):
                found.setdefault(module, set()).add(node.name)
    return found


def test_the_reply_types_are_an_explicit_list_kept_complete():
    """A new result type must be listed (REPLY_TYPES) or declared never to travel (NEVER_REPLIED)."""
    defined = _defined_data_types()
    listed: dict[str, set[str]] = {}
    for table in (REPLY_TYPES, replies.NEVER_REPLIED):
        for module, names in table.items():
            assert all("." not in name and name.isidentifier() for name in names)
            listed.setdefault(module, set()).update(names)
    assert listed == defined


GADGETS = {
    # the red team's two: a dotted name past an allowed module, and a pickle inside a pickle
    "dotted os.system": lambda marker: _pickle_global("edgekit.toolkit.safety.isolation", "os.system",
                                                      f"touch {marker}"),
    "nested pickle.loads": lambda marker: _pickle_global("edgekit.toolkit.safety.pool", "pickle.loads", "x"),
    "plain builtins.eval": lambda marker: _pickle_global("builtins", "eval", f"open('{marker}', 'w')"),
}


@pytest.mark.parametrize("name", sorted(GADGETS))
def test_pickle_gadgets_are_unreadable_replies_and_run_nothing(name, tmp_path):
    marker = tmp_path / "MARKER"
    with pytest.raises(WorkerCrashedError, match="unreadable reply from the worker"):
        read_message(GADGETS[name](marker))
    assert not marker.exists()


def _data(name: str, fields: dict) -> dict:
    return {"$data": [name, fields]}


HOSTILE_TREES = {
    "unlisted module": _data("os:system", {}),
    "dotted name in a listed module": _data("edgekit.toolkit.safety.isolation:os.system", {}),
    "module attribute, not a class": _data("edgekit.toolkit.safety.pool:pickle", {}),
    "listed module, unlisted class": _data("edgekit.toolkit.safety.pool:WorkerPool", {}),
    "a class that never travels": _data("edgekit.toolkit.safety.pool:Task", {}),
    "fields of another class": _data("edgekit.toolkit.contract.iospec:TensorSpec", {"__class__": 1}),
    "enum of a non-enum": {"$enum": ["edgekit.toolkit.contract.iospec:TensorSpec", "x"]},
    "enum value of a list": {"$enum": ["edgekit.toolkit.contract.errors:ExitCode", [1]]},
    "object array": {"$array": ["|O", [1], [0, 8]]},
    "structured array": {"$array": [[["a", "<i4"]], [1], [0, 4]]},
    "void array": {"$array": ["|V8", [1], [0, 8]]},
    "array bytes past the end": {"$array": ["<f4", [4], [0, 16]]},
    "array shape not its bytes": {"$array": ["<f4", [3], [0, 8]]},
    "negative byte reference": {"$bytes": [-1, 1]},
    "unknown tag": {"$reduce": ["os:system", "id"]},
    "untagged object": {"a": 1},
    "two keys": {"$tuple": [], "$set": []},
    "deep nesting": json.loads("[" * 300 + "]" * 300),
    "unhashable key": {"$dict": [[[1], 2]]},
    "special float text": {"$float": "1e999999"},
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TREES))
def test_replies_naming_anything_else_are_refused(name):
    blobs = b"\x00" * 8
    with pytest.raises(ReplyError):
        decode(_body(HOSTILE_TREES[name], blobs))


@pytest.mark.parametrize("body", [b"", b"\x00" * 7, struct.pack("!Q", 99) + b"{}", struct.pack("!Q", 3) + b"NaN",
                                  struct.pack("!Q", 2) + b"\xff\xfe", struct.pack("!Q", 1) + b"["])
def test_truncated_and_malformed_bodies_are_refused(body):
    with pytest.raises(ReplyError):
        decode(body)


@pytest.mark.parametrize("message", [("ok",), ("ok", 1, 2), ("exec", "x"), ("phase", 3), ["ok", 1],
                                     ("error", ("UsageError", "2", "m", None)), ("internal", ("a", "b"))])
def test_messages_of_the_wrong_shape_are_refused(message):
    with pytest.raises(WorkerCrashedError):
        read_message(encode(message))


def test_a_listed_record_is_rebuilt_without_running_its_code(monkeypatch):
    """No __init__, __post_init__ or __setattr__ of the class runs: fields are set as pickle would, minus
    pickle's calls."""
    from edgekit.pipeline.executors import ExecutorOptions

    called = []
    monkeypatch.setattr(ExecutorOptions, "__post_init__", lambda self: called.append("post_init"))
    options = decode(_body(_data("edgekit.pipeline.executors:ExecutorOptions", {
        "kind": {"$enum": ["edgekit.pipeline.executors:ExecutorKind", "ray"]}, "jobs": 0, "ray_address": "x",
        "timeout": None, "memory_mb": None})))
    assert called == [] and options.jobs == 0 and options.kind == "ray"


def test_a_ray_node_replying_with_a_gadget_crashes_its_row_and_runs_nothing(tmp_path):
    """The driver side of --executor ray: whatever bytes a node's task returns are read as data."""
    import types

    from edgekit.pipeline.ray_executor import RayExecutor
    from edgekit.toolkit.safety.pool import Task

    marker = tmp_path / "MARKER"
    executor = object.__new__(RayExecutor)
    executor.limits = None
    errors = types.SimpleNamespace(OutOfMemoryError=KeyError, WorkerCrashedError=KeyError, NodeDiedError=KeyError,
                                   TaskCancelledError=KeyError, RayError=KeyError)
    task = Task("row", print, phase="converting")
    for reply in (GADGETS["dotted os.system"](marker), GADGETS["nested pickle.loads"](marker), "not bytes",
                  encode(("ok", 1)), encode(("ok", 1, ["not", "digests"]))):
        executor._ray = types.SimpleNamespace(get=lambda ref, reply=reply: reply, exceptions=errors)
        outcome = executor._outcome(task, "ref")
        assert outcome.crash is not None and outcome.value is None, outcome
    executor._ray = types.SimpleNamespace(get=lambda ref: encode(("ok", {"fine": 1}, {})), exceptions=errors)
    assert executor._outcome(task, "ref").value == {"fine": 1}
    assert not marker.exists()
