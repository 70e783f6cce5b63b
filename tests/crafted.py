"""Malformed files made by hand rather than by cutting or scrambling: structures that parse at one level
and are wrong at the next (JSON nested past any real config, programs whose fields have the wrong types,
contracts declaring absurd sizes, sidecars naming files elsewhere). Each must exit 3 with one line."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

from corpora import Case, external_tensor
from redteam import CONSTANTS_CONFIG, PROGRAM, WEIGHTS_CONFIG, rewrite_zip

from edgekit.toolkit.contract.formats import Format

DEPTHS = (250, 1_000, 100_000)


def _deep(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


def crafted_malformed(samples: dict[Format, Path], out: Path) -> list[Case]:
    out.mkdir(parents=True, exist_ok=True)
    return [*_keras(samples, out), *_pt2(samples[Format.TORCH_EXPORTED], out), *_torchscript(samples, out),
            *_onnx(out), *_sidecars(samples, out), *_pickles(out)]


def _keras(samples: dict[Format, Path], out: Path) -> list[Case]:
    import h5py

    cases = []
    with zipfile.ZipFile(samples[Format.KERAS]) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    bodies = {f"deep{depth}": _deep(depth) for depth in DEPTHS}
    bodies |= {"not-json": "{'class_name': ", "not-utf8": b"\xff\xfe{}", "truncated": members["config.json"][:40],
               "a-list": "[]", "a-number": "5"}
    for name, body in bodies.items():
        path = out / f"keras.config-{name}.keras"
        with zipfile.ZipFile(path, "w") as copy:
            for member, data in members.items():
                copy.writestr(member, body if member == "config.json" else data)
        cases.append(Case(path, f"Keras config.json: {name}"))
    h5_bodies = {f"deep{depth}": _deep(depth) for depth in DEPTHS[:2]} | {"not-json": "{[}"}
    for name, body in h5_bodies.items():
        path = out / f"keras-h5.config-{name}.h5"
        with h5py.File(path, "w") as handle:
            handle.attrs["model_config"] = body
        cases.append(Case(path, f"Keras HDF5 model_config: {name}"))
    return cases


def _pt2(sample: Path, out: Path) -> list[Case]:
    def set_key(key: str, value: object) -> Callable[[dict], None]:
        return lambda document: document.__setitem__(key, value)

    def first_node(key: str, value: object) -> Callable[[dict], None]:
        return lambda program: program["graph_module"]["graph"]["nodes"][0].__setitem__(key, value)

    def first_size(value: object) -> Callable[[dict], None]:
        def edit(program: dict) -> None:
            graph = program["graph_module"]["graph"]
            name = graph["inputs"][-1]["as_tensor"]["name"]
            graph["tensor_values"][name]["sizes"][0] = {"as_expr": {"expr_str": value, "hint": None}}
        return edit

    def drop_path_name(config: dict) -> None:
        next(iter(config["config"].values())).pop("path_name")

    def missing_pickle(config: dict) -> None:
        next(iter(config["config"].values())).update(use_pickle=True, path_name="weight_missing")

    variants: dict[str, dict] = {
        "program-not-json": {"replace": {PROGRAM: b'{"graph_module": '}},
        "program-a-list": {"replace": {PROGRAM: b"[1, 2]"}},
        "program-guards-not-list": {"edit_json": {PROGRAM: set_key("guards_code", "x")}},
        "program-guards-not-strings": {"edit_json": {PROGRAM: set_key("guards_code", [1])}},
        "program-ranges-not-object": {"edit_json": {PROGRAM: set_key("range_constraints", [])}},
        "program-target-number": {"edit_json": {PROGRAM: first_node("target", 7)}},
        "program-target-null": {"edit_json": {PROGRAM: first_node("target", None)}},
        "program-expression-number": {"edit_json": {PROGRAM: first_size(3)}},
        "weights-config-not-json": {"replace": {WEIGHTS_CONFIG: b"{"}},
        "weights-config-no-table": {"edit_json": {WEIGHTS_CONFIG: lambda c: c.pop("config")}},
        "weights-config-no-path": {"edit_json": {WEIGHTS_CONFIG: drop_path_name}},
        "weights-pickle-missing": {"edit_json": {WEIGHTS_CONFIG: missing_pickle}},
        "constants-config-a-list": {"replace": {CONSTANTS_CONFIG: b"[]"}},
        "sample-inputs-garbage-pickle": {"replace": {"data/sample_inputs/model.pt": b"\x80\x04\x95garbage"}},
        "sample-inputs-broken-zip": {"replace": {"data/sample_inputs/model.pt": b"PK\x03\x04" + bytes(40)}},
        "models-unexpected-member": {"add": {"models/notes.txt": b"hello"}},
    }
    variants |= {f"program-deep{depth}": {"replace": {PROGRAM: _deep(depth).encode()}} for depth in DEPTHS}
    return [Case(rewrite_zip(sample, out / f"torch-exported.{name}.pt2", **edits), f".pt2 {name}")
            for name, edits in variants.items()]


def _torchscript(samples: dict[Format, Path], out: Path) -> list[Case]:
    sample = samples[Format.TORCHSCRIPT]
    with zipfile.ZipFile(sample) as archive:
        code = next(n for n in archive.namelist() if "/code/" in n and n.endswith(".py"))
        rel = code.split("/", 1)[1]
    bodies = {"not-utf8": b"\xff\xfeclass", "syntax-error": b"class Net(Module:\n", "nul-byte": b"class\x00Net: pass\n",
              "deep": ("x = " + "(" * 5000 + "1" + ")" * 5000 + "\n").encode()}
    cases = [Case(rewrite_zip(sample, out / f"torchscript.code-{name}.pt", replace={rel: body}), f"code/ {name}")
             for name, body in bodies.items()]
    data_pkl = "data.pkl"
    for name, body in {"garbage": b"\x80\x02garbage", "underflow": b"\x80\x02\x93."}.items():
        path = rewrite_zip(sample, out / f"torchscript.data-{name}.pt", replace={data_pkl: body})
        cases.append(Case(path, f"data.pkl {name}"))
    return cases


def _onnx(out: Path) -> list[Case]:
    import onnx
    from onnx import helper

    def model_with(dims: list, tensor: onnx.TensorProto | None = None) -> bytes:
        inputs = ["x", "w"] if tensor is not None else ["x", "x"]
        graph = helper.make_graph([helper.make_node("Add", inputs, ["y"])], "g",
                                  [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, dims)],
                                  [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, dims)],
                                  [tensor] if tensor is not None else [])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 10
        return model.SerializeToString()

    cases = []
    for name, dims in {"dim-2e63": [1, 2**63 - 1], "dims-overflow": [2**32, 2**32], "dim-2e40": [1, 2**40]}.items():
        path = out / f"onnx.{name}.onnx"
        path.write_bytes(model_with(dims))
        cases.append(Case(path, f"ONNX input {name}"))
    refs = {"empty-location": {"location": ""}, "nul-location": {"location": "w\x00.bin"},
            "missing-file": {"location": "nope.bin"}, "offset-text": {"location": "w.bin", "offset": "x"},
            "negative-length": {"location": "w.bin", "length": "-4"},
            "past-end": {"location": "w.bin", "offset": "1000", "length": "16"},
            "ort-memory-address": {"location": "*/_ORT_MEM_ADDR_/*", "offset": "4096", "length": "16"}}
    for name, entries in refs.items():
        directory = out / f"onnx-external-{name}"
        directory.mkdir(exist_ok=True)
        (directory / "w.bin").write_bytes(bytes(16))
        path = directory / f"onnx.external-{name}.onnx"
        path.write_bytes(model_with([4], external_tensor("w", **entries)))
        cases.append(Case(path, f"ONNX external data {name}"))
    return cases


def _sidecars(samples: dict[Format, Path], out: Path) -> list[Case]:
    sample = samples[Format.TFLITE]
    record = json.loads((sample.parent / f"{sample.name}.edgekit.json").read_text())
    bodies = {f"deep{depth}": _deep(depth) for depth in DEPTHS[:2]}
    bodies |= {"a-list": "[]", "data-absolute": json.dumps({**record, "data": "/etc/passwd"}),
               "data-backslash": json.dumps({**record, "data": "..\\..\\secret.npz"}),
               "data-sha-bogus": json.dumps({**record, "data_sha256": "not-a-digest"}),
               "artifact-path": json.dumps({**record, "artifact": "../other.tflite"}),
               "shape-nested": json.dumps({**record, "io_spec": {"inputs": [{"name": "x", "dtype": "float32",
                                                                            "shape": [[1]]}], "outputs": []}}),
               "dtype-bogus": json.dumps({**record, "io_spec": {"inputs": [{"name": "x", "dtype": "float99",
                                                                           "shape": [1]}], "outputs": []}})}
    cases = []
    for name, body in bodies.items():
        path = out / f"tflite.sidecar-{name}.tflite"
        path.write_bytes(sample.read_bytes())
        (out / f"{path.name}.edgekit.json").write_text(body)
        cases.append(Case(path, f"sidecar {name}"))
    return cases


def _pickles(out: Path) -> list[Case]:
    streams = {"underflow": b"\x80\x02\x93.", "pop-empty": b"\x80\x020.", "mark-missing": b"\x80\x02e.",
               "get-unset": b"\x80\x02h\x05.", "no-stop": b"\x80\x02K\x01", "unknown-opcode": b"\x80\x02\xff."}
    cases = []
    for name, data in streams.items():
        path = out / f"torch-pickle.crafted-{name}.pt"
        path.write_bytes(data)
        cases.append(Case(path, f"pickle {name}"))
    return cases
