"""Device compatibility: will an artifact run on a target, op by op, and how do we know.

Each *target* is one runtime/accelerator a deployed model meets (the TFLite GPU delegate, ONNX Runtime's
NNAPI execution provider, …). A check reports every operator of the artifact as supported, unsupported or
unknown, with the reason and the **evidence** it rests on:

- ``static rule``: the target's own published rules applied to the file (no device, no compiler);
- ``compiler check``: what the target's compiler/partitioner decided and recorded in the artifact;
- ``runtime check on this machine``: the target's runtime loaded the artifact here and said so.

Unknown is never counted as supported: a target passes only when every operator is supported.
This module is framework-free (the pipeline's report and ``check``'s config read it without a framework).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from edgekit.toolkit.contract.formats import Format


class Support(StrEnum):
    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"


class Evidence(StrEnum):
    STATIC_RULE = "static rule"
    COMPILER_CHECK = "compiler check"
    RUNTIME_CHECK = "runtime check on this machine"


@dataclass(frozen=True)
class OpCompat:
    """One operator (or, for a runtime-version target, the model as a whole) on one target."""

    index: int | None  # the operator's position in the file (TFLite op index, ONNX node index, .pte instruction)
    op: str
    support: Support
    reason: str = ""
    evidence: Evidence = Evidence.STATIC_RULE
    name: str = ""  # the node's own name, where the format keeps one

    @property
    def where(self) -> str:
        return f"{self.op} #{self.index}" if self.index is not None else self.op


@dataclass(frozen=True)
class TargetCompat:
    target: str
    description: str
    evidence: Evidence
    ops: tuple[OpCompat, ...]
    facts: dict[str, Any] = field(default_factory=dict)  # partition counts, versions, what the check ran with
    notes: tuple[str, ...] = ()

    @property
    def support(self) -> Support:
        kinds = {op.support for op in self.ops}
        if Support.UNSUPPORTED in kinds:
            return Support.UNSUPPORTED
        if Support.UNKNOWN in kinds or not self.ops:
            return Support.UNKNOWN
        return Support.SUPPORTED

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(op.support.value for op in self.ops)
        return {s.value: counts.get(s.value, 0) for s in Support}

    def summary(self) -> str:
        """One phrase: 'all 14 ops supported', '2 of 14 ops unsupported: ARG_MAX #12, CUMSUM #13'."""
        total = len(self.ops)
        if not total:
            return "nothing to check"
        counts = self.counts
        if self.support is Support.SUPPORTED:
            return f"all {total} ops supported" if total > 1 else f"supported: {self.ops[0].reason}"
        parts = []
        for kind in (Support.UNSUPPORTED, Support.UNKNOWN):
            these = [op for op in self.ops if op.support is kind]
            if these:
                named = ", ".join(op.where for op in these[:4]) + (", …" if len(these) > 4 else "")
                parts.append(f"{counts[kind.value]} of {total} {kind.value}: {named}" if total > 1
                             else f"{kind.value}: {these[0].reason}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "description": self.description, "evidence": self.evidence.value,
                "support": self.support.value, "summary": self.summary(), "counts": self.counts,
                "facts": self.facts, "notes": list(self.notes),
                "ops": [{**asdict(op), "support": op.support.value, "evidence": op.evidence.value}
                        for op in self.ops]}


@dataclass(frozen=True)
class CompatReport:
    model: str
    format: str
    targets: tuple[TargetCompat, ...]

    @property
    def passed(self) -> bool:
        return all(t.support is Support.SUPPORTED for t in self.targets)

    def cells(self) -> dict[str, dict[str, str]]:
        """target → {"support", "summary"}: what the pipeline report keeps per row."""
        return {t.target: {"support": t.support.value, "summary": t.summary()} for t in self.targets}

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgekit.compat/1", "model": self.model, "format": self.format, "passed": self.passed,
                "targets": [t.to_dict() for t in self.targets]}


@dataclass(frozen=True)
class CompatTarget:
    name: str
    format: Format
    description: str
    evidence: Evidence
    checker: str  # "module:function", imported only when the target is checked
    requires: tuple[str, ...]  # the modules the check imports (a missing one: a one-line error naming the extra)

    def to_dict(self) -> dict[str, Any]:
        """What ``info`` reports, with availability checked here (no import)."""
        from edgekit.toolkit.contract.extras import is_installed

        return {"target": self.name, "format": self.format.value, "evidence": self.evidence.value,
                "description": self.description, "missing": [m for m in self.requires if not is_installed(m)]}

    def check(self, path: Any) -> TargetCompat:
        import importlib

        from edgekit.toolkit.contract.extras import require

        require(self.requires, f"checking {self.name}")
        module, _, function = self.checker.partition(":")
        return getattr(importlib.import_module(module), function)(path, self)


_CHECKS = "edgekit.targets.compat"
_LITERT, _ORT, _ET = ("ai_edge_litert",), ("onnx", "onnxruntime"), ("executorch", "torch")
COMPAT_TARGETS: dict[str, CompatTarget] = {
    t.name: t
    for t in (
        CompatTarget("tflite-xnnpack", Format.TFLITE, "LiteRT's XNNPACK CPU delegate (Android, iOS, desktop)",
                     Evidence.RUNTIME_CHECK, f"{_CHECKS}.tflite:xnnpack", _LITERT),
        CompatTarget("tflite-gpu", Format.TFLITE, "the TFLite/LiteRT GPU delegate (OpenCL, OpenGL ES, Metal)",
                     Evidence.STATIC_RULE, f"{_CHECKS}.tflite:gpu", _LITERT),
        CompatTarget("litert", Format.TFLITE, "the LiteRT/TFLite runtime version the model needs",
                     Evidence.RUNTIME_CHECK, f"{_CHECKS}.tflite:runtime", _LITERT),
        CompatTarget("onnx-nnapi", Format.ONNX, "ONNX Runtime's NNAPI execution provider (Android)",
                     Evidence.STATIC_RULE, f"{_CHECKS}.onnx:nnapi", _ORT),
        CompatTarget("onnx-coreml", Format.ONNX, "ONNX Runtime's CoreML execution provider, ML Program (iOS, macOS)",
                     Evidence.STATIC_RULE, f"{_CHECKS}.onnx:coreml", _ORT),
        CompatTarget("onnxruntime", Format.ONNX, "the ONNX Runtime releases that load the model's IR and opsets",
                     Evidence.RUNTIME_CHECK, f"{_CHECKS}.onnx:runtime", _ORT),
        CompatTarget("executorch-xnnpack", Format.EXECUTORCH, "ExecuTorch's XNNPACK delegate",
                     Evidence.COMPILER_CHECK, f"{_CHECKS}.executorch:xnnpack", _ET),
        CompatTarget("executorch", Format.EXECUTORCH, "the ExecuTorch runtime (program schema, kernels)",
                     Evidence.RUNTIME_CHECK, f"{_CHECKS}.executorch:runtime", _ET),
    )
}


def targets_for(fmt: Format, among: Iterable[str] | None = None) -> list[str]:
    """The targets (of ``among``, default all, in its order) that check artifacts of ``fmt``."""
    return [name for name in (COMPAT_TARGETS if among is None else among) if COMPAT_TARGETS[name].format is fmt]
