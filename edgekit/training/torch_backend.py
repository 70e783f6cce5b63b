"""Training, prediction and saving for PyTorch models (saved as a torch.export ExportedProgram)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekit.training.types import EpochStats
from edgekit.validators.metrics import top1_accuracy


def fit(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    on_epoch: Callable[[EpochStats], None],
) -> list[EpochStats]:
    torch.manual_seed(seed)
    order_rng = np.random.default_rng(seed)
    x_train, y_train = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        total_loss, correct = 0.0, 0
        order = torch.from_numpy(order_rng.permutation(len(x_train)))
        for batch in order.split(batch_size):
            images, targets = x_train[batch], y_train[batch]
            optimizer.zero_grad()
            logits = model(images)
            loss = loss_fn(logits, targets)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
            correct += int((logits.argmax(1) == targets).sum())
        schedule.step()
        val_accuracy = top1_accuracy(predict(model, validation[0]), validation[1])
        stats = EpochStats(epoch, epochs, total_loss / len(x_train), correct / len(x_train), val_accuracy,
                           time.perf_counter() - start)
        history.append(stats)
        on_epoch(stats)
    model.eval()
    return history


def predict(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(chunk)).numpy() for chunk in _chunks(images, batch_size)])



def save(model: nn.Module, path: Path, input_shape: tuple[int, ...]) -> None:
    """torch.export the eval-mode model at a batch-1 example and save the program (.pt2)."""
    model.eval()
    example = (torch.zeros(input_shape, dtype=torch.float32),)
    torch.export.save(torch.export.export(model, example), str(path))


def _chunks(array: np.ndarray, size: int) -> list[np.ndarray]:
    return [array[i: i + size] for i in range(0, len(array), size)]
