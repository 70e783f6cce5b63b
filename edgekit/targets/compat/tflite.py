"""TFLite/LiteRT targets: the XNNPACK delegate (runtime check), the GPU delegate (its own rules, static) and the
LiteRT runtime version the model needs (the file's ``min_runtime_version``; loaded here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.targets.compat.gpu_rules import OpSig, TensorSig, gpu_refusal
from edgekit.toolkit.contract.compat import CompatTarget, Evidence, OpCompat, Support, TargetCompat
from edgekit.toolkit.contract.errors import InvalidInputError


@dataclass(frozen=True)
class FlatModel:
    """What the compat checks read from a .tflite flatbuffer (subgraph 0, the one the interpreter runs)."""

    ops: tuple[OpSig, ...]
    min_runtime_version: str | None
    schema_version: int
    subgraphs: int
    dynamic_inputs: tuple[str, ...] = ()  # "image [-1, 8, 8, 1]" for each input with an unknown dimension


def read_flatbuffer(path: Path) -> FlatModel:
    from ai_edge_litert import schema_py_generated as fb

    data = Path(path).read_bytes()
    try:
        if not fb.Model.ModelBufferHasIdentifier(data, 0):
            raise ValueError("no TFL3 file identifier")
        model = fb.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # a truncated or foreign file: the flatbuffer reader fails anywhere
        raise InvalidInputError(f"{path}: not a readable TFLite flatbuffer ({type(exc).__name__}: {exc})",
                                hint="pass a .tflite file written by a TFLite converter") from None
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    buffers = model.buffers or []

    def constant(index: int) -> bool:
        if not 0 < index < len(buffers):
            return False
        buffer = buffers[index]
        return (buffer.data is not None and len(buffer.data) > 0) or (buffer.offset or 0) > 1

    graph = model.subgraphs[0]
    tensors = graph.tensors or []

    def sig(index: int) -> TensorSig:
        if index < 0:
            return TensorSig("NONE", (), False)
        t = tensors[index]
        shape = t.shapeSignature if t.shapeSignature is not None else t.shape
        dims = tuple(int(d) for d in (shape if shape is not None else ()))
        return TensorSig(types.get(t.type, str(t.type)), dims, constant(t.buffer) and not t.isVariable)

    ops = []
    for op in graph.operators or []:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode or 0, code.deprecatedBuiltinCode or 0)
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else (code.customCode or "")
        ops.append(OpSig(names.get(builtin, str(builtin)), custom,
                         tuple(sig(int(i)) for i in (op.inputs if op.inputs is not None else ())),
                         tuple(sig(int(i)) for i in (op.outputs if op.outputs is not None else ())),
                         op.builtinOptions))
    version = None
    for meta in model.metadata or []:
        name = meta.name.decode() if isinstance(meta.name, bytes) else meta.name
        if name == "min_runtime_version" and 0 < meta.buffer < len(buffers) and buffers[meta.buffer].data is not None:
            version = bytes(buffers[meta.buffer].data).rstrip(b"\0").decode(errors="replace") or None
    dynamic = []
    for index in graph.inputs if graph.inputs is not None else ():
        t = tensors[int(index)]
        if t.shapeSignature is not None and any(int(d) < 0 for d in t.shapeSignature):
            name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name)
            dynamic.append(f"{name} {[int(d) for d in t.shapeSignature]}")
    return FlatModel(tuple(ops), version, int(model.version), len(model.subgraphs), tuple(dynamic))


def _label(sig: OpSig) -> str:
    return sig.custom if sig.op == "CUSTOM" and sig.custom else sig.op


def _facts(model: FlatModel) -> dict[str, Any]:
    return {"operators": len(model.ops), "subgraphs": model.subgraphs, "min_runtime_version": model.min_runtime_version}


def _notes(model: FlatModel, ops: tuple[OpCompat, ...] = ()) -> tuple[str, ...]:
    notes = [f"only subgraph 0 is checked; the model has {model.subgraphs} (control flow bodies are not)"] \
        if model.subgraphs > 1 else []
    shape_ops = {"SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE", "GATHER", "CONCATENATION", "REDUCE_PROD"}
    if model.dynamic_inputs and any(op.support is not Support.SUPPORTED and op.op in shape_ops for op in ops):
        notes.append(f"dynamic input dimensions ({'; '.join(model.dynamic_inputs)}): the shape arithmetic they "
                     "need (SHAPE, STRIDED_SLICE, PACK, a RESHAPE to a computed shape) stays off the delegates; "
                     "a model converted at a fixed batch has none")
    return tuple(notes)


def gpu(path: Path, target: CompatTarget) -> TargetCompat:
    model = read_flatbuffer(path)
    ops = []
    for index, sig in enumerate(model.ops):
        refusal = gpu_refusal(sig)
        ops.append(OpCompat(index, _label(sig), Support.SUPPORTED if refusal is None else Support.UNSUPPORTED,
                            refusal or "the GPU delegate's rules accept it", Evidence.STATIC_RULE))
    return TargetCompat(target.name, target.description, Evidence.STATIC_RULE, tuple(ops),
                        {**_facts(model), "rules": "LiteRT tflite/tools/versioning/gpu_compatibility.cc (2026-08)"},
                        (*_notes(model, tuple(ops)), "static rules, not a run on a GPU: a device's driver can still "
                                                     "refuse a partition the rules accept"))


def xnnpack(path: Path, target: CompatTarget) -> TargetCompat:
    from ai_edge_litert import interpreter as litert

    from edgekit.targets.litert import delegated_ops

    model = read_flatbuffer(path)
    plain = litert.Interpreter(model_path=str(path),
                               experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    delegated = litert.Interpreter(model_path=str(path), num_threads=1)
    try:
        delegated.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        return TargetCompat(target.name, target.description, Evidence.RUNTIME_CHECK,
                            (OpCompat(None, "model", Support.UNSUPPORTED, f"LiteRT cannot prepare it: {exc}",
                                      Evidence.RUNTIME_CHECK),), _facts(model))
    model_ops = plain._get_ops_details()
    partitions = [op for op in delegated._get_ops_details() if op["op_name"] == "DELEGATE"]
    taken = delegated_ops(model_ops, partitions)
    ops = tuple(OpCompat(op["index"], op["op_name"], Support.SUPPORTED if op["index"] in taken else Support.UNSUPPORTED,
                         "XNNPACK took it" if op["index"] in taken else
                         "XNNPACK did not take it: it runs on LiteRT's built-in CPU kernel", Evidence.RUNTIME_CHECK)
                for op in model_ops)
    return TargetCompat(target.name, target.description, Evidence.RUNTIME_CHECK, ops,
                        {**_facts(model), "xnnpack_partitions": len(partitions),
                         "runtime": f"ai-edge-litert {_litert_version()}"}, _notes(model, ops))


def runtime(path: Path, target: CompatTarget) -> TargetCompat:
    """One row for the model (loads and prepares in this LiteRT; the oldest runtime it needs), one per custom op
    (no runtime has a kernel for it unless the app registers one)."""
    from ai_edge_litert import interpreter as litert

    model = read_flatbuffer(path)
    version = _litert_version()
    need = f"; needs LiteRT/TFLite ≥ {model.min_runtime_version} (min_runtime_version)" \
        if model.min_runtime_version else "; the file records no min_runtime_version"
    try:
        litert.Interpreter(model_path=str(path),
                           experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                           ).allocate_tensors()
        row = OpCompat(None, "model", Support.SUPPORTED, f"loads in ai-edge-litert {version} here{need}",
                       Evidence.RUNTIME_CHECK)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        row = OpCompat(None, "model", Support.UNSUPPORTED, f"ai-edge-litert {version} cannot prepare it: {first}{need}",
                       Evidence.RUNTIME_CHECK)
    rows = [row]
    for index, sig in enumerate(model.ops):
        if sig.op == "CUSTOM":
            flex = sig.custom.startswith("Flex")
            rows.append(OpCompat(index, _label(sig), Support.UNSUPPORTED,
                                 "a TensorFlow op (Flex): the app must link the Select TF ops library" if flex else
                                 "a custom op: the app must register its kernel", Evidence.STATIC_RULE))
    return TargetCompat(target.name, target.description, Evidence.RUNTIME_CHECK, tuple(rows),
                        {**_facts(model), "schema_version": model.schema_version,
                         "runtime": f"ai-edge-litert {version}"},
                        _notes(model))


def _litert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:
        return "?"
