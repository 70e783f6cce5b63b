"""torch.export program (.pt2) → TorchScript by tracing.

``--script`` is refused here: scripting compiles Python source, and a .pt2 holds a traced graph whose
module wrapper torch.jit cannot compile. Scripting belongs in the user's code (``torch.jit.script(model)
.save(path)``), whose result ``edgekit import`` takes as it is.
"""

from __future__ import annotations

from pathlib import Path

import torch

from edgekit.converters.base import Converter, StepInput, StepReport
from edgekit.converters.torch_onnx import example_inputs
from edgekit.targets._torch import load_exported_program
from edgekit.toolkit.contract.errors import UsageError


class TorchToTorchScript(Converter):

    def _convert_impl(self, step: StepInput, out: Path, report: StepReport) -> None:
        if step.options.script:
            raise UsageError(
                f"{step.path.name}: --script needs the model's Python source, and a .pt2 holds a traced graph",
                hint="drop --script to trace it, or torch.jit.script(model).save('m.pt') yourself and "
                "`edgekit import m.pt`",
            )
        module = load_exported_program(step.path).module()
        with torch.no_grad():
            traced = torch.jit.trace(module, example_inputs(step), check_trace=True)
        report.details["method"] = "torch.jit.trace"
        torch.jit.save(traced, str(out))
