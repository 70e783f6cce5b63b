"""Framework-free result types of training."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    epochs: int
    loss: float
    train_accuracy: float
    val_accuracy: float  # on the calibration split, which training never fits
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
