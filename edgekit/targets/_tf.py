"""Helpers shared by the TensorFlow-backed runtimes (Keras, SavedModel)."""

from __future__ import annotations

import tensorflow as tf


def tf_threads(threads: int | None) -> bool:
    """TensorFlow takes thread settings only before its runtime starts; later they cannot change."""
    if not threads:
        return False
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        return tf.config.threading.get_intra_op_parallelism_threads() == threads
    return True
