"""Typed options shared by converters, validators and runtimes. No free-form option dicts."""

from __future__ import annotations

from enum import StrEnum


class QuantMode(StrEnum):
    NONE = "none"
    FP16 = "fp16"
    DYNAMIC = "dynamic"  # int8 weights, float activations
    INT8 = "int8"  # full integer, float I/O
    INT8_IO = "int8-io"  # full integer including inputs and outputs
    INT16X8 = "int16x8"  # int16 activations, int8 weights


class Device(StrEnum):
    CPU = "cpu"
    CUDA = "cuda"


class Layout(StrEnum):
    NCHW = "nchw"
    NHWC = "nhwc"
    UNKNOWN = ""
