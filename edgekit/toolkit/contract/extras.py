"""The extras edgekit installs its backends with, as plain data: which packages (and import names) each brings.

The base install is the CLI and the framework-free core; every backend is an extra
(``pip install 'edgekit[onnx,litert]'``). This table is the one place that maps an importable module to
the extra that installs it. Two things read it:

- the missing-dependency error (``registry._require`` and the lazy imports outside the registry), whose
  hint names the extra to install, several comma-joined when several are missing;
- ``edgekit info``, which lists each extra as present, partly present (naming what is missing) or absent.

Presence is checked with ``importlib.util.find_spec`` and versions read with ``importlib.metadata``:
nothing is imported. The pins live in pyproject.toml's ``[project.optional-dependencies]``;
tests/test_extras.py keeps the two in step.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgekit.toolkit.contract.errors import MissingDependencyError

PRESENT, PARTIAL, ABSENT = "present", "partly present", "absent"


@dataclass(frozen=True)
class Package:
    distribution: str  # what pip installs (pyproject.toml's name)
    module: str  # the top-level module edgekit imports from it


@dataclass(frozen=True)
class Extra:
    name: str
    packages: tuple[Package, ...]  # what this extra itself lists
    includes: tuple[str, ...] = ()  # other extras it pulls in (``edgekit[...]`` in pyproject.toml)
    purpose: str = ""


_BACKENDS = (
    Extra("torch", (Package("torch", "torch"),), ("digits",),
          ".pt2 / TorchScript models, torch → TorchScript, training"),
    Extra("executorch", (Package("executorch", "executorch"), Package("torchao", "torchao")), ("torch",),
          ".pte models, torch → ExecuTorch"),
    Extra("tensorflow", (Package("tensorflow", "tensorflow"), Package("keras", "keras"), Package("h5py", "h5py"),
                         Package("tf2onnx", "tf2onnx")), ("digits",),
          "Keras / SavedModel models → TFLite, ONNX; training"),
    Extra("litert", (Package("ai-edge-litert", "ai_edge_litert"),), (),
          ".tflite models (LiteRT)"),
    # litert-torch needs torch (and torchao, jax, transformers): it cannot sit in [litert].
    Extra("torch-tflite", (Package("litert-torch", "litert_torch"), Package("ai-edge-quantizer", "ai_edge_quantizer")),
          ("torch", "litert"), "torch → TFLite"),
    Extra("onnx", (Package("onnx", "onnx"), Package("onnxruntime", "onnxruntime"),
                   Package("onnxscript", "onnxscript"), Package("sympy", "sympy")), (),  # sympy: int8 pre-processing
          ".onnx models (ONNX Runtime), ONNX quantization, torch → ONNX"),
    Extra("digits", (Package("scikit-learn", "sklearn"),), (),
          "the bundled digits data set (--data / --calibration digits)"),
    Extra("report", (Package("matplotlib", "matplotlib"),), (), "the plots in report.html"),
    Extra("ray", (Package("ray", "ray"),), (), "pipeline/check --executor ray (a local Ray or a cluster)"),
)
EXTRAS: tuple[Extra, ...] = (*_BACKENDS, Extra("all", (), tuple(e.name for e in _BACKENDS), "every extra above"))
_BY_NAME = {extra.name: extra for extra in EXTRAS}
# Each importable module → the extra that lists it (exactly one: tests/test_extras.py checks).
MODULE_EXTRA = {package.module: extra.name for extra in EXTRAS for package in extra.packages}


def included(name: str) -> set[str]:
    """The extras ``name`` pulls in, itself included, transitively."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += _BY_NAME[current].includes
    return seen


def packages_of(name: str) -> tuple[Package, ...]:
    """Every package installing ``name`` brings, in table order (its own and those of the extras it includes)."""
    chosen = included(name)
    return tuple(p for e in EXTRAS if e.name in chosen for p in e.packages)


def is_installed(module: str) -> bool:
    """Whether ``module`` is importable here, checked without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def extras_for(modules: Iterable[str]) -> list[str]:
    """The fewest extras that install ``modules`` (table order): an extra another one already includes is
    dropped, e.g. torch + litert_torch + ai_edge_litert → ``torch-tflite``. Unknown modules are ignored."""
    wanted = {MODULE_EXTRA[m] for m in modules if m in MODULE_EXTRA}
    covered = {inner for name in wanted for inner in included(name) - {name}}
    return [e.name for e in EXTRAS if e.name in wanted - covered]


def install_hint(modules: Iterable[str]) -> str:
    """``pip install 'edgekit[onnx]'`` for the extras that install ``modules``; a module no extra lists
    is named as itself."""
    modules = list(modules)
    names = extras_for(modules)
    parts = [f"'edgekit[{','.join(names)}]'"] if names else []
    parts += [m for m in modules if m not in MODULE_EXTRA]
    return "pip install " + " ".join(parts)


def missing_dependency(purpose: str, missing: list[str]) -> MissingDependencyError:
    verb = "is" if len(missing) == 1 else "are"
    return MissingDependencyError(f"{purpose} needs {', '.join(missing)}, which {verb} not installed",
                                  hint=install_hint(missing))


def require(modules: Iterable[str], purpose: str) -> None:
    """Raise a one-line MissingDependencyError naming the extra unless every module is importable."""
    missing = [m for m in modules if not is_installed(m)]
    if missing:
        raise missing_dependency(purpose, missing)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def status() -> list[dict[str, Any]]:
    """What ``edgekit info`` reports per extra: present / partly present (with what is missing) / absent."""
    rows = []
    for e in EXTRAS:
        packages = packages_of(e.name)
        missing = [p.distribution for p in packages if not is_installed(p.module)]
        state = PRESENT if not missing else ABSENT if len(missing) == len(packages) else PARTIAL
        rows.append({"extra": e.name, "status": state, "missing": missing, "purpose": e.purpose,
                     "includes": list(e.includes),
                     "packages": {p.distribution: _version(p.distribution) for p in e.packages}})
    return rows
