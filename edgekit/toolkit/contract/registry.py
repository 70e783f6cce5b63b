"""Registries of converters and runtimes: plain data, listable without importing any framework.

A spec names its implementation as ``"module:Class"`` and the top-level packages it needs.
Availability is checked with ``importlib.util.find_spec`` (no import); the implementation is
imported only when it is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from edgekit.toolkit.contract import extras
from edgekit.toolkit.contract.errors import UsageError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.options import Device, QuantMode


def missing_modules(requires: Iterable[str]) -> list[str]:
    """The required top-level modules that are not importable here (checked without importing)."""
    missing = []
    for module in requires:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


def _load_impl(impl: str) -> Any:
    module_name, _, attr = impl.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(frozen=True)
class RuntimeSpec:
    format: Format
    impl: str
    requires: tuple[str, ...]
    devices: tuple[Device, ...] = (Device.CPU,)
    description: str = ""

    @property
    def key(self) -> Format:
        return self.format

    def to_dict(self) -> dict[str, Any]:
        """What `info` reports, with availability checked here (no import)."""
        return {"format": self.format.value, "runtime": self.description,
                "devices": [d.value for d in self.devices], "missing": self.missing()}

    def missing(self) -> list[str]:
        return missing_modules(self.requires)

    def load(self) -> Any:
        _require(self.requires, f"running {self.format} models")
        return _load_impl(self.impl)


@dataclass(frozen=True)
class ConverterSpec:
    source: Format
    to: Format  # the format it writes (the CLI's --to; "target" is where a model runs, edgekit/targets/)
    name: str
    impl: str
    requires: tuple[str, ...]
    quant_modes: tuple[QuantMode, ...] = (QuantMode.NONE,)
    description: str = ""
    # The quantization tool its quantized modes use, as --quantizer names it (QUANTIZERS); "" for a float edge.
    quantizer: str = ""
    # The modes in which it goes before the edge's other converters (else the registry's order decides): where
    # benchmarks/quant_budget.py measured it the fastest that passes parity.
    default_for: tuple[QuantMode, ...] = ()

    @property
    def key(self) -> tuple[Format, Format, str]:
        """Several converters may serve one edge (say, two ONNX quantizers); the planner takes the first that
        supports the mode asked for."""
        return (self.source, self.to, self.name)

    def to_dict(self) -> dict[str, Any]:
        """What `routes` and `info` report, with availability checked here (no import)."""
        return {"source": self.source.value, "to": self.to.value, "converter": self.name,
                "quantize": [q.value for q in self.quant_modes], "quantizer": self.quantizer or None,
                "default_for": [q.value for q in self.default_for], "missing": self.missing()}

    def missing(self) -> list[str]:
        return missing_modules(self.requires)

    def load(self) -> Any:
        _require(self.requires, f"converting {self.source} to {self.to}")
        return _load_impl(self.impl)


def _require(requires: Iterable[str], purpose: str) -> None:
    """A one-line MissingDependencyError whose hint names the extra(s) to install, comma-joined."""
    missing = missing_modules(requires)
    if missing:
        raise extras.missing_dependency(purpose, missing)


S = TypeVar("S", RuntimeSpec, ConverterSpec)


class Registry(Generic[S]):
    """An ordered set of specs keyed by ``spec.key``; registering a key twice is an error."""

    def __init__(self, kind: str, specs: Iterable[S] = ()) -> None:
        self.kind = kind
        self._specs: dict[Any, S] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: S) -> None:
        if spec.key in self._specs:
            raise ValueError(f"duplicate {self.kind} registration for {spec.key}: {spec.impl}")
        self._specs[spec.key] = spec

    def __iter__(self) -> Iterator[S]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, key: Any) -> S | None:
        return self._specs.get(key)

    def unregister(self, key: Any) -> None:
        """Remove a registration (plug-ins and tests that clean up after themselves)."""
        self._specs.pop(key, None)


RUNTIMES: Registry[RuntimeSpec] = Registry(
    "runtime",
    [
        RuntimeSpec(Format.TFLITE, "edgekit.targets.litert:LiteRTRuntime", ("ai_edge_litert",),
                    description="LiteRT interpreter (XNNPACK)"),
        RuntimeSpec(Format.ONNX, "edgekit.targets.ort:OnnxRuntime", ("onnxruntime", "onnx"),
                    (Device.CPU, Device.CUDA), "ONNX Runtime"),
        RuntimeSpec(Format.TORCHSCRIPT, "edgekit.targets.torchscript:TorchScriptRuntime", ("torch",),
                    (Device.CPU, Device.CUDA), "TorchScript (torch.jit)"),
        RuntimeSpec(Format.TORCH_EXPORTED, "edgekit.targets.exported:ExportedProgramRuntime", ("torch",),
                    (Device.CPU, Device.CUDA), "torch.export ExportedProgram (eager reference)"),
        RuntimeSpec(Format.EXECUTORCH, "edgekit.targets.executorch:ExecuTorchRuntime", ("executorch", "torch"),
                    description="ExecuTorch runtime (pybindings)"),
        RuntimeSpec(Format.KERAS, "edgekit.targets.keras:KerasRuntime", ("keras", "tensorflow"),
                    description="Keras 3 (TensorFlow backend)"),
        RuntimeSpec(Format.KERAS_H5, "edgekit.targets.keras:KerasH5Runtime", ("keras", "tensorflow", "h5py"),
                    description="Keras legacy HDF5 (TensorFlow backend)"),
        RuntimeSpec(Format.SAVEDMODEL, "edgekit.targets.savedmodel:SavedModelRuntime", ("tensorflow",),
                    description="TensorFlow SavedModel (serving signature)"),
    ],
)

_ALL_TFLITE = (QuantMode.NONE, QuantMode.FP16, QuantMode.DYNAMIC, QuantMode.INT8, QuantMode.INT8_IO,
               QuantMode.INT16X8)
_KERAS_TFLITE = "edgekit.converters.keras_tflite:KerasToTFLite"
_KERAS_ONNX = "edgekit.converters.keras_onnx:KerasToOnnx"

# One module per edge in edgekit/converters/; the planner composes edges (e.g. keras → onnx → int8 onnx).
CONVERTERS: Registry[ConverterSpec] = Registry(
    "converter",
    [
        ConverterSpec(Format.TORCH_EXPORTED, Format.ONNX, "torch.onnx (dynamo, TorchScript fallback)",
                      "edgekit.converters.torch_onnx:TorchToOnnx", ("torch", "onnx", "onnxscript")),
        ConverterSpec(Format.TORCH_EXPORTED, Format.TORCHSCRIPT, "torch.jit trace/script",
                      "edgekit.converters.torch_torchscript:TorchToTorchScript", ("torch",)),
        ConverterSpec(Format.TORCH_EXPORTED, Format.EXECUTORCH, "ExecuTorch + XNNPACK (PT2E quantization)",
                      "edgekit.converters.torch_executorch:TorchToExecuTorch", ("torch", "executorch", "torchao"),
                      (QuantMode.NONE, QuantMode.FP16, QuantMode.DYNAMIC, QuantMode.INT8, QuantMode.INT4),
                      quantizer="pt2e"),
        ConverterSpec(Format.TORCH_EXPORTED, Format.TFLITE, "litert-torch + ai-edge-quantizer",
                      "edgekit.converters.torch_tflite:TorchToTFLite",
                      ("torch", "litert_torch", "ai_edge_quantizer", "ai_edge_litert"),
                      (QuantMode.NONE, QuantMode.FP16, QuantMode.DYNAMIC, QuantMode.INT8, QuantMode.INT8_IO,
                       QuantMode.INT16X8, QuantMode.INT4), quantizer="ai-edge-quantizer"),
        # The same edge's other quantizer: litert-torch lowers a convert_pt2e graph to TFLite int8 kernels, integer
        # I/O included. The int8-io default (benchmarks/quant_budget.py: at 224² as fast as ai-edge-quantizer's and
        # it passes parity, cosine 0.9979 vs 0.9777; on a small BERT 0.99987 vs 0.966); dynamic with --quantizer pt2e.
        ConverterSpec(Format.TORCH_EXPORTED, Format.TFLITE, "litert-torch PT2E (PT2EQuantizer)",
                      "edgekit.converters.torch_tflite:TorchToTFLitePT2E",
                      ("torch", "litert_torch", "torchao", "ai_edge_litert"), (QuantMode.INT8_IO, QuantMode.DYNAMIC),
                      quantizer="pt2e", default_for=(QuantMode.INT8_IO,)),
        *(ConverterSpec(fmt, Format.TFLITE, name, _KERAS_TFLITE, requires, _ALL_TFLITE, quantizer="tflite-converter")
          for fmt, name, requires in ((Format.KERAS, "TFLiteConverter", ("tensorflow", "keras")),
                                      (Format.KERAS_H5, "TFLiteConverter", ("tensorflow", "keras")),
                                      (Format.SAVEDMODEL, "TFLiteConverter (SavedModel)", ("tensorflow",)))),
        # int4: TFLiteConverter has no 4-bit mode; its float model goes through ai-edge-quantizer.
        *(ConverterSpec(fmt, Format.TFLITE, "TFLiteConverter + ai-edge-quantizer (int4 weights)", _KERAS_TFLITE,
                        requires, (QuantMode.INT4,), quantizer="ai-edge-quantizer")
          for fmt, requires in ((Format.KERAS, ("tensorflow", "keras", "ai_edge_quantizer")),
                                (Format.KERAS_H5, ("tensorflow", "keras", "ai_edge_quantizer")),
                                (Format.SAVEDMODEL, ("tensorflow", "ai_edge_quantizer")))),
        ConverterSpec(Format.KERAS, Format.ONNX, "tf2onnx (frozen tf.function)", _KERAS_ONNX,
                      ("tensorflow", "keras", "tf2onnx")),
        ConverterSpec(Format.KERAS_H5, Format.ONNX, "tf2onnx (frozen tf.function)", _KERAS_ONNX,
                      ("tensorflow", "keras", "tf2onnx")),
        ConverterSpec(Format.SAVEDMODEL, Format.ONNX, "tf2onnx (SavedModel signature)", _KERAS_ONNX,
                      ("tensorflow", "tf2onnx")),
        # ONNX → TFLite / ExecuTorch / TorchScript go through this float edge and then the torch routes.
        ConverterSpec(Format.ONNX, Format.TORCH_EXPORTED, "edgekit ONNX importer (torch.export)",
                      "edgekit.converters.onnx_torch:OnnxToTorch", ("onnx", "torch")),
        ConverterSpec(Format.TFLITE, Format.ONNX, "tf2onnx (TFLite front end)",
                      "edgekit.converters.tflite_onnx:TFLiteToOnnx", ("tensorflow", "tf2onnx", "onnx")),
        ConverterSpec(Format.ONNX, Format.ONNX, "onnxruntime.quantization / float16",
                      "edgekit.converters.onnx_quantize:OnnxQuantize", ("onnx", "onnxruntime"),
                      (QuantMode.FP16, QuantMode.DYNAMIC, QuantMode.INT8, QuantMode.INT4), quantizer="onnxruntime"),
    ],
)


# --quantizer: the quantization tools edgekit drives, each on the edges whose spec names it.
QUANTIZERS = ("ai-edge-quantizer", "tflite-converter", "pt2e", "onnxruntime")


def runtime_for(fmt: Format) -> RuntimeSpec:
    spec = RUNTIMES.get(fmt)
    if spec is None:
        supported = ", ".join(str(s.format) for s in RUNTIMES)
        raise UsageError(f"no runtime runs {fmt} models", hint=f"supported formats: {supported}")
    return spec

