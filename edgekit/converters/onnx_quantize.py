"""ONNX → ONNX: fp16 conversion, dynamic int8, and static int8 (QDQ) with calibration, using
onnxruntime's own tooling (onnxruntime.quantization, onnxruntime.transformers.float16)."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgekit.converters._onnx import canonical_dim_params
from edgekit.converters.base import Converter, StepInput, StepReport, Twin
from edgekit.toolkit.contract.errors import BackendError, EdgekitError, first_line
from edgekit.toolkit.contract.layers import Layer, select, unit_name, units
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.fsutil import scratch_directory
from edgekit.toolkit.safety.policy.allocations import allocation_error, allocation_failure, check_allocations


class _Reader(CalibrationDataReader):
    """Calibration samples keyed by the ONNX graph's own input names (matched by position: exporters
    may rename inputs)."""

    def __init__(self, step: StepInput, model_path: Path) -> None:
        assert step.calibration is not None
        pairs = input_pairs(step, model_path)
        self._feeds = iter([{o: feed[s] for o, s in pairs} for feed in step.calibration.feeds])

    def get_next(self) -> dict | None:
        return next(self._feeds, None)


def input_pairs(step: StepInput, model_path: Path) -> list[tuple[str, str]]:
    """(ONNX input name, contract input name): by name where every name matches, else by position."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    onnx_names = [i.name for i in graph.input if i.name not in initializers]
    source_names = step.io_spec.input_names
    if len(onnx_names) != len(source_names):
        raise BackendError(
            f"{step.path.name}: the ONNX graph takes {len(onnx_names)} inputs {onnx_names}, the model "
            f"{len(source_names)} {source_names}: calibration samples cannot feed it",
            hint="the exporter turned constants into graph inputs; re-export the model")
    if set(onnx_names) == set(source_names):
        return [(name, name) for name in onnx_names]
    return list(zip(onnx_names, source_names, strict=True))


def prepare(source: Path, prepared: Path, report: StepReport) -> None:
    """ORT's recommended pre-processing: symbolic shape inference and graph optimisation. Symbolic
    inference gives up on some graphs ("Incomplete symbolic shape inference"); ONNX's own shape inference
    is then enough for quantization, and the fallback is recorded.

    Where it gives up, onnxruntime first saves the half-inferred graph as ``sym_shape_infer_temp.onnx`` (and its
    weights beside it, under a made-up name) in the current directory, and never removes it: the user's working
    directory got a model file they never asked for. So pre-processing runs with a scratch directory, removed after,
    as the current one (absolute paths in and out)."""
    source, prepared = source.absolute(), prepared.absolute()
    with scratch_directory("edgekit-preprocess-") as scratch, _working_directory(scratch):
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
        except Exception as exc:
            if allocation_failure(exc):
                raise
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            report.details["pre_process"] = f"without symbolic shape inference ({first_line(exc, 120)})"


_CWD_LOCK = threading.Lock()


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    """``path`` as the process's current directory while the block runs, then the previous one again (by file
    descriptor: it comes back even if it was renamed meanwhile). The current directory is the process's: threads
    that pre-process at once take turns, and nothing else edgekit runs meanwhile reads a relative path (conversion
    steps work on absolute scratch and output paths)."""
    with _CWD_LOCK:
        try:
            previous = os.open(".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
        except OSError:  # no current directory to come back to (removed): nothing to write into either
            yield
            return
        try:
            os.chdir(path)
            try:
                yield
            finally:
                os.fchdir(previous)
        finally:
            os.close(previous)


def output_softmax_nodes(model_path: Path) -> list[str]:
    """Softmax nodes that produce a graph output. ORT quantizes a Softmax output on a fixed 1/256 grid, so
    every probability under 1/512 becomes 0: a 1000-class head's tail, or all of a flat one. Kept in float
    they cost one small op on int8 logits, and the model's probabilities survive."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    return [n.name for n in graph.node if n.op_type == "Softmax" and n.name and set(n.output) & outputs]


def onnx_layers(model_path: Path) -> list[Layer]:
    """The graph's nodes as ``--keep-float`` sees them: the node name and op type, plus, for torch.onnx's
    dynamo exports, the torch module paths and classes it records per node (``pkg.torch.onnx.name_scopes``,
    ``pkg.torch.onnx.class_hierarchy``)."""
    import ast

    layers = []
    for node in onnx.load(str(model_path), load_external_data=False).graph.node:
        if not node.name:
            continue
        meta = {p.key: p.value for p in node.metadata_props}
        scopes: list[str] = []
        classes: list[str] = []
        try:
            scopes = [s for s in ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))[:-1] if s]
            classes = [c.rsplit(".", 1)[-1] for c in ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy",
                                                                                "[]"))[1:-1]]
        except (ValueError, SyntaxError, TypeError):
            pass
        layers.append(Layer(node.name, (node.op_type, *classes), tuple(scopes)))
    return layers


def kept_float_nodes(step: StepInput, report: StepReport) -> list[str]:
    """The node names ``--keep-float`` matches in the step's source graph (a usage error when one matches
    nothing), recorded in the step's details. The source, not the pre-processed graph: pre-processing can drop
    torch.onnx's metadata (on a transformers BERT every node lost its module path and class)."""
    if not (step.options.keep_float or step.options.list_units):
        return []
    layers = onnx_layers(step.path)
    if step.options.list_units:
        graph = onnx.load(str(step.path), load_external_data=False).graph
        constants = {init.name for init in graph.initializer}
        weighted = {node.name for node in graph.node if constants & set(node.input)}
        report.units = units(layers, [layer for layer in layers if layer.name in weighted])
    if not step.options.keep_float:
        return []
    chosen = select(step.options.keep_float, layers, origin=step.source_name)
    names = [layer.name for layer in chosen]
    report.details["keep_float"] = {"patterns": list(step.options.keep_float), "nodes": names}
    return names


def show_twin(step: StepInput, model_path: Path, tool: str) -> None:
    """Show ``ConvertOptions.tap`` the float graph the quantizer reads, each node output under its layer's
    ``--keep-float`` name (nodes pre-processing made, absent from the source, under none)."""
    if step.options.tap is None:
        return
    by_name = {layer.name: unit_name(layer) for layer in onnx_layers(step.path)}
    graph = onnx.load(str(model_path), load_external_data=False).graph
    step.options.tap(Twin("onnx", tool, {out: by_name[node.name] for node in graph.node if node.name in by_name
                                         for out in node.output if out}, model_path))


def float_inputs(path: Path, keep: list[str]) -> int:
    """Feed each kept-float node the float activation its quantize–dequantize pair was made from, instead of the
    pair's output; drop pairs nothing reads any more. Returns how many inputs were rewired. (Quantized with
    ``QDQKeepRemovableActivations``: otherwise a Q's input can be a Gemm's output with its Relu folded into the Q.)

    Without it, onnxruntime's own WeightBiasQuantization optimizer (on at every optimisation level) sees a float
    Conv/Gemm whose input comes from a DequantizeLinear, and quantizes its float weights at load, per tensor: the
    layer the user kept float runs int8 after all (measured: a planted-outlier Gemm kept float lost 82 points of
    top-1 under ORT_ENABLE_BASIC and none with optimisations off)."""
    model = onnx.load(str(path))
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    kept = set(keep)
    rewired = 0
    for node in graph.node:
        if node.name not in kept:
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
                rewired += 1
    if rewired:
        while True:  # a pair whose output nothing reads any more goes (Q once its DQ has gone)
            read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
            dead = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                    and not set(n.output) & read]
            if not dead:
                break
            for n in dead:
                graph.node.remove(n)
        used = {name for node in graph.node for name in node.input}
        unused = [t for t in graph.initializer if t.name not in used]
        for t in unused:
            graph.initializer.remove(t)
        onnx.save(model, str(path))
    return rewired


_FUSION_NAMES = re.compile(r"^gemm_(input|output)_(shape|reshape_arg)")


def rename_fusion_names(path: Path) -> int:
    """Rename the tensors pre-processing's MatMulAddFusion created (``gemm_input_shape``, ``gemm_input_reshape_arg``
    …). A float MatMul + Add that --keep-float left unquantized is fused again when onnxruntime loads the file at
    its full optimisation level, and that fusion's new initializers take the same names: the session then refuses
    the file ("AddInitializedOrtValue Attempt to replace the existing tensor"; measured on a transformers BERT with
    one encoder layer kept float). Returns how many names changed."""
    model = onnx.load(str(path))
    graph = model.graph
    names = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output}
    interface = {v.name for v in (*graph.input, *graph.output)}  # the model's own inputs and outputs keep theirs
    renamed = {name: f"pre_{name}" for name in names - interface if _FUSION_NAMES.match(name)}
    if not renamed:
        return 0
    for t in graph.initializer:
        t.name = renamed.get(t.name, t.name)
    for info in graph.value_info:
        info.name = renamed.get(info.name, info.name)
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    onnx.save(model, str(path))
    return len(renamed)


INT4_BLOCK = 64  # weights per scale: 4.5 bits a weight (0.56× of int8 with its scales; 32 gives 0.62×, cosine +0.002)


def gemm_as_matmul(model: onnx.ModelProto) -> int:
    """Rewrite each plain Gemm (alpha = beta = 1, A not transposed, B a constant) as MatMul(A, Bᵀ if transB)
    + Add(C): the same arithmetic, in the form onnxruntime's 4-bit quantizer takes (it skips Gemm, which
    torch.onnx writes for every 2-D Linear). Returns how many were rewritten."""
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    rewritten, nodes = 0, []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (node.op_type == "Gemm" and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
                 and not attrs.get("transA", 0) and len(node.input) >= 2 and node.input[1] in initializers)
        if not plain:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])
        weight = weight.T.copy() if attrs.get("transB", 0) else weight
        name = f"{node.name or node.output[0]}_matmul"
        graph.initializer.append(numpy_helper.from_array(weight, f"{name}_weight"))
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        product = f"{name}_out" if bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], f"{name}_weight"], [product], name=name))
        if bias:
            nodes.append(helper.make_node("Add", [product, bias], [node.output[0]], name=f"{name}_bias"))
        rewritten += 1
    if rewritten:
        used = {value for node in nodes for value in node.input}
        keep = [t for t in graph.initializer if t.name in used or t.name in {i.name for i in graph.input}]
        del graph.node[:]
        graph.node.extend(nodes)
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return rewritten


def _int4(source: Path, out: Path, report: StepReport, exclude: list[str]) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(source))
    rewritten = gemm_as_matmul(model)
    exclude = [*exclude, *(f"{name}_matmul" for name in exclude)]  # a Gemm rewritten above keeps its name + _matmul
    quantizer = MatMulNBitsQuantizer(model, block_size=INT4_BLOCK, is_symmetric=True, bits=4,
                                     nodes_to_exclude=exclude)
    quantizer.process()
    quantized = quantizer.model.model
    count = sum(1 for node in quantized.graph.node if node.op_type == "MatMulNBits")
    if not count:
        raise BackendError(f"{source.name}: no MatMul or Gemm with constant weights to store in 4 bits",
                           hint="int4 on ONNX covers linear layers (MatMulNBits); use --quantize dynamic or int8")
    onnx.save(quantized, str(out))
    report.details["tool"] = (f"onnxruntime.quantization.matmul_nbits_quantizer (MatMulNBits, 4-bit symmetric, "
                              f"blocks of {INT4_BLOCK}, float activations)")
    report.details["int4_matmuls"] = count
    if rewritten:
        report.details["gemm_as_matmul"] = rewritten


class OnnxQuantize(Converter):
    keeps_float = True  # nodes_to_exclude / node_block_list

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        check_allocations(onnx.load(str(step.path), load_external_data=False), step.source_name)
        try:
            self._quantize(step, out, report)
        except EdgekitError:
            raise
        except Exception as exc:  # onnxruntime runs the graph to calibrate: a size the checks could not foresee
            if allocation_failure(exc):
                raise allocation_error(step.source_name, exc) from None
            raise

    def _quantize(self, step: StepInput, out: Path, report: StepReport) -> None:
        mode = step.quantize
        keep = kept_float_nodes(step, report)
        if mode in (QuantMode.FP16, QuantMode.INT4):
            show_twin(step, step.path, "onnxruntime.transformers.float16" if mode is QuantMode.FP16
                      else "onnxruntime.quantization.matmul_nbits_quantizer")
        if mode is QuantMode.FP16:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            # keep_io_types: the app still feeds and reads float32; only the inside is fp16.
            model = convert_float_to_float16(onnx.load(str(step.path)), keep_io_types=True,
                                             node_block_list=keep or None)
            onnx.save(model, str(out))
            report.details["tool"] = "onnxruntime.transformers.float16 (keep_io_types)"
            return
        if mode is QuantMode.INT4:
            _int4(step.path, out, report, keep)
            return
        from edgekit.toolkit.sysinfo import x86_without_vnni

        # Parity runs here, on onnxruntime's x86 kernels: without VNNI they saturate on 8-bit weights (measured
        # on an AVX2 EPYC: a random 512-wide MLP's cosine 0.988 at 8 bits, 0.99987 at 7), so weights get 7 bits,
        # as onnxruntime's docs prescribe for such CPUs. The sidecar records it.
        reduce_range = x86_without_vnni()
        if reduce_range:
            report.details["reduce_range"] = ("7-bit weights: this x86 CPU has no VNNI, where onnxruntime's "
                                              "8-bit u8×s8 kernels saturate")
        with scratch_directory("edgekit-quantize-") as scratch:
            prepared = Path(scratch) / "prepared.onnx"
            prepare(step.path, prepared, report)
            if keep:
                present = {node.name for node in onnx.load(str(prepared), load_external_data=False).graph.node}
                fused = [name for name in keep if name not in present]
                if fused:
                    report.warnings.append(f"--keep-float: pre-processing fused {len(fused)} of the matched nodes "
                                           f"into others, which are quantized as usual: {', '.join(fused[:5])}")
            show_twin(step, prepared, "onnxruntime.quantization." + ("quantize_dynamic" if mode is QuantMode.DYNAMIC
                                                                      else "quantize_static (QDQ)"))
            if mode is QuantMode.DYNAMIC:
                quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8, per_channel=True,
                                 reduce_range=reduce_range,
                                 # it rewrites a Gemm as <name>_MatMul + <name>_Add before it reads the list
                                 nodes_to_exclude=[*keep, *(f"{name}_MatMul" for name in keep)])
                if keep:
                    rename_fusion_names(out)
                canonical_dim_params(out)  # pre-processing's shape inference numbers unknown dims per process
                report.details["tool"] = "onnxruntime.quantization.quantize_dynamic (QInt8 weights, per-channel)"
            else:
                # U8S8 (uint8 activations, int8 weights) is onnxruntime's default and what its x86 int8
                # kernels are built for: on MobileNetV2 here 1.82x over fp32, where S8S8 gave 1.19x.
                float_heads = output_softmax_nodes(prepared)
                quantize_static(
                    str(prepared), str(out), _Reader(step, prepared), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    nodes_to_exclude=[*float_heads, *keep], reduce_range=reduce_range,
                    # a Relu/Clip the quantizer would fold into its Q stays a node, so the Q's input is the real
                    # activation float_inputs() hands the kept nodes (numerically the same: the Q clamps anyway)
                    extra_options={"QDQKeepRemovableActivations": True} if keep else None,
                )
                if keep and (rewired := float_inputs(out, keep)):
                    report.details["float_inputs"] = (f"{rewired} input(s) of kept-float nodes read the float "
                                                      "activation (onnxruntime would otherwise quantize their weights "
                                                      "at load)")
                if keep:
                    rename_fusion_names(out)
                canonical_dim_params(out)
                report.details["tool"] = "onnxruntime.quantization.quantize_static (QDQ U8S8, per-channel weights)"
                if float_heads:
                    report.details["kept_float"] = f"output Softmax ({len(float_heads)}): {', '.join(float_heads)}"
