from dataclasses import replace

from edgekit.toolkit.sysinfo import cpu_info, cuda_info, environment_fingerprint, package_versions, x86_without_vnni

X86 = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni amx_int8
"""
ARM = """processor\t: 0
Features\t: fp asimd asimddp i8mm sve
CPU implementer\t: 0x41
"""


def test_cpu_info_parses_x86_flags():
    info = cpu_info(X86)
    assert info.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert info.isa_flags == ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_int8")


def test_onnx_int8_needs_7_bit_weights_only_on_x86_without_vnni():
    vnni = replace(cpu_info(X86), arch="x86_64")
    assert not x86_without_vnni(vnni)
    assert x86_without_vnni(replace(vnni, isa_flags=("sse4_2", "avx", "avx2", "fma")))  # an AVX2 EPYC
    assert not x86_without_vnni(replace(cpu_info(ARM), arch="aarch64"))


def test_cpu_info_parses_arm_features():
    assert cpu_info(ARM).isa_flags == ("asimd", "asimddp", "i8mm", "sve")


def test_cuda_info_is_consistent():
    info = cuda_info()
    assert info.usable == (info.devices > 0)
    assert info.usable or info.reason


def test_package_versions_marks_missing_packages():
    versions = package_versions(("numpy", "edgekit-no-such-package"))
    assert versions["numpy"] and versions["edgekit-no-such-package"] is None


def test_fingerprint_has_the_fields_reports_need():
    fingerprint = environment_fingerprint()
    assert {"python", "platform", "cpu", "cuda", "versions"} <= set(fingerprint)
