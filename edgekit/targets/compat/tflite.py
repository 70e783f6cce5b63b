"""TFLite/LiteRT targets: the XNNPACK delegate (runtime check), the GPU delegate (its own rules, static) and the
LiteRT runtime version the model needs (the file's ``min_runtime_version``; loaded here).

The file is never read with the flatbuffer object API (``ModelT.InitFromPackedBuf``): that unpacks a table
shared by many references once per reference, so a 24 KB file of shared tables becomes millions of objects.
:func:`parse_flatbuffer` reads only what the checks use, each table once, checks every index against its vector
and every offset against the file, and stops at ``WALK_BUDGET`` reads; then LiteRT's C++ verifier, which the
interpreter's constructor runs (as ``inspect``'s load does), checks the whole file, in every target.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.targets.compat.gpu_rules import OpSig, TensorSig, gpu_refusal
from edgekit.toolkit.contract.compat import CompatTarget, Evidence, OpCompat, Support, TargetCompat
from edgekit.toolkit.contract.errors import InvalidInputError, first_line

# Tables, vector entries and operator tensor references one file may cost to read (and the GPU rules to check).
# A converter's file costs about 20 per operator (MobileNetV2: 1,391 for 65 operators), so this admits some
# 190,000 operators; a file whose tables are shared by many references costs their product, which it cuts off.
WALK_BUDGET = 4_000_000
NAME_LIMIT = 200  # characters of a custom op's or an input's name kept for messages
VERIFIER_REFUSAL = "not a valid flatbuffer"  # LiteRT's message (lower-cased) when its verifier refuses a file
REWRITE_HINT = "re-export the model with a TFLite converter; this file is corrupt or crafted"


@dataclass(frozen=True)
class FlatModel:
    """What the compat checks read from a .tflite flatbuffer (subgraph 0, the one the interpreter runs)."""

    ops: tuple[OpSig, ...]
    min_runtime_version: str | None
    schema_version: int
    subgraphs: int
    dynamic_inputs: tuple[str, ...] = ()  # "image [-1, 8, 8, 1]" for each input with an unknown dimension


def read_flatbuffer(path: Path) -> FlatModel:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read it ({exc.strerror or exc})", hint="check the path") from None
    return parse_flatbuffer(data, str(path))


def parse_flatbuffer(data: bytes, origin: str = "model") -> FlatModel:
    """The :class:`FlatModel` of the .tflite bytes ``data``; a malformed file raises :class:`InvalidInputError`
    (naming ``origin``), and nothing else does. Every table is read once however many references share it, and
    the walk stops with an error past ``WALK_BUDGET`` reads, so time and memory are bounded by the budget."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        return _Walk(schema, bytes(data), origin).model()
    except InvalidInputError:
        raise
    except Exception as exc:  # the generated readers fail anywhere on an offset past the end or a bad vtable
        kind = type(exc).__name__ if type(exc).__module__ == "builtins" else \
            f"{type(exc).__module__}.{type(exc).__name__}"  # struct.error
        raise InvalidInputError(f"{origin}: not a readable TFLite flatbuffer ({kind}: {first_line(exc, 160)})",
                                hint=REWRITE_HINT) from None


class _Walk:
    """One read of a .tflite buffer with the generated accessor classes (``Model.GetRootAs``, ``Subgraphs(i)``,
    …): each table checked before use and memoized by its position, every read counted against the budget."""

    def __init__(self, schema: Any, data: bytes, origin: str) -> None:
        self.fb, self.data, self.origin = schema, data, origin
        self.left = WALK_BUDGET
        self.seen: dict[tuple[Any, ...], Any] = {}
        self.sigs: dict[int, TensorSig] = {}  # subgraph 0's tensors by index
        self.names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self.types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}

    def fail(self, problem: str) -> InvalidInputError:
        return InvalidInputError(f"{self.origin}: {problem}", hint=REWRITE_HINT)

    def spend(self, reads: int) -> None:
        self.left -= reads
        if self.left < 0:
            raise self.fail(f"reading it takes more than {WALK_BUDGET:,} table and vector reads: its tables are "
                            "shared by more references than any converter writes")

    def check(self, pos: int, what: str) -> None:
        """The table at ``pos`` and its vtable lie inside the file."""
        size = len(self.data)
        if not 0 <= pos <= size - 4:
            raise self.fail(f"{what} at offset {pos} lies outside the {size}-byte file")
        vtable = pos - int.from_bytes(self.data[pos:pos + 4], "little", signed=True)
        if not 0 <= vtable <= size - 4:
            raise self.fail(f"{what}'s vtable at offset {vtable} lies outside the {size}-byte file")
        vtable_size, table_size = (int.from_bytes(self.data[vtable + i:vtable + i + 2], "little") for i in (0, 2))
        if vtable_size < 4 or vtable + vtable_size > size or pos + table_size > size:
            raise self.fail(f"{what} at offset {pos} runs past the end of the {size}-byte file")

    def tables(self, parent: Any, field: str, what: str) -> list[Any]:
        """The tables of ``parent``'s vector ``field`` (``Subgraphs``, ``Tensors``, …), each checked once."""
        count = getattr(parent, f"{field}Length")()
        if count * 4 > len(self.data):
            raise self.fail(f"{what} vector of {count} entries cannot fit in the {len(self.data)}-byte file")
        self.spend(count)
        out = []
        for index in range(count):
            table = getattr(parent, field)(index)
            if ("table", table._tab.Pos) not in self.seen:
                self.check(table._tab.Pos, f"{what} {index}")
                self.seen["table", table._tab.Pos] = True
            out.append(table)
        return out

    def ints(self, table: Any, field: str) -> list[int]:
        if getattr(table, f"{field}IsNone")():
            return []
        values = getattr(table, f"{field}AsNumpy")()  # a view; numpy checks it lies inside the file
        self.spend(len(values))
        return values.tolist()

    def model(self) -> FlatModel:
        fb, data = self.fb, self.data
        if len(data) < 8 or not fb.Model.ModelBufferHasIdentifier(data, 0):
            raise self.fail("not a TFLite flatbuffer (no TFL3 file identifier)")
        self.check(int.from_bytes(data[:4], "little"), "the model table")
        model = fb.Model.GetRootAs(data, 0)
        codes = self.tables(model, "OperatorCodes", "operator code")
        buffers = self.tables(model, "Buffers", "buffer")
        graphs = self.tables(model, "Subgraphs", "subgraph")
        if not graphs:
            raise self.fail("the model has no subgraph")
        for number, graph in enumerate(graphs):  # LiteRT builds every subgraph: a bad index anywhere fails it
            self.graph(graph, number, len(codes), buffers)
        tensors, operators = self.graph(graphs[0], 0, len(codes), buffers)
        ops = []
        for index, op in enumerate(operators):
            key = ("sig", op._tab.Pos)
            if key not in self.seen:
                opcode, inputs, outputs = self.operator(op, index, "subgraph 0", len(codes), len(tensors))
                builtin, custom = self.code(codes[opcode])
                self.seen[key] = OpSig(self.names.get(builtin, str(builtin)), custom,
                                       self.signatures(tensors, buffers, inputs),
                                       self.signatures(tensors, buffers, outputs), self.options(op))
            sig = self.seen[key]
            self.spend(len(sig.inputs) + len(sig.outputs))  # what the checks read of it, per reference
            ops.append(sig)
        return FlatModel(tuple(ops), self.min_runtime_version(model, buffers), model.Version(), len(graphs),
                         tuple(self.dynamic_inputs(graphs[0], tensors)))

    def graph(self, graph: Any, number: int, codes: int, buffers: list[Any]) -> tuple[list[Any], list[Any]]:
        """Subgraph ``number``'s tensor and operator tables, once every index in it is checked."""
        key = ("graph", graph._tab.Pos)
        if key not in self.seen:
            where = f"subgraph {number}"
            tensors = self.tables(graph, "Tensors", f"{where}'s tensor")
            for index, tensor in enumerate(tensors):
                self.buffer(buffers, tensor.Buffer(), f"{where}'s tensor {index}")
            for field in ("Inputs", "Outputs"):
                for i in self.ints(graph, field):
                    if not -1 <= i < len(tensors):
                        raise self.fail(f"{where}'s {field.lower()} name tensor {i}, out of range (the subgraph has "
                                        f"{len(tensors)} tensors)")
            operators = self.tables(graph, "Operators", f"{where}'s operator")
            for index, op in enumerate(operators):
                self.operator(op, index, where, codes, len(tensors))
            self.seen[key] = tensors, operators
        return self.seen[key]

    def operator(self, op: Any, index: int, where: str, codes: int, tensors: int) -> tuple[int, list[int], list[int]]:
        """The operator's opcode index, inputs and outputs, each checked against its vector's length."""
        key = ("op", op._tab.Pos, tensors)
        if key not in self.seen:
            opcode = op.OpcodeIndex()
            if opcode >= codes:
                raise self.fail(f"{where}'s operator {index} has opcode index {opcode}, out of range (the model "
                                f"has {codes} operator codes)")
            io = [self.ints(op, field) for field in ("Inputs", "Outputs", "Intermediates")]
            for role, values in zip(("input", "output", "intermediate"), io, strict=True):
                bad = next((i for i in values if not -1 <= i < tensors), None)
                if bad is not None:
                    raise self.fail(f"{where}'s operator {index} has {role} tensor {bad}, out of range (the subgraph "
                                    f"has {tensors} tensors)")
            self.seen[key] = opcode, io[0], io[1]
        return self.seen[key]

    def buffer(self, buffers: list[Any], index: int, what: str) -> bool:
        """Whether buffer ``index`` holds data (a constant), once its index and its data's extent are checked."""
        key = ("buffer", index)
        if key not in self.seen:
            if index >= len(buffers):
                raise self.fail(f"{what} names buffer {index}, out of range (the model has {len(buffers)} buffers)")
            buffer = buffers[index]
            size = 0 if buffer.DataIsNone() else len(buffer.DataAsNumpy())  # numpy checks it lies in the file
            offset = buffer.Offset()  # > 1: the data lies after the flatbuffer (a model over 2 GB), at this offset
            if offset > 1 and offset + buffer.Size() > len(self.data):
                raise self.fail(f"buffer {index}'s data at offset {offset} ({buffer.Size()} bytes) runs past the end "
                                f"of the {len(self.data)}-byte file")
            self.seen[key] = index > 0 and (size > 0 or offset > 1)  # buffer 0 is the schema's empty sentinel
        return self.seen[key]

    def signatures(self, tensors: list[Any], buffers: list[Any], indices: list[int]) -> tuple[TensorSig, ...]:
        """Subgraph 0's tensors ``indices`` as the GPU rules see them, each tensor read once."""
        for index in set(indices).difference(self.sigs):
            if index < 0:
                self.sigs[index] = TensorSig("NONE", (), False)
                continue
            tensor = tensors[index]
            dims = self.ints(tensor, "Shape" if tensor.ShapeSignatureIsNone() else "ShapeSignature")
            self.sigs[index] = TensorSig(self.types.get(tensor.Type(), str(tensor.Type())), tuple(dims),
                                         self.buffer(buffers, tensor.Buffer(), f"tensor {index}")
                                         and not tensor.IsVariable())
        return tuple(map(self.sigs.__getitem__, indices))

    def code(self, code: Any) -> tuple[int, str]:
        key = ("code", code._tab.Pos)
        if key not in self.seen:
            custom = code.CustomCode() or b""
            self.spend(len(custom))
            self.seen[key] = (max(code.BuiltinCode(), code.DeprecatedBuiltinCode()),
                              custom.decode(errors="replace")[:NAME_LIMIT])
        return self.seen[key]

    def options(self, op: Any) -> Any:
        """The operator's builtin options as the object API's ``*OptionsT`` (the GPU rules read its fields): an
        options table holds scalars and vectors only, so it unpacks as it is stored."""
        kind = op.BuiltinOptionsType()
        table = op.BuiltinOptions() if kind else None
        if table is None:
            return None
        key = ("options", kind, table.Pos)
        if key not in self.seen:
            self.check(table.Pos, "an operator's options table")
            options = self.fb.BuiltinOptionsCreator(kind, table)
            self.spend(sum(len(v) for v in vars(options).values() if hasattr(v, "__len__")) if options else 0)
            self.seen[key] = options
        return self.seen[key]

    def min_runtime_version(self, model: Any, buffers: list[Any]) -> str | None:
        version = None
        for index, meta in enumerate(self.tables(model, "Metadata", "metadata")):
            key = ("metadata", meta._tab.Pos)
            if key not in self.seen:
                name = meta.Name() or b""
                self.spend(len(name))
                self.seen[key] = meta.Buffer() if name == b"min_runtime_version" else None
            if self.seen[key] is not None:
                buffer = self.seen[key]
                self.buffer(buffers, buffer, f"metadata {index} (min_runtime_version)")
                if not buffers[buffer].DataIsNone():
                    text = buffers[buffer].DataAsNumpy()[:64].tobytes().rstrip(b"\0")
                    version = text.decode(errors="replace") or None
        return version

    def dynamic_inputs(self, graph: Any, tensors: list[Any]) -> list[str]:
        out = []
        for index in dict.fromkeys(self.ints(graph, "Inputs")):
            tensor = tensors[index] if index >= 0 else None
            if tensor is None or tensor.ShapeSignatureIsNone():
                continue
            dims = self.ints(tensor, "ShapeSignature")
            if any(d < 0 for d in dims):
                name = tensor.Name() or b""
                self.spend(len(name))
                out.append(f"{name.decode(errors='replace')[:NAME_LIMIT]} {dims}")
        return out


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


def _interpreter(path: Path, **options: Any) -> Any:
    """A LiteRT interpreter of ``path``. Its constructor runs LiteRT's C++ flatbuffer verifier over the whole file
    (bounded: it stops at a million tables), as ``inspect``'s load does: a file it refuses is malformed, an
    InvalidInputError. Any other refusal (an op this LiteRT lacks) is raised as LiteRT raised it, for the target
    to report."""
    from ai_edge_litert import interpreter as litert

    try:
        return litert.Interpreter(model_path=str(path), **options)
    except (RuntimeError, ValueError) as exc:
        if VERIFIER_REFUSAL in str(exc).lower():
            raise InvalidInputError(f"{path}: LiteRT's flatbuffer verifier refuses it ({first_line(exc)})",
                                    hint=REWRITE_HINT) from None
        raise


def _plain(path: Path) -> Any:
    """An interpreter without default delegates: the model's own operators."""
    from ai_edge_litert import interpreter as litert

    return _interpreter(path, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def gpu(path: Path, target: CompatTarget) -> TargetCompat:
    model = read_flatbuffer(path)
    try:
        _plain(path)  # the rules are static, but a file LiteRT's verifier refuses is refused here too
    except (RuntimeError, ValueError):
        pass  # LiteRT lacks one of its ops: the GPU delegate's rules still apply
    refusals: dict[int, str | None] = {}  # operators sharing one table share one OpSig
    ops = []
    for index, sig in enumerate(model.ops):
        refusal = refusals[id(sig)] if id(sig) in refusals else refusals.setdefault(id(sig), gpu_refusal(sig))
        ops.append(OpCompat(index, _label(sig), Support.SUPPORTED if refusal is None else Support.UNSUPPORTED,
                            refusal or "the GPU delegate's rules accept it", Evidence.STATIC_RULE))
    return TargetCompat(target.name, target.description, Evidence.STATIC_RULE, tuple(ops),
                        {**_facts(model), "rules": "LiteRT tflite/tools/versioning/gpu_compatibility.cc (2026-08)"},
                        (*_notes(model, tuple(ops)), "static rules, not a run on a GPU: a device's driver can still "
                                                     "refuse a partition the rules accept"))


def xnnpack(path: Path, target: CompatTarget) -> TargetCompat:
    from edgekit.targets.litert import delegated_ops

    model = read_flatbuffer(path)
    try:
        plain = _plain(path)
        delegated = _interpreter(path, num_threads=1)
        delegated.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        row = OpCompat(None, "model", Support.UNSUPPORTED, f"LiteRT cannot prepare it: {first_line(exc)}",
                       Evidence.RUNTIME_CHECK)
        return TargetCompat(target.name, target.description, Evidence.RUNTIME_CHECK, (row,), _facts(model))
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
    model = read_flatbuffer(path)
    version = _litert_version()
    need = f"; needs LiteRT/TFLite ≥ {model.min_runtime_version} (min_runtime_version)" \
        if model.min_runtime_version else "; the file records no min_runtime_version"
    try:
        _plain(path).allocate_tensors()
        row = OpCompat(None, "model", Support.SUPPORTED, f"loads in ai-edge-litert {version} here{need}",
                       Evidence.RUNTIME_CHECK)
    except (RuntimeError, ValueError) as exc:
        row = OpCompat(None, "model", Support.UNSUPPORTED, f"ai-edge-litert {version} cannot prepare it: "
                       f"{first_line(exc)}{need}", Evidence.RUNTIME_CHECK)
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
