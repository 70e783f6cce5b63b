"""Training, prediction and saving for PyTorch models (saved as a torch.export ExportedProgram).

Inputs are made per batch from the raw images (``LazyImages``): no full copy of a split at the training
resolution is ever held.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekit.training.batches import LazyImages
from edgekit.training.types import EpochStats
from edgekit.validators.metrics import top1_accuracy


def fit(
    model: nn.Module,
    train: LazyImages,
    validation: LazyImages,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    on_epoch: Callable[[EpochStats], None],
) -> list[EpochStats]:
    torch.manual_seed(seed)
    order_rng = np.random.default_rng(seed)
    y_train = torch.from_numpy(train.labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        total_loss, correct = 0.0, 0
        order = order_rng.permutation(len(train))
        for begin in range(0, len(order), batch_size):
            batch = order[begin: begin + batch_size]
            images, targets = torch.from_numpy(train.take(batch)), y_train[torch.from_numpy(batch)]
            optimizer.zero_grad()
            logits = model(images)
            loss = loss_fn(logits, targets)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
            correct += int((logits.argmax(1) == targets).sum())
        schedule.step()
        val_accuracy = top1_accuracy(predict(model, validation), validation.labels)
        stats = EpochStats(epoch, epochs, total_loss / len(train), correct / len(train), val_accuracy,
                           time.perf_counter() - start)
        history.append(stats)
        on_epoch(stats)
    model.eval()
    return history


def predict(model: nn.Module, images: LazyImages) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(chunk)).numpy() for chunk in images.chunks()])


def save(model: nn.Module, path: Path, input_shape: tuple[int, ...]) -> None:
    """torch.export the eval-mode model at a batch-1 example and save the program (.pt2)."""
    model.eval()
    example = (torch.zeros(input_shape, dtype=torch.float32),)
    torch.export.save(torch.export.export(model, example), str(path))
