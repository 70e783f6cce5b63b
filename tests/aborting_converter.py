"""A test-only converter whose conversion aborts the process (SIGABRT), as a faulty native converter would.

``register()`` adds it as the ONNX → ExecuTorch edge (edgekit has none, and a .pte converts to nothing, so the
planner cannot route other conversions through it): a pipeline over an ONNX model then has exactly one row
whose worker dies, beside rows that convert for real.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgekit.converters.base import Converter
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.registry import CONVERTERS, ConverterSpec


class AbortingConverter(Converter):
    def _convert_impl(self, step, out: Path, report) -> None:
        out.write_bytes(b"half a model")  # the staged file edgekit announced: it must not survive
        os.abort()


def register() -> None:
    CONVERTERS.register(ConverterSpec(Format.ONNX, Format.EXECUTORCH, "test: aborts the process",
                                      "aborting_converter:AbortingConverter", ()))
