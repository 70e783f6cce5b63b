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


# -- ONNX Runtime on CUDA: IO binding, checked with a fake session off-GPU ------------------------------

class FakeBinding:
    def __init__(self, log):
        self.log = log

    def bind_ortvalue_input(self, name, value):
        self.log.append(("bind_ortvalue_input", name, value.device))

    def bind_output(self, name, device_type="cpu", device_id=0):
        self.log.append(("bind_output", name, device_type, device_id))

    def synchronize_inputs(self):
        self.log.append(("synchronize_inputs",))

    def synchronize_outputs(self):
        self.log.append(("synchronize_outputs",))


class FakeSession:
    def __init__(self):
        self.log = []
        self.binding = FakeBinding(self.log)

    def io_binding(self):
        self.log.append(("io_binding",))
        return self.binding

    def run_with_iobinding(self, binding, run_options=None):
        self.log.append(("run_with_iobinding", binding is self.binding,
                         run_options.get_run_config_entry("disable_synchronize_execution_providers")))

    def run(self, output_names, feeds):
        self.log.append(("run", sorted(feeds)))
        return []


def _fake_ortvalue(log):
    class FakeOrtValue:
        def __init__(self, array, device):
            self.array, self.device = array, device

        @staticmethod
        def ortvalue_from_numpy(array, device_type="cpu", device_id=0):
            log.append(("ortvalue_from_numpy", array.shape, device_type, device_id))
            return FakeOrtValue(array, device_type)

    return FakeOrtValue


def _onnx_with_fake_session(samples, device):
    runtime = open_runtime(samples[Format.ONNX]).load()  # a real contract, loaded on CPU
    runtime.options = RuntimeOptions(device=device)  # as if the CUDA checks had passed
    runtime._session = FakeSession()
    return runtime


def test_onnx_cuda_binds_io_once_outside_the_timed_call(samples, monkeypatch):
    import onnxruntime

    from edgekit.targets.bench import BenchOptions, time_inference

    runtime = _onnx_with_fake_session(samples, Device.CUDA)
    log = runtime._session.log
    monkeypatch.setattr(onnxruntime, "OrtValue", _fake_ortvalue(log))
    call = runtime.prepare({"x": np.zeros((1, 1, 8, 8), np.float32)})
    assert log == [("io_binding",), ("ortvalue_from_numpy", (1, 1, 8, 8), "cuda", 0),
                   ("bind_ortvalue_input", "x", "cuda"), ("bind_output", "logits", "cuda", 0),
                   ("synchronize_inputs",)]
    log.clear()
    timing = time_inference(call, BenchOptions(warmup=2, runs=5, min_seconds=0))
    calls = 1 + 2 + len(timing.samples)
    assert log == [("run_with_iobinding", True, "0"), ("synchronize_outputs",)] * calls  # nothing bound or copied


def test_onnx_cpu_prepare_is_a_plain_run(samples, monkeypatch):
    import onnxruntime

    runtime = _onnx_with_fake_session(samples, Device.CPU)
    log = runtime._session.log
    monkeypatch.setattr(onnxruntime, "OrtValue", _fake_ortvalue(log))
    call = runtime.prepare({"x": np.zeros((1, 1, 8, 8), np.float32)})
    assert log == []
    call()
    assert log == [("run", ["x"])]


def test_iobinding_call_on_the_real_api(samples):
    """The binding sequence against onnxruntime itself, on its CPU device (no GPU needed)."""
    import onnxruntime

    from edgekit.targets.ort import iobinding_call

    session = onnxruntime.InferenceSession(str(samples[Format.ONNX]), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
    call = iobinding_call(session, ["x"], [x], ["logits"], device="cpu")
    first = call().copy_outputs_to_cpu()[0]
    np.testing.assert_allclose(first, session.run(None, {"x": x})[0], rtol=1e-6)
    np.testing.assert_array_equal(call().copy_outputs_to_cpu()[0], first)


def test_onnx_cuda_without_the_provider_names_the_device_option(samples, monkeypatch):
    import onnxruntime

    from edgekit.targets import base
    from edgekit.toolkit.contract import errors

    monkeypatch.setitem(errors._SPEAKING, "cli", False)
    monkeypatch.setattr(base.Runtime, "_check_device", lambda self: None)  # past the CUDA driver check
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(InvalidInputError, match="device='cuda': this onnxruntime has no CUDAExecutionProvider"):
        open_runtime(samples[Format.ONNX], options=RuntimeOptions(device=Device.CUDA)).load()


def _ort_cuda() -> bool:
    import onnxruntime

    return CUDA.usable and "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA.usable, reason=f"needs CUDA: {CUDA.reason}")
def test_onnx_on_cuda_with_io_binding_matches_cpu(samples):
    if not _ort_cuda():
        pytest.skip("this onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)")
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
    on_cuda = RuntimeOptions(device=Device.CUDA)
    with open_runtime(samples[Format.ONNX]) as cpu, open_runtime(samples[Format.ONNX], options=on_cuda) as gpu:
        expected = cpu.run({"x": x})["logits"]
        binding = gpu.prepare({"x": x})()
        (value,) = binding.get_outputs()
        assert value.device_name().lower() == "cuda"
        got = binding.copy_outputs_to_cpu()[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
