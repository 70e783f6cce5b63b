"""``edgekit compat``: will an artifact run on a device class, op by op, and on what evidence.

The targets and the report types live in ``edgekit.toolkit.contract.compat`` (framework-free); the checks, one
module per artifact format, import their runtime only when a target of theirs is checked.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgekit.toolkit.contract.compat import COMPAT_TARGETS, CompatReport, targets_for
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError, option
from edgekit.toolkit.contract.formats import Format, sniff

ARTIFACT_FORMATS = (Format.TFLITE, Format.ONNX, Format.EXECUTORCH)


def parse_targets(names: list[str] | tuple[str, ...] | None, param: str | None = "target") -> list[str]:
    """Target names as given (nothing or ``all``: every target), validated and de-duplicated; a device profile's
    name stands for the targets the profile implies. ``param``: the option an unknown name is reported under
    (None: a config file's list, named by the caller)."""
    from edgekit.targets.profiles import PROFILES

    chosen: list[str] = []
    for name in names or ["all"]:
        expanded = list(COMPAT_TARGETS) if name == "all" else \
            list(PROFILES[name].compat) if name in PROFILES and PROFILES[name].compat else [name]
        for target in expanded:
            if target not in COMPAT_TARGETS:
                profiles = ", ".join(p for p in PROFILES if PROFILES[p].compat)
                given = option(param, name) if param else repr(name)
                raise UsageError(f"{given}: not a compatibility target or device profile",
                                 hint=f"targets: {', '.join(COMPAT_TARGETS)}, all, or a device profile ({profiles})")
            if target not in chosen:
                chosen.append(target)
    return chosen


def check_compat(path: str | os.PathLike[str], targets: list[str] | tuple[str, ...] | None = None) -> CompatReport:
    """Check ``path`` (a .tflite, .onnx or .pte) on ``targets`` (default: every target of its format). A target
    named explicitly for another format is a usage error; one implied by ``all`` or a profile is skipped."""
    path = Path(path)
    fmt = sniff(path).format
    if fmt not in ARTIFACT_FORMATS:
        raise InvalidInputError(
            f"{path}: compat checks deployable artifacts (.tflite, .onnx, .pte); this is {fmt.value}",
            hint=f"convert it first, e.g. edgekit convert {path} --to tflite")
    chosen = parse_targets(targets)
    explicit = {t for t in (targets or ()) if t in COMPAT_TARGETS}
    wrong = [t for t in chosen if t in explicit and COMPAT_TARGETS[t].format is not fmt]
    if wrong:
        raise UsageError(f"{path} is {fmt.value}; {option('target', wrong[0])} checks "
                         f"{COMPAT_TARGETS[wrong[0]].format.value} artifacts",
                         hint=f"targets for {fmt.value}: {', '.join(targets_for(fmt))}")
    applicable = targets_for(fmt, chosen)
    if not applicable:
        raise UsageError(f"none of the chosen targets checks {fmt.value} artifacts like {path}",
                         hint=f"targets for {fmt.value}: {', '.join(targets_for(fmt))}")
    return CompatReport(str(path), fmt.value, tuple(COMPAT_TARGETS[t].check(path) for t in applicable))
