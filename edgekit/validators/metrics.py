"""Pure-numpy metrics shared by training, validation and reports.

Every function takes the reference first and the candidate second, as float arrays of equal shape
(callers check shapes; nothing here broadcasts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekit.toolkit import jsonio

EPS = 1e-12
# Percentiles of |Δ| kept per output, enough to draw its error distribution (box plots in reports).
ERROR_PERCENTILES = (0, 1, 5, 25, 50, 75, 95, 99, 100)


def top1_accuracy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of rows whose arg-max class equals the target class id."""
    if len(logits) != len(targets):
        raise ValueError(f"{len(logits)} predictions for {len(targets)} targets")
    return float((np.asarray(logits).argmax(axis=-1) == np.asarray(targets)).mean())


def cosine_similarity(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Cosine of the flattened arrays; 1.0 when both are all zeros, 0.0 when exactly one is."""
    r, c = reference.astype(np.float64).ravel(), candidate.astype(np.float64).ravel()
    norms = np.linalg.norm(r) * np.linalg.norm(c)
    if norms < EPS:
        return 1.0 if np.linalg.norm(r) < EPS and np.linalg.norm(c) < EPS else 0.0
    return float(np.dot(r, c) / norms)


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-noise ratio of the candidate against the reference, in dB (inf when identical)."""
    r = reference.astype(np.float64)
    noise = float(np.sum((r - candidate.astype(np.float64)) ** 2))
    signal = float(np.sum(r**2))
    if noise < EPS:
        return float("inf")
    return float(10 * np.log10(max(signal, EPS) / noise))


def topk_agreement(reference: np.ndarray, candidate: np.ndarray, k: int) -> float:
    """Share of rows whose reference top-1 class is among the candidate's top-k classes."""
    r = reference.reshape(len(reference), -1)
    c = candidate.reshape(len(candidate), -1)
    k = min(k, r.shape[1])
    top_ref = r.argmax(axis=1)
    top_cand = np.argsort(-c, axis=1)[:, :k]
    return float(np.mean([t in row for t, row in zip(top_ref, top_cand, strict=True)]))


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
    top1_agreement: float | None = None  # for class-score outputs (N, C) with C ≥ 2
    top5_agreement: float | None = None
    # Smallest atol that passes at the rtol in use: what would have made an elementwise check pass.
    atol_needed: float | None = None
    # |Δ| at ERROR_PERCENTILES, over the finite elements.
    abs_error_percentiles: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputMetrics:
        data = jsonio.revive(cls, data)
        percentiles = data.get("abs_error_percentiles")
        return cls(**{**data, "abs_error_percentiles": tuple(percentiles) if percentiles is not None else None})


def compare(reference: np.ndarray, candidate: np.ndarray, *, rtol: float = 0.0,
            classes: bool | None = None) -> OutputMetrics:
    """All metrics of one output. Non-finite values are counted and excluded from the error metrics."""
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
    return OutputMetrics(
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        p99_abs=float(percentiles[0]),
        max_rel=float(rel.max()),
        cosine=cosine_similarity(np.where(finite, r, 0), np.where(finite, c, 0)),
        snr_db=snr_db(np.where(finite, r, 0), np.where(finite, c, 0)),
        nonfinite_reference=int((~np.isfinite(r)).sum()),
        nonfinite_candidate=int((~np.isfinite(c)).sum()),
        top1_agreement=topk_agreement(r, c, 1) if is_classes else None,
        top5_agreement=topk_agreement(r, c, 5) if is_classes else None,
        atol_needed=max(needed, 0.0),
        abs_error_percentiles=tuple(float(v) for v in percentiles[1:]),
    )
