import importlib

import pytest

from edgekit.toolkit.contract.errors import MissingDependencyError, UsageError
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.registry import (
    RUNTIMES,
    ConverterSpec,
    Registry,
    RuntimeSpec,
    missing_modules,
    runtime_for,
)


def test_registry_rejects_duplicates():
    spec = RuntimeSpec(Format.ONNX, "edgekit.targets.ort:OnnxRuntime", ("onnxruntime",))
    registry = Registry("runtime", [spec])
    with pytest.raises(ValueError, match="duplicate runtime registration"):
        registry.register(spec)
    converter = ConverterSpec(Format.KERAS, Format.TFLITE, "tflite", "x:Y", ("tensorflow",))
    converters = Registry("converter", [converter])
    with pytest.raises(ValueError, match="duplicate converter"):
        converters.register(converter)


def test_missing_modules_checks_without_importing():
    assert missing_modules(["json", "edgekit_no_such_module_xyz"]) == ["edgekit_no_such_module_xyz"]


def test_missing_dependency_error_names_the_install():
    spec = RuntimeSpec(Format.ONNX, "nowhere:Nothing", ("edgekit_no_such_module_xyz",))
    with pytest.raises(MissingDependencyError) as excinfo:
        spec.load()
    assert "edgekit_no_such_module_xyz" in excinfo.value.one_line()
    assert "pip install" in excinfo.value.one_line()


def test_runtime_for_unknown_format_lists_supported():
    with pytest.raises(UsageError) as excinfo:
        runtime_for(Format.TORCH_PICKLE)
    assert "supported formats: tflite, onnx" in excinfo.value.one_line()


def test_every_registered_format_has_a_runtime_except_pickles_and_modules():
    registered = {spec.format for spec in RUNTIMES}
    assert registered == set(Format) - {Format.TORCH_PICKLE, Format.TORCH_MODULE}


@pytest.mark.parametrize("spec", list(RUNTIMES), ids=lambda s: s.format.value)
def test_each_runtime_impl_resolves_to_a_class_for_its_format(spec):
    module_name, _, attr = spec.impl.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    assert cls.format is spec.format
    assert set(cls.devices) == set(spec.devices)

