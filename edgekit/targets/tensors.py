"""Intermediate tensors of a float model and its quantized twin, sample by sample, through each backend's own
instrument: what per-layer error reports read.

- TFLite: LiteRT's interpreter with ``experimental_preserve_all_tensors`` and the builtin kernels (no default
  delegate: XNNPACK would compute fused blocks whose insides are never written), every operator output read back
  and dequantized with its own scale and zero point; tensors paired by name (ai-edge-quantizer and the MLIR
  quantizer keep the float graph's names).
- ONNX: onnxruntime's ``qdq_loss_debug`` — ``modify_model_output_intermediate_tensors`` exposes every float
  tensor, ``create_activation_matching`` pairs a float tensor with the QDQ model's value after its
  quantize–dequantize pair; a tensor no QDQ pair follows is paired by name (dynamic quantization, kept layers).
  Run without graph optimisation, as the tool does.
- PT2E (ExecuTorch): torchao's numeric debugger — output loggers on the float module and on ``convert_pt2e``'s
  quantize–dequantize module, paired by each node's origin (``compare_results``).

Every instrumented run may compute differently from the deployed one (reference kernels instead of XNNPACK or
onnxruntime's fused int8 kernels, a simulated int8 graph instead of the .pte): a report shows its final outputs
beside the deployed artifact's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.toolkit.contract.iospec import IOSpec


@dataclass(frozen=True)
class Node:
    """One operator of the float graph: what it reads and writes, by tensor name."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Pair:
    float: np.ndarray
    quantized: np.ndarray
    is_quantized: bool  # stored quantized in the candidate (int8/int16, or behind a quantize–dequantize pair)


class Tap:
    """A float model and its quantized twin, run side by side."""

    instrument: str
    nodes: list[Node]
    outputs: list[str]  # the float graph's output tensors
    # a candidate tensor its quantizer moved: a fused block's output (ORT folds a Relu into the Gemm before it, and
    # the Gemm then writes the Relu's tensor) → the float tensor of the operator that now makes it, whose layer it is
    aliases: dict[str, str] = {}

    def pairs(self, feed: dict[str, np.ndarray]) -> dict[str, Pair]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _adapter(reference: IOSpec, path: Path) -> Any:
    from edgekit.targets import open_runtime
    from edgekit.validators.parity import input_adapter

    with open_runtime(path) as runtime:
        spec = runtime.io_spec
    return input_adapter(reference, spec)[0], spec


def _dequantize(value: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    params = details.get("quantization_parameters") or {}
    scales, zeros = np.asarray(params.get("scales", [])), np.asarray(params.get("zero_points", []))
    if value.dtype.kind not in "iu" or not scales.size:
        return value.astype(np.float32, copy=True)
    if scales.size == 1:
        return ((value.astype(np.float32) - zeros.reshape(-1)[0]) * scales[0]).astype(np.float32)
    axis = int(params.get("quantized_dimension", 0))
    shape = [1] * value.ndim
    shape[axis] = -1
    return ((value.astype(np.float32) - zeros.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def preserving_interpreter(path: Path) -> tuple[Any, dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """A LiteRT interpreter that keeps every tensor, on the builtin kernels (the XNNPACK delegate computes fused
    blocks whose insides are never written): (interpreter, tensor details by index, its ops but delegate calls)."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():  # "intended for debugging purposes only": it is
        warnings.simplefilter("ignore")
        interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    return interp, details, [op for op in interp._get_ops_details() if op["op_name"] != "DELEGATE"]


class TFLiteTap(Tap):
    instrument = "LiteRT interpreter, experimental_preserve_all_tensors (builtin kernels)"

    def __init__(self, float_model: Path, candidate: Path, reference: IOSpec) -> None:
        self._sides = [self._open(float_model, reference), self._open(candidate, reference)]
        interp, details, ops, _, _ = self._sides[0]
        self.nodes = [Node(details[op["outputs"][0]]["name"] if len(op["outputs"]) else f"op{op['index']}",
                           op["op_name"], tuple(details[i]["name"] for i in op["inputs"] if i >= 0),
                           tuple(details[i]["name"] for i in op["outputs"] if i >= 0)) for op in ops]
        self.outputs = [d["name"] for d in interp.get_output_details()]

    @staticmethod
    def _open(path: Path, reference: IOSpec) -> tuple[Any, dict[int, dict[str, Any]], list[dict[str, Any]], Any, Any]:
        interp, details, ops = preserving_interpreter(path)
        adapt, spec = _adapter(reference, path)
        signatures = interp.get_signature_list()
        runner = interp.get_signature_runner(next(iter(signatures))) if len(signatures) == 1 else None
        return interp, details, ops, adapt, (runner, spec)

    @staticmethod
    def _run(side: tuple, feed: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, bool]]:
        interp, details, ops, adapt, (runner, spec) = side
        values = adapt(feed)
        if runner is not None:
            runner(**values)
        else:
            for d, name in zip(interp.get_input_details(), spec.input_names, strict=True):
                interp.set_tensor(d["index"], values[name])
            interp.invoke()
        found: dict[str, tuple[np.ndarray, bool]] = {}
        for op in ops:
            for index in op["outputs"]:
                if index < 0 or details[index]["name"] in found:
                    continue
                try:
                    value = interp.get_tensor(index)
                except ValueError:  # a tensor the runtime never materialised
                    continue
                quantized = value.dtype.kind in "iu" and bool(
                    len((details[index].get("quantization_parameters") or {}).get("scales", [])))
                found[details[index]["name"]] = (_dequantize(value, details[index]), quantized)
        return found

    def pairs(self, feed: dict[str, np.ndarray]) -> dict[str, Pair]:
        reference, candidate = (self._run(side, feed) for side in self._sides)
        return {name: Pair(value, candidate[name][0], candidate[name][1]) for name, (value, _) in reference.items()
                if name in candidate and candidate[name][0].shape == value.shape and value.dtype.kind == "f"}


class OnnxTap(Tap):
    instrument = "onnxruntime.quantization.qdq_loss_debug (all tensors exposed, QDQ pairs matched)"

    def __init__(self, float_model: Path, candidate: Path, reference: IOSpec, scratch: Path) -> None:
        import onnx
        import onnxruntime as ort
        from onnxruntime.quantization.qdq_loss_debug import modify_model_output_intermediate_tensors

        self._sides = []
        for tag, path in (("float", float_model), ("quantized", candidate)):
            augmented = scratch / f"{tag}.augmented.onnx"
            modify_model_output_intermediate_tensors(str(path), str(augmented))
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.log_severity_level = 3
            session = ort.InferenceSession(str(augmented), options, providers=["CPUExecutionProvider"])
            adapt, spec = _adapter(reference, path)
            self._sides.append((session, adapt, spec))
        graph = onnx.load(str(float_model), load_external_data=False).graph
        self.nodes = [Node(node.name or node.output[0], node.op_type, tuple(i for i in node.input if i),
                           tuple(o for o in node.output if o)) for node in graph.node]
        self.outputs = [o.name for o in graph.output]
        made_by = {node.name: [o for o in node.output if o] for node in graph.node if node.name}
        self.aliases = {}
        for node in onnx.load(str(candidate), load_external_data=False).graph.node:
            original = made_by.get(node.name)
            if not original or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                continue
            for out in node.output:
                name = out.removesuffix("_QuantizeLinear_Input")
                if name and name not in original:
                    self.aliases[name] = original[0]

    @staticmethod
    def _run(side: tuple, feed: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
        from onnxruntime.quantization.qdq_loss_debug import _TENSOR_SAVE_POSTFIX

        session, adapt, spec = side
        values = adapt(feed)
        inputs = {i.name: values[name] for i, name in zip(session.get_inputs(), spec.input_names, strict=True)}
        found = {}
        for info, value in zip(session.get_outputs(), session.run(None, inputs), strict=True):
            if info.name.endswith(_TENSOR_SAVE_POSTFIX):
                found[info.name[: -len(_TENSOR_SAVE_POSTFIX)]] = [value]
        return found

    def pairs(self, feed: dict[str, np.ndarray]) -> dict[str, Pair]:
        from onnxruntime.quantization.qdq_loss_debug import create_activation_matching

        reference, candidate = (self._run(side, feed) for side in self._sides)
        matched = create_activation_matching(candidate, reference)
        found = {name: Pair(np.asarray(m["float"][0], np.float32), np.asarray(m["post_qdq"][0], np.float32), True)
                 for name, m in matched.items() if m.get("float")}
        for name, values in reference.items():
            if name not in found and name in candidate and candidate[name][0].shape == values[0].shape:
                found[name] = Pair(np.asarray(values[0], np.float32), np.asarray(candidate[name][0], np.float32),
                                   False)
        return found


class PT2ETap(Tap):
    instrument = "torchao numeric debugger (output loggers on the float and the quantize–dequantize module)"

    def __init__(self, modules: tuple[Any, Any], reference: IOSpec) -> None:
        from torchao.quantization.pt2e._numeric_debugger import prepare_for_propagation_comparison

        float_module, converted = modules
        self._logged = [prepare_for_propagation_comparison(float_module), prepare_for_propagation_comparison(converted)]
        self._names = reference.input_names
        self.nodes = []
        for node in float_module.graph.nodes:
            if node.op == "call_function":
                self.nodes.append(Node(node.name, getattr(node.target, "__name__", str(node.target)).split(".")[0],
                                       tuple(n.name for n in node.all_input_nodes), (node.name,)))
        output = next(node for node in float_module.graph.nodes if node.op == "output")
        self.outputs = [n.name for n in output.all_input_nodes]
        # a node of the converted module is quantized when a quantize op reads its output or its weights come
        # dequantized from stored integers (a layer kept float reads quantized activations, but is not)
        def named(node: Any, word: str) -> bool:
            return word in str(getattr(node, "target", ""))

        # (the logger of a node whose output is quantized may sit on its dequantize: that reads the stored value)
        def stored(arg: Any) -> bool:  # a weight: dequantize(int constant), or dequantize(quantize(constant))
            source = arg.args[0] if named(arg, "dequantize") and arg.args else None
            if getattr(source, "op", "") == "call_function" and named(source, "quantize") and source.args:
                source = source.args[0]  # convert_pt2e(fold_quantize=False) keeps the weight's quantize
            return getattr(source, "op", "") == "get_attr"

        self._quantized = {node.name for node in converted.graph.nodes if node.op == "call_function" and (
            named(node, "dequantize_per_tensor")
            or any(named(user, "quantize") and not named(user, "dequantize") for user in node.users)
            or any(stored(arg) for arg in node.all_input_nodes))}

    def pairs(self, feed: dict[str, np.ndarray]) -> dict[str, Pair]:
        import torch
        from torchao.quantization.pt2e._numeric_debugger import (
            OutputLogger,
            compare_results,
            extract_results_from_loggers,
        )

        args = tuple(torch.from_numpy(np.ascontiguousarray(feed[name])) for name in self._names)
        results = []
        for module in self._logged:
            for child in module.children():
                if isinstance(child, OutputLogger):
                    child.stats.clear()
            with torch.no_grad():
                module(*args)
            results.append(extract_results_from_loggers(module))
        found = {}
        for summary in compare_results(results[0], results[1]).values():
            if not summary.results:
                continue
            result = summary.results[0]
            if isinstance(result.ref, torch.Tensor) and result.ref.is_floating_point():
                found[summary.ref_node_name] = Pair(result.ref.detach().float().numpy(),
                                                    result.actual.detach().float().numpy(),
                                                    summary.actual_node_name in self._quantized)
        return found


def open_tap(twin: Any, candidate: Path, reference: IOSpec, scratch: Path) -> Tap:
    """The tap for a converter's ``Twin`` and the candidate it quantized."""
    if twin.kind == "tflite":
        return TFLiteTap(twin.float_model, candidate, reference)
    if twin.kind == "onnx":
        return OnnxTap(twin.float_model, candidate, reference, scratch)
    if twin.kind == "pt2e":
        return PT2ETap(twin.modules, reference)
    raise ValueError(f"no tap for a {twin.kind} twin")


def run_pairs(tap: Tap, feeds: Sequence[dict[str, np.ndarray]]) -> Iterator[dict[str, Pair]]:
    for feed in feeds:
        yield tap.pairs(feed)
