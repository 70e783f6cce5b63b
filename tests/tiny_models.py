"""Module-level model classes for tests that need picklable (importable) classes."""

import torch


class PickledNet(torch.nn.Module):
    """Saved whole with torch.save: the code-bearing pickle edgekit must refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)
