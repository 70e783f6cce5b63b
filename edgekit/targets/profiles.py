"""Device profiles: what a deployment target allows, applied to a benchmark with ``--target`` (``profile=``).

A profile sets the thread count and the device; an explicitly given device wins over the profile's
(``edgekit bench --target cuda --device cpu`` benches on CPU, and the report says so)."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.toolkit.contract.errors import UsageError, option
from edgekit.toolkit.contract.options import Device, QuantMode
from edgekit.toolkit.sysinfo import usable_cpu_count

ANY_PRECISION = tuple(QuantMode)


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    threads: int | None
    device: Device = Device.CPU
    delegate: str = "xnnpack"
    precisions: tuple[QuantMode, ...] = ANY_PRECISION

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
        DeviceProfile("mobile-cpu-1t", "a phone's big core: 1 thread, XNNPACK", threads=1),
        DeviceProfile("mobile-cpu-4t", "a phone's performance cluster: 4 threads, XNNPACK", threads=4),
        DeviceProfile("desktop-cpu", "every usable core of this machine", threads=usable_cpu_count()),
        DeviceProfile("mcu-int8", "integer-only accelerators and MCUs: 1 thread, int8 models only", threads=1,
                      precisions=(QuantMode.INT8, QuantMode.INT8_IO)),
        DeviceProfile("cuda", "an NVIDIA GPU (TorchScript, torch.export, ONNX Runtime CUDA EP)", threads=None,
                      device=Device.CUDA, delegate="cuda"),
    )
}


def profile(name: str) -> DeviceProfile:
    if name not in PROFILES:
        raise UsageError(f"unknown {option('profile')} {name!r}", hint=f"profiles: {', '.join(PROFILES)}")
    return PROFILES[name]
