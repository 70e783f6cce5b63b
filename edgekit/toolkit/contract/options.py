"""Typed options shared by converters, validators and runtimes. No free-form option dicts.

``QuantMode`` is one of the two open axes (see ``tables``): every fact about a precision lives in its row
of ``QUANT_MODE_SPECS`` — its name in reports, its file tag, whether it needs calibration data, the
tolerance profile that judges it — and everything else reads the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from edgekit.toolkit.contract.tables import OpenValue


class QuantMode(OpenValue):
    """A quantization mode: one row of ``QUANT_MODE_SPECS`` (``QuantMode.INT8``, ``QuantMode("int8")``)."""

    kind = "quantization mode"


@dataclass(frozen=True)
class QuantModeSpec:
    name: str  # what --quantize takes and the sidecar records
    summary: str  # one line for --help and the README
    precision: str  # how reports and check thresholds name the result ("fp32" for none)
    profile: str  # the tolerance profile that judges it (validators.tolerances.Profile)
    needs_calibration: bool = False  # full-integer modes calibrate activation ranges on real data

    @property
    def file_tag(self) -> str:
        """What default output names carry: model.int8.tflite; nothing for float32."""
        return "" if self.name == "none" else f".{self.name}"


QUANT_MODE_SPECS = (
    QuantModeSpec("none", "float32, as trained", "fp32", "fp32"),
    QuantModeSpec("fp16", "float16 weights", "fp16", "fp16"),
    QuantModeSpec("dynamic", "int8 weights, float activations", "dynamic", "dynamic"),
    QuantModeSpec("int8", "full integer, float I/O", "int8", "int8", needs_calibration=True),
    QuantModeSpec("int8-io", "full integer including inputs and outputs", "int8-io", "int8", needs_calibration=True),
    QuantModeSpec("int16x8", "int16 activations, int8 weights", "int16x8", "int8", needs_calibration=True),
    QuantModeSpec("int4", "4-bit weights of linear/conv layers (TFLite, ExecuTorch: int8 dynamic activations; "
                  "ONNX: float activations)", "int4", "int4"),
)
for _spec in QUANT_MODE_SPECS:
    QuantMode.register(_spec)


def quant_mode_help() -> str:
    """The --quantize choices with what each means, from the table."""
    return "; ".join(f"{mode.value} ({mode.spec.summary})" for mode in QuantMode)


class Device(StrEnum):
    CPU = "cpu"
    CUDA = "cuda"


class Layout(StrEnum):
    NCHW = "nchw"
    NHWC = "nhwc"
    UNKNOWN = ""
