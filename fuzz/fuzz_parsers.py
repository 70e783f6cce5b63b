"""Coverage-guided fuzzing (atheris) of what edgekit parses from untrusted bytes before any framework:
the format sniffer, the sidecar reader, the check config and baseline readers, the ONNX external-data
containment check and the walk over every tensor of a parsed ONNX model (functions, attributes,
subgraphs), the pickle scanner, the .pt2 program checks, the TorchScript source reader, bundle
member names, the worker-reply decoder, the bundle zip layout check and compat's .tflite reader.

    pip install -e '.[fuzz]'
    python fuzz/fuzz_parsers.py -atheris_runs=200000          # all targets, chosen per input
    python fuzz/fuzz_parsers.py -atheris_runs=50000 corpus/   # with a seed corpus directory

A finding is any exception other than edgekit's own error types (which become one-line errors with an
exit code), an external-data path accepted although it resolves outside the model's directory, a
bundle member name accepted although it climbs out, names a drive, or holds a backslash, or a bundle zip
accepted although a streaming reader would find its members elsewhere than its directory says.
``check_one(data)`` is also driven without atheris by tests/test_fuzz_targets.py.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import tomllib
from pathlib import Path

from edgekit.toolkit.contract.errors import EdgekitError

_ROOT = Path(tempfile.mkdtemp(prefix="edgekit-fuzz-"))
_MODEL_DIR = _ROOT / "model"
_MODEL_DIR.mkdir()
(_MODEL_DIR / "weights.bin").write_bytes(b"\0" * 64)
(_MODEL_DIR / "sub").mkdir()
(_MODEL_DIR / "sub" / "w.bin").write_bytes(b"\0" * 16)
(_ROOT / "outside.bin").write_bytes(b"\0" * 64)
(_MODEL_DIR / "escape.bin").symlink_to(_ROOT / "outside.bin")
_SNIFF_FILE = _ROOT / "input.bin"
_ARTIFACT = _ROOT / "artifact.tflite"
_ARTIFACT.write_bytes(b"x")


def sniff_target(data: bytes) -> None:
    from edgekit.toolkit.contract.formats import sniff

    _SNIFF_FILE.write_bytes(data)
    try:
        sniff(_SNIFF_FILE)
    except EdgekitError:
        pass


def sidecar_target(data: bytes) -> None:
    from edgekit.toolkit.contract.artifact import read_sidecar
    from edgekit.toolkit.contract.artifact_paths import sidecar_path

    sidecar_path(_ARTIFACT).write_bytes(data)
    try:
        read_sidecar(_ARTIFACT)
    except EdgekitError:
        pass


def config_target(data: bytes) -> None:
    from edgekit.pipeline.gate import parse_config

    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return
    try:
        parse_config(document, _ROOT / "edgekit.toml")
    except EdgekitError:
        pass


def baseline_target(data: bytes) -> None:
    from edgekit.pipeline.gate import load_baseline

    path = _ROOT / "baseline.json"
    path.write_bytes(data)
    try:
        load_baseline(path)
    except EdgekitError:
        pass


def external_data_target(data: bytes) -> None:
    from edgekit.toolkit.safety.policy import check_external_data, external_refs

    try:
        entries = json.loads(data.decode("utf-8", errors="replace"))
    except ValueError:
        entries = [["w", [["location", data.decode("latin-1")], ["offset", "0"]]]]
    if not isinstance(entries, list):
        return
    pairs = []
    for item in entries[:8]:
        if isinstance(item, list) and len(item) == 2 and isinstance(item[1], list):
            kv = [(str(p[0]), str(p[1])) for p in item[1] if isinstance(p, list) and len(p) == 2]
            pairs.append((str(item[0]), kv))
    try:
        refs = external_refs(pairs)
        check_external_data(_MODEL_DIR, refs, trust=False)
    except EdgekitError:
        return
    root = Path(os.path.realpath(_MODEL_DIR))
    for ref in refs:  # accepted: it must really be a file inside the model's directory, range included
        resolved = Path(os.path.realpath(_MODEL_DIR / ref.location))
        assert root in resolved.parents, f"accepted {ref.location!r} → {resolved}"
        assert resolved.is_file() and (ref.offset or 0) + (ref.length or 0) <= resolved.stat().st_size


def pickle_target(data: bytes) -> None:
    from edgekit.toolkit.safety.pickles import scan_pickle_bytes

    try:
        scan_pickle_bytes(data, origin="fuzz", max_pickles=5)
    except EdgekitError:
        pass


def program_target(data: bytes) -> None:
    from edgekit.toolkit import jsonio
    from edgekit.toolkit.safety.policy.exported import expression_refusal, guard_refusal, program_findings

    text = data.decode("utf-8", errors="replace")
    expression_refusal(text)
    guard_refusal(text)
    try:
        program_findings(jsonio.loads(text))
    except (EdgekitError, ValueError):
        pass


def torchscript_target(data: bytes) -> None:
    from edgekit.toolkit.safety.policy.torchscript import code_findings

    try:
        code_findings("code/__torch__.py", data.decode("utf-8", errors="replace"), set())
    except EdgekitError:
        pass


def onnx_walk_target(data: bytes) -> None:
    """Any bytes protobuf parses as a ModelProto: every tensor the walk yields is a TensorProto."""
    import onnx

    from edgekit.toolkit.safety.policy.onnx import _onnx_tensors

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # protobuf's DecodeError: not a model, nothing to walk
        return
    for tensor in _onnx_tensors(model):
        assert isinstance(tensor, onnx.TensorProto)


def bundle_names_target(data: bytes) -> None:
    from edgekit.packaging.names import member_name_collision, member_name_problem

    names = data.decode("utf-8", errors="replace").split("\n")[:16]
    for name in names:
        if member_name_problem(name) is None:  # accepted: it must stay inside the bundle on every extractor
            parts = name.replace("\\", "/").split("/")
            assert "\\" not in name and ".." not in parts and not name.startswith("/") and ":" not in name, name
    member_name_collision(names)


def reply_target(data: bytes) -> None:
    """What a hostile worker writes: the parent reads it as data (``replies.decode``) or refuses it
    (``ReplyError``); no pickle, nothing imported beyond the listed edgekit types."""
    from edgekit.toolkit.safety.replies import ReplyError, decode

    try:
        decode(data)
    except ReplyError:
        pass


def bundle_zip_target(data: bytes) -> None:
    """The bundle layout check is total, and a zip it accepts reads the same through its directory and by
    streaming its local headers: every member, in order, is where the directory says."""
    import io
    import struct
    import zipfile

    from edgekit.packaging.zipcheck import zip_layout_problem

    if zip_layout_problem(data) is not None:
        return
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, NotImplementedError, EOFError, OSError):
        return  # accepted layout, but a directory zipfile will not read (an unsupported feature): no member runs
    at = 0
    for info in infos:  # a streaming reader's walk: local header after local header
        assert info.header_offset == at, (info.filename, info.header_offset, at)
        name_length, extra_length = struct.unpack_from("<HH", data, at + 26)
        at += 30 + name_length + extra_length + info.compress_size


def flatbuffer_target(data: bytes) -> None:
    """compat's .tflite reader: a FlatModel or exit 3, within its budget, whatever the bytes."""
    from edgekit.targets.compat.tflite import parse_flatbuffer

    try:
        parse_flatbuffer(data, origin="fuzz.tflite")
    except EdgekitError:
        pass


TARGETS = (sniff_target, sidecar_target, config_target, baseline_target, external_data_target, pickle_target,
           program_target, torchscript_target, onnx_walk_target, bundle_names_target, reply_target,
           bundle_zip_target, flatbuffer_target)


def check_one(data: bytes) -> None:
    """One input: the first byte picks the target, the rest is its input."""
    if not data:
        return
    TARGETS[data[0] % len(TARGETS)](data[1:])


def main() -> None:
    import atheris

    with atheris.instrument_imports():
        import edgekit.packaging.names
        import edgekit.pipeline.gate
        import edgekit.toolkit.contract.artifact
        import edgekit.toolkit.contract.formats
        import edgekit.toolkit.safety.pickles
        import edgekit.toolkit.safety.policy
        import edgekit.toolkit.safety.policy.exported
        import edgekit.toolkit.safety.policy.torchscript  # noqa: F401
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
