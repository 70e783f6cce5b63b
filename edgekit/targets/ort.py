"""ONNX Runtime: CPU execution provider, CUDA where onnxruntime-gpu and a GPU exist."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgekit.targets.base import Runtime, histogram
from edgekit.toolkit.contract.errors import InvalidInputError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, example_feeds, tensor
from edgekit.toolkit.contract.options import Device
from edgekit.toolkit.fsutil import scratch_directory
from edgekit.toolkit.reports import ModelDetails

# ONNX Runtime's type strings → numpy dtype names.
ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
    "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool",
}
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
             "ConvInteger", "DynamicQuantizeLinear"}


class OnnxRuntime(Runtime):
    format = Format.ONNX
    devices = (Device.CPU, Device.CUDA)

    def _load_impl(self) -> IOSpec:
        options = ort.SessionOptions()
        if self.options.threads:
            options.intra_op_num_threads = self.options.threads
            options.inter_op_num_threads = 1
            self.threads_applied = True
        self._graph_optimization = options.graph_optimization_level.name
        providers = ["CPUExecutionProvider"]
        if self.options.device is Device.CUDA:
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise InvalidInputError(
                    "--device cuda: this onnxruntime has no CUDAExecutionProvider",
                    hint="pip install onnxruntime-gpu, or use --device cpu",
                )
            providers.insert(0, "CUDAExecutionProvider")
        self._session = ort.InferenceSession(str(self.path), options, providers=providers)
        return IOSpec(
            tuple(self._spec(i) for i in self._session.get_inputs()),
            tuple(self._spec(o) for o in self._session.get_outputs()),
        )

    def _spec(self, arg: ort.NodeArg):
        dtype = ORT_TYPES.get(arg.type)
        if dtype is None:
            raise InvalidInputError(f"{self.path}: {arg.name!r} has type {arg.type}, which edgekit does not support")
        return tensor(arg.name, arg.shape, dtype)

    def _run_impl(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, dict(zip(self.io_spec.input_names, inputs, strict=True)))

    def _nodes_per_provider(self) -> dict[str, int]:
        """Run once in a profiling session: each node event names the execution provider it ran on."""
        import json

        options = ort.SessionOptions()
        options.enable_profiling = True
        with scratch_directory("edgekit-ort-profile-") as scratch:
            options.profile_file_prefix = str(Path(scratch) / "ort")
            session = ort.InferenceSession(str(self.path), options, providers=self._session.get_providers())
            session.run(None, example_feeds(self.io_spec))
            events = json.loads(Path(session.end_profiling()).read_text())
        nodes: dict[str, set[str]] = {}
        for event in events:
            if event.get("cat") == "Node" and "provider" in event.get("args", {}):
                nodes.setdefault(event["args"]["provider"], set()).add(event["name"].removesuffix("_kernel_time"))
        return {provider: len(names) for provider, names in sorted(nodes.items())}

    def _describe_impl(self) -> ModelDetails:
        model = onnx.load(str(self.path), load_external_data=False)
        graph = model.graph
        ops = [f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type for n in graph.node]
        parameters = sum(int(np.prod(init.dims)) for init in graph.initializer)
        weight_dtypes = histogram(
            [np.dtype(onnx.helper.tensor_dtype_to_np_dtype(i.data_type)).name for i in graph.initializer]
        )
        quant_nodes = sum(1 for n in graph.node if n.op_type in QUANT_OPS)
        opsets = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
        return ModelDetails(
            parameters=parameters,
            ops=histogram(ops),
            quantization={"weight_dtypes": weight_dtypes, "quantization_nodes": quant_nodes},
            delegation={"providers": self._session.get_providers(), "nodes_per_provider": self._nodes_per_provider(),
                        "graph_optimization": self._graph_optimization},
            notes=(f"opsets {opsets}, producer {model.producer_name} {model.producer_version}".strip(),),
        )
