"""ExecuTorch targets: the XNNPACK delegate (what the partitioner delegated, as the .pte records it: a compiler
check) and the ExecuTorch runtime (program schema; loaded, with every kernel resolved, in this runtime)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.toolkit.contract.artifact import read_sidecar
from edgekit.toolkit.contract.compat import CompatTarget, Evidence, OpCompat, Support, TargetCompat
from edgekit.toolkit.contract.errors import InvalidInputError

PTE_IDENTIFIER_AT = slice(4, 8)  # a .pte is a flatbuffer; its file identifier is "ET" + the schema's two digits


def _program(path: Path) -> tuple[Any, str]:
    data = Path(path).read_bytes()
    identifier = data[PTE_IDENTIFIER_AT].decode("ascii", errors="replace")
    if not identifier.startswith("ET"):
        raise InvalidInputError(f"{path}: not an ExecuTorch program (file identifier {identifier!r}, expected ET..)",
                                hint="pass a .pte written by executorch's to_executorch()")
    from executorch.exir._serialize._program import deserialize_pte_binary

    try:
        return deserialize_pte_binary(data).program, identifier
    except Exception as exc:  # a truncated or newer-schema file fails inside the flatbuffer reader
        raise InvalidInputError(f"{path}: this executorch cannot read the program ({type(exc).__name__}: {exc})",
                                hint="a program from a newer ExecuTorch needs that runtime") from None


def _instructions(path: Path, plan: Any) -> list[tuple[int, str, str | None]]:
    """(instruction index, operator or delegate id, delegate id or None) for the plan's calls, in order; an
    operator or delegate index outside the plan's table is a malformed file (the runtime would refuse it)."""
    calls = []
    index = 0
    for chain in plan.chains:
        for instruction in chain.instructions:
            args = instruction.instr_args
            kind = type(args).__name__
            if kind == "KernelCall":
                op = plan.operators[_checked(path, plan, index, args.op_index, len(plan.operators), "operator")]
                calls.append((index, f"{op.name}.{op.overload}" if op.overload else op.name, None))
            elif kind == "DelegateCall":
                delegate = plan.delegates[_checked(path, plan, index, args.delegate_index, len(plan.delegates),
                                                   "delegate")].id
                calls.append((index, delegate, delegate))
            index += 1
    return calls


def _checked(path: Path, plan: Any, instruction: int, value: int, count: int, what: str) -> int:
    if not 0 <= value < count:
        raise InvalidInputError(f"{path}: method {plan.name}'s instruction {instruction} calls {what} {value}, out of "
                                f"range (the method has {count} {what}s)",
                                hint="re-export the .pte with executorch's to_executorch(); this file is corrupt")
    return value


def xnnpack(path: Path, target: CompatTarget) -> TargetCompat:
    program, identifier = _program(path)
    ops = []
    facts: dict[str, Any] = {"schema": identifier, "methods": [p.name for p in program.execution_plan]}
    for plan in program.execution_plan:
        prefix = "" if len(program.execution_plan) == 1 else f"{plan.name}: "
        for index, name, delegate in _instructions(path, plan):
            if delegate == "XnnpackBackend":
                ops.append(OpCompat(index, f"{prefix}XnnpackBackend", Support.SUPPORTED,
                                    "a partition the XNNPACK partitioner delegated", Evidence.COMPILER_CHECK))
            elif delegate is not None:
                ops.append(OpCompat(index, f"{prefix}{name}", Support.UNSUPPORTED,
                                    f"delegated to {name}, not XNNPACK", Evidence.COMPILER_CHECK))
            else:
                ops.append(OpCompat(index, f"{prefix}{name}", Support.UNSUPPORTED,
                                    "not delegated: it runs on ExecuTorch's portable/optimized CPU kernel",
                                    Evidence.COMPILER_CHECK))
    facts["delegate_calls"] = sum(1 for op in ops if op.support is Support.SUPPORTED)
    return TargetCompat(target.name, target.description, Evidence.COMPILER_CHECK, tuple(ops), facts,
                        ("the ops inside a delegate partition are compiled into its blob and not listed",))


def runtime(path: Path, target: CompatTarget) -> TargetCompat:
    """The program loads in this ExecuTorch runtime and each method resolves its kernels and delegates."""
    from importlib.metadata import PackageNotFoundError, version

    program_data, identifier = _program(path)
    for plan in program_data.execution_plan:  # a call outside its method's tables: malformed, before any load
        _instructions(path, plan)
    try:
        installed = version("executorch")
    except PackageNotFoundError:
        installed = "?"
    from executorch.runtime import Runtime

    rows = []
    try:
        loaded = Runtime.get().load_program(Path(path))
        for name in [p.name for p in program_data.execution_plan]:
            try:
                loaded.load_method(name)
                rows.append(OpCompat(None, f"method {name}", Support.SUPPORTED,
                                     f"schema {identifier}: loads in executorch {installed} here, every kernel and "
                                     "delegate resolved", Evidence.RUNTIME_CHECK))
            except Exception as exc:
                rows.append(OpCompat(None, f"method {name}", Support.UNSUPPORTED,
                                     f"executorch {installed} cannot load it: {_first(exc)}", Evidence.RUNTIME_CHECK))
    except Exception as exc:
        rows.append(OpCompat(None, "program", Support.UNSUPPORTED,
                             f"schema {identifier}: executorch {installed} cannot load it: {_first(exc)}",
                             Evidence.RUNTIME_CHECK))
    facts: dict[str, Any] = {"schema": identifier, "installed": f"executorch {installed}"}
    sidecar = read_sidecar(Path(path))  # a .pte records no ExecuTorch version; edgekit's sidecar does
    if sidecar is not None and sidecar.versions.get("executorch"):
        facts["written_by"] = f"executorch {sidecar.versions['executorch']}"
    return TargetCompat(target.name, target.description, Evidence.RUNTIME_CHECK, tuple(rows), facts,
                        ("an app's runtime must link the kernels and backends these methods call "
                         "(portable or optimized kernels, the XNNPACK backend)",))


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
