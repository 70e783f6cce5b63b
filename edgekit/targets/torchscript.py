"""TorchScript runtime (torch.jit.load), CPU or CUDA."""

from __future__ import annotations

import torch

from edgekit.targets._torch import (
    TorchModuleRuntime,
    numpy_dtype_name,
    set_threads,
    torch_device,
    torchscript_domains,
)
from edgekit.targets.base import histogram
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, tensor
from edgekit.toolkit.reports import ModelDetails
from edgekit.toolkit.safety.pickles import torchscript_traced_inputs


class TorchScriptRuntime(TorchModuleRuntime):
    format = Format.TORCHSCRIPT

    def _load_impl(self) -> IOSpec:
        self.threads_applied = set_threads(self.options.threads)
        self._module = torch.jit.load(str(self.path), map_location=torch_device(self.options.device)).eval()
        names = [a.name for a in self._module.forward.schema.arguments[1:]]
        traced = torchscript_traced_inputs(self.path).get("forward", [])
        if traced and len(traced) == len(names):
            # torch.jit.trace stores its example inputs in the archive: the shapes it was traced at.
            self.contract_source = "model (traced inputs)"
            return IOSpec(tuple(tensor(n, t.shape, t.dtype) for n, t in zip(names, traced, strict=True)))
        if self._io_hint is not None and self._io_hint.input_names == names:
            self.contract_source = "sidecar"
            return IOSpec(self._io_hint.inputs, self._io_hint.outputs)
        # Scripted modules record no shapes: --input-shape supplies them; float32 is assumed.
        self.contract_source = "model (names only; dtype float32 assumed)"
        return IOSpec(tuple(tensor(n, None, "float32") for n in names))

    def _domains_impl(self, spec: IOSpec) -> dict:
        return torchscript_domains(self._module, [a.name for a in self._module.forward.schema.arguments[1:]])

    def _describe_impl(self) -> ModelDetails:
        kinds = [n.kind() for n in self._module.inlined_graph.nodes() if not n.kind().startswith("prim::")]
        return ModelDetails(
            parameters=sum(p.numel() for p in self._module.parameters()),
            ops=histogram(kinds),
            quantization={"weight_dtypes": histogram([numpy_dtype_name(p.dtype) for p in self._module.parameters()])},
        )
