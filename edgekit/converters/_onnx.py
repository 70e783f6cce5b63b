"""What every converter that writes ONNX shares: the opset asked for is one this onnx knows, and the
sidecar records the opset the file actually has (exporters may write another than the one asked for)."""

from __future__ import annotations

from pathlib import Path

from edgekit.converters.base import StepReport
from edgekit.toolkit.contract.errors import UsageError, option


def check_requested_opset(opset: int | None) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise UsageError(f"{option('opset', opset)}: this onnx {onnx.__version__} writes opsets {MIN_OPSET} to "
                         f"{newest}", hint=f"choose one in {MIN_OPSET}..{newest}, or leave {option('opset')} out for "
                                           "the exporter's default")


def record_opset(out: Path, requested: int | None, report: StepReport) -> None:
    import onnx

    model = onnx.load(str(out), load_external_data=False)
    actual = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)
    report.details["opset"] = actual
    if requested is not None and actual != requested:
        report.warnings.append(f"asked for opset {requested}; the exporter wrote opset {actual}")


MIN_OPSET = 7  # the oldest opset ONNX Runtime still loads
