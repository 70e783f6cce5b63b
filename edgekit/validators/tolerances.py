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

from edgekit.toolkit.contract.errors import UsageError
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
    """--atol/--rtol given on the command line: a value for all outputs and/or per output name."""

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


def parse_overrides(atol: list[str], rtol: list[str]) -> Overrides:
    """``--atol 1e-3`` (all outputs) and/or ``--atol logits=1e-2`` (one output), repeatable."""
    values: dict[str, tuple[float | None, list[tuple[str, float]]]] = {}
    for option, raw_values in (("--atol", atol), ("--rtol", rtol)):
        everywhere, per_output = None, []
        for raw in raw_values:
            name, _, number = raw.rpartition("=")
            try:
                value = float(number)
            except ValueError:
                raise UsageError(f"{option} {raw!r} is not a number or NAME=number",
                                 hint=f"e.g. {option} 1e-3") from None
            if value < 0:
                raise UsageError(f"{option} must be ≥ 0, got {value}")
            if name:
                per_output.append((name, value))
            else:
                everywhere = value
        values[option] = (everywhere, per_output)
    return Overrides(values["--atol"][0], values["--rtol"][0], tuple(values["--atol"][1]), tuple(values["--rtol"][1]))
