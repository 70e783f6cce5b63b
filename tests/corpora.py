"""Generated corpora: malformed files across the nine formats, and malicious canaries.

Everything is built by code from the tiny valid samples (``edgekit.samples``), seeded, so a failure
reproduces. ``python tests/corpora.py DIR`` writes both corpora to DIR for manual runs or fuzzing seeds.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgekit.toolkit.contract.formats import Format

ZIP_FORMATS = (Format.TORCH_EXPORTED, Format.TORCHSCRIPT, Format.KERAS, Format.TORCH_PICKLE)
# bytes from the start, a fraction of the size, or bytes cut off the end
TRUNCATE_AT = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 256, 0.05, 0.1, 0.25, 0.33, 0.5,
               0.6, 0.66, 0.75, 0.8, 0.9, 0.95, 0.99, -1, -2, -4, -8, -16, -22, -64)
RANDOM_BODIES = 8
ZIP_DATA_FLIPS = 10
MAGIC_BYTES = 16


@dataclass(frozen=True)
class Case:
    path: Path
    kind: str  # what was done to it


def malformed_corpus(samples: dict[Format, Path], out: Path, seed: int = 0) -> list[Case]:
    """Empty, truncated, right-magic-random-body, wrong-extension and broken-zip-directory files."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    files = {fmt: path for fmt, path in samples.items() if fmt is not Format.SAVEDMODEL}
    files[Format.TORCH_PICKLE] = samples[Format.TORCH_PICKLE]
    others = list(files.values())
    for fmt, sample in files.items():
        data = sample.read_bytes()
        suffix = sample.name[sample.name.index("."):] if "." in sample.name else ""
        stem = fmt.value
        cases.append(_write(out / f"{stem}.empty{suffix}", b"", "empty"))
        for cut in TRUNCATE_AT:
            size = int(len(data) * cut) if isinstance(cut, float) else (len(data) + cut if cut < 0 else cut)
            cases.append(_write(out / f"{stem}.trunc{size}{suffix}", data[:size], f"truncated at {size}"))
        for index in range(RANDOM_BODIES):
            body = data[:MAGIC_BYTES] + rng.randbytes(max(len(data) - MAGIC_BYTES, 64) // (index + 1))
            cases.append(_write(out / f"{stem}.random{index}{suffix}", body, "right magic, random body"))
        for index, other in enumerate(o for o in others if o != sample):
            if index >= 2:
                break
            wrong = other.read_bytes()
            cases.append(_write(out / f"{stem}.wrongext{index}{suffix}", wrong[: len(wrong) // 2],
                                f"half of {other.name} under a {suffix or 'no'} extension"))
    for fmt in ZIP_FORMATS:
        sample = files[fmt]
        if not zipfile.is_zipfile(sample):
            continue
        data = sample.read_bytes()
        suffix = sample.name[sample.name.index("."):]
        eocd = data.rfind(b"PK\x05\x06")
        central = data.rfind(b"PK\x01\x02")
        variants = {
            "eocd-offset": data[:eocd + 16] + struct.pack("<I", len(data) * 3) + data[eocd + 20:],
            "eocd-count": data[:eocd + 10] + struct.pack("<H", struct.unpack_from("<H", data, eocd + 10)[0] + 1)
            + data[eocd + 12:],
            "no-central-directory": data[:central] if central > 0 else data[:-22],
            "central-garbage": data[:central] + rng.randbytes(len(data) - central) if central > 0 else data[:10],
            "local-header-garbage": data[:30] + rng.randbytes(200) + data[230:],
        }
        for name, body in variants.items():
            cases.append(_write(out / f"{fmt.value}.zip-{name}{suffix}", body, f"broken zip: {name}"))
        cases += _zip_data_flips(sample, out / f"{fmt.value}.flip", suffix, rng)
        cases += _zip_layout_variants(sample, out / f"{fmt.value}.zip", suffix)
    cases += _broken_savedmodels(samples[Format.SAVEDMODEL], out, rng)
    from crafted import crafted_malformed

    cases += crafted_malformed(samples, out / "crafted")
    return cases


def _zip_data_flips(sample: Path, stem: Path, suffix: str, rng: random.Random) -> list[Case]:
    """One byte changed inside a member's stored data: only its CRC tells (zip readers return the bytes)."""
    data = bytearray(sample.read_bytes())
    with zipfile.ZipFile(sample) as archive:
        spans = [(info.header_offset, info.compress_size, info.filename) for info in archive.infolist()
                 if info.compress_size > 0]
    cases = []
    for index in range(ZIP_DATA_FLIPS):
        offset, size, name = spans[rng.randrange(len(spans))]
        name_length, extra_length = struct.unpack_from("<HH", data, offset + 26)
        position = offset + 30 + name_length + extra_length + rng.randrange(size)
        flipped = bytearray(data)
        flipped[position] ^= 1 << rng.randrange(8)
        cases.append(_write(Path(f"{stem}{index}{suffix}"), bytes(flipped), f"one bit flipped in {name}"))
    return cases


def flag_encrypted(data: bytes) -> bytes:
    """The zip with the "encrypted" bit set in every local and central header (its bytes stay readable)."""
    body = bytearray(data)
    for signature, flag in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = 0
        while (at := body.find(signature, at)) >= 0:
            body[at + flag] |= 0x1
            at += 4
    return bytes(body)


def _zip_layout_variants(sample: Path, stem: Path, suffix: str) -> list[Case]:
    """Well-formed zips with what edgekit refuses to read: an encrypted member, a duplicated member name,
    a member beside the archive's folder (torch would read an older layout from it)."""
    import warnings

    with zipfile.ZipFile(sample) as archive:
        infos = [(info, archive.read(info)) for info in archive.infolist()]
    cases = []
    for name in ("encrypted", "duplicate", "top-level"):
        path = Path(f"{stem}-{name}{suffix}")
        with zipfile.ZipFile(path, "w") as copy, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            for info, data in infos:
                copy.writestr(info, data)
            if name == "duplicate":
                copy.writestr(infos[-1][0].filename, infos[-1][1])
            elif name == "top-level":
                copy.writestr("version", "1")
        if name == "encrypted":
            path.write_bytes(flag_encrypted(path.read_bytes()))
        if name == "top-level" and infos[0][0].filename == "metadata.json":
            path.unlink()  # a .keras zip has no folder: nothing beside it
            continue
        cases.append(Case(path, f"zip with {name} member"))
    return cases


def _broken_savedmodels(sample: Path, out: Path, rng: random.Random) -> list[Case]:
    cases = []
    pb = (sample / "saved_model.pb").read_bytes()
    for name, body in {"empty-pb": b"", "trunc-pb": pb[: len(pb) // 3], "random-pb": rng.randbytes(2048),
                       "half-pb": pb[: len(pb) // 2]}.items():
        target = out / f"savedmodel.{name}"
        shutil.copytree(sample, target)
        (target / "saved_model.pb").write_bytes(body)
        cases.append(Case(target, f"SavedModel with {name}"))
    target = out / "savedmodel.no-variables"
    shutil.copytree(sample, target)
    shutil.rmtree(target / "variables", ignore_errors=True)
    (target / "saved_model.pb").write_bytes(pb[: len(pb) - 7])
    cases.append(Case(target, "SavedModel without variables and a cut graph"))
    return cases


def _write(path: Path, data: bytes, kind: str) -> Case:
    path.write_bytes(data)
    return Case(path, kind)


# -- malicious canaries -------------------------------------------------------------------------------------


class _Reduce:
    """Pickles as a call to ``func(*args)``: what a malicious model file does."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


def canaries(out: Path, marker: Path) -> list[Case]:
    """Files that would write ``marker`` (or read outside their directory) if edgekit ran their code."""
    import builtins

    out.mkdir(parents=True, exist_ok=True)
    code = _marker_code(marker)
    cases = []
    payloads = {
        "exec": _Reduce(builtins.exec, (code,)),
        "eval": _Reduce(builtins.eval, (code,)),
        "system": _Reduce(os.system, (f"touch {marker}",)),
    }
    for name, payload in payloads.items():
        for protocol in (0, 2, 4, 5):
            path = out / f"pickle-{name}-p{protocol}.pt"
            path.write_bytes(pickle.dumps({"weight": [1.0], "evil": payload}, protocol=protocol))
            cases.append(Case(path, f"bare pickle protocol {protocol} calling {name}"))
    for name in ("exec", "system"):
        path = out / f"torchzip-{name}.pt"
        with zipfile.ZipFile(path, "w") as archive:  # torch.save's layout, with a malicious data.pkl
            archive.writestr("archive/data.pkl", pickle.dumps(payloads[name], protocol=2))
            archive.writestr("archive/version", "3\n")
            archive.writestr("archive/byteorder", "little")
        cases.append(Case(path, f"torch zip whose data.pkl calls {name}"))
    cases += _keras_canaries(out, marker)
    return cases


def _keras_config(layer: dict) -> dict:
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 4], "dtype": "float32",
                                                                          "name": "input"}, "registered_name": None},
        layer]}, "registered_name": None, "build_config": {"input_shape": [None, 4]}}


def _write_keras(path: Path, config: dict) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.0", "date_saved": "2026-01-01"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"")


def _keras_canaries(out: Path, marker: Path) -> list[Case]:
    import base64
    import marshal

    def evil(x):
        open(str(marker), "w").write("pwned")
        return x

    bytecode = base64.b64encode(marshal.dumps(evil.__code__)).decode()
    lambda_layer = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                    "config": {"name": "evil", "function": {"class_name": "__lambda__",
                                                            "config": {"code": bytecode, "defaults": None,
                                                                       "closure": None}}}}
    crafted = {
        "lambda": lambda_layer,
        "module-os": {"module": "os", "class_name": "system", "registered_name": None,
                      "config": {"name": "evil", "command": f"touch {marker}"}},
        "module-builtins": {"module": "builtins", "class_name": "exec", "registered_name": None,
                            "config": {"name": "evil", "source": _marker_code(marker)}},
        "custom-object": {"module": None, "class_name": "Evil", "registered_name": "Custom>Evil",
                          "config": {"name": "evil"}},
        "lambda-activation": {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
                              "config": {"name": "dense", "units": 2, "activation": {
                                  "class_name": "__lambda__", "config": {"code": bytecode}}}},
    }
    cases = []
    for name, layer in crafted.items():
        path = out / f"keras-{name}.keras"
        _write_keras(path, _keras_config(layer))
        cases.append(Case(path, f"Keras config with {name}"))
    cases += _h5_canaries(out, {"lambda": lambda_layer, "module-os": crafted["module-os"]})
    return cases


def _h5_canaries(out: Path, layers: dict) -> list[Case]:
    import h5py

    cases = []
    for name, layer in layers.items():
        path = out / f"h5-{name}.h5"
        with h5py.File(path, "w") as handle:
            handle.attrs["model_config"] = json.dumps(_keras_config(layer))
            handle.attrs["keras_version"] = "3.15.0"
            handle.attrs["backend"] = "tensorflow"
            handle.create_group("model_weights")
        cases.append(Case(path, f"Keras HDF5 with {name}"))
    return cases


def external_tensor(name: str, **entries: str):
    """A 4-float ONNX initializer whose bytes live in external data described by ``entries``
    (location, offset, length)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    tensor = numpy_helper.from_array(np.zeros(4, dtype=np.float32), name)
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in entries.items():
        tensor.external_data.append(onnx.StringStringEntryProto(key=key, value=value))
    return tensor


def onnx_escapes(out: Path, outside: Path) -> list[Case]:
    """ONNX models whose external data points out of their directory: '..', an absolute path, a symlink
    and a hardlink to ``outside`` (a file in another directory)."""
    import onnx
    from onnx import helper

    cases = []
    size = outside.stat().st_size
    variants = {"dotdot": os.path.relpath(outside, out / "dotdot"), "absolute": str(outside),
                "symlink": "weights.bin", "hardlink": "weights.bin"}
    for name, location in variants.items():
        directory = out / name
        directory.mkdir(parents=True, exist_ok=True)
        if name == "symlink":
            (directory / "weights.bin").symlink_to(outside)
        elif name == "hardlink":
            os.link(outside, directory / "weights.bin")
        tensor = external_tensor("w", location=location, offset="0", length=str(min(16, size)))
        graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
                                  [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])], [tensor])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        path = directory / "model.onnx"
        path.write_bytes(model.SerializeToString())
        cases.append(Case(path, f"ONNX external data via {name}"))
    return cases


def onnx_past_end(out: Path) -> Case:
    """External data whose byte range lies past the end of its (inside) file: corrupt, exit 3."""
    import onnx
    from onnx import helper

    out.mkdir(parents=True, exist_ok=True)
    (out / "weights.bin").write_bytes(b"\0" * 8)
    tensor = external_tensor("w", location="weights.bin", offset="1024", length="16")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])], [tensor])
    path = out / "model.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return Case(path, "ONNX external data past the end of its file")


if __name__ == "__main__":
    from edgekit.samples import WRITERS, write_sample

    root = Path(sys.argv[1])
    (root / "samples").mkdir(parents=True, exist_ok=True)
    written = {fmt: write_sample(fmt, root / "samples") for fmt in WRITERS}
    print(len(malformed_corpus(written, root / "malformed")), "malformed")
    print(len(canaries(root / "canaries", root / "MARKER")), "canaries")
