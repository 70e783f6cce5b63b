"""torch.export program (.pt2) → TorchScript by tracing.

``--script`` is refused here: scripting compiles Python source, and a .pt2 holds a traced graph whose
module wrapper torch.jit cannot compile. Scripting belongs in the user's code (``torch.jit.script(model)
.save(path)``), whose result ``edgekit import`` takes as it is.
"""

from __future__ import annotations

import io
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
        out.write_bytes(reproducible(traced))


# Records torch's writer adds itself at the end of every archive.
_WRITER_RECORDS = {"version", ".data/version", ".data/serialization_id", "byteorder"}


def reproducible(module: torch.jit.ScriptModule) -> bytes:
    """The TorchScript archive of ``module``, the same bytes for the same model in any process.

    Saved through a buffer (given a path, torch names the archive's root folder after the file, here the
    staging name), and rewritten by torch's own writer without the ``*.debug_pkl`` records: they hold the
    Python call stack at trace time (edgekit's frames, site-packages paths, a process-wide eval counter),
    which differ between processes and say nothing about the model. Loading never needs them.
    """
    import zipfile

    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    data = buffer.getvalue()
    reader = torch._C.PyTorchFileReader(io.BytesIO(data))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = [name.split("/", 1)[1] for name in archive.namelist()]  # written order, root folder dropped
    out = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(out)
    for name in names:
        if name in _WRITER_RECORDS or name.endswith(".debug_pkl"):
            continue
        record = reader.get_record(name)
        writer.write_record(name, record, len(record))
    writer.write_end_of_file()
    return out.getvalue()
