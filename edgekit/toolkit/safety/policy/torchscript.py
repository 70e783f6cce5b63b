"""TorchScript archives, read without executing anything before ``torch.jit.load`` compiles them.

A TorchScript file is source code: ``code/**/*.py`` holds every class and method in TorchScript's
Python subset, compiled at load time. Two things in it run without the user calling the model —
``__setstate__`` of any class the pickles (``data.pkl``) instantiate, while loading, and every method at
the first inference — and TorchScript's operators reach the file system (``torch.from_file(path,
shared=True)`` creates and writes a file of the author's choosing; ``aten::save`` writes one).

So the code is parsed with ``ast`` (never imported or evaluated) and refused (exit 4) when it calls an
operator outside the allowed namespaces or on the denylist (``edgekit.toolkit.safety.policy.torch_ops``, kept
with its reasons), references a TorchBind class outside torch's own quantized/mobile ones, calls the
RPC builtins, or defines ``__setstate__`` outside torch's own module classes (``__torch__.torch.*``,
e.g. quantized packed parameters; their bodies are checked like any other). The pickles (``data.pkl``,
``constants.pkl``, ``traced_inputs.pkl``…) are scanned opcode by opcode: they may build tensors, torch's
own pickle helpers and the classes defined in ``code/``. ``--trust`` lifts the refusal, with a warning.
"""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

from edgekit.toolkit.contract.errors import InvalidInputError, option
from edgekit.toolkit.contract.formats import open_zip_names
from edgekit.toolkit.safety.policy.torch_ops import TORCHBIND_NAMESPACES, dotted_name, op_refusal
from edgekit.toolkit.safety.policy.trust import refuse_unless_trusted, summary

MAX_CODE_BYTES = 64 << 20  # all of code/ together
MAX_PICKLE_BYTES = 1 << 30
NETWORK_BUILTINS = frozenset({"rpc_async", "rpc_sync", "remote"})
TORCH_OWN = "__torch__.torch."
QSCHEMES = frozenset({"per_tensor_affine", "per_channel_affine", "per_channel_affine_float_qparams",
                      "per_tensor_symmetric", "per_channel_symmetric"})


def check_torchscript_archive(path: Path) -> None:
    """Refuse (exit 4) a TorchScript file whose code or pickles would do more than compute on tensors."""
    names = open_zip_names(path)
    prefix = names[0].split("/", 1)[0] + "/"
    members = {name[len(prefix):]: name for name in names}
    findings: list[str] = []
    classes: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        code = [rel for rel in members if rel.startswith("code/") and rel.endswith(".py")]
        total = sum(archive.getinfo(members[rel]).file_size for rel in code)
        if total > MAX_CODE_BYTES:
            raise InvalidInputError(f"{path}: {total} bytes of TorchScript code (at most {MAX_CODE_BYTES})",
                                    hint="not a TorchScript file edgekit will read")
        for rel in sorted(code):
            source = _text(path, rel, archive.read(members[rel]))
            try:
                findings += code_findings(rel, source, classes)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{path}: {exc.message}", hint=exc.hint) from None
        for rel in sorted(members):
            # .debug_pkl (source ranges, one per code file) is read only by TorchScript's C++ source-range
            # unpickler, which has no class resolver: it can build tuples and strings, nothing else.
            if rel.endswith(".pkl"):
                findings += _pickle_findings(path, rel, archive, members[rel], classes)
    findings = list(dict.fromkeys(findings))
    refuse_unless_trusted(str(path), findings, f"{path}: loading or running this TorchScript would "
                          f"{summary(findings)}", hint="script or trace the model again from code you trust (or "
                          f"export it with torch.export to a .pt2), or pass {option('trust', True)} if you trust "
                          "whoever made this file")


def _text(path: Path, rel: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: {rel} is not UTF-8 TorchScript source", hint="re-export the model") \
            from None


def code_findings(rel: str, source: str, classes: set[str] | None = None) -> list[str]:
    """What one ``code/`` file would do beyond computing on tensors; the classes it defines are added to
    ``classes`` (qualified, as the pickles name them). Pure: the fuzz harness drives it with text."""
    module = rel.removeprefix("code/").removesuffix(".py").replace("/", ".")
    try:
        tree = ast.parse(source, filename=rel)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise InvalidInputError(f"{rel}: not TorchScript source ({type(exc).__name__}: "
                                f"{getattr(exc, 'msg', exc)})", hint="re-export the model") from None
    findings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            qualified = f"{module}.{node.name}"
            if classes is not None:
                classes.add(qualified)
            defines_setstate = any(isinstance(item, ast.FunctionDef) and item.name == "__setstate__"
                                   for item in node.body)
            if defines_setstate and not qualified.startswith(TORCH_OWN):
                findings.append(f"run {qualified}.__setstate__ while loading (a class of the file's own)")
        elif isinstance(node, ast.Call):
            reason = _call_refusal(node)
            if reason:
                findings.append(f"call {reason} ({rel}, line {node.lineno})")
        elif isinstance(node, ast.Attribute):
            reason = _class_refusal(dotted_name(node))
            if reason:
                findings.append(f"use {reason} ({rel}, line {node.lineno})")
    return findings


def _call_refusal(node: ast.Call) -> str | None:
    name = dotted_name(node.func)
    if name is None:
        return None  # a method of a value: a class in code/ or a builtin type
    parts = name.split(".")
    if parts[0] in NETWORK_BUILTINS and len(parts) == 1:
        return f"{name} (remote procedure call)"
    if parts[:2] == ["torch", "ops"]:
        parts = parts[1:]
    if parts[0] == "ops" and len(parts) >= 3:
        return op_refusal(parts[1], parts[2])
    if parts[0] == "torch" and len(parts) == 2:
        return op_refusal("aten", parts[1])
    return None


def _class_refusal(name: str | None) -> str | None:
    """TorchBind classes (``torch.classes.NS.C``; in types ``__torch__.torch.classes.NS.C``) are C++ with
    their own ``__setstate__``: only torch's own namespaces."""
    if name is None:
        return None
    parts = name.split(".")
    for start in (["torch", "classes"], ["__torch__", "torch", "classes"]):
        if parts[: len(start)] == start and len(parts) > len(start):
            namespace = parts[len(start)]
            if namespace not in TORCHBIND_NAMESPACES:
                return f"TorchBind class {name} (custom C++ code outside {', '.join(sorted(TORCHBIND_NAMESPACES))})"
    return None


def _pickle_findings(path: Path, rel: str, archive: zipfile.ZipFile, member: str, classes: set[str]) -> list[str]:
    from edgekit.toolkit.safety.pickles import is_allowed_global, scan_pickle_bytes

    def allowed(module: str, name: str) -> bool:
        if is_allowed_global(module, name) or module == "torch.jit._pickle":
            return True
        if module == "torch":
            return name in QSCHEMES or name.endswith("Storage")
        if module.startswith("__torch__.torch.classes."):
            return module.split(".")[3] in TORCHBIND_NAMESPACES
        return module.startswith("__torch__") and f"{module}.{name}" in classes

    info = archive.getinfo(member)
    if info.file_size > MAX_PICKLE_BYTES:
        raise InvalidInputError(f"{path}: {rel} claims {info.file_size} bytes", hint="not a file edgekit will read")
    scan = scan_pickle_bytes(archive.read(info), origin=f"{path}: {rel}", allowed=allowed)
    return [f"build {module}.{name} from {rel} (not a tensor, a torch pickle helper or a class in code/)"
            for module, name in scan.disallowed]
