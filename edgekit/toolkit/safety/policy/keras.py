"""Keras ``.keras`` (config.json in the zip) and ``.h5`` (the ``model_config`` attribute), read as JSON
before Keras sees them.

Code a config can carry: Lambda layers (marshalled Python bytecode), classes from modules outside Keras,
custom registered objects (their code is not in the file), serialised functions. ``--trust`` lifts these
(Keras then loads with ``safe_mode=False``). Layers that embed a *pickle* — ``TorchModuleWrapper``, whose
config holds a base64 ``torch.save`` of a whole ``nn.Module`` that Keras reads with
``torch.load(weights_only=False)`` — stay refused with ``--trust``: edgekit never unpickles a model.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.errors import InvalidInputError, UnsafeModelError, option
from edgekit.toolkit.safety.policy.trust import refuse_unless_trusted, summary, trusted

MAX_CONFIG_BYTES = 64 << 20  # a Keras config larger than this is refused before it is parsed
KERAS_MODULE_PREFIXES = ("keras", "keras_hub", "keras_nlp", "keras_cv", "tf_keras")
# Layers whose config embeds a pickle that Keras unpickles when safe_mode is off (keras/src/utils/torch_utils.py).
PICKLE_LAYERS = {"TorchModuleWrapper": "a torch.save pickle of a whole torch module"}


def _walk(node: Any, path: str = "config") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every mapping in a JSON document with where it sits, depth-first, without recursion limits (a
    mapping is yielded before its children are queued)."""
    stack: list[tuple[str, Any]] = [(path, node)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, Mapping):
            yield where, value
            stack.extend((f"{where}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))


def _layer_name(node: Mapping[str, Any]) -> str | None:
    config = node.get("config")
    return config.get("name") if isinstance(config, Mapping) else None


def pickle_layers(config: Any) -> list[str]:
    """Layers in a Keras config that embed a pickle (refused even with --trust)."""
    return [f"{node['class_name']} layer {_layer_name(node)!r} ({PICKLE_LAYERS[node['class_name']]})"
            for _, node in _walk(config) if node.get("class_name") in PICKLE_LAYERS]


def check_keras_config(config: Any) -> list[str]:
    """What in a Keras model config would run code when deserialised (empty: nothing)."""
    findings = []
    inside_pickle_layer: set[int] = set()  # their config's "module" is base64 pickle text, not a module name
    for where, node in _walk(config):
        class_name = node.get("class_name")
        module = node.get("module")
        registered = node.get("registered_name")
        name = _layer_name(node)
        label = f"{class_name} {name!r}" if name else str(class_name)
        if class_name in PICKLE_LAYERS:
            findings.append(f"{class_name} layer {name!r} ({PICKLE_LAYERS[class_name]})")
            if isinstance(node.get("config"), Mapping):
                inside_pickle_layer.add(id(node["config"]))
        elif id(node) in inside_pickle_layer:
            continue
        elif class_name == "Lambda":
            findings.append(f"Lambda layer {name!r} (arbitrary Python code)")
        elif class_name in ("__lambda__", "__function__", "function", "__bytes__") or "function_type" in node:
            findings.append(f"a serialised Python function at {where}")
        elif isinstance(module, str) and module and module.split(".")[0] not in KERAS_MODULE_PREFIXES:
            findings.append(f"{label} from module {module!r} (not Keras)")
        elif isinstance(registered, str) and ">" in registered:
            findings.append(f"custom object {registered!r} (its code is not in the file)")
    return list(dict.fromkeys(findings))


def _parse(text: str | bytes, path: Path, what: str) -> Any:
    try:
        return jsonio.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{path}: {what} is unreadable ({exc})", hint="save the model again with model.save") \
            from None


def read_keras_config(path: Path) -> Any:
    """config.json of a ``.keras`` zip, size-checked before it is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise InvalidInputError(f"{path}: config.json claims {info.file_size} bytes",
                                        hint="not a Keras model edgekit will parse")
            data = archive.read(info)
    except KeyError:
        raise InvalidInputError(f"{path}: no config.json in this .keras archive", hint="save it with model.save") \
            from None
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, RuntimeError) as exc:
        raise InvalidInputError(f"{path}: unreadable Keras archive ({exc})", hint="save it again with model.save") \
            from None
    return _parse(data, path, "config.json")


def read_h5_config(path: Path) -> Any | None:
    """The ``model_config`` attribute of a Keras HDF5 file (None for a weights-only file); h5py reads
    attributes without running anything."""
    from edgekit.toolkit.contract import extras

    extras.require(("h5py",), "reading a Keras .h5 file")
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except (OSError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"{path}: unreadable HDF5 file ({exc})", hint="save it again") from None
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if len(str(raw)) > MAX_CONFIG_BYTES:
        raise InvalidInputError(f"{path}: model_config holds {len(str(raw))} characters",
                                hint="not a Keras model edgekit will parse")
    return _parse(str(raw), path, "model_config")


def check_keras_file(path: Path, *, h5: bool) -> None:
    config = read_h5_config(path) if h5 else read_keras_config(path)
    if config is None:
        return
    pickles = pickle_layers(config)
    if pickles:
        raise UnsafeModelError(f"{path}: loading it would unpickle {summary(pickles)}",
                               hint=f"edgekit never unpickles a model, even with {option('trust', True)}: rebuild "
                                    "the layer in "
                                    "Keras, or export the torch module to .pt2 and convert it on its own")
    findings = check_keras_config(config)
    refuse_unless_trusted(str(path), findings, f"{path}: loading it would run code: {summary(findings)}",
                          hint=f"rebuild the model without Lambda/custom layers, or pass {option('trust', True)} if "
                               "you trust "
                               "whoever made this file")


def keras_safe_mode() -> bool:
    return not trusted()
