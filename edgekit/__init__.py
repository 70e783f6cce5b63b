"""edgekit: take a model from where it was made to where it runs.

The Python API mirrors the CLI, one function per command (``edgekit.api``):

    import edgekit
    result = edgekit.convert("model.pt2", to="tflite", quantize="int8")
    assert edgekit.validate("model.pt2", result.artifact.path).passed

Importing ``edgekit`` imports no ML framework; each function loads the backend it needs when called, and
every name below is resolved on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgekit._version import __version__

if TYPE_CHECKING:
    from edgekit.api import (
        CheckResult,
        bench,
        check,
        convert,
        exit_code,
        import_model,
        inspect_model,
        keygen,
        localize,
        package,
        quant_report,
        run_pipeline,
        train,
        validate,
        verify_bundle,
    )
    from edgekit.conversion import ConversionResult
    from edgekit.importing import ImportResult
    from edgekit.localization import LocalizeReport
    from edgekit.packaging import PackageResult, VerifyResult
    from edgekit.pipeline.report import PipelineReport
    from edgekit.quant_report import QuantReport
    from edgekit.targets.bench import BenchReport
    from edgekit.toolkit.contract.errors import EdgekitError, ExitCode
    from edgekit.toolkit.contract.formats import Format
    from edgekit.toolkit.contract.options import QuantMode
    from edgekit.toolkit.reports import InspectReport
    from edgekit.training import TrainResult
    from edgekit.validators.parity import ParityReport

_WHERE = {
    **{name: "edgekit.api" for name in ("CheckResult", "bench", "check", "convert", "exit_code", "import_model",
                                        "inspect_model", "keygen", "localize", "package", "quant_report",
                                        "run_pipeline", "train", "validate", "verify_bundle")},
    "ConversionResult": "edgekit.conversion", "ImportResult": "edgekit.importing",
    "LocalizeReport": "edgekit.localization",
    "PackageResult": "edgekit.packaging", "VerifyResult": "edgekit.packaging",
    "PipelineReport": "edgekit.pipeline.report", "QuantReport": "edgekit.quant_report",
    "BenchReport": "edgekit.targets.bench",
    "EdgekitError": "edgekit.toolkit.contract.errors", "ExitCode": "edgekit.toolkit.contract.errors",
    "Format": "edgekit.toolkit.contract.formats", "QuantMode": "edgekit.toolkit.contract.options",
    "InspectReport": "edgekit.toolkit.reports", "TrainResult": "edgekit.training",
    "ParityReport": "edgekit.validators.parity",
}
__all__ = [
    "BenchReport", "CheckResult", "ConversionResult", "EdgekitError", "ExitCode", "Format", "ImportResult",
    "InspectReport", "LocalizeReport", "PackageResult", "ParityReport", "PipelineReport", "QuantMode", "QuantReport",
    "TrainResult", "VerifyResult",
    "__version__", "bench", "check", "convert", "exit_code", "import_model", "inspect_model", "keygen", "localize",
    "package", "quant_report", "run_pipeline", "train", "validate", "verify_bundle",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
