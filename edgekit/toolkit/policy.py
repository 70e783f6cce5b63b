"""The loading policy: models are programs. Before any framework sees a file, its code-bearing parts are
found from its bytes and refused (exit 4) unless the user vouches for it with ``--trust``.

- Keras ``.keras`` (config.json in the zip) and ``.h5`` (the ``model_config`` attribute): Lambda layers
  (marshalled Python bytecode), classes from modules outside Keras, custom registered objects, and
  serialised functions are code. With ``--trust`` Keras loads with ``safe_mode=False``.
- ONNX external data: every location must be a relative path inside the model's directory, reached
  without ``..``, absolute paths, symlinks or hardlinks leading out, and ``offset + length`` must lie
  within the file. ``--trust`` lifts the containment rules; a range past the end of the file is
  corrupt data and is refused even then (exit 3).
- Pickles: see ``edgekit.toolkit.pickles``; ``torch.load`` runs with ``weights_only=True`` always, so
  ``--trust`` never makes edgekit unpickle a whole model.

The checks are pure functions over parsed data (``check_keras_config``, ``check_external_data``) so the
fuzz harness can drive them without files or frameworks.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from edgekit.toolkit.errors import InvalidInputError, UnsafeModelError

TRUST_ENV = "EDGEKIT_TRUST"
MAX_CONFIG_BYTES = 64 << 20  # a Keras config larger than this is refused before it is parsed
KERAS_MODULE_PREFIXES = ("keras", "keras_hub", "keras_nlp", "keras_cv", "tf_keras")


def trusted() -> bool:
    """True when the user passed ``--trust`` (exported to child processes through the environment)."""
    return os.environ.get(TRUST_ENV, "").strip() not in ("", "0")


def set_trusted(value: bool) -> None:
    if value:
        os.environ[TRUST_ENV] = "1"
    else:
        os.environ.pop(TRUST_ENV, None)


# -- Keras -------------------------------------------------------------------------------------------------


def _walk(node: Any, path: str = "config") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every mapping in a JSON document with where it sits, depth-first, without recursion limits."""
    stack: list[tuple[str, Any]] = [(path, node)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, Mapping):
            yield where, value
            stack.extend((f"{where}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))


def check_keras_config(config: Any) -> list[str]:
    """What in a Keras model config would run code when deserialised (empty: nothing)."""
    findings = []
    for where, node in _walk(config):
        class_name = node.get("class_name")
        module = node.get("module")
        registered = node.get("registered_name")
        name = node.get("config", {}).get("name") if isinstance(node.get("config"), Mapping) else None
        label = f"{class_name} {name!r}" if name else str(class_name)
        if class_name == "Lambda":
            findings.append(f"Lambda layer {name!r} (arbitrary Python code)")
        elif class_name in ("__lambda__", "__function__", "function", "__bytes__") or "function_type" in node:
            findings.append(f"a serialised Python function at {where}")
        elif isinstance(module, str) and module and module.split(".")[0] not in KERAS_MODULE_PREFIXES:
            findings.append(f"{label} from module {module!r} (not Keras)")
        elif isinstance(registered, str) and ">" in registered:
            findings.append(f"custom object {registered!r} (its code is not in the file)")
    return list(dict.fromkeys(findings))


def read_keras_config(path: Path) -> Any:
    """config.json of a ``.keras`` zip, size-checked before it is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise InvalidInputError(f"{path}: config.json claims {info.file_size} bytes",
                                        hint="not a Keras model edgekit will parse")
            return json.loads(archive.read(info))
    except KeyError:
        raise InvalidInputError(f"{path}: no config.json in this .keras archive", hint="save it with model.save") \
            from None
    except (zipfile.BadZipFile, ValueError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise InvalidInputError(f"{path}: unreadable Keras archive ({exc})", hint="save it again with model.save") \
            from None


def read_h5_config(path: Path) -> Any | None:
    """The ``model_config`` attribute of a Keras HDF5 file (None for a weights-only file); h5py reads
    attributes without running anything."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: unreadable HDF5 file ({exc})", hint="save it again") from None
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(str(raw))
    except ValueError as exc:
        raise InvalidInputError(f"{path}: model_config is not JSON ({exc})", hint="save it again") from None


def check_keras_file(path: Path, *, h5: bool) -> None:
    config = read_h5_config(path) if h5 else read_keras_config(path)
    findings = check_keras_config(config) if config is not None else []
    if findings and not trusted():
        shown = "; ".join(findings[:3]) + (f"; and {len(findings) - 3} more" if len(findings) > 3 else "")
        raise UnsafeModelError(f"{path}: loading it would run code: {shown}",
                               hint="rebuild the model without Lambda/custom layers, or pass --trust if you "
                                    "trust whoever made this file")


def keras_safe_mode() -> bool:
    return not trusted()


# -- ONNX external data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExternalRef:
    tensor: str
    location: str
    offset: int | None = None
    length: int | None = None


def external_refs(entries: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> list[ExternalRef]:
    """(tensor name, [(key, value), …]) as stored in TensorProto.external_data → references; malformed
    numbers are corrupt data (exit 3)."""
    refs = []
    for tensor, pairs in entries:
        values = dict(pairs)
        numbers = {}
        for key in ("offset", "length"):
            text = values.get(key)
            if text in (None, ""):
                numbers[key] = None
                continue
            try:
                numbers[key] = int(text)
            except ValueError:
                raise InvalidInputError(f"tensor {tensor!r}: external data {key} {text!r} is not an integer",
                                        hint="the model file is corrupt; export it again") from None
            if numbers[key] < 0:
                raise InvalidInputError(f"tensor {tensor!r}: external data {key} {text} is negative",
                                        hint="the model file is corrupt; export it again")
        refs.append(ExternalRef(tensor, values.get("location", ""), numbers["offset"], numbers["length"]))
    return refs


def check_external_data(model_dir: Path, refs: Sequence[ExternalRef], *, trust: bool | None = None) -> None:
    """Every external data file inside ``model_dir`` and every byte range inside its file."""
    trust = trusted() if trust is None else trust
    root = Path(os.path.realpath(model_dir))
    for ref in refs:
        location = ref.location
        where = f"tensor {ref.tensor!r}: external data {location!r}"
        if not location or "\x00" in location:
            raise InvalidInputError(f"{where}: empty or invalid location", hint="the model file is corrupt")
        if not trust:
            pure = PurePosixPath(location)
            if pure.is_absolute() or PureWindowsPath(location).is_absolute() or PureWindowsPath(location).drive:
                raise UnsafeModelError(f"{where} is an absolute path, outside the model's directory",
                                       hint="keep external data beside the model (or pass --trust)")
            if ".." in pure.parts or ".." in PureWindowsPath(location).parts:
                raise UnsafeModelError(f"{where} climbs out of the model's directory with '..'",
                                       hint="keep external data beside the model (or pass --trust)")
        target = root / location
        try:
            resolved = Path(os.path.realpath(target))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{where}: cannot resolve ({exc})") from None
        if not trust and resolved != root and root not in resolved.parents:
            raise UnsafeModelError(f"{where} resolves to {resolved}, outside the model's directory (symlink)",
                                   hint="copy the data beside the model (or pass --trust)")
        try:
            info = resolved.stat()
        except OSError:
            raise InvalidInputError(f"{where}: file not found beside the model", hint="copy the data file with it") \
                from None
        if not resolved.is_file():
            raise InvalidInputError(f"{where}: not a regular file")
        if not trust and info.st_nlink > 1:
            raise UnsafeModelError(f"{where} is a hardlink ({info.st_nlink} names): it may be a file from "
                                   "elsewhere", hint="copy the data beside the model (or pass --trust)")
        end = (ref.offset or 0) + (ref.length if ref.length is not None else 0)
        if (ref.offset or 0) > info.st_size or end > info.st_size:
            raise InvalidInputError(f"{where}: bytes {ref.offset or 0}–{end} lie past the end of the "
                                    f"{info.st_size}-byte file", hint="the data file is truncated or not this "
                                                                      "model's")


def check_onnx_file(path: Path) -> None:
    """Parse the graph without loading external data and check every external reference."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf decode errors have many types
        raise InvalidInputError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})",
                                hint="export it again") from None
    entries = [(t.name, [(e.key, e.value) for e in t.external_data]) for t in _onnx_tensors(model)
               if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data)]
    if entries:
        check_external_data(path.parent, external_refs(entries))


def _onnx_tensors(model: Any) -> Iterator[Any]:
    """Initializers, sparse initializers and tensor attributes of every graph, subgraphs included."""
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
