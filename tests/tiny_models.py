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


def outlier_mlps(directory):
    """clean.pt2 and outlier.pt2 (module docstring of test_budget), test.npz (labelled) and calib.npz in
    ``directory``."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype("float32"), digits.target
    torch.manual_seed(0)

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.head = torch.nn.Linear(64, 32), torch.nn.Linear(32, 32), torch.nn.Linear(32, 10)

        def forward(self, x):
            return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    model = MLP()
    with torch.no_grad():
        model.fc1.weight[5], model.fc1.bias[5] = 0.0, -1.0
    optimiser = torch.optim.Adam(model.parameters(), 1e-2)
    inputs, labels = torch.from_numpy(x[:1500]), torch.from_numpy(y[:1500])
    for _ in range(300):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimiser.step()
    model.eval()
    example = (torch.from_numpy(x[:1]),)
    torch.export.save(torch.export.export(model, example), str(directory / "clean.pt2"))
    with torch.no_grad():
        planted = model(torch.from_numpy(x[1500:]))
        model.fc2.weight[:, 5] = 1000 * model.fc2.weight.abs().max()
        assert torch.equal(model(torch.from_numpy(x[1500:])), planted)  # the outlier changes no output
    torch.export.save(torch.export.export(model, example), str(directory / "outlier.pt2"))
    np.savez(directory / "test.npz", x=x[1500:], labels=y[1500:])
    np.savez(directory / "calib.npz", x=x[:200])
    return directory
