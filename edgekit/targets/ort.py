"""ONNX Runtime: CPU execution provider, CUDA where onnxruntime-gpu and a GPU exist.

On CUDA the benchmark's timed call uses IO binding, as the torch runtimes time tensors already on the
device: the inputs are copied to the GPU once (``OrtValue``), the outputs are bound to the GPU, and each
call is ``run_with_iobinding`` — which, with ``disable_synchronize_execution_providers`` left at "0",
ends in a stream synchronisation — followed by ``synchronize_outputs()``. The time is the kernels' time,
without a host↔device copy per run. On CPU the timed call is a plain ``session.run``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from edgekit.targets.base import Runtime, histogram
from edgekit.toolkit.contract.errors import InvalidInputError, option
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
# Ops that keep their first input's values: an index is walked back through them to the graph input.
ONNX_VALUE_PRESERVING = frozenset({"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Expand",
                                   "Transpose", "Slice", "Tile", "Where"})
# RunOptions key (onnxruntime_run_options_config_keys.h): "1" skips the EPs' stream synchronisation at the
# end of a run; edgekit pins the default, "0", so a timed run ends when the GPU has finished.
SYNC_RUN_KEY = "disable_synchronize_execution_providers"


def iobinding_call(session: Any, input_names: Sequence[str], inputs: Sequence[np.ndarray],
                   output_names: Sequence[str], device: str = "cuda", device_id: int = 0) -> Callable[[], Any]:
    """A zero-argument inference on ``device`` with its I/O bound there once: each input copied to the
    device as an OrtValue and bound, each output bound to the device (ORT allocates it there). The call
    runs with the binding and synchronises, so no copy and no unfinished kernel falls in or out of it."""
    binding = session.io_binding()  # holds the bound OrtValues (and so the device copies) while it lives
    values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x), device, device_id) for x in inputs]
    for name, value in zip(input_names, values, strict=True):
        binding.bind_ortvalue_input(name, value)
    for name in output_names:
        binding.bind_output(name, device, device_id)
    binding.synchronize_inputs()  # the copies above are complete before the first timed call
    run_options = ort.RunOptions()
    run_options.add_run_config_entry(SYNC_RUN_KEY, "0")

    def call() -> Any:
        session.run_with_iobinding(binding, run_options)
        binding.synchronize_outputs()
        return binding  # the outputs stay on the device (copy_outputs_to_cpu() reads them)

    return call


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
                    f"{option('device', Device.CUDA.value)}: this onnxruntime has no CUDAExecutionProvider",
                    hint=f"pip install onnxruntime-gpu, or use {option('device', Device.CPU.value)}",
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

    def _prepare_impl(self, inputs: list[np.ndarray]) -> Callable[[], Any]:
        if self.options.device is not Device.CUDA:
            return super()._prepare_impl(inputs)
        return iobinding_call(self._session, self.io_spec.input_names, inputs, self.io_spec.output_names)

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

    def _domains_impl(self, spec: IOSpec) -> dict:
        """Integer inputs that index a Gather's constant data (an embedding table) take [0, rows)."""
        from edgekit.toolkit.contract.domains import index_domains

        graph = onnx.load(str(self.path), load_external_data=False).graph
        shapes = {init.name: list(init.dims) for init in graph.initializer}
        producers: dict[str, tuple[str, list[str]]] = {}
        for node in graph.node:
            if node.op_type == "Constant":
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    shapes[node.output[0]] = list(value.dims)
            # Where(ids < 0, ids + rows, ids): the negative-index wrap; its else-branch is the input's own values.
            data = list(node.input[2:3]) if node.op_type == "Where" else list(node.input[:1])
            for out in node.output:
                producers[out] = (node.op_type, data)
        lookups = []
        for node in graph.node:
            if node.op_type == "Gather" and len(node.input) >= 2 and node.input[0] in shapes:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                dims = shapes[node.input[0]]
                if -len(dims) <= axis < len(dims):
                    lookups.append((node.input[1], int(dims[axis]), repr(node.input[0])))
        inputs = {name: name for name in spec.input_names}
        return index_domains(lookups, inputs=inputs, producers=producers, pass_through=ONNX_VALUE_PRESERVING)

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
