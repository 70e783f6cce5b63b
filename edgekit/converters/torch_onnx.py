"""torch.export program (.pt2) → ONNX: the dynamo exporter first, the TorchScript-based exporter when
dynamo fails; which one ran is recorded."""

from __future__ import annotations

from pathlib import Path

import torch

from edgekit.converters._onnx import check_requested_opset, record_opset
from edgekit.converters.base import Converter, StepInput, StepReport
from edgekit.targets._torch import load_exported_program
from edgekit.toolkit.contract.errors import first_line


def example_inputs(step: StepInput) -> tuple[torch.Tensor, ...]:
    """Batch-1 inputs of the source's contract (symbolic dims at 1)."""
    return tuple(torch.zeros(ts.concrete_shape(), dtype=getattr(torch, ts.dtype)) for ts in step.io_spec.inputs)


class TorchToOnnx(Converter):

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        check_requested_opset(step.options.opset)
        program = load_exported_program(step.path)
        args = example_inputs(step)
        names = {"input_names": step.io_spec.input_names, "output_names": step.io_spec.output_names}
        opset = {"opset_version": step.options.opset} if step.options.opset else {}
        try:
            torch.onnx.export(program, args, str(out), dynamo=True, external_data=False, **names, **opset)
            report.details["exporter"] = "torch.onnx dynamo"
        except Exception as exc:
            report.warnings.append(f"dynamo exporter failed ({first_line(exc)}); used the TorchScript-based exporter")
            out.unlink(missing_ok=True)
            torch.onnx.export(program.module(), args, str(out), dynamo=False, **names, **opset)
            report.details["exporter"] = "torch.onnx TorchScript-based (fallback)"
        record_opset(out, step.options.opset, report)
