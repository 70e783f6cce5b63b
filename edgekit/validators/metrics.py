"""Pure-numpy metrics shared by training, validation and reports.

Every function takes the reference first and the candidate second, as float arrays of equal shape
(callers check shapes; nothing here broadcasts).

Top-k agreement is margin-aware. The rule, in one sentence: a sample counts towards top-k agreement only
when its reference top-1 beats the reference's (k+1)-th score (for top-1: the runner-up) by more than the
noise floor ``4 × max(ρ × max|reference|, q)`` of that output — four steps of the candidate's resolution at
the output's scale, ρ being the relative step of the candidate's precision (fp32 2⁻²³, fp16 2⁻¹⁰, int8 and
dynamic 1/127: the table in ``tolerances``) and q the candidate output's quantization scale when its
contract has one. Inside the floor the two classes are a tie the candidate's precision cannot resolve, so
whichever one it picks is no evidence about the conversion. Such samples are counted (``top1_decisive`` of
``class_samples``) and reported, never silently dropped; the agreement over every sample stays in the
report as ``top1_agreement_all``. The floor is derived from the precision, not from the candidate's own
errors, so a broken candidate cannot excuse its flips by being noisy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekit.toolkit import jsonio

EPS = 1e-12
# Percentiles of |Δ| kept per output, enough to draw its error distribution (box plots in reports).
ERROR_PERCENTILES = (0, 1, 5, 25, 50, 75, 95, 99, 100)
# The noise floor's width in steps of the candidate's resolution: rounding moves each of the two compared
# scores by up to half a step (one step between them); the other three cover the error that the layers
# before the output accumulate at that precision.
MARGIN_STEPS = 4


def top1_accuracy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of rows whose arg-max class equals the target class id."""
    if len(logits) != len(targets):
        raise ValueError(f"{len(logits)} predictions for {len(targets)} targets")
    return float((np.asarray(logits).argmax(axis=-1) == np.asarray(targets)).mean())


def cosine_similarity(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Cosine of the flattened arrays; 1.0 when both are all zeros, 0.0 when exactly one is.

    Scale-free: a random-weight network's outputs of ~1e-9 get their real cosine (an absolute epsilon on the
    norms would call them zero)."""
    r, c = reference.astype(np.float64).ravel(), candidate.astype(np.float64).ravel()
    # Divided by each norm, not by their product, which underflows to 0 for norms of ~1e-160.
    r_norm, c_norm = np.linalg.norm(r), np.linalg.norm(c)
    if r_norm == 0 or c_norm == 0:
        return 1.0 if r_norm == 0 and c_norm == 0 else 0.0
    return float(np.clip(np.dot(r / r_norm, c / c_norm), -1.0, 1.0))


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-noise ratio of the candidate against the reference, in dB: inf when identical, −inf when
    the reference is all zeros and the candidate is not. Scale-free, like the cosine: outputs of ~1e-9
    with an error of the same size are ~0 dB, not the +inf of an absolute noise threshold."""
    r = reference.astype(np.float64)
    noise = float(np.sum((r - candidate.astype(np.float64)) ** 2))
    signal = float(np.sum(r**2))
    if noise == 0:
        return float("inf")
    if signal == 0:
        return float("-inf")
    return float(10 * np.log10(signal / noise))


def topk_agreement(reference: np.ndarray, candidate: np.ndarray, k: int, *,
                   rows: np.ndarray | None = None) -> float:
    """Share of rows (of the ``rows`` mask when given) whose reference top-1 class is among the candidate's
    top-k classes; NaN when the mask selects no row."""
    r = reference.reshape(len(reference), -1)
    c = candidate.reshape(len(candidate), -1)
    if rows is not None:
        r, c = r[rows], c[rows]
    if len(r) == 0:
        return float("nan")
    k = min(k, r.shape[1])
    top_ref = r.argmax(axis=1)
    top_cand = np.argsort(-c, axis=1)[:, :k]
    return float(np.mean([t in row for t, row in zip(top_ref, top_cand, strict=True)]))


def margin_floor(reference: np.ndarray, *, resolution: float, output_step: float | None = None) -> float:
    """The noise floor of the module doc, ``MARGIN_STEPS × max(resolution × max|reference|, output_step)``:
    reference margins at or below it are ties the candidate's precision cannot resolve."""
    finite = np.abs(reference[np.isfinite(reference)].astype(np.float64))
    scale = float(finite.max()) if finite.size else 0.0
    return MARGIN_STEPS * max(resolution * scale, output_step or 0.0)


def decisive_rows(reference: np.ndarray, k: int, floor: float) -> np.ndarray:
    """Mask of the rows whose reference top-1 beats their (k+1)-th value by more than ``floor``. With k or
    fewer classes the top-1 is always in the top-k, so every row is decisive."""
    r = reference.reshape(len(reference), -1).astype(np.float64)
    if r.shape[1] <= k:
        return np.ones(len(r), dtype=bool)
    ordered = -np.sort(-r, axis=1)
    return np.asarray((ordered[:, 0] - ordered[:, k]) > floor)


@dataclass(frozen=True)
class OutputMetrics:
    """How far a candidate output is from the reference output (raw numbers)."""

    max_abs: float
    mean_abs: float
    p99_abs: float
    max_rel: float
    cosine: float
    snr_db: float
    nonfinite_reference: int
    nonfinite_candidate: int
    # For class-score outputs (N, C) with C ≥ 2, on the decisive samples only (module doc); None when no
    # sample is decisive. (Reports written before margin-aware agreement hold it over every sample.)
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    # Smallest atol that passes at the rtol in use: what would have made an elementwise check pass.
    atol_needed: float | None = None
    # |Δ| at ERROR_PERCENTILES, over the finite elements.
    abs_error_percentiles: tuple[float, ...] | None = None
    class_samples: int | None = None  # rows of a class-score output (None: not one)
    top1_decisive: int | None = None  # of class_samples, those outside the noise floor for top-1
    top5_decisive: int | None = None
    margin_floor: float | None = None  # the noise floor the margins were held against
    top1_agreement_all: float | None = None  # over every sample, decisive or not: context, never judged

    @property
    def top1_indecisive(self) -> int | None:
        """Samples whose reference top-1 is within the noise floor of the runner-up."""
        if self.class_samples is None or self.top1_decisive is None:
            return None
        return self.class_samples - self.top1_decisive

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputMetrics:
        data = jsonio.revive(cls, data)
        percentiles = data.get("abs_error_percentiles")
        return cls(**{**data, "abs_error_percentiles": tuple(percentiles) if percentiles is not None else None})


def compare(reference: np.ndarray, candidate: np.ndarray, *, rtol: float = 0.0, classes: bool | None = None,
            resolution: float = 0.0, output_step: float | None = None) -> OutputMetrics:
    """All metrics of one output. Non-finite values are counted and excluded from the error metrics.
    ``resolution`` (ρ) and ``output_step`` (q) set the noise floor of margin-aware agreement (module doc); at
    the defaults only exact ties are indecisive."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shape {candidate.shape} differs from the reference's {reference.shape}")
    r, c = reference.astype(np.float64), candidate.astype(np.float64)
    finite = np.isfinite(r) & np.isfinite(c)
    diff = np.abs(r - c)[finite]
    ref_abs = np.abs(r)[finite]
    if diff.size == 0:  # no position where both are finite: every error metric is infinite
        diff, ref_abs = np.array([np.inf]), np.array([1.0])
        percentiles = [np.inf] * (len(ERROR_PERCENTILES) + 1)  # (np.percentile of [inf] is NaN: inf − inf)
    else:
        percentiles = np.percentile(diff, [99, *ERROR_PERCENTILES])
    rel = diff / np.maximum(ref_abs, EPS)
    needed = float(np.max(diff - rtol * ref_abs))
    is_classes = classes if classes is not None else (r.ndim == 2 and r.shape[1] >= 2)
    agreement = _agreement(r, c, resolution=resolution, output_step=output_step) if is_classes else {}
    return OutputMetrics(
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        p99_abs=float(percentiles[0]),
        max_rel=float(rel.max()),
        cosine=cosine_similarity(np.where(finite, r, 0), np.where(finite, c, 0)),
        snr_db=snr_db(np.where(finite, r, 0), np.where(finite, c, 0)),
        nonfinite_reference=int((~np.isfinite(r)).sum()),
        nonfinite_candidate=int((~np.isfinite(c)).sum()),
        atol_needed=max(needed, 0.0),
        abs_error_percentiles=tuple(float(v) for v in percentiles[1:]),
        **agreement,
    )


def _agreement(r: np.ndarray, c: np.ndarray, *, resolution: float, output_step: float | None) -> dict[str, Any]:
    """The margin-aware agreement fields of OutputMetrics (module doc)."""
    floor = margin_floor(r, resolution=resolution, output_step=output_step)
    found: dict[str, Any] = {"class_samples": len(r), "margin_floor": floor,
                             "top1_agreement_all": topk_agreement(r, c, 1)}
    for k in (1, 5):
        rows = decisive_rows(r, k, floor)
        share = topk_agreement(r, c, k, rows=rows)
        found[f"top{k}_decisive"] = int(rows.sum())
        found[f"top{k}_agreement"] = None if np.isnan(share) else share
    return found
