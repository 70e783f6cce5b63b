"""torch.export archives (``.pt2``), checked member by member before ``torch.export.load`` sees them.

``torch.export.load`` is not a data reader. On a crafted archive, torch 2.13 runs the author's code in
five ways, each reproduced by a test that builds the file:

- it unpickles members without the weights-only guard: ``use_pickle`` weights and tensor constants
  (``torch.load(weights_only=False)``), ``opaque_obj_*`` constants (plain ``pickle.loads``), ``custom_obj_*``
  constants (the TorchBind unpickler), legacy ``data/weights/<model>.pt`` and sample inputs (tried
  weights-only, then retried with ``weights_only=False``);
- every symbolic-shape expression (``expr_str``) goes through ``sympy.sympify``, which is ``eval``;
- ``guards_code`` strings are pasted into a function and ``exec``'d when ``ep.module()`` is built;
- a node's ``target`` is resolved by ``getattr`` from the ``torch`` module, so ``torch.os.system`` is a
  valid target, called when the program runs;
- ``data/aotinductor/`` members are compiled libraries, loaded into the process.

So: every pickle torch would read is scanned opcode by opcode (weights-only globals only), opaque and
TorchBind objects are refused, AOTInductor libraries are refused, every ``expr_str`` must be a sympy
expression over integer symbols and known functions (parsed with ``ast``, never evaluated), every guard
a comparison over input sizes, every target an operator in an allowed namespace
(``edgekit.toolkit.safety.policy.torch_ops``). Pickles and native code stay refused under ``--trust``; the code
findings (expressions, guards, targets) are what ``--trust`` lifts. The runtime then loads with
``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` set, so any unpickling this walk did not foresee is weights-only too.
"""

from __future__ import annotations

import ast
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.errors import InvalidInputError, UnsafeModelError, option
from edgekit.toolkit.contract.formats import open_zip_names
from edgekit.toolkit.safety.policy.torch_ops import dotted_name, op_refusal
from edgekit.toolkit.safety.policy.trust import refuse_unless_trusted, summary

# Layout of torch/export/pt2_archive/constants.py (torch 2.13).
MODELS_DIR, WEIGHTS_DIR, CONSTANTS_DIR = "models/", "data/weights/", "data/constants/"
SAMPLE_INPUTS = "data/sample_inputs/{}.pt"
CONFIGS = {WEIGHTS_DIR: "data/weights/{}_weights_config.json", CONSTANTS_DIR: "data/constants/{}_constants_config.json"}
NATIVE_DIRS = ("data/aotinductor/", "data/mtia", "data/executorch/")
MAX_JSON_BYTES = 512 << 20
MAX_PICKLE_BYTES = 1 << 30

# Targets outside torch.ops that torch.export writes (torch/_export/serde/serialize.py: _SYM_OPS and the
# pre-dispatch graph's grad-mode and autocast calls).
PYTHON_TARGETS = frozenset({
    *(f"_operator.{name}" for name in (
        "getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs", "eq", "ne",
        "lt", "le", "gt", "ge", "and_", "or_", "xor", "not_", "invert", "lshift", "rshift", "matmul")),
    *(f"math.{name}" for name in ("trunc", "floor", "ceil", "sqrt", "exp", "log", "log2", "pow", "fabs")),
    *(f"torch.{name}" for name in (
        "sym_not", "sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_sqrt", "sym_sum", "_sym_sqrt")),
    "torch._C._set_grad_enabled", "torch.amp.autocast_mode._enter_autocast",
    "torch.amp.autocast_mode._exit_autocast",
})
OPS_TARGET = re.compile(r"^torch\.ops\.(?P<namespace>\w+)\.(?P<name>\w+)(\.\w+)?$")

# sympy: the functions torch's deserialiser puts in scope (serialize.py, sympy_functions) and the sympy
# classes its printer writes; symbols are s0, u3, zuf1, … (torch.utils._sympy.symbol.SymT prefixes).
SYMPY_NAMES = frozenset({
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator",
    "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "Identity",
    "Symbol", "Integer", "Float", "Rational", "Max", "Min", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not",
    "Mul", "Add", "Pow", "Abs", "floor", "ceiling", "sqrt", "oo", "zoo", "nan", "true", "false", "True", "False",
    "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan", "Equality", "Unequality", "ITE", "Piecewise",
})
SYMBOL = re.compile(r"^[a-z]{1,4}\d+$")
ASSUMPTION = re.compile(r"^[a-z_]{1,32}$")  # positive=True, integer=True, …
MAX_EXPRESSION = 64 << 10
_EXPR_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Call, ast.keyword, ast.Name,
               ast.Constant, ast.Tuple, ast.Load, ast.operator, ast.unaryop, ast.boolop, ast.cmpop)
# Guards (exported_program._convert_guards_to_code → ShapeGuardPythonPrinter): comparisons of input sizes.
GUARD_METHODS = frozenset({"size", "stride", "storage_offset", "dim", "numel"})
GUARD_CALLS = frozenset({"math.floor", "math.ceil", "math.trunc", "math.sqrt", "torch.sym_float", "torch.sym_int",
                         "torch.sym_max", "torch.sym_min", "torch.sym_not", "torch.sym_ite", "torch.sym_sqrt",
                         "IsNonOverlappingAndDenseIndicator", "cast_symbool_to_symint_guardless", "int", "float",
                         "abs", "min", "max"})
GUARD_KEY = re.compile(r"^\w{1,128}$")


def check_exported_archive(path: Path) -> None:
    """Refuse (exit 4) a ``.pt2`` whose loading would run code, naming the member; exit 3 when malformed."""
    names = open_zip_names(path)
    prefix = names[0].split("/", 1)[0] + "/"
    members = {name[len(prefix):]: name for name in names}
    with zipfile.ZipFile(path) as archive:
        reader = _Reader(path, archive, members)
        native = [rel for rel in members if rel.startswith(NATIVE_DIRS)]
        if native:
            raise UnsafeModelError(f"{path}: holds compiled native code ({native[0]}), which torch.export.load "
                                   "loads into the process",
                                   hint="edgekit loads the exported program only: re-save it with torch.export.save")
        models = sorted(rel for rel in members if rel.startswith(MODELS_DIR))
        if not models:
            raise InvalidInputError(f"{path}: no models/*.json in this torch.export archive", hint="re-export it")
        code: list[str] = []
        for rel in models:
            if not rel.endswith(".json"):
                raise InvalidInputError(f"{path}: unexpected member {rel!r} in models/", hint="re-export it")
            model = rel[len(MODELS_DIR): -len(".json")]
            try:
                code += [f"{rel}: {finding}" for finding in program_findings(reader.json(rel))]
            except InvalidInputError as exc:
                raise InvalidInputError(f"{path}: {rel}: {exc.message}", hint=exc.hint) from None
            reader.pickle(SAMPLE_INPUTS.format(model), required=False)
            for directory, config in CONFIGS.items():
                legacy = f"{directory}{model}.pt"
                if legacy in members:
                    reader.pickle(legacy)
                elif config.format(model) in members:
                    _check_payloads(reader, directory, config.format(model))
    refuse_unless_trusted(str(path), code, f"{path}: loading or running it would execute code: {summary(code)}",
                          hint="export the model again with torch.export (plain operators, no hand edits), or pass "
                               f"{option('trust', True)} if you trust whoever made this file")


def _check_payloads(reader: _Reader, directory: str, config_name: str) -> None:
    config = reader.json(config_name)
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise InvalidInputError(f"{reader.path}: {config_name} has no 'config' table", hint="re-export it")
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("path_name"), str):
            raise InvalidInputError(f"{reader.path}: {config_name}: entry {fqn!r} has no path_name",
                                    hint="re-export it")
        member = directory + meta["path_name"]
        if meta["path_name"].startswith(("opaque_obj_", "custom_obj_")):
            kind = "a Python pickle" if meta["path_name"].startswith("opaque") else "a TorchBind object"
            raise UnsafeModelError(f"{reader.path}: constant {fqn!r} is {kind} ({member}), which torch unpickles "
                                   "with no weights-only guard", hint="edgekit never unpickles a model, even with "
                                                                      f"{option('trust', True)}: export plain tensors")
        if meta.get("use_pickle"):
            reader.pickle(member)


class _Reader:
    """Members of one archive, read with size limits; errors name the archive and the member."""

    def __init__(self, path: Path, archive: zipfile.ZipFile, members: dict[str, str]) -> None:
        self.path, self.archive, self.members = path, archive, members

    def _bytes(self, rel: str, limit: int) -> bytes:
        info = self.archive.getinfo(self.members[rel])
        if info.file_size > limit:
            raise InvalidInputError(f"{self.path}: {rel} claims {info.file_size} bytes (at most {limit})",
                                    hint="not an archive edgekit will read")
        return self.archive.read(info)

    def json(self, rel: str) -> Any:
        if rel not in self.members:
            raise InvalidInputError(f"{self.path}: {rel} is missing", hint="re-export it with torch.export.save")
        try:
            return jsonio.loads(self._bytes(rel, MAX_JSON_BYTES), max_bytes=MAX_JSON_BYTES)
        except ValueError as exc:
            raise InvalidInputError(f"{self.path}: {rel} is unreadable ({exc})", hint="re-export it") from None

    def pickle(self, rel: str, *, required: bool = True) -> None:
        """Refuse the member if unpickling it would import anything beyond tensors and containers."""
        from edgekit.toolkit.safety.pickles import scan_pickle_bytes

        if rel not in self.members:
            if required:
                raise InvalidInputError(f"{self.path}: {rel} is missing", hint="re-export it with torch.export.save")
            return
        origin = f"{self.path}: {rel}"
        for name, data in _pickles_in(self._bytes(rel, MAX_PICKLE_BYTES), origin):
            scan = scan_pickle_bytes(data, origin=f"{origin}{name}", max_pickles=5)
            if scan.is_code_bearing:
                shown = ", ".join(f"{m}.{n}" for m, n in scan.disallowed[:3])
                raise UnsafeModelError(f"{origin}{name}: a pickle that would import {shown} and run its code",
                                       hint=f"edgekit never unpickles a model, even with {option('trust', True)}: "
                                            "export it again "
                                            "with torch.export.save")


def _pickles_in(data: bytes, origin: str) -> Iterator[tuple[str, bytes]]:
    """The pickle streams of a ``torch.save`` payload: every ``.pkl`` of a nested torch zip, or the bytes."""
    if not data.startswith(b"PK\x03\x04"):
        yield "", data
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as nested:
            infos = nested.infolist()
            names = [info.filename for info in infos]
            if len(set(names)) != len(names) or any(info.flag_bits & 0x1 for info in infos):
                raise zipfile.BadZipFile("duplicate or encrypted members")
            for info in infos:
                if info.filename.endswith(".pkl"):
                    yield f" ({info.filename})", nested.read(info)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise InvalidInputError(f"{origin}: broken nested torch archive ({exc})", hint="re-export it") from None


# -- the program JSON --------------------------------------------------------------------------------------


def program_findings(program: Any) -> list[str]:
    """What in a serialised ExportedProgram would run code (empty: nothing). Pure: the fuzz harness and
    the unit tests drive it with documents, no archive needed."""
    findings: list[str] = []
    if not isinstance(program, dict):
        raise InvalidInputError("the exported program is not a JSON object", hint="re-export it")
    for guard in _strings(program.get("guards_code", []), "guards_code"):
        reason = guard_refusal(guard)
        if reason:
            findings.append(f"guard {_short(guard)!r} ({reason})")
    for key in _mapping(program.get("range_constraints", {}), "range_constraints"):
        reason = expression_refusal(key)
        if reason:
            findings.append(f"range constraint {_short(key)!r} ({reason})")
    for node in _json_objects(program):
        if "expr_str" in node:
            reason = expression_refusal(node["expr_str"])
            if reason:
                findings.append(f"shape expression {_short(node['expr_str'])!r} ({reason})")
        if "target" in node and "inputs" in node:
            reason = target_refusal(node["target"])
            if reason:
                findings.append(f"node {_short(node.get('name'))!r} calls {reason}")
    return list(dict.fromkeys(findings))


def target_refusal(target: Any) -> str | None:
    if not isinstance(target, str):
        raise InvalidInputError(f"a node target is {type(target).__name__}, not a string", hint="re-export it")
    match = OPS_TARGET.match(target)
    if match:
        return op_refusal(match["namespace"], match["name"])
    if target in PYTHON_TARGETS:
        return None
    return f"{_short(target)} (not an operator: torch resolves it with getattr and calls it)"


def expression_refusal(text: Any) -> str | None:
    """Why a symbolic-shape expression may not reach ``sympy.sympify`` (None: it may)."""
    if not isinstance(text, str):
        raise InvalidInputError(f"a shape expression is {type(text).__name__}, not a string", hint="re-export it")
    if len(text) > MAX_EXPRESSION:
        return f"{len(text)} characters"
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "not a sympy expression"
    for node in _ast_nodes(tree):
        if not isinstance(node, _EXPR_NODES):
            return f"{type(node).__name__} is not part of a shape expression"
        if isinstance(node, ast.Name) and node.id not in SYMPY_NAMES and not SYMBOL.match(node.id):
            return f"name {node.id!r}"
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in SYMPY_NAMES):
            return "a call to something other than a sympy function"
        if isinstance(node, ast.keyword) and not (node.arg and ASSUMPTION.match(node.arg)
                                                  and isinstance(node.value, ast.Constant)
                                                  and isinstance(node.value.value, bool)):
            return "a keyword argument other than a symbol assumption"
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes) and not (
                isinstance(node.value, str) and SYMBOL.match(node.value)):
            return f"string {_short(node.value)!r}"
    return None


def guard_refusal(text: str) -> str | None:
    """Why a guard may not be ``exec``'d by ``ep.module()`` (None: it may). Guards compare input sizes:
    ``L['x'].size()[0] <= 64``; string constants are plain keys, since the guard's text is also pasted
    into a string literal of the generated code."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "not a Python expression"
    for node in _ast_nodes(tree):
        if isinstance(node, ast.Call):
            name = dotted_name(node.func)
            method = node.func.attr if isinstance(node.func, ast.Attribute) else None
            if name not in GUARD_CALLS and method not in GUARD_METHODS:
                return f"calls {name or method or 'an expression'}"
        elif isinstance(node, ast.Attribute):
            if node.attr not in GUARD_METHODS and dotted_name(node) not in GUARD_CALLS:
                return f"attribute {node.attr!r}"
        elif isinstance(node, ast.Name):
            if node.id not in {"L", "math", "torch", "inf", *GUARD_CALLS}:
                return f"name {node.id!r}"
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bytes) or (isinstance(node.value, str) and not GUARD_KEY.match(node.value)):
                return f"constant {_short(node.value)!r}"
        elif not isinstance(node, _EXPR_NODES + (ast.Subscript, ast.Attribute)):
            return f"{type(node).__name__} is not part of a guard"
    return None


def _ast_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    return ast.walk(tree)  # breadth-first over a deque: no recursion on deep expressions


def _json_objects(document: Any) -> Iterator[dict[str, Any]]:
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            yield value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInputError(f"the exported program's {what} is not a list of strings", hint="re-export it")
    return value


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"the exported program's {what} is not an object", hint="re-export it")
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
