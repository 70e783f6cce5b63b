"""Module-level model classes for tests that need picklable (importable) classes."""

import torch


class PickledNet(torch.nn.Module):
    """Saved whole with torch.save: the code-bearing pickle edgekit must refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class TwoInputNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)


def torch_factory() -> torch.nn.Module:
    torch.manual_seed(0)
    return TwoInputNet()


def broken_factory() -> torch.nn.Module:
    raise RuntimeError("checkpoint directory not configured")


def not_a_model() -> dict:
    return {"weights": [1, 2, 3]}


def keras_factory():
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    features = keras.Input((4,), name="features")
    return keras.Model(features, keras.layers.Dense(3, name="scores")(features))


class PoolWithoutStride(torch.nn.Module):
    """max_pool2d with the stride left out: crashes ExecuTorch's XNNPACK partitioner unless handled."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(torch.flatten(pooled, 1))
