"""ExecuTorch runtime (pybindings via ``executorch.runtime``) for ``.pte`` programs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from executorch.runtime import Runtime as ETRuntime

from edgekit.targets._torch import SCALAR_TYPES, flatten_outputs, to_tensors
from edgekit.targets.base import Runtime, histogram
from edgekit.toolkit.contract.errors import InvalidInputError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, TensorSpec, tensor
from edgekit.toolkit.reports import ModelDetails


def _spec_of(name: str, meta) -> TensorSpec:
    code = int(meta.dtype())
    if code not in SCALAR_TYPES:
        raise InvalidInputError(
            f"{name}: ExecuTorch dtype code {code} is not supported by edgekit", hint="use float32 I/O"
        )
    return tensor(name, list(meta.sizes()), SCALAR_TYPES[code])


def _set_threadpool(threads: int | None) -> bool:
    """ExecuTorch's CPU thread pool (XNNPACK uses it) is process-wide; its pybindings can resize it."""
    if not threads:
        return False
    from executorch.extension.pybindings import portable_lib

    try:
        portable_lib._unsafe_reset_threadpool(threads)
    except (AttributeError, RuntimeError):
        return False
    return portable_lib._threadpool_get_thread_count() == threads


class ExecuTorchRuntime(Runtime):
    format = Format.EXECUTORCH

    def _load_impl(self) -> IOSpec:
        self.threads_applied = _set_threadpool(self.options.threads)
        program = ETRuntime.get().load_program(str(self.path))
        if "forward" not in program.method_names:
            raise InvalidInputError(
                f"{self.path}: program has no 'forward' method (methods: {sorted(program.method_names)})",
                hint="export the model's forward()",
            )
        self._method = program.load_method("forward")
        meta = self._method.metadata
        # .pte files carry no tensor names; the artifact's sidecar does when edgekit wrote it.
        hint = self._io_hint
        in_names = [f"input_{i}" for i in range(meta.num_inputs())]
        out_names = [f"output_{i}" for i in range(meta.num_outputs())]
        if hint is not None and len(hint.inputs) == len(in_names) and len(hint.outputs) == len(out_names):
            in_names, out_names = hint.input_names, hint.output_names
            self.contract_source = "model (names from sidecar)"
        return IOSpec(
            tuple(_spec_of(n, meta.input_tensor_meta(i)) for i, n in enumerate(in_names)),
            tuple(_spec_of(n, meta.output_tensor_meta(i)) for i, n in enumerate(out_names)),
        )

    def _prepare_impl(self, inputs: list[np.ndarray]) -> Callable[[], Any]:
        tensors = to_tensors(inputs, self.options.device)
        method = self._method
        return lambda: method.execute(tensors)

    def _run_impl(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            return flatten_outputs(self._method.execute(to_tensors(list(inputs), self.options.device)))

    def _describe_impl(self) -> ModelDetails:
        # executorch.runtime has already imported exir, so the program parser costs nothing extra.
        from executorch.exir._serialize._program import deserialize_pte_binary

        program = deserialize_pte_binary(self.path.read_bytes()).program
        plan = next(p for p in program.execution_plan if p.name == "forward")
        calls: list[str] = []
        for chain in plan.chains:
            for instruction in chain.instructions:
                args = instruction.instr_args
                kind = type(args).__name__
                if kind == "KernelCall":
                    calls.append(plan.operators[args.op_index].name)
                elif kind == "DelegateCall":
                    calls.append(f"delegate:{plan.delegates[args.delegate_index].id}")
        delegated = sum(1 for c in calls if c.startswith("delegate:"))
        portable = len(calls) - delegated
        return ModelDetails(
            ops=histogram(calls),
            delegation={
                "delegates": sorted({d.id for d in plan.delegates}),
                "delegate_calls": delegated,
                "portable_kernel_calls": portable,
            },
            notes=("parameters live inside delegate blobs; not counted",) if delegated else (),
        )
