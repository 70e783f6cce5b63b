"""``edgekit package --verify``: the checks of the package documentation, in its order."""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.packaging.layout import (
    BUNDLE_VERSION,
    FLOAT_ATOL,
    FLOAT_RTOL,
    INT_ATOL,
    MANIFEST,
    MAX_MEMBER_BYTES,
    REPACKAGE_HINT,
    SIGNATURE_MEMBER,
    npz_key,
    packageable,
    sha256_hex,
)
from edgekit.packaging.names import extra_field_problem, member_name_collision, member_name_problem
from edgekit.packaging.signing import load_public_key, signature_check
from edgekit.packaging.zipcheck import file_layout_problem
from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.errors import (
    EdgekitError,
    InvalidInputError,
    UnsafeModelError,
    first_line,
)
from edgekit.toolkit.contract.formats import Sniffed, open_zip_names, sniff
from edgekit.toolkit.contract.iospec import IOSpec
from edgekit.toolkit.fsutil import scratch_directory


@dataclass(frozen=True)
class VerifyResult:
    bundle: Path
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (name, passed, detail)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    def failures(self) -> list[str]:
        return [f"{name}: {detail}" for name, ok, detail in self.checks if not ok]


def verify(bundle: str | os.PathLike[str], *, public_key: str | os.PathLike[str] | None = None) -> VerifyResult:
    """The checks of the module doc, in its order. ``public_key`` (Ed25519, PEM or OpenSSH): require a valid
    signature by that key. A bundle that cannot be read safely, or whose model member holds another format
    than model.json declares, raises InvalidInputError (exit 3), or UnsafeModelError (exit 4) when that format
    is not a bundleable one, instead of yielding checks."""
    bundle = Path(bundle)
    key = load_public_key(public_key) if public_key is not None else None  # a bad key fails before any work
    result = VerifyResult(bundle)
    members = _read_bundle(bundle)
    manifest_bytes = members.pop(MANIFEST)
    signature_bytes = members.pop(SIGNATURE_MEMBER, None)
    manifest = _parse_manifest(bundle, manifest_bytes)
    recorded, model_entry = manifest["files"], manifest["model"]
    for member, digest in sorted(recorded.items()):
        if member not in members:
            result.checks.append((f"file {member}", False, "listed in model.json but missing from the bundle"))
        else:
            actual = sha256_hex(members[member])
            result.checks.append((f"sha256 {member}", actual == digest,
                                  "matches model.json" if actual == digest else
                                  f"{actual[:16]}… ≠ {str(digest)[:16]}… in model.json: the file was swapped or "
                                  "modified"))
    for extra in sorted(set(members) - set(recorded)):
        result.checks.append((f"file {extra}", False, "not listed in model.json (added after packaging)"))
    signature = signature_check(manifest_bytes, signature_bytes, key, public_key)
    result.checks.append(signature)
    model_file = model_entry.get("file")
    if not isinstance(model_file, str) or model_file not in members:
        result.checks.append(("model", False, f"model.json's model.file {model_file!r} is not in the bundle"))
        return result
    if model_entry.get("sha256") != recorded.get(model_file):
        result.checks.append(("model sha256", False, "model.json's model.sha256 and files disagree"))
    with scratch_directory("edgekit-verify-") as scratch:
        path = scratch / model_file.rsplit("/", 1)[-1]  # a checked member name: its last part is a plain name
        path.write_bytes(members[model_file])
        sniffed = _check_model_member(bundle, model_file, model_entry.get("format"), path)
        if not signature[1]:
            result.checks.append(("goldens", False, "not re-run: the model of a bundle whose signature does not "
                                  "hold is not loaded"))
        elif "golden/inputs.npz" not in members or "golden/outputs.npz" not in members:
            result.checks.append(("goldens", False, "golden/inputs.npz or golden/outputs.npz is missing"))
        else:
            try:
                result.checks.extend(_rerun_goldens(manifest, members, path, sniffed))
            except Exception as exc:  # a swapped model may not even take the golden inputs
                detail = exc.one_line() if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {first_line(exc)}"
                result.checks.append(("goldens", False, f"the model does not run on its goldens: {detail}"))
    return result


def _parse_manifest(bundle: Path, data: bytes) -> dict[str, Any]:
    try:
        manifest = jsonio.loads(data)
    except ValueError as exc:
        raise InvalidInputError(f"{bundle}: model.json is not JSON ({first_line(exc)})", hint=REPACKAGE_HINT) from None
    if not isinstance(manifest, dict):
        raise InvalidInputError(f"{bundle}: model.json is not a JSON object", hint=REPACKAGE_HINT)
    missing = next((key for key in ("edgekit_bundle", "model", "files") if key not in manifest), None)
    if missing is not None:
        raise InvalidInputError(f"{bundle}: model.json lacks '{missing}'", hint=REPACKAGE_HINT)
    if not isinstance(manifest["model"], dict) or not isinstance(manifest["files"], dict):
        raise InvalidInputError(f"{bundle}: model.json's 'model' and 'files' must be objects", hint=REPACKAGE_HINT)
    version = manifest["edgekit_bundle"]
    if type(version) is not int or version != BUNDLE_VERSION:
        raise InvalidInputError(f"{bundle}: bundle version {version!r}, this edgekit reads {BUNDLE_VERSION}")
    return manifest


def _read_bundle(bundle: Path) -> dict[str, bytes]:
    """Every file member's bytes, after the zip and its names passed the checks of the module doc (1.)."""
    if not bundle.is_file():
        what = "not a file" if bundle.exists() else "no such file"
        raise InvalidInputError(f"{bundle}: {what}", hint="give the .zip written by edgekit package")
    errors = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
              RuntimeError, zlib.error)
    try:
        with zipfile.ZipFile(bundle) as archive:
            infos = archive.infolist()
    except errors as exc:
        raise InvalidInputError(f"{bundle}: not a readable zip ({first_line(exc)})",
                                hint="package the model again") from None
    for info in infos:  # what the directory declares, before anything is decompressed
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise InvalidInputError(f"{bundle}: member {info.orig_filename!r} is a symbolic link", hint=REPACKAGE_HINT)
        if info.file_size > MAX_MEMBER_BYTES:
            raise InvalidInputError(f"{bundle}: member {info.orig_filename!r} claims {info.file_size} bytes "
                                    f"(at most {MAX_MEMBER_BYTES})", hint=REPACKAGE_HINT)
    _check_layout(bundle)
    try:
        open_zip_names(bundle)  # directory, offsets, CRCs, encryption, duplicates
    except InvalidInputError as exc:
        raise InvalidInputError(exc.message, hint=REPACKAGE_HINT) from None
    names = [info.orig_filename for info in infos]  # as stored: zipfile's .filename stops at a NUL
    for info in infos:
        problem = member_name_problem(info.orig_filename) or extra_field_problem(info.extra)
        if problem is not None:
            raise InvalidInputError(f"{bundle}: member {info.orig_filename!r} {problem}", hint=REPACKAGE_HINT)
    collision = member_name_collision(names)
    if collision is not None:
        raise InvalidInputError(f"{bundle}: member {collision[0]!r} {collision[1]}", hint=REPACKAGE_HINT)
    try:
        with zipfile.ZipFile(bundle) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
    except errors as exc:
        raise InvalidInputError(f"{bundle}: not a readable zip ({first_line(exc)})",
                                hint="package the model again") from None
    if MANIFEST not in members:
        raise InvalidInputError(f"{bundle}: no model.json: not an edgekit bundle",
                                hint="package it with edgekit package")
    return members


def _check_layout(bundle: Path) -> None:
    """Local headers exactly the central directory's, nothing between, before or after them
    (``zipcheck``): a streaming reader (Java's ZipInputStream) then sees the members ``zipfile`` checks."""
    try:
        problem = file_layout_problem(bundle)
    except (OSError, ValueError) as exc:  # ValueError: an empty file cannot be mapped
        raise InvalidInputError(f"{bundle}: not a readable zip ({first_line(exc)})",
                                hint="package the model again") from None
    if problem is not None:
        raise InvalidInputError(f"{bundle}: {problem}", hint=REPACKAGE_HINT)


def _check_model_member(bundle: Path, model_file: str, declared: Any, path: Path) -> Sniffed:
    """The model member's bytes (written to ``path``) against model.json, before anything loads them."""
    try:
        sniffed = sniff(path)
    except InvalidInputError as exc:
        detail = exc.message.replace(str(path), model_file)
        raise InvalidInputError(f"{bundle}: {detail}", hint=REPACKAGE_HINT) from None
    fmt = sniffed.format
    described = fmt.spec.label
    if fmt not in packageable():
        by_name = next((f for f, member in packageable().items() if member == model_file), None)
        expected = next((f for f in packageable() if f.value == declared), by_name)
        wanted = expected.spec.label if expected else "a " + ", ".join(f.value for f in packageable()) + " model"
        raise UnsafeModelError(f"{bundle}: {model_file} holds {described}, not {wanted}; refusing to load it",
                               hint="do not use this bundle: package the model again from its source")
    if declared != fmt.value:
        raise InvalidInputError(f"{bundle}: {model_file} holds {described}, but model.json declares "
                                f"model.format {declared!r}", hint=REPACKAGE_HINT)
    if model_file != packageable()[fmt]:
        raise InvalidInputError(f"{bundle}: model.json names the model {model_file!r}; a {fmt.value} bundle holds "
                                f"it as {packageable()[fmt]!r}", hint=REPACKAGE_HINT)
    return sniffed


def _rerun_goldens(manifest: dict[str, Any], members: dict[str, bytes], path: Path,
                   sniffed: Sniffed) -> list[tuple[str, bool, str]]:
    from edgekit.targets import open_runtime

    checks = []
    spec = IOSpec.from_dict(manifest["io"])
    with np.load(io.BytesIO(members["golden/inputs.npz"]), allow_pickle=False) as archive:
        inputs = {ts.name: archive[npz_key(ts.name)] for ts in spec.inputs}
    with np.load(io.BytesIO(members["golden/outputs.npz"]), allow_pickle=False) as archive:
        expected = {ts.name: archive[npz_key(ts.name)] for ts in spec.outputs}
    samples = len(next(iter(inputs.values()))) if inputs else 0
    if not spec.outputs or samples == 0:  # nothing to compare would pass every golden vacuously
        return [("goldens", False, "model.json lists no golden inputs, outputs or samples to compare")]
    with open_runtime(path, io_hint=spec, sniffed=sniffed) as runtime:
        runs = [runtime.run({n: v[i] for n, v in inputs.items()}) for i in range(samples)]
    for ts in spec.outputs:
        got = np.stack([np.asarray(run[ts.name]) for run in runs]) if runs else np.empty((0,))
        want = expected[ts.name]
        if got.shape != want.shape:
            checks.append((f"golden {ts.name}", False, f"shape {list(got.shape)} ≠ golden {list(want.shape)}"))
            continue
        if np.dtype(want.dtype).kind in "iu":
            diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
            ok = bool((diff <= INT_ATOL).all())
            detail = f"max |Δ| {int(diff.max()) if diff.size else 0} step(s), allowed {INT_ATOL}"
        else:
            g, w = got.astype(np.float64), want.astype(np.float64)
            diff = np.abs(g - w)
            ok = bool(np.all(diff <= FLOAT_ATOL + FLOAT_RTOL * np.abs(w)))
            detail = f"max |Δ| {float(diff.max()) if diff.size else 0.0:.3g} (atol {FLOAT_ATOL}, rtol {FLOAT_RTOL})"
        checks.append((f"golden {ts.name} ({samples} samples)", ok, detail))
    return checks
