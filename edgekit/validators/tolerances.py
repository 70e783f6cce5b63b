"""Precision-aware tolerance profiles: what "the same model" means for each kind of artifact.

| profile | checks (per output) | documented defaults |
|---|---|---|
| fp32 | elementwise \\|c − r\\| ≤ atol + rtol·\\|r\\| | atol 1e-4, rtol 1e-4 |
| fp16 | cosine similarity | ≥ 0.999 |
| dynamic, int8 | cosine; top-1 agreement (class outputs); accuracy drop with labels | ≥ 0.99; ≥ 0.95; ≤ 1 point |

Every profile also requires the candidate to produce only finite values. ``--atol``/``--rtol`` override
the elementwise tolerances (and add the elementwise check to any profile), for all outputs or per output.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from edgekit.toolkit.contract.errors import UsageError, option
from edgekit.toolkit.contract.options import QuantMode


class Profile(StrEnum):
    AUTO = "auto"
    FP32 = "fp32"
    FP16 = "fp16"
    DYNAMIC = "dynamic"
    INT8 = "int8"


@dataclass(frozen=True)
class Tolerance:
    profile: Profile
    atol: float | None = None
    rtol: float = 0.0
    min_cosine: float | None = None
    min_top1: float | None = None
    max_accuracy_drop: float | None = None


DEFAULTS = {
    Profile.FP32: Tolerance(Profile.FP32, atol=1e-4, rtol=1e-4),
    Profile.FP16: Tolerance(Profile.FP16, min_cosine=0.999),
    Profile.DYNAMIC: Tolerance(Profile.DYNAMIC, min_cosine=0.99, min_top1=0.95, max_accuracy_drop=0.01),
    Profile.INT8: Tolerance(Profile.INT8, min_cosine=0.99, min_top1=0.95, max_accuracy_drop=0.01),
}


def profile_for(quantize: str) -> Profile:
    """The profile that judges an artifact made with ``quantize`` (its row of the quant-mode table says);
    an unknown or missing mode is judged as float32."""
    return Profile(QuantMode(quantize).spec.profile) if quantize in QuantMode else Profile.FP32


@dataclass(frozen=True)
class Overrides:
    """atol/rtol asked for: a value for all outputs and/or per output name."""

    atol: float | None = None
    rtol: float | None = None
    atol_per_output: tuple[tuple[str, float], ...] = ()
    rtol_per_output: tuple[tuple[str, float], ...] = ()

    def apply(self, tolerance: Tolerance, output: str) -> Tolerance:
        atol = dict(self.atol_per_output).get(output, self.atol)
        rtol = dict(self.rtol_per_output).get(output, self.rtol)
        if atol is None and rtol is None:
            return tolerance
        return replace(tolerance, atol=atol if atol is not None else (tolerance.atol or 0.0),
                       rtol=rtol if rtol is not None else tolerance.rtol)


def parse_tolerances(name: str, values: list[str]) -> dict[str, float] | None:
    """``1e-3`` (every output, key ``*``) and ``logits=1e-2`` (one output), as ``--atol``/``--rtol`` take them."""
    found: dict[str, float] = {}
    for raw in values:
        output, _, number = raw.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            raise UsageError(f"{option(name, raw)} is not a number or NAME=number",
                             hint=f"e.g. {option(name, '1e-3')}") from None
        if not 0 <= value < float("inf"):
            raise UsageError(f"{option(name)} must be a finite number ≥ 0, got {value}")
        found[output or "*"] = value
    return found or None
