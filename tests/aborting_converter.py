"""A test-only converter whose conversion aborts the process (SIGABRT), as a faulty native converter would.

``register()`` adds it as a direct ONNX → ExecuTorch edge without quantization modes (edgekit's own route goes
through the ONNX importer and torch.export; a .pte converts to nothing, so the planner cannot route other
conversions through it): the planner prefers the one-hop edge for an unquantized ONNX → ExecuTorch cell, so a
pipeline over an ONNX model has exactly one row whose worker dies, beside rows that convert for real.
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
