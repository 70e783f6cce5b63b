"""torch.export ExportedProgram (.pt2) runtime: the eager reference for torch-sourced routes."""

from __future__ import annotations

import torch

from edgekit.targets._torch import (
    TorchModuleRuntime,
    exported_domains,
    load_exported_program,
    numpy_dtype_name,
    set_threads,
)
from edgekit.targets.base import histogram
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, TensorSpec, tensor
from edgekit.toolkit.contract.options import Device
from edgekit.toolkit.reports import ModelDetails


def _spec_of(name: str, node: torch.fx.Node) -> TensorSpec:
    value = node.meta.get("val")
    if not isinstance(value, torch.Tensor):
        return tensor(name, None, "float32")
    dims = [int(d) if isinstance(d, int) else str(d) for d in value.shape]
    return tensor(name, dims, numpy_dtype_name(value.dtype))


class ExportedProgramRuntime(TorchModuleRuntime):
    format = Format.TORCH_EXPORTED

    def _load_impl(self) -> IOSpec:
        self.threads_applied = set_threads(self.options.threads)
        self._program = load_exported_program(self.path)
        signature = self._program.graph_signature
        nodes = {n.name: n for n in self._program.graph.nodes}
        inputs = tuple(_spec_of(name, nodes[name]) for name in signature.user_inputs)
        output_node = next(n for n in self._program.graph.nodes if n.op == "output")
        returned = {a.name: a for a in output_node.args[0] if isinstance(a, torch.fx.Node)}
        outputs = tuple(_spec_of(name, returned[name]) for name in signature.user_outputs if name in returned)
        module = self._program.module()
        self._module = module.to("cuda") if self.options.device is Device.CUDA else module
        return IOSpec(inputs, outputs)

    def _domains_impl(self, spec: IOSpec) -> dict:
        return exported_domains(self._program, spec.input_names)

    def _describe_impl(self) -> ModelDetails:
        targets = [str(n.target) for n in self._program.graph.nodes if n.op == "call_function"]
        weights = [*self._program.state_dict.values(), *self._program.constants.values()]
        tensors = [w for w in weights if isinstance(w, torch.Tensor)]
        return ModelDetails(
            parameters=sum(t.numel() for t in tensors),
            ops=histogram(targets),
            quantization={"weight_dtypes": histogram([numpy_dtype_name(t.dtype) for t in tensors])},
        )
