"""Facts about this machine and installation, gathered without importing any framework."""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BACKEND_PACKAGES = (
    "edgekit", "torch", "executorch", "tensorflow", "keras", "onnx", "onnxruntime", "onnxruntime-gpu",
    "onnxscript", "tf2onnx", "ai-edge-litert", "litert-torch", "ai-edge-quantizer", "numpy",
    "scikit-learn", "typer",
)
# ISA features that decide which fast kernels (XNNPACK, oneDNN, MLAS) a runtime can use.
ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
    "asimd", "asimddp", "asimdhp", "i8mm", "bf16", "sve", "sve2",
)


def package_versions(packages: tuple[str, ...] = BACKEND_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def usable_cpus() -> frozenset[int] | None:
    """The CPUs this process may run on, or None where the OS has no affinity API (macOS, Windows)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return frozenset(os.sched_getaffinity(0))


def usable_cpu_count() -> int:
    """How many CPUs this process may run on: its affinity mask where the OS has one, else every CPU."""
    cpus = usable_cpus()
    return len(cpus) if cpus is not None else (os.cpu_count() or 1)


def can_pin_cpus() -> bool:
    """Whether this OS lets a process read and set its CPU affinity (Linux: sched_get/setaffinity)."""
    return hasattr(os, "sched_getaffinity") and hasattr(os, "sched_setaffinity")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    logical_cores: int
    usable_cores: int
    arch: str
    isa_flags: tuple[str, ...]


def cpu_info(cpuinfo_text: str | None = None) -> CpuInfo:
    if cpuinfo_text is None:
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo_text = ""
    model, flags = "", set()
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return CpuInfo(
        model=model or platform.processor() or "unknown",
        logical_cores=os.cpu_count() or 1,
        usable_cores=usable_cpu_count(),
        arch=platform.machine(),
        isa_flags=tuple(f for f in ISA_FLAGS if f in flags),
    )


def x86_without_vnni(info: CpuInfo | None = None) -> bool:
    """An x86 CPU without VNNI: onnxruntime's u8×s8 int8 kernels there multiply-add pairs into int16
    (vpmaddubsw), which saturates on 8-bit weights; its docs prescribe 7-bit weights (reduce_range)."""
    info = info or cpu_info()
    x86 = info.arch.lower() in ("x86_64", "amd64", "i386", "i686")
    return x86 and not {"avx512_vnni", "avx_vnni"} & set(info.isa_flags)


@dataclass(frozen=True)
class CudaInfo:
    usable: bool
    devices: int = 0
    driver_version: str | None = None
    reason: str = ""
    names: tuple[str, ...] = field(default=())


def cuda_info() -> CudaInfo:
    """Ask the CUDA driver directly (libcuda), so no framework needs importing to know."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return CudaInfo(False, reason="no CUDA driver (libcuda.so.1 not found)")
    if lib.cuInit(0) != 0:
        return CudaInfo(False, reason="CUDA driver present but cuInit failed (no usable GPU)")
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return CudaInfo(False, reason="CUDA driver present but no GPU visible")
    version = ctypes.c_int(0)
    lib.cuDriverGetVersion(ctypes.byref(version))
    names = []
    for index in range(count.value):
        buf = ctypes.create_string_buffer(256)
        device = ctypes.c_int(0)
        if lib.cuDeviceGet(ctypes.byref(device), index) == 0 and lib.cuDeviceGetName(buf, 256, device) == 0:
            names.append(buf.value.decode(errors="replace"))
    driver = f"{version.value // 1000}.{(version.value % 1000) // 10}"
    return CudaInfo(True, count.value, driver, names=tuple(names))


def environment_fingerprint() -> dict[str, Any]:
    """CPU, CUDA, OS and library versions: recorded beside every artifact and report."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": asdict(cpu_info()),
        "cuda": asdict(cuda_info()),
        "versions": package_versions(),
    }
