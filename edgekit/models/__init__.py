"""Architectures edgekit can train, in PyTorch and Keras: same designs in both frameworks.

``Arch`` and ``input_geometry`` are framework-free; the builders live in ``torch_zoo`` / ``keras_zoo``.
"""

from __future__ import annotations

from enum import StrEnum


class Arch(StrEnum):
    MLP = "mlp"
    CNN = "cnn"
    MOBILENETV2 = "mobilenetv2"


class Framework(StrEnum):
    TORCH = "torch"
    KERAS = "keras"


# MobileNetV2 downsamples 32×: digits are upsampled and given three channels for it, like the
# camera input such a network sees on a phone. 96×96 is its smallest standard resolution; below it
# per-operator overheads, not arithmetic, dominate latency (int8 TFLite on this VM, median of 5 processes:
# 1.60× at 64², 1.70× at 96²; benchmarks/int8_speedup.py --size N).
MOBILENET_DEFAULT_SIZE = 96
MOBILENET_CHANNELS = 3


def input_geometry(arch: Arch, native_size: tuple[int, int], native_channels: int,
                   image_size: int | None = None) -> tuple[tuple[int, int], int]:
    """(height, width), channels the architecture is built for, given the data's own geometry."""
    if arch is Arch.MOBILENETV2:
        side = image_size or max(MOBILENET_DEFAULT_SIZE, *native_size)
        return (side, side), MOBILENET_CHANNELS
    if image_size:
        return (image_size, image_size), native_channels
    return native_size, native_channels
