"""The fuzz targets (fuzz/fuzz_parsers.py) on seeded random and mutated inputs without atheris: any
exception other than edgekit's own errors fails the test. atheris explores far more; this keeps the
harness working and catches regressions in CI."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_parsers.py"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("fuzz_parsers", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mutate(seed: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        if data and choice < 0.4:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice < 0.7:
            data[rng.randrange(len(data) + 1):rng.randrange(len(data) + 1)] = rng.randbytes(rng.randint(1, 16))
        elif data:
            del data[rng.randrange(len(data)):rng.randrange(len(data)) + 1]
    return bytes(data)


SEEDS = [
    (0, b"\x18\x00\x00\x00TFL3" + b"\x00" * 40),
    (0, b"PK\x03\x04" + b"\x00" * 60),
    (0, b"\x80\x04\x95" + b"\x00" * 20 + b"."),
    (1, json.dumps({"edgekit_sidecar_version": 1, "artifact": "artifact.tflite", "format": "tflite",
                    "sha256": "0" * 64, "io_spec": {"inputs": [], "outputs": []}}).encode()),
    (2, b'[pipeline]\nmodels = ["a.pt2"]\nto = ["onnx"]\n[thresholds]\nmin_accuracy = 0.9\n'
        b'[thresholds."onnx.int8"]\nmax_size_bytes = 10\n'),
    (3, json.dumps({"edgekit_report": "pipeline", "version": 1, "sources": [], "rows": [], "seconds": 1,
                    "created": "x"}).encode()),
    (4, json.dumps([["w", [["location", "weights.bin"], ["offset", "8"], ["length", "8"]]],
                    ["v", [["location", "../outside.bin"]]], ["u", [["location", "escape.bin"]]]]).encode()),
    (5, b"\x80\x04\x8c\x02os\x8c\x06system\x8c\x0ctorch._utils\x8c\x12_rebuild_tensor_v2" + b"00\x93K\x01\x85R."),
    (6, json.dumps({"graph_module": {"graph": {"nodes": [{"target": "torch.ops.aten.relu.default", "inputs": [],
                                                          "outputs": [], "name": "r"}]}},
                    "guards_code": ["L['x'].size()[0] > 1"],
                    "range_constraints": {"s0": {}}, "x": {"expr_str": "Symbol('s0', positive=True) + 1"}}).encode()),
    (7, b"class Net(Module):\n  def forward(self: __torch__.Net, x: Tensor) -> Tensor:\n"
        b"    return torch.relu(ops.aten.add(x, x))\n"),
    (8, b""),  # replaced by _onnx_seed(): a model whose local function holds a Constant with external data
    (9, b"model.tflite\ngolden/input_0.bin\n..\\..\\evil.txt\nC:evil\nModel.TFLITE\n"),
    (10, b""),  # generated (GENERATED_SEEDS): a worker's reply carrying a record, an enum and an array
    (11, b""),  # generated: a two-member bundle zip as the bundle writer makes it
    (12, b""),  # generated: a small .tflite flatbuffer
]


def _onnx_seed() -> bytes:
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    tensor = numpy_helper.from_array(np.zeros(2, dtype=np.float32), "w")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.append(onnx.StringStringEntryProto(key="location", value="weights.bin"))
    function = helper.make_function("local", "F", ["x"], ["y"], [helper.make_node("Constant", [], ["y"], value=tensor)],
                                    [helper.make_opsetid("", 17)])
    graph = helper.make_graph([helper.make_node("F", ["x"], ["y"], domain="local")], "g", [], [])
    return helper.make_model(graph, functions=[function]).SerializeToString()


def _reply_seed() -> bytes:
    import numpy as np

    from edgekit.toolkit.contract.formats import Format
    from edgekit.toolkit.contract.iospec import IOSpec, TensorSpec
    from edgekit.toolkit.safety.replies import encode

    spec = IOSpec((TensorSpec("x", (1, 4), "float32"),), ())
    return encode(("ok", {"spec": spec, "format": Format.ONNX, "a": np.arange(4, dtype=np.float32), "t": (1, b"z")}))


def _bundle_seed() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in (("model.json", b'{"edgekit_bundle": 1}'), ("model.tflite", b"TFL3" * 8)):
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def _tflite_seed() -> bytes:
    from test_compat import crafted_tflite

    return crafted_tflite(operators=2, fan_in=2)


GENERATED_SEEDS = {8: _onnx_seed, 10: _reply_seed, 11: _bundle_seed, 12: _tflite_seed}


def test_targets_survive_random_and_mutated_inputs(harness):
    rng = random.Random(0)
    runs = 0
    for _ in range(600):
        harness.check_one(rng.randbytes(rng.randint(0, 64)))
        runs += 1
    for target, seed in ((t, GENERATED_SEEDS[t]() if t in GENERATED_SEEDS else s) for t, s in SEEDS):
        for _ in range(300):
            harness.check_one(bytes([target]) + mutate(seed, rng))
            runs += 1
    assert runs == 600 + 300 * len(SEEDS)


def test_external_data_invariant_holds_for_escapes(harness):
    for location in ("../outside.bin", "/etc/passwd", "escape.bin", "sub/../../outside.bin", "sub/w.bin"):
        harness.check_one(bytes([4]) + json.dumps([["w", [["location", location]]]]).encode())
