"""Precision-aware tolerance profiles: what "the same model" means for each kind of artifact.

| profile | checks (per output) | documented defaults | ρ (top-k) |
|---|---|---|---|
| fp32 | elementwise \\|c − r\\| ≤ atol + rtol·\\|r\\| | atol 1e-4, rtol 1e-4 | 2⁻²³ |
| fp16 | cosine similarity | ≥ 0.999 | 2⁻¹⁰ |
| dynamic, int8 | cosine; top-1 agreement (class outputs); accuracy drop (labels) | ≥ 0.99; ≥ 0.95; ≤ 1 pt | 1/127 |

Every profile also requires the candidate to produce only finite values. ``--atol``/``--rtol`` override
the elementwise tolerances (and add the elementwise check to any profile), for all outputs or per output.

Top-1 agreement is margin-aware (the rule in ``metrics``): it counts only decisive samples, those whose
reference top-1 beats the runner-up by more than the noise floor 4 × max(ρ × max|reference|, q) — four
steps of the candidate's resolution at the output's scale, q being the candidate output's quantization
scale when it has one. With fewer than ``min_decisive`` (20) decisive samples the check is "not judged",
with the counts: not a failure, and cosine and the other checks still judge.
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
    INT4 = "int4"


@dataclass(frozen=True)
class Tolerance:
    profile: Profile
    atol: float | None = None
    rtol: float = 0.0
    min_cosine: float | None = None
    min_top1: float | None = None
    max_accuracy_drop: float | None = None
    # Relative step ρ of the candidate's precision (module doc): top-k margins are held against
    # metrics.MARGIN_STEPS of it at the output's scale.
    resolution: float = 2.0**-23
    # Fewer decisive samples than this and top-1 is not judged: below 20, a single disagreement moves the
    # agreement by more than the 5 points the 0.95 threshold allows.
    min_decisive: int = 20


# The spacing of each precision at 1.0 (fp32, fp16 ulps) and the step of a symmetric int8 scale that covers 1.0.
FP32_STEP, FP16_STEP, INT8_STEP, INT4_STEP = 2.0**-23, 2.0**-10, 1 / 127, 1 / 7

DEFAULTS = {
    Profile.FP32: Tolerance(Profile.FP32, atol=1e-4, rtol=1e-4, resolution=FP32_STEP),
    Profile.FP16: Tolerance(Profile.FP16, min_cosine=0.999, resolution=FP16_STEP),
    Profile.DYNAMIC: Tolerance(Profile.DYNAMIC, min_cosine=0.99, min_top1=0.95, max_accuracy_drop=0.01,
                               resolution=INT8_STEP),
    Profile.INT8: Tolerance(Profile.INT8, min_cosine=0.99, min_top1=0.95, max_accuracy_drop=0.01,
                            resolution=INT8_STEP),
    # 4-bit weights: 15 levels per channel or block. What the field accepts for weight-only int4 (a point or
    # two of top-1); the margin rule at a step of 1/7 leaves near-ties to it instead of a coin toss.
    Profile.INT4: Tolerance(Profile.INT4, min_cosine=0.98, min_top1=0.90, max_accuracy_drop=0.02,
                            resolution=INT4_STEP),
}


def profile_for(quantize: str) -> Profile:
    """The profile that judges an artifact made with ``quantize`` (its row of the quant-mode table says);
    an unknown or missing mode is judged as float32."""
    return Profile(QuantMode(quantize).spec.profile) if quantize in QuantMode else Profile.FP32


@dataclass(frozen=True)
class Overrides:
    """atol/rtol asked for: a value for all outputs and/or per output name; and an accuracy budget
    (``budget``: ``min_cosine``, ``max_accuracy_drop`` as a fraction), which replaces the profile's accuracy
    criteria — cosine, top-1 agreement, accuracy drop — by the ones it names: a budget of cosine alone judges
    cosine alone."""

    atol: float | None = None
    rtol: float | None = None
    atol_per_output: tuple[tuple[str, float], ...] = ()
    rtol_per_output: tuple[tuple[str, float], ...] = ()
    budget: bool = False
    min_cosine: float | None = None
    max_accuracy_drop: float | None = None

    def apply(self, tolerance: Tolerance, output: str) -> Tolerance:
        if self.budget:
            tolerance = replace(tolerance, min_cosine=self.min_cosine, min_top1=None,
                                max_accuracy_drop=self.max_accuracy_drop)
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
