"""Keras 3 runtime (TensorFlow backend) for ``.keras`` and legacy ``.h5`` files, loaded in safe mode."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from edgekit.targets._tf import tf_threads
from edgekit.targets.base import Runtime, histogram
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, tensor
from edgekit.toolkit.contract.options import Device
from edgekit.toolkit.reports import ModelDetails
from edgekit.toolkit.safety.policy import keras_safe_mode


class KerasRuntime(Runtime):
    format = Format.KERAS
    devices = (Device.CPU,)

    def _load_impl(self) -> IOSpec:
        self.threads_applied = tf_threads(self.options.threads)
        # safe_mode refuses Lambda layers and other deserialisation that would run arbitrary code.
        self._model = keras.saving.load_model(str(self.path), compile=False, safe_mode=keras_safe_mode())
        inputs = tuple(tensor(t.name, t.shape, t.dtype) for t in self._model.inputs)
        names = list(getattr(self._model, "output_names", None) or [t.name for t in self._model.outputs])
        outputs = tuple(tensor(n, t.shape, t.dtype) for n, t in zip(names, self._model.outputs, strict=True))
        return IOSpec(inputs, outputs)

    def _domains_impl(self, spec: IOSpec) -> dict:
        """Integer inputs that feed an Embedding layer take [0, input_dim)."""
        from edgekit.toolkit.contract.domains import index_domains

        producers: dict[int, tuple[str, list[int]]] = {}
        lookups = []
        for layer in self._model.layers:
            for node in getattr(layer, "_inbound_nodes", ()):
                ins = [id(t) for t in node.input_tensors]
                for out in node.output_tensors:
                    producers[id(out)] = (type(layer).__name__, ins[:1])
                if isinstance(layer, keras.layers.Embedding) and ins:
                    lookups.append((ins[0], int(layer.input_dim), repr(layer.name)))
        inputs = {id(t): t.name for t in self._model.inputs}
        return index_domains(lookups, inputs=inputs, producers=producers,
                             pass_through={"Reshape", "Flatten", "Permute", "Identity", "RepeatVector"})

    @property
    def model(self) -> keras.Model:
        """The loaded Keras model (for re-saving, e.g. .h5 → .keras)."""
        self.load()
        return self._model

    def _prepare_impl(self, inputs: list[np.ndarray]) -> Callable[[], Any]:
        import tensorflow as tf

        feed = [tf.constant(x) for x in inputs]
        model = self._model
        single = feed[0] if len(feed) == 1 else feed
        return lambda: model(single, training=False)

    def _run_impl(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        feed = list(inputs) if len(inputs) > 1 else inputs[0]
        result = self._model(feed, training=False)
        if isinstance(result, dict):
            result = [result[n] for n in self.io_spec.output_names]
        elif not isinstance(result, (list, tuple)):
            result = [result]
        return [keras.ops.convert_to_numpy(r) for r in result]

    def _describe_impl(self) -> ModelDetails:
        layers = [type(layer).__name__ for layer in self._model.layers if type(layer).__name__ != "InputLayer"]
        return ModelDetails(
            parameters=int(self._model.count_params()),
            ops=histogram(layers),
            quantization={"weight_dtypes": histogram([np.dtype(w.dtype).name for w in self._model.weights])},
        )


class KerasH5Runtime(KerasRuntime):
    format = Format.KERAS_H5
