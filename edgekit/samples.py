"""Tiny seeded models written in every format edgekit loads, for the demo and the tests.

The torch model and the Keras model are the same architecture (conv → relu → 2×2 max-pool → dense)
on an 8×8 single-channel image, the size of scikit-learn's digits. Each file gets a sidecar.

    python -m edgekit.samples OUT_DIR [--force] [FORMAT ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.toolkit.contract.artifact import Artifact
from edgekit.toolkit.contract.errors import EdgekitError, UsageError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, tensor
from edgekit.toolkit.fsutil import atomic_directory, atomic_path, sha256_of
from edgekit.toolkit.sysinfo import package_versions

IMAGE = (8, 8)
CLASSES = 10
TORCH_INPUT = (1, 1, *IMAGE)  # NCHW
KERAS_INPUT = (None, *IMAGE, 1)  # NHWC
FILENAMES = {
    Format.TORCH_EXPORTED: "tiny_cnn.pt2",
    Format.TORCHSCRIPT: "tiny_cnn.torchscript.pt",
    Format.TORCH_PICKLE: "tiny_cnn.state_dict.pt",
    Format.ONNX: "tiny_cnn.onnx",
    Format.EXECUTORCH: "tiny_cnn.pte",
    Format.KERAS: "tiny_cnn.keras",
    Format.KERAS_H5: "tiny_cnn.h5",
    Format.SAVEDMODEL: "tiny_cnn_savedmodel",
    Format.TFLITE: "tiny_cnn.tflite",
}


def torch_cnn(seed: int = 0) -> Any:
    import torch

    torch.manual_seed(seed)

    class TinyCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
            # Explicit stride: ExecuTorch's XNNPACK partitioner crashes on max_pool2d without one.
            self.pool = torch.nn.MaxPool2d(2, stride=2)
            self.fc = torch.nn.Linear(8 * 4 * 4, CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))

    return TinyCNN().eval()


def keras_cnn(seed: int = 0) -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input(KERAS_INPUT[1:], name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(CLASSES, name="logits")(x)
    return keras.Model(image, logits, name="tiny_cnn")


def _torch_example() -> Any:
    import torch

    return (torch.zeros(TORCH_INPUT),)


def _write_pt2(out: Path) -> None:
    import torch

    torch.export.save(torch.export.export(torch_cnn(), _torch_example()), str(out))


def _write_torchscript(out: Path) -> None:
    import torch

    torch.jit.save(torch.jit.trace(torch_cnn(), _torch_example()), str(out))


def _write_state_dict(out: Path) -> None:
    import torch

    torch.save(torch_cnn().state_dict(), str(out))


def _write_onnx(out: Path) -> None:
    import torch

    torch.onnx.export(torch_cnn(), _torch_example(), str(out), input_names=["x"], output_names=["logits"],
                      dynamo=False)


def _write_pte(out: Path) -> None:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(torch_cnn(), _torch_example())
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    out.write_bytes(lowered.buffer)


def _write_keras(out: Path) -> None:
    keras_cnn().save(str(out))


def _write_h5(out: Path) -> None:
    keras_cnn().save(str(out))


def _write_savedmodel(out: Path) -> None:
    keras_cnn().export(str(out), verbose=False)


def _write_tflite(out: Path) -> None:
    import tensorflow as tf

    out.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras_cnn()).convert())


WRITERS: dict[Format, Callable[[Path], None]] = {
    Format.TORCH_EXPORTED: _write_pt2,
    Format.TORCHSCRIPT: _write_torchscript,
    Format.TORCH_PICKLE: _write_state_dict,
    Format.ONNX: _write_onnx,
    Format.EXECUTORCH: _write_pte,
    Format.KERAS: _write_keras,
    Format.KERAS_H5: _write_h5,
    Format.SAVEDMODEL: _write_savedmodel,
    Format.TFLITE: _write_tflite,
}


def sample_contract(fmt: Format) -> IOSpec:
    """The I/O contract each sample really has: what tests compare ``inspect`` against."""
    if fmt in (Format.KERAS, Format.KERAS_H5):
        return IOSpec((tensor("image", KERAS_INPUT, "float32"),), (tensor("logits", (None, CLASSES), "float32"),))
    if fmt in (Format.SAVEDMODEL, Format.TFLITE):
        return IOSpec((tensor("image", KERAS_INPUT, "float32"),), (tensor("output_0", (None, CLASSES), "float32"),))
    names = {
        Format.TORCH_EXPORTED: ("x", "linear"),
        Format.TORCHSCRIPT: ("x", "output_0"),
        Format.ONNX: ("x", "logits"),
        Format.EXECUTORCH: ("input_0", "output_0"),
    }
    if fmt not in names:
        raise UsageError(f"{fmt} samples carry no I/O contract")
    in_name, out_name = names[fmt]
    return IOSpec((tensor(in_name, TORCH_INPUT, "float32"),), (tensor(out_name, (1, CLASSES), "float32"),))


def write_sample(fmt: Format, out_dir: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write the tiny model in ``fmt`` under ``out_dir`` atomically, with its sidecar."""
    out = Path(out_dir) / FILENAMES[fmt]
    if fmt is Format.SAVEDMODEL:
        with atomic_directory(out, force=force) as staged:
            WRITERS[fmt](staged)
    else:
        with atomic_path(out, force=force) as tmp:
            WRITERS[fmt](tmp)
    if fmt is not Format.TORCH_PICKLE:
        Artifact(
            path=out, format=fmt, io_spec=sample_contract(fmt), sha256=sha256_of(out), route=("edgekit.samples",),
            options={"seed": 0}, versions={k: v for k, v in package_versions().items() if v},
        ).write_sidecar(force=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgekit.samples", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("formats", nargs="*", metavar="FORMAT", help=f"any of {', '.join(f.value for f in WRITERS)}")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_intermixed_args(argv)
    unknown = [f for f in args.formats if f not in {w.value for w in WRITERS}]
    if unknown:
        parser.error(f"unknown format(s) {unknown}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        for fmt in [Format(f) for f in args.formats] or list(WRITERS):
            print(write_sample(fmt, args.out_dir, force=args.force))
    except EdgekitError as exc:
        print(f"edgekit: error: {exc.one_line()}", file=sys.stderr)
        return int(exc.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
