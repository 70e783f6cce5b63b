"""Attack files from the red-team run against the loading policy, rebuilt by code so every class has a test.

Each builder writes files that would append to ``marker`` (a path the test checks never appears), or
read a file outside the model's directory, if edgekit ran what they carry. They start from the tiny
valid samples (``edgekit.samples``) and change what an attacker would change, nothing else: the
archives stay well-formed zips, the JSON stays valid, so the refusal is the policy's, not a parse error.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

from corpora import Case, _keras_config, _Reduce, _write_keras, external_tensor


def _payload_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'a').write('pwned')"


def _torch_save(obj: object) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def rewrite_zip(source: Path, out: Path, *, replace: dict[str, bytes] | None = None,
                edit_json: dict[str, Callable[[dict], None]] | None = None,
                add: dict[str, bytes] | None = None) -> Path:
    """A copy of a torch archive (members under one folder) with members replaced, JSON members edited in
    place, or members added; names are relative to the archive's folder."""
    replace, edit_json, add = replace or {}, edit_json or {}, add or {}
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(out, "w") as copy:
        prefix = original.namelist()[0].split("/", 1)[0] + "/"
        for info in original.infolist():
            rel = info.filename[len(prefix):]
            data = replace.get(rel, original.read(info))
            if rel in edit_json:
                document = json.loads(data)
                edit_json[rel](document)
                data = json.dumps(document).encode()
            copy.writestr(info.filename, data)
        for rel, data in add.items():
            copy.writestr(prefix + rel, data)
    return out


# -- .pt2 -------------------------------------------------------------------------------------------------

WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
CONSTANTS_CONFIG = "data/constants/model_constants_config.json"
PROGRAM = "models/model.json"


class _ExecThenParameter:
    """The stealth variant: runs its payload, then unpickles to a real Parameter, so loading succeeds."""

    def __init__(self, code: str, shape: list[int]) -> None:
        self.code, self.shape = code, shape

    def __reduce__(self):
        return eval, (f"({self.code}, __import__('torch').nn.Parameter(__import__('torch').zeros({self.shape})))[1]",)


def pt2_attacks(sample: Path, out: Path, marker: Path) -> list[Case]:
    """Every way torch 2.13's ``torch.export.load`` (and ``ep.module()``) runs an archive's code."""
    out.mkdir(parents=True, exist_ok=True)
    code = _payload_code(marker)
    evil = _Reduce(exec, (code,))
    with zipfile.ZipFile(sample) as archive:
        prefix = archive.namelist()[0].split("/", 1)[0] + "/"
        weights = json.loads(archive.read(prefix + WEIGHTS_CONFIG))["config"]
    fqn = next(iter(weights))
    weight_file = f"data/weights/{weights[fqn]['path_name']}"
    shape = [d["as_int"] for d in weights[fqn]["tensor_meta"]["sizes"]]

    def use_pickle(config: dict) -> None:
        config["config"][fqn]["use_pickle"] = True

    def add_constant(path_name: str) -> Callable[[dict], None]:
        def edit(config: dict) -> None:
            config["config"]["evil"] = {"path_name": path_name, "is_param": False, "use_pickle": True,
                                        "tensor_meta": None}
        return edit

    def first_node(edit: Callable[[dict], None]) -> Callable[[dict], None]:
        return lambda program: edit(program["graph_module"]["graph"]["nodes"][0])

    def input_size_expression(program: dict) -> None:
        graph = program["graph_module"]["graph"]
        first_input = graph["inputs"][-1]["as_tensor"]["name"]
        graph["tensor_values"][first_input]["sizes"][0] = {
            "as_expr": {"expr_str": f"__import__('builtins').exec({code!r}) or 1", "hint": {"as_int": 1}}}

    def guards(program: dict) -> None:
        program["guards_code"] = [f"__import__('os').system('touch {marker}') == 0"]

    def os_system_target(node: dict) -> None:
        node["target"] = "torch.os.system"

    variants = {
        "sample-inputs": ({"replace": {"data/sample_inputs/model.pt": _torch_save(evil)}},
                          "sample inputs retried with weights_only=False"),
        "use-pickle-weight": ({"edit_json": {WEIGHTS_CONFIG: use_pickle}, "replace": {weight_file: _torch_save(evil)}},
                              "a weight with use_pickle: true"),
        "stealth-parameter": ({"edit_json": {WEIGHTS_CONFIG: use_pickle},
                               "replace": {weight_file: _torch_save(_ExecThenParameter(code, shape))}},
                              "a use_pickle weight that runs code, then returns a real Parameter"),
        "opaque-object": ({"edit_json": {CONSTANTS_CONFIG: add_constant("opaque_obj_0")},
                           "add": {"data/constants/opaque_obj_0": pickle.dumps(evil)}},
                          "an opaque_obj_ constant (plain pickle.loads)"),
        "torchbind-object": ({"edit_json": {CONSTANTS_CONFIG: add_constant("custom_obj_0")},
                              "add": {"data/constants/custom_obj_0": pickle.dumps(evil)}},
                             "a custom_obj_ constant (TorchBind unpickler)"),
        "tensor-constant-pickle": ({"edit_json": {CONSTANTS_CONFIG: add_constant("tensor_constant_9")},
                                    "add": {"data/constants/tensor_constant_9": _torch_save(evil)}},
                                   "a pickled tensor constant"),
        "legacy-weights": ({"add": {"data/weights/model.pt": _torch_save(evil)}},
                           "legacy data/weights/model.pt (deserialize_torch_artifact)"),
        "sympy-expression": ({"edit_json": {PROGRAM: input_size_expression}},
                             "a shape expression sympy.sympify evaluates"),
        "guards-code": ({"edit_json": {PROGRAM: guards}}, "guards_code exec'd by ep.module()"),
        "target-os-system": ({"edit_json": {PROGRAM: first_node(os_system_target)}},
                             "a node whose target resolves to torch.os.system"),
        "aotinductor": ({"add": {"data/aotinductor/model/model.so": b"\x7fELF" + bytes(60)}},
                        "an AOTInductor shared library"),
    }
    return [Case(rewrite_zip(sample, out / f"pt2-{name}.pt2", **edits), f".pt2 with {kind}")
            for name, (edits, kind) in variants.items()]


# -- TorchScript ------------------------------------------------------------------------------------------


def torchscript_attacks(out: Path, marker: Path) -> list[Case]:
    """Scripted modules whose code reaches the file system: at load time (``__setstate__``) and at the
    first inference (``forward``), through ``torch.from_file(shared=True)`` and ``aten::save``; plus a
    hand-edited archive calling a custom-namespace operator."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    load_marker, run_marker = str(marker) + ".load", str(marker) + ".run"
    # TorchScript compiles string literals only: placeholders, replaced by the marker paths in code/ below.

    class WritesAtLoad(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(2, 4))
            self.buffer = torch.zeros(16, dtype=torch.uint8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.linear(x, self.weight)

        @torch.jit.export
        def __getstate__(self) -> tuple[torch.Tensor, bool]:
            return (self.weight, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
            mapped = torch.from_file("@LOAD@", True, 16, dtype=torch.uint8)
            mapped.fill_(66)
            self.buffer = mapped
            self.weight = state[0]
            self.training = state[1]

    class WritesAtRun(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(2, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mapped = torch.from_file("@RUN@", True, 16, dtype=torch.uint8)
            mapped.fill_(65)
            return torch.nn.functional.linear(x, self.weight) + mapped[0].float() * 0

    def rewrite_code(source: Path, path: Path, edit: Callable[[str], str]) -> None:
        with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as copy:
            for info in original.infolist():
                data = original.read(info)
                if "/code/" in info.filename and info.filename.endswith(".py"):
                    data = edit(data.decode().replace("@LOAD@", load_marker).replace("@RUN@", run_marker)).encode()
                copy.writestr(info, data)

    cases = []
    scripted = out / "scripted.pt"
    for name, module, kind in (("setstate-from-file", WritesAtLoad(), "__setstate__ calling torch.from_file"),
                               ("forward-from-file", WritesAtRun(), "forward calling torch.from_file")):
        torch.jit.script(module).save(str(scripted))
        rewrite_code(scripted, out / f"ts-{name}.pt", lambda text: text)
        cases.append(Case(out / f"ts-{name}.pt", f"TorchScript with {kind}"))
    for name, line, kind in (
            ("aten-save", f"_saved = torch.save(x, {run_marker!r})", "forward calling aten::save"),
            ("custom-namespace", f"_read = ops.image.read_file({run_marker!r})", "a custom-namespace operator"),
            ("rpc", f"_remote = rpc_async('worker', {run_marker!r})", "an RPC builtin")):
        def add_line(text: str, line: str = line) -> str:
            return text.replace("    mapped = torch.from_file(", f"    {line}\n    mapped = torch.from_file(", 1)

        rewrite_code(scripted, out / f"ts-{name}.pt", add_line)
        cases.append(Case(out / f"ts-{name}.pt", f"TorchScript with {kind}"))
    scripted.unlink()
    return cases


# -- Keras layers that embed pickles ----------------------------------------------------------------------


def keras_pickle_layers(out: Path, marker: Path) -> list[Case]:
    """A ``TorchModuleWrapper`` layer (as Keras 3 writes it) whose base64 module is a malicious pickle, in a
    ``.keras`` and an ``.h5``: Keras unpickles it with ``weights_only=False`` under ``safe_mode=False``."""
    import h5py

    out.mkdir(parents=True, exist_ok=True)
    module = base64.b64encode(pickle.dumps(_Reduce(exec, (_payload_code(marker),)), protocol=2)).decode()
    layer = {"module": "keras.layers", "class_name": "TorchModuleWrapper", "registered_name": "TorchModuleWrapper",
             "config": {"name": "wrapped", "trainable": True, "dtype": "float32", "module": module,
                        "output_shape": None}}
    keras_path = out / "keras-torch-module-wrapper.keras"
    _write_keras(keras_path, _keras_config(layer))
    h5_path = out / "h5-torch-module-wrapper.h5"
    with h5py.File(h5_path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(_keras_config(layer))
        handle.attrs["keras_version"] = "3.15.0"
        handle.attrs["backend"] = "tensorflow"
        handle.create_group("model_weights")
    return [Case(keras_path, "Keras TorchModuleWrapper pickle"), Case(h5_path, "Keras HDF5 TorchModuleWrapper pickle")]


# -- ONNX: external data in the places the old walk missed -------------------------------------------------


def onnx_hidden_escapes(out: Path, outside: Path) -> list[Case]:
    """External data hard-linked to ``outside`` from a local function's ``Constant``, a sparse tensor
    attribute, a subgraph inside a function, and a training-info graph."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    def external(name: str) -> onnx.TensorProto:
        return external_tensor(name, location="weights.bin", offset="0", length="16")

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]

    def function_model(body: list[onnx.NodeProto]) -> onnx.ModelProto:
        function = helper.make_function("local", "AddSecret", ["x"], ["y"], body, [helper.make_opsetid("", 17)])
        graph = helper.make_graph([helper.make_node("AddSecret", ["x"], ["y"], domain="local")], "g", [x], [y])
        return helper.make_model(graph, opset_imports=opsets, functions=[function])

    constant = helper.make_node("Constant", [], ["w"], value=external("w"))
    add = helper.make_node("Add", ["x", "w"], ["y"])
    sparse = onnx.SparseTensorProto()
    sparse.values.CopyFrom(external("values"))
    sparse.indices.CopyFrom(numpy_helper.from_array(np.arange(4, dtype=np.int64), "indices"))
    sparse.dims.append(4)
    sparse_constant = helper.make_node("Constant", [], ["w"], sparse_value=sparse)
    then_graph = helper.make_graph([helper.make_node("Constant", [], ["w2"], value=external("w2"))], "then", [],
                                   [helper.make_tensor_value_info("w2", onnx.TensorProto.FLOAT, [4])])
    condition = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(True), "c"))
    branch = helper.make_node("If", ["c"], ["w"], then_branch=then_graph, else_branch=then_graph)
    training = function_model([constant, add])
    training.graph.ClearField("node")
    training.graph.node.append(helper.make_node("Identity", ["x"], ["y"]))
    info = training.training_info.add()
    info.initialization.CopyFrom(helper.make_graph([], "init", [], [], [external("t")]))
    models = {
        "function-constant": (function_model([constant, add]), "a local function's Constant"),
        "sparse-attribute": (function_model([sparse_constant, add]), "a sparse tensor attribute"),
        "function-subgraph": (function_model([condition, branch, add]), "a subgraph inside a function"),
        "training-info": (training, "a training-info graph"),
    }
    cases = []
    for name, (model, kind) in models.items():
        directory = out / f"onnx-{name}"
        directory.mkdir(parents=True, exist_ok=True)
        os.link(outside, directory / "weights.bin")
        path = directory / "model.onnx"
        path.write_bytes(model.SerializeToString())
        cases.append(Case(path, f"ONNX external data (hardlink out) via {kind}"))
    return cases


# -- pickles that fooled the last-two-strings scanner ------------------------------------------------------


def pickle_evasions(out: Path, marker: Path) -> list[Case]:
    """Bare pickles (protocol 4 opcodes written by hand) whose STACK_GLOBAL imports ``os.system`` while the
    two strings seen last name an allowed torch helper."""
    out.mkdir(parents=True, exist_ok=True)
    command = f"touch {marker}".encode()

    def unicode(text: str) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text.encode()  # SHORT_BINUNICODE

    call = b"\x8c" + bytes([len(command)]) + command + b"\x85R."  # arg, TUPLE1, REDUCE, STOP
    decoys = unicode("torch._utils") + unicode("_rebuild_tensor_v2")
    streams = {
        # os, system, then two decoys popped off again: the stack holds os, system at STACK_GLOBAL
        "popped-decoys": b"\x80\x04" + unicode("os") + unicode("system") + decoys + b"00\x93" + call,
        # decoys inside a MARK, dropped by POP_MARK
        "pop-mark-decoys": b"\x80\x04" + unicode("os") + unicode("system") + b"(" + decoys + b"1\x93" + call,
        # os and system memoised and popped, fetched back from the memo, then decoys pushed and popped
        "memo-fetch": b"\x80\x04" + unicode("os") + b"\x94" + unicode("system") + b"\x94" + b"00"
                      + b"h\x00h\x01" + decoys + b"00\x93" + call,
    }
    cases = []
    for name, data in streams.items():
        path = out / f"pickle-{name}.pt"
        path.write_bytes(data)
        cases.append(Case(path, f"bare pickle hiding os.system ({name})"))
    return cases
