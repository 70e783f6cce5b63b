"""The Runtime contract, checked on real runtimes: feed validation, devices, threads, CUDA."""

import numpy as np
import pytest

from edgekit.targets import open_runtime
from edgekit.targets.base import RuntimeOptions
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.options import Device
from edgekit.toolkit.sysinfo import cuda_info

CUDA = cuda_info()


def test_feeds_are_validated_before_the_framework_sees_them(samples):
    with open_runtime(samples[Format.ONNX]) as runtime:
        good = np.zeros((1, 1, 8, 8), np.float32)
        assert runtime.run({"x": good})["logits"].shape == (1, 10)
        with pytest.raises(InvalidInputError, match="missing"):
            runtime.run({})
        with pytest.raises(InvalidInputError, match="unexpected"):
            runtime.run({"x": good, "y": good})
        with pytest.raises(InvalidInputError, match="never casts"):
            runtime.run({"x": good.astype(np.float64)})
        with pytest.raises(InvalidInputError, match="shape"):
            runtime.run({"x": np.zeros((1, 3, 8, 8), np.float32)})


def test_same_weights_give_same_logits_across_torch_formats(samples):
    """The torch-side samples are one seeded model: every runtime must agree on it."""
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
    results = {}
    for fmt in (Format.TORCH_EXPORTED, Format.TORCHSCRIPT, Format.ONNX, Format.EXECUTORCH):
        with open_runtime(samples[fmt]) as runtime:
            results[fmt] = next(iter(runtime.run({runtime.io_spec.input_names[0]: x}).values()))
    reference = results[Format.TORCH_EXPORTED]
    for fmt, value in results.items():
        np.testing.assert_allclose(value, reference, atol=1e-5, err_msg=str(fmt))


def test_same_weights_give_same_logits_across_keras_formats(samples):
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 1)).astype(np.float32)
    results = {}
    for fmt in (Format.KERAS, Format.KERAS_H5, Format.SAVEDMODEL, Format.TFLITE):
        with open_runtime(samples[fmt]) as runtime:
            results[fmt] = next(iter(runtime.run({"image": x}).values()))
    for fmt, value in results.items():
        np.testing.assert_allclose(value, results[Format.KERAS], atol=1e-5, err_msg=str(fmt))


def test_threads_must_be_positive():
    with pytest.raises(UsageError, match="threads must be"):
        RuntimeOptions(threads=0)


def test_threads_are_applied(samples):
    with open_runtime(samples[Format.TFLITE], options=RuntimeOptions(threads=1)) as runtime:
        assert runtime.run({"image": np.zeros((1, 8, 8, 1), np.float32)})["output_0"].shape == (1, 10)


def test_cuda_is_refused_for_cpu_only_runtimes(samples):
    with pytest.raises(UsageError, match="cpu only"):
        open_runtime(samples[Format.TFLITE], options=RuntimeOptions(device=Device.CUDA)).load()


@pytest.mark.skipif(CUDA.usable, reason="CUDA is usable here")
@pytest.mark.parametrize("fmt", [Format.ONNX, Format.TORCHSCRIPT, Format.TORCH_EXPORTED], ids=str)
def test_cuda_without_a_gpu_is_a_clear_invalid_input(samples, fmt):
    with pytest.raises(InvalidInputError, match="CUDA is not usable here"):
        open_runtime(samples[fmt], options=RuntimeOptions(device=Device.CUDA)).load()


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA.usable, reason=f"needs CUDA: {CUDA.reason}")
@pytest.mark.parametrize("fmt", [Format.TORCHSCRIPT, Format.TORCH_EXPORTED], ids=str)
def test_torch_runtimes_on_cuda_match_cpu(samples, fmt):
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
    on_cuda = RuntimeOptions(device=Device.CUDA)
    with open_runtime(samples[fmt]) as cpu, open_runtime(samples[fmt], options=on_cuda) as gpu:
        name = cpu.io_spec.input_names[0]
        expected, got = next(iter(cpu.run({name: x}).values())), next(iter(gpu.run({name: x}).values()))
    np.testing.assert_allclose(got, expected, atol=1e-4)
