"""Pure-numpy metrics shared by training, validation and reports."""

from __future__ import annotations

import numpy as np


def top1_accuracy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of rows whose arg-max class equals the target class id."""
    if len(logits) != len(targets):
        raise ValueError(f"{len(logits)} predictions for {len(targets)} targets")
    return float((np.asarray(logits).argmax(axis=-1) == np.asarray(targets)).mean())
