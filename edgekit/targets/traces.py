"""Every intermediate tensor of one model on one input, through the model's own runtime: what ``edgekit localize``
pairs between a model and its conversion (:mod:`edgekit.validators.localize` does the pairing and judging).

Each trace lists its values in execution order (:class:`Value`: the name the format keeps, the operator, the values
it reads, and the scopes a converter leaves in names) and runs a sample to a mapping name → float array
(quantized tensors dequantized with their own scale and zero point).

- torch.export (.pt2, a factory): an FX interpreter over ``ExportedProgram.module()``, every ``call_function``
  node's output; the scope is ``nn_module_stack``'s leaf module path and class chain.
- Keras: a functional model returning every layer's output (the layer name is the scope).
- ONNX: every node output exposed as a graph output, onnxruntime without graph optimisation (an exposed value
  stops fusions anyway); the scope is the ``pkg.torch.onnx.name_scopes`` module path where torch.onnx wrote one,
  else the ``/``-separated segments of the name (tf2onnx).
- TFLite: LiteRT's interpreter with ``experimental_preserve_all_tensors`` and the builtin kernels (the XNNPACK
  delegate computes fused blocks whose insides are never written); the scopes are the ``;``-separated locations of
  the tensor name (litert-torch: ``pkg.Model/pkg.Class_attr/…``, TFLiteConverter: ``model/layer/op``).
- ExecuTorch: the program's outputs. A program lowered with intermediate-output taps (``convert --debug-taps``,
  ExecuTorch's ``intermediate_output_tap``, the specs in the sidecar) returns every tapped op's value as an extra
  output, named by its FX node; without taps a delegate call is one opaque value, named by the call.

An instrumented run may compute with other kernels than the deployed one; the caller compares final outputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.toolkit.contract.errors import InvalidInputError
from edgekit.toolkit.contract.iospec import IOSpec


@dataclass(frozen=True)
class Value:
    """One intermediate value of a traced model."""

    name: str  # what the format calls it (FX node, layer, ONNX value, TFLite tensor, tap's FX node)
    op: str
    inputs: tuple[str, ...] = ()  # traced values it reads (reference graphs: what "feeds" a pair means)
    module_path: str | None = None  # torch: nn_module_stack leaf path; Keras: the layer name
    # how a converter may spell the scope in the other model's names: ("module", "features.0"),
    # ("litert", "torch.nn.modules.container.Sequential_features/torch.nn.modules.conv.Conv2d_0"), ("layer", "dense")
    keys: tuple[tuple[str, str], ...] = ()
    scopes: tuple[str, ...] = ()  # candidate: scopes its name or metadata carries
    node: str | None = None  # ONNX: the node that makes it
    quantized: bool = False  # stored as integers (dequantized when read)


@dataclass
class Trace:
    kind: str
    instrument: str
    values: list[Value]
    outputs: list[str]  # the graph outputs' value names, in the contract's order
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    notes: list[str] = field(default_factory=list)
    opaque: bool = False  # the runtime shows nothing but outputs (a delegate call without taps)
    path: Path | None = None
    sources: tuple[str, ...] | None = None  # the graph inputs' names as values read them (None: not known)


def _module_keys(stack: dict | None) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """The leaf module path of an ``nn_module_stack`` and the scope spellings converters derive from it."""
    if not stack:
        return None, ()
    entries = [v for v in stack.values() if isinstance(v, tuple) and len(v) >= 2]
    if not entries:
        return None, ()

    def class_name(cls: Any) -> str:
        return cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"

    segments, root = [], None
    for entry_path, cls in entries:
        entry_path = str(entry_path)
        if not entry_path:  # the root module: litert-torch's first segment, which the key leaves out
            root = class_name(cls)
            continue
        # litert-torch names each module by the last segment of its path (backend/debuginfo/_build.py): a
        # ModuleList's item "encoder.layer.0" is "BertLayer_0", the list itself never being called
        segments.append(f"{class_name(cls)}_{entry_path.rsplit('.', 1)[-1]}")
    if not segments:  # an op of the root module's own forward: litert-torch names it by the root class alone
        return None, ((("litert-root", root),) if root else ())
    path = str(entries[-1][0])
    # litert-torch names a tensor "pkg.Root/pkg.Class_attr/…": the scope without the root
    return path, (("module", path), ("litert", "/".join(segments)))


def torch_trace(program: Any, spec: IOSpec) -> Trace:
    import torch

    module = program.module()
    meta = {n.name: n for n in program.graph.nodes}
    values = []
    for node in module.graph.nodes:
        if node.op != "call_function":
            continue
        source = meta.get(node.name, node)
        path, keys = _module_keys(source.meta.get("nn_module_stack"))
        target = getattr(node.target, "__name__", str(node.target))
        values.append(Value(node.name, target.split(".")[0], tuple(n.name for n in node.all_input_nodes),
                            path, keys))
    output = next(n for n in module.graph.nodes if n.op == "output")
    outputs = [a.name for a in torch.utils._pytree.tree_leaves(output.args) if isinstance(a, torch.fx.Node)]
    traced = {v.name for v in values}

    class Recorder(torch.fx.Interpreter):
        def __init__(self) -> None:
            super().__init__(module)
            self.seen: dict[str, np.ndarray] = {}

        def run_node(self, n: Any) -> Any:
            result = super().run_node(n)
            if n.name in traced and isinstance(result, torch.Tensor):
                # a copy: numpy() shares the tensor's storage, and an in-place op later in the graph (a ResNet's
                # ``hidden += residual``) would rewrite the value recorded here
                value = result.detach().cpu()
                self.seen[n.name] = (value.float() if value.is_floating_point() else value).numpy().copy()
            return result

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        recorder = Recorder()
        args = [torch.from_numpy(np.ascontiguousarray(feed[name])) for name in spec.input_names]
        with torch.no_grad():
            recorder.run(*args)
        return recorder.seen

    return Trace("torch", "FX interpreter over the ExportedProgram (eager kernels)", values, outputs, run,
                 sources=tuple(n.name for n in module.graph.nodes if n.op == "placeholder"))


def keras_trace(model: Any, spec: IOSpec) -> Trace:
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    try:
        outputs = [layer.output for layer in layers]
        probe = keras.Model(model.inputs, outputs)
    except (AttributeError, ValueError) as exc:
        raise InvalidInputError(f"{model.name}: the Keras model's layers have no symbolic outputs ({exc})",
                                hint="localize reads functional and Sequential models (built)") from None
    values = []
    produced = {id(t): layer.name for layer, t in zip(layers, outputs, strict=True)}
    for layer in layers:
        inputs = []
        for node in getattr(layer, "_inbound_nodes", [])[:1]:
            for tensor in getattr(node, "input_tensors", []):
                if id(tensor) in produced:
                    inputs.append(produced[id(tensor)])
        values.append(Value(layer.name, type(layer).__name__, tuple(inputs), layer.name, (("layer", layer.name),)))
    model_outputs = [produced.get(id(t)) for t in model.outputs]
    if None in model_outputs:
        model_outputs = [v.name for v in values[-len(model.outputs):]]
    names = [v.name for v in values]

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [feed[name] for name in spec.input_names]
        result = probe(args, training=False)
        result = result if isinstance(result, (list, tuple)) else [result]
        return {name: np.asarray(value) for name, value in zip(names, result, strict=True)}

    return Trace("keras", "Keras functional model returning every layer's output", values, model_outputs, run)


def _onnx_scopes(node: Any, value: str) -> tuple[tuple[str, ...], str | None]:
    meta = {p.key: p.value for p in node.metadata_props}
    scopes = meta.get("pkg.torch.onnx.name_scopes")
    if scopes:
        try:
            parts = [s for s in json.loads(scopes.replace("'", '"')) if s]
        except ValueError:
            parts = []
        module = parts[-2] if len(parts) >= 2 else None  # the last scope is the FX node itself
        return (("module:" + module,) if module else ()), module
    return (value.split(":")[0].removesuffix("_QuantizeLinear_Input"),), None


def onnx_trace(path: Path, spec: IOSpec, adapt: Callable, scratch: Path) -> Trace:
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    values, exposed = [], []
    outputs = [o.name for o in graph.output]
    producer_of = {o: n for n in graph.node for o in n.output}
    # QDQ: the value a quantize–dequantize pair hands on is the candidate's (ORT's quantizer also folds a Relu
    # into the Gemm before it, whose raw output then carries the Relu's name and only its QDQ pair clamps it)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    after_qdq: dict[str, str] = {}
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in initializers:
            dq = [n for n in consumers.get(node.output[0], []) if n.op_type == "DequantizeLinear"]
            if dq:
                after_qdq[node.input[0]] = dq[0].output[0]
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and not set(node.output) & set(outputs):
            exposed += [o for o in node.output if o]
            continue
        for out in node.output:
            if not out:
                continue
            scopes, module = _onnx_scopes(node, out)
            keys = (("module", module),) if module else ()
            if node.name:  # edgekit's ONNX importer names a layer's torch module after its node
                keys += (("attr", re.sub(r"\W", "_", node.name).strip("_")),)
            values.append(Value(out, node.op_type, tuple(_through_qdq(i, producer_of) for i in node.input
                                                         if i and i not in initializers),
                                module, keys, scopes, node.name or out, quantized=out in after_qdq))
            exposed.append(out)
    have = set(outputs)
    for name in exposed:
        if name not in have:
            graph.output.append(onnx.ValueInfoProto(name=name))
    augmented = scratch / f"{path.stem}.all-values.onnx"
    onnx.save(model, str(augmented))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(augmented), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        given = adapt(feed)
        inputs = {i.name: given[n] for i, n in zip(session.get_inputs(), spec.input_names, strict=True)}
        found = {name: np.asarray(v) for name, v in zip(names, session.run(None, inputs), strict=True)
                 if isinstance(v, np.ndarray)}
        for name, dequantized in after_qdq.items():
            if dequantized in found:
                found[name] = found[dequantized]
        return {**inputs, **found}  # the inputs too: a node run alone is fed them

    return Trace("onnx", "onnxruntime, every node output exposed, graph optimisation off", values, outputs, run,
                 path=path, sources=tuple(i.name for i in graph.input if i.name not in initializers))


def _through_qdq(name: str, producer_of: dict[str, Any]) -> str:
    """The value a node reads, seen through the quantize–dequantize pairs in front of it."""
    for _ in range(4):
        node = producer_of.get(name)
        if node is None or node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            return name
        name = node.input[0]
    return name


def _dequantize(value: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    from edgekit.targets.tensors import _dequantize as dequantize

    return dequantize(value, details)


def tflite_trace(path: Path, spec: IOSpec, adapt: Callable) -> Trace:
    from edgekit.targets.tensors import preserving_interpreter

    interp, details, ops = preserving_interpreter(path)
    values, indices = [], {}
    for op in ops:
        for index in op["outputs"]:
            if index < 0 or details[index]["name"] in indices:
                continue
            name = details[index]["name"]
            indices[name] = index
            scales = (details[index].get("quantization_parameters") or {}).get("scales", [])
            values.append(Value(name, op["op_name"], tuple(details[i]["name"] for i in op["inputs"] if i >= 0),
                                scopes=tuple(s for s in name.split(";") if s), quantized=bool(len(scales))))
    made = set(indices) | {d["name"] for d in interp.get_input_details()}
    values = [Value(v.name, v.op, tuple(i for i in v.inputs if i in made), scopes=v.scopes, quantized=v.quantized)
              for v in values]
    quantized = {v.name: v.quantized for v in values}
    outputs = [d["name"] for d in interp.get_output_details()]
    signatures = interp.get_signature_list()
    runner = interp.get_signature_runner(next(iter(signatures))) if len(signatures) == 1 else None

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        given = adapt(feed)
        if runner is not None:
            runner(**given)
        else:
            for d, name in zip(interp.get_input_details(), spec.input_names, strict=True):
                interp.set_tensor(d["index"], given[name])
            interp.invoke()
        found = {}
        for name, index in indices.items():
            try:
                value = interp.get_tensor(index)
            except ValueError:  # a tensor the runtime never materialised
                continue
            found[name] = _dequantize(value, details[index]) if value.dtype.kind == "f" or quantized[name] \
                else value.copy()
        return found

    return Trace("tflite", "LiteRT interpreter, experimental_preserve_all_tensors (builtin kernels, no XNNPACK)",
                 values, outputs, run, path=path, sources=tuple(d["name"] for d in interp.get_input_details()))


def executorch_trace(path: Path, spec: IOSpec, adapt: Callable, taps: list[dict[str, Any]] | None,
                     user_outputs: int) -> Trace:
    import torch
    from executorch.runtime import Runtime as ETRuntime

    from edgekit.targets._torch import flatten_outputs, to_tensors
    from edgekit.toolkit.contract.options import Device

    program = ETRuntime.get().load_program(str(path))
    method = program.load_method("forward")
    outputs = [f"output_{i}" for i in range(user_outputs)]
    notes = []
    if taps:
        values = [Value(t["node_name"], _op_name(str(t.get("op_target", ""))), (), t.get("module_path"),
                        scopes=(t["node_name"],), quantized="scale" in t) for t in taps]
        qparams = {int(t["output_index"]): (float(t["scale"]), int(t["zero_point"])) for t in taps if "scale" in t}
        values += [Value(name, "output") for name in outputs]
        instrument = "ExecuTorch runtime, intermediate-output taps (every op's value a program output)"
        named = {int(t["output_index"]): t["node_name"] for t in taps}
    else:
        producers = delegate_calls(path)
        values = [Value(name, producers.get(i, "portable kernels")) for i, name in enumerate(outputs)]
        calls = sorted(set(producers.values()))
        label = ", ".join(calls) if calls else "portable kernels"
        instrument = f"ExecuTorch runtime, outputs only ({label})"
        named, qparams = {}, {}
        if calls:
            notes.append(f"{path.name} runs its ops inside {label}: a delegate shows only the outputs of its call, "
                         "so localize cannot see inside it and reports at the granularity of the call; rerun with "
                         "--taps to lower the program again with every op's value tapped")

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        given = adapt(feed)
        with torch.inference_mode():
            result = flatten_outputs(method.execute(to_tensors([given[n] for n in spec.input_names], Device.CPU)))
        found = {name: np.asarray(result[i]) for i, name in enumerate(outputs) if i < len(result)}
        for index, name in named.items():
            if index < len(result):
                value = np.asarray(result[index])
                if index in qparams:
                    scale, zero = qparams[index]
                    value = (value.astype(np.float32) - zero) * scale
                found[name] = value
        return {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in found.items()}

    return Trace("executorch", instrument, values, outputs, run, notes, opaque=not taps, path=path)


def _op_name(target: str) -> str:
    """'aten.conv2d.default' → 'conv2d'."""
    parts = target.split(".")
    return parts[1] if len(parts) >= 2 else target


def delegate_calls(path: Path) -> dict[int, str]:
    """Output index → the delegate call that makes it ('XnnpackBackend call 0'), from a .pte's forward plan."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(path.read_bytes()).program
    plan = next(p for p in program.execution_plan if p.name == "forward")
    made: dict[int, str] = {}
    count = 0
    for chain in plan.chains:
        for instruction in chain.instructions:
            args = instruction.instr_args
            if type(args).__name__ == "DelegateCall":
                label = f"{plan.delegates[args.delegate_index].id} call {count}"
                count += 1
                for value in args.args:
                    made[int(value)] = label
            elif type(args).__name__ == "KernelCall":  # the last instruction to touch an output made it
                for value in args.args:
                    made[int(value)] = f"portable kernel {plan.operators[args.op_index].name}"
    return {i: made[int(v)] for i, v in enumerate(plan.outputs) if int(v) in made}
