"""A test-only precision and a test-only output format, each added the way a contributor would add one:
a row of its table, this one module, and its registry lines (see test_axes.py). Nothing else in edgekit
knows about them, and everything else — CLI-free library calls, planning, file names, tolerance
profiles, sniffing, routes — must follow from those rows.

- ``int4w``: ONNX weights rounded to 16 levels per tensor (4-bit weights stored dequantized, float
  compute), an ONNX → ONNX converter.
- ``linear-npz``: a linear model (``y = x @ W + b``) as an .npz behind a magic header, with a numpy
  runtime and an ONNX → linear-npz converter for ONNX graphs that are one MatMul + Add.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.converters.base import Converter, StepInput, StepReport
from edgekit.targets.base import Runtime
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError
from edgekit.toolkit.contract.formats import Format, FormatSpec
from edgekit.toolkit.contract.iospec import IOSpec, tensor
from edgekit.toolkit.contract.options import QuantMode, QuantModeSpec
from edgekit.toolkit.contract.registry import CONVERTERS, RUNTIMES, ConverterSpec, RuntimeSpec
from edgekit.toolkit.reports import ModelDetails

INT4W = QuantModeSpec("int4w", "4-bit weights, float compute", "int4w", "dynamic")
LINEAR_NPZ = FormatSpec("linear-npz", "a linear npz model", (".eklin",), converts_to=True, magic=b"EKLIN1\n")
LEVELS = 16


class Int4Weights(Converter):
    """Every float initializer with more than one element rounded to 16 evenly spaced levels."""

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(step.path))
        rounded = 0
        for initializer in model.graph.initializer:
            values = numpy_helper.to_array(initializer)
            if values.dtype != np.float32 or values.size < 2:
                continue
            low, high = float(values.min()), float(values.max())
            step_size = (high - low) / (LEVELS - 1) or 1.0
            quantized = (np.round((values - low) / step_size) * step_size + low).astype(np.float32)
            initializer.CopyFrom(numpy_helper.from_array(quantized, initializer.name))
            rounded += 1
        onnx.save(model, str(out))
        report.details["rounded_initializers"] = rounded


class OnnxToLinear(Converter):
    """An ONNX graph of exactly MatMul(x, W) then Add(·, b) becomes W and b in a linear-npz file."""

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(step.path))
        ops = [node.op_type for node in model.graph.node]
        if ops != ["MatMul", "Add"]:
            raise UsageError(f"{step.path.name}: linear-npz holds one MatMul + Add, this graph has {ops}")
        weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        matmul, add = model.graph.node
        buffer = io.BytesIO()
        np.savez(buffer, W=weights[matmul.input[1]], b=weights[add.input[1]],
                 input=np.array(step.io_spec.inputs[0].name), output=np.array(step.io_spec.outputs[0].name))
        out.write_bytes(LINEAR_NPZ.magic + buffer.getvalue())


class LinearRuntime(Runtime):
    def _load_impl(self) -> IOSpec:
        data = self.path.read_bytes()
        if not data.startswith(LINEAR_NPZ.magic):
            raise InvalidInputError(f"{self.path}: no linear-npz header")
        with np.load(io.BytesIO(data[len(LINEAR_NPZ.magic):]), allow_pickle=False) as archive:
            self._weight, self._bias = archive["W"], archive["b"]
            names = str(archive["input"]), str(archive["output"])
        return IOSpec((tensor(names[0], (1, self._weight.shape[0]), "float32"),),
                      (tensor(names[1], (1, self._weight.shape[1]), "float32"),))

    def _run_impl(self, inputs: Sequence[np.ndarray]) -> Sequence[np.ndarray]:
        return [inputs[0] @ self._weight + self._bias]

    def _describe_impl(self) -> ModelDetails:
        return ModelDetails(parameters=int(self._weight.size + self._bias.size), ops={"MatMul": 1, "Add": 1})


def register() -> tuple[QuantMode, Format]:
    """The rows and registry lines; ``unregister`` takes them back out."""
    mode, fmt = QuantMode.register(INT4W), Format.register(LINEAR_NPZ)
    LinearRuntime.format = fmt
    RUNTIMES.register(RuntimeSpec(fmt, "axis_plugins:LinearRuntime", ("numpy",), description="numpy linear"))
    CONVERTERS.register(ConverterSpec(Format.ONNX, Format.ONNX, "test int4 weights", "axis_plugins:Int4Weights",
                                      ("onnx",), (mode,)))
    CONVERTERS.register(ConverterSpec(Format.ONNX, fmt, "test linear-npz", "axis_plugins:OnnxToLinear", ("onnx",)))
    return mode, fmt


def unregister() -> None:
    CONVERTERS.unregister((Format.ONNX, Format("linear-npz"), "test linear-npz"))
    CONVERTERS.unregister((Format.ONNX, Format.ONNX, "test int4 weights"))
    RUNTIMES.unregister(Format("linear-npz"))
    QuantMode.unregister("int4w")
    Format.unregister("linear-npz")
