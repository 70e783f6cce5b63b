"""Device profiles: what a deployment target allows, applied to a benchmark with ``--target`` (``profile=``).

A profile sets the thread count and the device; an explicitly given device wins over the profile's
(``edgekit bench --target cuda --device cpu`` benches on CPU, and the report says so). It also names the
compatibility targets (``edgekit compat``) a model must pass to run there: ``bench --target`` reports them, and
``compat --target PROFILE`` checks them. A profile for an accelerator this machine cannot drive (a phone's GPU or
NPU) is for ``compat`` and ``check`` only; ``bench`` refuses it."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.toolkit.contract.errors import UsageError, option
from edgekit.toolkit.contract.options import Device, QuantMode
from edgekit.toolkit.sysinfo import usable_cpu_count

ANY_PRECISION = tuple(QuantMode)
CPU_COMPAT = ("tflite-xnnpack", "litert", "executorch-xnnpack", "executorch", "onnxruntime")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    threads: int | None
    device: Device = Device.CPU
    delegate: str = "xnnpack"
    precisions: tuple[QuantMode, ...] = ANY_PRECISION
    compat: tuple[str, ...] = ()  # edgekit compat targets a model must pass on this device class
    elsewhere: str = ""  # the accelerator, when it is not on this machine (bench refuses; compat checks)

    def check_precision(self, model: str, precision: str) -> None:
        """Refuse a model whose recorded precision the profile does not allow (unknown passes)."""
        allowed = {q.value for q in self.precisions}
        if precision in {q.value for q in QuantMode} and precision not in allowed:
            raise UsageError(
                f"{model}: {option('profile', self.name)} runs {', '.join(sorted(allowed))} models, "
                f"this one is {precision}",
                hint=f"convert it with a {option('quantize')} mode the profile allows",
            )


PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile("mobile-cpu-1t", "a phone's big core: 1 thread, XNNPACK", threads=1, compat=CPU_COMPAT),
        DeviceProfile("mobile-cpu-4t", "a phone's performance cluster: 4 threads, XNNPACK", threads=4,
                      compat=CPU_COMPAT),
        DeviceProfile("desktop-cpu", "every usable core of this machine", threads=usable_cpu_count(),
                      compat=CPU_COMPAT),
        DeviceProfile("mcu-int8", "integer-only accelerators and MCUs: 1 thread, int8 models only", threads=1,
                      precisions=(QuantMode.INT8, QuantMode.INT8_IO), compat=CPU_COMPAT),
        DeviceProfile("cuda", "an NVIDIA GPU (TorchScript, torch.export, ONNX Runtime CUDA EP)", threads=None,
                      device=Device.CUDA, delegate="cuda"),
        DeviceProfile("android-gpu", "a phone's GPU through the TFLite GPU delegate", threads=None, delegate="gpu",
                      compat=("tflite-gpu", "litert"), elsewhere="a phone's GPU (the TFLite GPU delegate)"),
        DeviceProfile("android-nnapi", "an Android NPU/DSP through ONNX Runtime's NNAPI EP", threads=None,
                      delegate="nnapi", compat=("onnx-nnapi", "onnxruntime"),
                      elsewhere="an Android NPU (ONNX Runtime's NNAPI EP)"),
        DeviceProfile("ios-coreml", "Apple's Neural Engine/GPU through ONNX Runtime's CoreML EP", threads=None,
                      delegate="coreml", compat=("onnx-coreml", "onnxruntime"),
                      elsewhere="Apple's Neural Engine (ONNX Runtime's CoreML EP)"),
    )
}


def profile(name: str) -> DeviceProfile:
    if name not in PROFILES:
        raise UsageError(f"unknown {option('profile')} {name!r}", hint=f"profiles: {', '.join(PROFILES)}")
    return PROFILES[name]
