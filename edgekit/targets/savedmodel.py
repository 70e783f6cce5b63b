"""TensorFlow SavedModel runtime: the ``serving_default`` signature."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from edgekit.targets._tf import tf_threads
from edgekit.targets.base import Runtime, histogram
from edgekit.toolkit.contract.errors import InvalidInputError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, tensor
from edgekit.toolkit.reports import ModelDetails

SIGNATURE = "serving_default"
STRUCTURAL_OPS = {"Placeholder", "NoOp", "Identity", "Const", "ReadVariableOp", "VarHandleOp",
                  "StatefulPartitionedCall", "PartitionedCall"}


class SavedModelRuntime(Runtime):
    format = Format.SAVEDMODEL

    def _load_impl(self) -> IOSpec:
        self.threads_applied = tf_threads(self.options.threads)
        self._loaded = tf.saved_model.load(str(self.path))
        signatures = dict(self._loaded.signatures)
        if SIGNATURE not in signatures:
            raise InvalidInputError(
                f"{self.path}: SavedModel has no {SIGNATURE!r} signature (has {sorted(signatures)})",
                hint="export it with keras Model.export() or tf.saved_model.save(..., signatures=...)",
            )
        self._fn = signatures[SIGNATURE]
        _args, kwargs = self._fn.structured_input_signature
        inputs = tuple(tensor(n, s.shape.as_list(), s.dtype.as_numpy_dtype) for n, s in sorted(kwargs.items()))
        outputs = tuple(
            tensor(n, s.shape.as_list(), s.dtype.as_numpy_dtype) for n, s in sorted(self._fn.structured_outputs.items())
        )
        return IOSpec(inputs, outputs)

    def _prepare_impl(self, inputs: list[np.ndarray]) -> Callable[[], Any]:
        feeds = {n: tf.constant(x) for n, x in zip(self.io_spec.input_names, inputs, strict=True)}
        fn = self._fn
        return lambda: fn(**feeds)

    def _run_impl(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        result = self._fn(**{n: tf.constant(x) for n, x in zip(self.io_spec.input_names, inputs, strict=True)})
        return [result[n].numpy() for n in self.io_spec.output_names]

    def _describe_impl(self) -> ModelDetails:
        # The signature's graph only calls into functions; the real ops live in its function library.
        graph_def = self._fn.graph.as_graph_def()
        nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
        op_types = [n.op for n in nodes if n.op not in STRUCTURAL_OPS]
        variables = list(getattr(self._loaded, "variables", None) or self._fn.variables)
        return ModelDetails(
            parameters=sum(int(np.prod(v.shape)) for v in variables),
            ops=histogram(op_types),
            quantization={"weight_dtypes": histogram([v.dtype.name for v in variables])},
        )
