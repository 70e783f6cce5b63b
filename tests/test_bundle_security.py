"""Bundles under attack: member names extractors read differently, a model member of another format than
model.json declares, regenerated (consistent but forged) bundles, and Ed25519 signing that catches them.

Every attack bundle starts from a genuine one made by `edgekit package` and is rewritten with zipfile,
with model.json's sha256s recomputed where the attack needs them to match.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import run_edgekit, strict_json

from edgekit.packaging import member_name_collision, member_name_problem
from edgekit.toolkit.contract.errors import UnsafeModelError
from edgekit.toolkit.contract.formats import Format

RUNTIMES = ("torch", "executorch", "ai_edge_litert", "onnxruntime", "tensorflow")
# `edgekit ARGS` in-process (EDGEKIT_ISOLATION=off), then which runtime modules it imported.
PROBE = f"""
import json, sys
sys.argv = ["edgekit", *sys.argv[1:]]
from edgekit.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
print("LOADED=" + json.dumps(sorted(m for m in {RUNTIMES!r} if m in sys.modules)))
sys.exit(code)
"""


def one_error(result: subprocess.CompletedProcess) -> str:
    """The one `edgekit: error:` line of a failed run (and no traceback anywhere)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    return errors[0]


def verify(bundle, *more):
    return run_edgekit("package", "--verify", bundle, *more)


def entries_of(bundle: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(bundle) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def forge(genuine: Path, target: Path, *, replace: dict[str, bytes] | None = None,
          add: list[tuple[str, bytes]] | None = None, first: list[tuple[str, bytes]] | None = None,
          manifest_edit=None, rehash: bool = True, extra: dict[str, bytes] | None = None) -> Path:
    """Rewrite ``genuine``: ``replace`` members' bytes, ``add`` members at the end, ``first`` ones before the
    rest, then list every member in model.json with its real sha256 (``rehash``), as a forger would."""
    entries = [(name, (replace or {}).get(name, data)) for name, data in entries_of(genuine)]
    entries = list(first or []) + entries + list(add or [])
    manifest = json.loads(dict(entries)["model.json"])
    if rehash:
        files = {}
        for name, data in entries:  # the last of two same-named members wins in model.json, as in zipfile
            if name not in ("model.json", "signature.json"):
                files[name] = hashlib.sha256(data).hexdigest()
        manifest["files"] = files
        model = dict(entries).get(manifest["model"]["file"])
        if model is not None:
            manifest["model"].update(sha256=hashlib.sha256(model).hexdigest(), size_bytes=len(model))
    if manifest_edit is not None:
        manifest_edit(manifest)
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
    with zipfile.ZipFile(target, "w") as out:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            if extra and name in extra:
                info.extra = extra[name]
            out.writestr(info, manifest_bytes if name == "model.json" else data)
    return target


@pytest.fixture(scope="module")
def genuine(samples, tmp_path_factory) -> Path:
    bundle = tmp_path_factory.mktemp("genuine") / "tiny.zip"
    result = run_edgekit("package", samples[Format.TFLITE], "-o", bundle, "--bench-seconds", "0")
    assert result.returncode == 0, result.stderr
    return bundle


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, tuple[Path, Path, str]]:
    """Two key pairs made by `edgekit keygen`: name → (private, public, fingerprint)."""
    out = tmp_path_factory.mktemp("keys")
    pairs = {}
    for who in ("alice", "mallory"):
        result = run_edgekit("keygen", "-o", out / f"{who}.pem")
        assert result.returncode == 0, result.stderr
        fingerprint = next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("fingerprint"))
        pairs[who] = (out / f"{who}.pem", out / f"{who}.pub.pem", fingerprint)
    return pairs


@pytest.fixture(scope="module")
def signed(samples, keys, tmp_path_factory) -> Path:
    bundle = tmp_path_factory.mktemp("signed") / "tiny.zip"
    result = run_edgekit("package", samples[Format.TFLITE], "-o", bundle, "--bench-seconds", "0",
                         "--sign", keys["alice"][0])
    assert result.returncode == 0, result.stderr
    assert f"signed  by ed25519 key {keys['alice'][2]}" in result.stdout
    return bundle


# -- member names: pure checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "why"), [
    ("..\\..\\evil.txt", "points outside the bundle"),
    ("golden\\output_0.bin", "contains '\\'"),
    ("C:/evil.txt", "Windows drive 'C:'"),
    ("c:evil.txt", "Windows drive"),
    ("/etc/passwd", "absolute path"),
    ("\\evil.txt", "absolute path"),
    ("golden/../../evil.txt", "points outside the bundle"),
    ("labels.txt:hidden", "NTFS stream"),
    ("golden//output_0.bin", "empty or '.' path component"),
    ("./model.tflite", "empty or '.' path component"),
    ("model.tflite\x00.txt", "NUL byte"),
    ("golden/out\x07.bin", "U+0007"),
    ("model\u202etxt.tflite", "U+202E"),
    ("model.tflite.", "which Windows drops"),
    ("labels.txt ", "which Windows drops"),
    ("CON.txt", "reserved device name"),
    ("golden/aux", "reserved device name"),
    ("", "empty name"),
])
def test_member_name_problem_refuses(name, why):
    problem = member_name_problem(name)
    assert problem is not None and why in problem


@pytest.mark.parametrize("name", ["model.tflite", "golden/inputs.npz", "golden/", "USAGE.md", "labels.txt",
                                  "signature.json", "golden/output_0.bin", "console.txt"])
def test_member_name_problem_accepts_bundle_names(name):
    assert member_name_problem(name) is None


@pytest.mark.parametrize(("names", "offender", "why"), [
    (["model.tflite", "MODEL.tflite"], "MODEL.tflite", "collides with 'model.tflite'"),
    (["golden/a.bin", "Golden/b.bin"], "Golden/b.bin", "collides with 'golden'"),
    (["caf\u00e9.txt", "cafe\u0301.txt"], "cafe\u0301.txt", "collides"),  # NFC vs NFD: one file on macOS
    (["model.tflite", "model.tflite"], "model.tflite", "appears twice"),
    (["golden", "golden/a.bin"], "golden", "both a file and a folder"),
])
def test_member_name_collision(names, offender, why):
    found = member_name_collision(names)
    assert found is not None and found[0] == offender and why in found[1]


def test_member_name_collision_accepts_a_genuine_layout():
    names = ["model.json", "model.tflite", "golden/", "golden/inputs.npz", "golden/input_0.bin",
             "golden/outputs.npz", "golden/output_0.bin", "labels.txt", "USAGE.md", "signature.json"]
    assert member_name_collision(names) is None


# -- member names: whole bundles through the CLI ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["..\\..\\evil.txt", "golden\\extra.bin", "C:/evil.txt", "C:evil.txt",
                                  "\\evil.txt", "golden//extra.bin", "labels.txt:stream", "golden/\x1bx.bin",
                                  "NUL.bin", "extra.bin."])
def test_verify_refuses_names_extractors_read_differently(genuine, tmp_path, name):
    bundle = forge(genuine, tmp_path / "evil.zip", add=[(name, b"evil")])  # listed in model.json: sha256s match
    result = verify(bundle)
    assert result.returncode == 3, result.stdout + result.stderr
    error = one_error(result)
    assert str(bundle) in error and repr(name) in error
    assert not list(tmp_path.parent.glob("**/evil.txt"))


@pytest.mark.slow
def test_verify_refuses_a_nul_in_a_member_name(genuine, tmp_path):
    """zipfile cuts a name at its NUL ('golden/z'), other readers keep it: the name as stored is checked."""
    bundle = forge(genuine, tmp_path / "nul.zip", add=[("golden/zzzz.bin", b"x")])
    data = bundle.read_bytes()
    assert data.count(b"golden/zzzz.bin") == 2  # local header and central directory
    bundle.write_bytes(data.replace(b"golden/zzzz.bin", b"golden/z\x00zz.bin"))
    result = verify(bundle)
    assert result.returncode == 3 and "NUL byte" in one_error(result)


@pytest.mark.slow
def test_verify_refuses_a_second_unicode_path_name(genuine, tmp_path):
    """Info-ZIP and 7-Zip extract a member under its Unicode Path field's name; Python and Java do not."""
    shown, hidden = b"notes.txt", b"model.tflite"
    field = struct.pack("<HHBL", 0x7075, 5 + len(hidden), 1, zlib.crc32(shown)) + hidden
    bundle = forge(genuine, tmp_path / "alias.zip", add=[("notes.txt", b"x")], extra={"notes.txt": field})
    result = verify(bundle)
    assert result.returncode == 3 and "second name" in one_error(result)


@pytest.mark.slow
def test_verify_refuses_a_duplicate_model_member(samples, genuine, tmp_path):
    """A streaming reader (Java's ZipInputStream) takes the first model.tflite, zipfile the last."""
    bundle = forge(genuine, tmp_path / "twice.zip", first=[("model.tflite", samples[Format.ONNX].read_bytes())])
    result = verify(bundle)
    assert result.returncode == 3
    error = one_error(result)
    assert str(bundle) in error and "'model.tflite' appears twice" in error


@pytest.mark.slow
def test_verify_refuses_case_colliding_names(samples, genuine, tmp_path):
    bundle = forge(genuine, tmp_path / "case.zip", add=[("MODEL.tflite", samples[Format.ONNX].read_bytes())])
    result = verify(bundle)
    assert result.returncode == 3
    error = one_error(result)
    assert "'MODEL.tflite' collides with 'model.tflite' where case is ignored" in error


def set_encrypted(bundle: Path, member: str) -> None:
    """Set the 'encrypted' flag bit of ``member`` in its local header and its directory entry."""
    data = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as archive:
        local, directory = archive.getinfo(member).header_offset, archive.start_dir
    data[local + 6] |= 1
    at = data.find(b"PK\x01\x02", directory)
    while at >= 0:
        (name_length,) = struct.unpack_from("<H", data, at + 28)
        if bytes(data[at + 46: at + 46 + name_length]) == member.encode():
            data[at + 8] |= 1
        at = data.find(b"PK\x01\x02", at + 4)
    bundle.write_bytes(bytes(data))


@pytest.mark.slow
def test_verify_refuses_an_encrypted_member(genuine, tmp_path):
    bundle = forge(genuine, tmp_path / "encrypted.zip")
    set_encrypted(bundle, "USAGE.md")
    result = verify(bundle)
    assert result.returncode == 3 and "is encrypted" in one_error(result)


@pytest.mark.slow
def test_verify_still_refuses_symlinks(genuine, tmp_path):
    bundle = tmp_path / "link.zip"
    with zipfile.ZipFile(genuine) as src, zipfile.ZipFile(bundle, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        link = zipfile.ZipInfo("golden/link.bin")
        link.external_attr = (0o120777 << 16)
        out.writestr(link, b"/etc/passwd")
    result = verify(bundle)
    assert result.returncode == 3 and "symbolic link" in one_error(result)


# -- the model member's format ------------------------------------------------------------------------------


@pytest.fixture
def disguised_pt2(samples, genuine, tmp_path) -> Path:
    """A torch.export archive stored as model.tflite, every sha256 rewritten to match."""
    return forge(genuine, tmp_path / "disguised.zip",
                 replace={"model.tflite": samples[Format.TORCH_EXPORTED].read_bytes()})


@pytest.mark.slow
def test_pt2_disguised_as_tflite_is_refused_before_any_runtime_loads(disguised_pt2, genuine):
    result = verify(disguised_pt2)
    assert result.returncode == 4, result.stdout + result.stderr
    error = one_error(result)
    assert "model.tflite holds a torch-exported program, not a TFLite model; refusing to load it" in error
    assert str(disguised_pt2) in error

    def probe(bundle):
        run = subprocess.run([sys.executable, "-c", PROBE, "package", "--verify", str(bundle)], capture_output=True,
                             text=True, env={**os.environ, "EDGEKIT_ISOLATION": "off"}, timeout=600)
        return run.returncode, json.loads(run.stdout.rsplit("LOADED=", 1)[1])

    assert probe(disguised_pt2) == (4, [])  # neither torch nor any other runtime was imported
    code, loaded = probe(genuine)  # the probe does see a runtime load when there is one
    assert code == 0 and loaded


@pytest.mark.slow
def test_pt2_disguised_as_tflite_never_reaches_open_runtime(disguised_pt2, monkeypatch):
    import edgekit.targets
    from edgekit.packaging import verify as verify_bundle

    opened = []
    monkeypatch.setattr(edgekit.targets, "open_runtime", lambda *args, **kwargs: opened.append(args))
    with pytest.raises(UnsafeModelError, match="holds a torch-exported program, not a TFLite model"):
        verify_bundle(disguised_pt2)
    assert opened == []


@pytest.mark.slow
def test_onnx_disguised_as_tflite_is_invalid_input(samples, genuine, tmp_path):
    bundle = forge(genuine, tmp_path / "onnx.zip", replace={"model.tflite": samples[Format.ONNX].read_bytes()})
    result = verify(bundle)
    assert result.returncode == 3
    error = one_error(result)
    assert "model.tflite holds an ONNX model, but model.json declares model.format 'tflite'" in error


def _declare(**changes):
    def edit(manifest):
        manifest["model"].update(changes)
    return edit


@pytest.mark.slow
@pytest.mark.parametrize(("rename", "edit", "code", "why"), [
    (None, _declare(format="onnx"), 3, "declares model.format 'onnx'"),
    (None, _declare(format="torch-exported"), 3, "declares model.format 'torch-exported'"),
    ("model.onnx", _declare(file="model.onnx"), 3, "a tflite bundle holds it as 'model.tflite'"),
    ("weights.bin", _declare(file="weights.bin"), 3, "a tflite bundle holds it as 'model.tflite'"),
])
def test_model_json_must_declare_the_member_it_holds(genuine, tmp_path, rename, edit, code, why):
    entries = entries_of(genuine)
    if rename:
        entries = [(rename if name == "model.tflite" else name, data) for name, data in entries]
    source = tmp_path / "renamed.zip"
    with zipfile.ZipFile(source, "w") as out:
        for name, data in entries:
            out.writestr(name, data)
    bundle = forge(source, tmp_path / "declared.zip", manifest_edit=edit)
    result = verify(bundle)
    assert result.returncode == code, result.stdout + result.stderr
    assert why in one_error(result)


@pytest.mark.slow
def test_a_bundle_without_goldens_or_model_fails(genuine, tmp_path):
    """Deleting the goldens (and their sha256s) must not leave a bundle that verifies on hashes alone."""
    stripped = [(n, d) for n, d in entries_of(genuine) if not n.startswith("golden/")]
    source = tmp_path / "stripped-src.zip"
    with zipfile.ZipFile(source, "w") as out:
        for name, data in stripped:
            out.writestr(name, data)
    result = verify(forge(source, tmp_path / "stripped.zip"))
    assert result.returncode == 1 and "goldens: golden/inputs.npz or golden/outputs.npz is missing" in one_error(result)
    no_model = [(n, d) for n, d in entries_of(genuine) if n != "model.tflite"]
    with zipfile.ZipFile(source, "w") as out:
        for name, data in no_model:
            out.writestr(name, data)
    result = verify(forge(source, tmp_path / "no-model.zip"))
    assert result.returncode == 1 and "model.json's model.file 'model.tflite' is not in the bundle" in one_error(result)


# -- signatures ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_keygen_writes_0600_and_refuses_to_overwrite(tmp_path):
    key = tmp_path / "release.pem"
    first = run_edgekit("keygen", "-o", key)
    assert first.returncode == 0, first.stderr
    public = tmp_path / "release.pub.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert str(key) in first.stdout and str(public) in first.stdout
    fingerprint = next(line.split()[1] for line in first.stdout.splitlines() if line.startswith("fingerprint"))
    from cryptography.hazmat.primitives import serialization

    raw = serialization.load_pem_public_key(public.read_bytes()).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert fingerprint == hashlib.sha256(raw).hexdigest()
    before = key.read_bytes()
    again = run_edgekit("keygen", "-o", key)
    assert again.returncode == 2 and "already exists" in one_error(again)
    assert key.read_bytes() == before
    public.unlink()  # the private key alone existing is enough to refuse
    again = run_edgekit("keygen", "-o", key)
    assert again.returncode == 2 and not public.exists()
    forced = run_edgekit("keygen", "-o", key, "--force")
    assert forced.returncode == 0 and key.read_bytes() != before
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and public.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".edgekit-")]  # no temp left behind


@pytest.mark.slow
def test_signed_bundle_verifies_with_its_key_and_fails_with_another(signed, keys):
    with zipfile.ZipFile(signed) as archive:
        record = strict_json(archive.read("signature.json"))
        manifest_bytes = archive.read("model.json")
    assert "signature.json" not in json.loads(manifest_bytes)["files"]
    assert record["edgekit_bundle_signature"] == 1 and record["algorithm"] == "ed25519"
    assert record["signed_member"] == "model.json" and record["public_key_sha256"] == keys["alice"][2]
    from cryptography.hazmat.primitives import serialization

    public = serialization.load_pem_public_key(keys["alice"][1].read_bytes())
    public.verify(base64.b64decode(record["signature"]), manifest_bytes)  # a plain Ed25519 signature

    good = verify(signed, "--public-key", keys["alice"][1])
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok    signature: model.json" in good.stdout and "not listed" not in good.stdout
    assert "golden" in good.stdout

    wrong = verify(signed, "--public-key", keys["mallory"][1])
    assert wrong.returncode == 1
    error = one_error(wrong)
    assert "signature: not a valid signature of model.json by key " + keys["mallory"][2] in error
    assert "FAIL  signature" in wrong.stdout

    unchecked = verify(signed)
    assert unchecked.returncode == 0
    assert f"ok    signature: present, by key {keys['alice'][2]}, but not checked" in unchecked.stdout
    assert "not listed in model.json" not in unchecked.stdout


def regenerate(bundle: Path, target: Path, seed: int = 100) -> Path:
    """What a forger with the bundle but not the key can do: new goldens from new inputs (the same runtime
    produces them), every sha256 in model.json recomputed; signature.json kept as it was."""
    import tempfile

    from edgekit.packaging.bundle import _golden_files
    from edgekit.targets import open_runtime
    from edgekit.toolkit.contract.iospec import IOSpec, example_feeds

    entries = dict(entries_of(bundle))
    manifest = json.loads(entries["model.json"])
    spec = IOSpec.from_dict(manifest["io"])
    with tempfile.TemporaryDirectory() as scratch:
        model = Path(scratch) / "model.tflite"
        model.write_bytes(entries["model.tflite"])
        feeds = [example_feeds(spec, seed=seed + i) for i in range(4)]
        with open_runtime(model, io_hint=spec) as runtime:
            runs = [runtime.run(feed) for feed in feeds]
    outputs = [{n: np.asarray(run[n]) for n in spec.output_names} for run in runs]
    goldens = _golden_files(spec, feeds, outputs)
    assert goldens["golden/inputs.npz"] != entries["golden/inputs.npz"]
    return forge(bundle, target, replace=goldens, manifest_edit=lambda m: m["goldens"].update(source="regenerated"))


@pytest.mark.slow
def test_a_regenerated_bundle_fails_the_signature_check(signed, keys, tmp_path):
    forged = regenerate(signed, tmp_path / "regenerated.zip")
    assert "signature.json" in dict(entries_of(forged))
    # Internally consistent: without the key it verifies, goldens and all. That is the point of signing.
    unkeyed = verify(forged)
    assert unkeyed.returncode == 0, unkeyed.stdout + unkeyed.stderr
    assert "ok    golden" in unkeyed.stdout
    keyed = verify(forged, "--public-key", keys["alice"][1])
    assert keyed.returncode == 1
    error = one_error(keyed)
    assert "signature: not a valid signature of model.json by key " + keys["alice"][2] in error
    assert "goldens: not re-run" in error  # the model of a bundle failing its signature is not loaded

    # Re-signed by the forger's own key: valid for that key, so still not for alice's.
    from edgekit.packaging import load_private_key, sign_manifest

    mallory = load_private_key(keys["mallory"][0])
    entries = entries_of(forged)
    resigned = tmp_path / "resigned.zip"
    with zipfile.ZipFile(resigned, "w") as out:
        for name, data in entries:
            out.writestr(name, sign_manifest(dict(entries)["model.json"], mallory) if name == "signature.json"
                         else data)
    keyed = verify(resigned, "--public-key", keys["alice"][1])
    assert keyed.returncode == 1
    error = one_error(keyed)
    assert f"signature.json names key {keys['mallory'][2]}" in error
    assert verify(resigned, "--public-key", keys["mallory"][1]).returncode == 0


@pytest.mark.slow
def test_a_signature_json_that_does_not_parse_fails(signed, tmp_path):
    bundle = forge(signed, tmp_path / "mangled.zip", replace={"signature.json": b'{"algorithm": "rsa"}'},
                   rehash=False)
    result = verify(bundle)
    assert result.returncode == 1 and "signature: signature.json is malformed" in one_error(result)


@pytest.mark.slow
def test_public_key_on_an_unsigned_bundle_fails(genuine, keys):
    result = verify(genuine, "--public-key", keys["alice"][1])
    assert result.returncode == 1
    assert "signature: the bundle is unsigned, but --public-key" in one_error(result)


@pytest.mark.slow
def test_an_unsigned_bundle_says_what_verification_proves(genuine):
    result = verify(genuine)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok    signature: none (unsigned bundle): this verification proves internal consistency only" in \
        result.stdout


@pytest.mark.slow
def test_openssh_keys_sign_and_verify(samples, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = tmp_path / "id_ed25519"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    public = tmp_path / "id_ed25519.pub"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH) + b" me@host\n")
    bundle = tmp_path / "ssh.zip"
    made = run_edgekit("package", samples[Format.TFLITE], "-o", bundle, "--bench-seconds", "0", "--sign", private)
    assert made.returncode == 0, made.stderr
    checked = verify(bundle, "--public-key", public)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok    signature: model.json" in checked.stdout


def _key_files(tmp_path: Path) -> dict[str, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ed = Ed25519PrivateKey.generate()
    files = {
        "encrypted": ed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"secret")),
        "ecdsa": ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "garbage": b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n",
        "public": ed.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo),
        "private": ed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()),
        "ecdsa-public": ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "garbage-public": b"-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n",
    }
    paths = {}
    for kind, data in files.items():
        paths[kind] = tmp_path / f"{kind}.pem"
        paths[kind].write_bytes(data)
    paths["missing"] = tmp_path / "missing.pem"
    return paths


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "why"), [
    ("encrypted", "the private key is encrypted"),
    ("ecdsa", "an elliptic-curve (ECDSA) key, not Ed25519"),
    ("garbage", "not a PEM (PKCS8) or OpenSSH private key"),
    ("public", "holds a public key, not a private one"),
    ("missing", "no such file"),
])
def test_bad_signing_keys_exit_3_and_write_nothing(samples, tmp_path, kind, why):
    key = _key_files(tmp_path)[kind]
    bundle = tmp_path / "b.zip"
    result = run_edgekit("package", samples[Format.TFLITE], "-o", bundle, "--bench-seconds", "0", "--sign", key)
    assert result.returncode == 3, result.stdout + result.stderr
    error = one_error(result)
    assert f"--sign {key}: {why}" in error and "(fix: " in error
    assert not bundle.exists()


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "why"), [
    ("private", "holds a private key"),
    ("ecdsa-public", "an elliptic-curve (ECDSA) key, not Ed25519"),
    ("garbage-public", "not a PEM or OpenSSH public key"),
    ("missing", "no such file"),
])
def test_bad_public_keys_exit_3(genuine, tmp_path, kind, why):
    key = _key_files(tmp_path)[kind]
    result = verify(genuine, "--public-key", key)
    assert result.returncode == 3, result.stdout + result.stderr
    error = one_error(result)
    assert f"--public-key {key}: {why}" in error and "(fix: " in error


@pytest.mark.slow
def test_signing_options_in_the_wrong_mode_are_usage_errors(samples, genuine, keys, tmp_path):
    result = run_edgekit("package", samples[Format.TFLITE], "-o", tmp_path / "x.zip", "--public-key",
                         keys["alice"][1])
    assert result.returncode == 2 and "--public-key goes with --verify" in one_error(result)
    result = run_edgekit("package", "--verify", genuine, "--sign", keys["alice"][0])
    assert result.returncode == 2 and "--verify takes only the bundle" in one_error(result)
    assert not (tmp_path / "x.zip").exists()


# -- one reading of the zip: nothing hidden from the central directory ---------------------------------------
# A streaming reader (Java's ZipInputStream) walks the local headers from the start; zipfile, and so
# --verify, reads the central directory. Every byte must belong to a listed member, in order, so both see
# the same members. Built from one signed bundle of a tiny ONNX model (onnx.helper: no framework to load).


def tiny_onnx(path: Path, input_name: str = "x", scale: float = 1.0) -> Path:
    import onnx
    from onnx import helper

    weight = helper.make_tensor("w", onnx.TensorProto.FLOAT, [1], [scale])
    graph = helper.make_graph([helper.make_node("Mul", [input_name, "w"], ["y"])], "g",
                              [helper.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # what ONNX Runtime 1.31 loads
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def ed25519(tmp_path_factory) -> tuple[Path, Path]:
    """An Ed25519 key pair made with cryptography: (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = tmp_path_factory.mktemp("ed25519")
    key = Ed25519PrivateKey.generate()
    (out / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    (out / "k.pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return out / "k.pem", out / "k.pub.pem"


@pytest.fixture(scope="module")
def signed_onnx(ed25519, tmp_path_factory) -> Path:
    from edgekit.packaging import package

    out = tmp_path_factory.mktemp("signed-onnx")
    package(tiny_onnx(out / "tiny.onnx"), out / "tiny.zip", bench_seconds=0, sign_key=ed25519[0])
    return out / "tiny.zip"


def streamed(data: bytes) -> list[tuple[str, bytes]]:
    """The members as a streaming reader returns them: local headers one after another from offset 0."""
    members, at = [], 0
    while data[at:at + 4] == b"PK\x03\x04":
        flags, method, _, _, _, size, _, name_length, extra_length = struct.unpack_from("<HHHHIIIHH", data, at + 6)
        start = at + 30 + name_length + extra_length
        raw = data[start:start + size]
        members.append((data[at + 30:at + 30 + name_length].decode(), zlib.decompress(raw, -15) if method else raw))
        at = start + size
    return members


def shift_offsets(data: bytes, at: int, by: int) -> bytes:
    """``data`` with ``by`` bytes to be inserted at ``at``: the directory's offsets past it moved, as a forger
    moves them so that zipfile still reads the genuine members."""
    out = bytearray(data)
    (count, _, directory) = struct.unpack_from("<HII", out, len(out) - 12)
    entry = directory
    for _ in range(count):
        (offset,) = struct.unpack_from("<I", out, entry + 42)
        if offset >= at:
            struct.pack_into("<I", out, entry + 42, offset + by)
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", out, entry + 28)
        entry += 46 + name_length + extra_length + comment_length
    struct.pack_into("<I", out, len(out) - 6, directory + by)
    return bytes(out)


def local_member(name: str, data: bytes) -> bytes:
    """A local header and its data, as zipfile writes them (what a forger hides)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, data)
        end = archive.start_dir
    return buffer.getvalue()[:end]


def hidden_model(bundle: Path, evil: bytes) -> tuple[bytes, str]:
    """A second model.onnx local header before the real one, not in the central directory."""
    data = bundle.read_bytes()
    with zipfile.ZipFile(bundle) as archive:
        infos = archive.infolist()
    index = next(i for i, info in enumerate(infos) if info.filename == "model.onnx")
    at = infos[index].header_offset
    hidden = local_member("model.onnx", evil)
    data = shift_offsets(data, at, len(hidden))
    return data[:at] + hidden + data[at:], (f"{len(hidden)} bytes at offset {at} between "
                                            f"{infos[index - 1].filename!r} and 'model.onnx' belong to no listed "
                                            "member; they hold a local header for 'model.onnx'")


def directory_with_data(bundle: Path, evil: bytes) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(buffer, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        out.writestr(zipfile.ZipInfo("assets/", date_time=(2020, 1, 1, 0, 0, 0)), evil)  # stored
    return buffer.getvalue(), f"('assets/') is a directory but carries data ({len(evil)} bytes"


def appended(bundle: Path, evil: bytes) -> tuple[bytes, str]:
    data = bundle.read_bytes()
    return data + evil, f"{len(evil)} bytes at offset {len(data)} after the end record belong to no listed member"


def commented(bundle: Path, evil: bytes) -> tuple[bytes, str]:
    data = bytearray(bundle.read_bytes())
    struct.pack_into("<H", data, len(data) - 2, len(evil))
    return bytes(data) + evil, f"followed by a zip comment of {len(evil)} bytes"


ATTACKS = {"hidden member": hidden_model, "directory with data": directory_with_data,
           "appended bytes": appended, "zip comment": commented}


@pytest.fixture(scope="module")
def evil_model(tmp_path_factory) -> bytes:
    return tiny_onnx(tmp_path_factory.mktemp("evil") / "evil.onnx", scale=-1.0).read_bytes()


def test_the_hidden_member_is_what_a_streaming_reader_returns(signed_onnx, evil_model):
    data, _ = hidden_model(signed_onnx, evil_model)
    first = next(member for name, member in streamed(data) if name == "model.onnx")
    assert first == evil_model  # ZipInputStream's view
    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # zipfile's (and so --verify's) view
        assert archive.read("model.onnx") == zipfile.ZipFile(signed_onnx).read("model.onnx") != evil_model


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_verify_refuses_bytes_the_directory_does_not_list(signed_onnx, ed25519, evil_model, tmp_path, monkeypatch,
                                                           attack):
    import importlib

    from edgekit.packaging.layout import REPACKAGE_HINT
    from edgekit.toolkit.contract.errors import InvalidInputError

    verifying = importlib.import_module("edgekit.packaging.verify")  # the module: the package exports verify()
    data, why = ATTACKS[attack](signed_onnx, evil_model)
    bundle = tmp_path / "attack.zip"
    bundle.write_bytes(data)
    with pytest.raises(InvalidInputError) as refused:
        verifying.verify(bundle, public_key=ed25519[1])
    assert refused.value.message.startswith(f"{bundle}: ") and why in refused.value.message
    assert refused.value.hint == REPACKAGE_HINT and "\n" not in refused.value.message
    monkeypatch.setattr(verifying, "file_layout_problem", lambda path: None)
    assert verifying.verify(bundle, public_key=ed25519[1]).passed  # what the red team saw: signed and verified


def test_the_untouched_signed_bundle_verifies(signed_onnx, ed25519):
    from edgekit.packaging import verify as verify_bundle
    from edgekit.packaging.zipcheck import zip_layout_problem

    assert zip_layout_problem(signed_onnx.read_bytes()) is None
    result = verify_bundle(signed_onnx, public_key=ed25519[1])
    assert result.passed, result.failures()
    assert any(name == "signature" and ok for name, ok, _ in result.checks)


def test_cli_exits_3_on_a_hidden_member(signed_onnx, ed25519, evil_model, tmp_path, victim):
    data, why = hidden_model(signed_onnx, evil_model)
    bundle = tmp_path / "hidden.zip"
    bundle.write_bytes(data)
    result = verify(bundle, "--public-key", ed25519[1])
    assert result.returncode == 3, result.stdout + result.stderr
    error = one_error(result)
    assert f"{bundle}: {why}" in error and "(fix: package the model again" in error
    assert "verified" not in result.stdout


def test_a_freshly_packaged_bundle_reads_one_way(signed_onnx):
    from edgekit.packaging.zipcheck import zip_layout_problem

    data = signed_onnx.read_bytes()
    with zipfile.ZipFile(signed_onnx) as archive:
        infos = archive.infolist()
        assert not archive.comment
    assert all(not info.flag_bits & 0x08 for info in infos)  # no data descriptors
    assert [name for name, _ in streamed(data)] == [info.filename for info in infos]
    assert zip_layout_problem(data) is None


# -- zip_layout_problem on its own: pure and total -----------------------------------------------------------


def small_zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def with_zip64_end(data: bytes, between: bytes = b"") -> bytes:
    """``data`` with a zip64 end record and locator before its end record, which then defers to them."""
    count, size, offset = struct.unpack_from("<HII", data, len(data) - 12)
    record_at = offset + size
    record = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, record_at, 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:record_at] + record + between + locator + end


def test_zip_layout_accepts_zipfile_writes_and_zip64():
    from edgekit.packaging.zipcheck import zip_layout_problem

    plain = small_zip(**{"model.json": b"{}", "model.onnx": b"x" * 1000, "golden/a.bin": b""})
    assert zip_layout_problem(plain) is None
    assert zip_layout_problem(small_zip()) is None  # an empty zip: just the end record
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("big.bin", "w", force_zip64=True) as member:  # sizes in the local zip64 field
            member.write(b"y" * 100)
        archive.writestr("next.bin", b"z")
    assert zip_layout_problem(buffer.getvalue()) is None
    assert zip_layout_problem(with_zip64_end(plain)) is None
    assert zipfile.ZipFile(io.BytesIO(with_zip64_end(plain))).namelist() == ["model.json", "model.onnx",
                                                                            "golden/a.bin"]


class _Stream(io.RawIOBase):
    """A file zipfile cannot seek in: it then writes data descriptors."""

    def __init__(self):
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, chunk):
        self.data += chunk
        return len(chunk)


def _rename_locally(data: bytes) -> bytes:
    at = data.index(b"model.onnx")  # the first occurrence: its local header
    return data[:at] + b"model.oNNx" + data[at + 10:]


def _directory_comment(data: bytes) -> bytes:
    out = bytearray(data)
    at = zipfile.ZipFile(io.BytesIO(data)).start_dir
    struct.pack_into("<H", out, at + 32, 3)
    out[len(out) - 22:len(out) - 22] = b"hi!"
    struct.pack_into("<I", out, len(out) - 10, struct.unpack_from("<I", out, len(out) - 10)[0] + 3)
    return bytes(out)


@pytest.mark.parametrize(("mutate", "why"), [
    (lambda d: b"junk" + d, "4 bytes at offset 0 before the first member belong to no listed member"),
    (lambda d: b"", "no end-of-central-directory record"),
    (lambda d: d[:-1], "no end-of-central-directory record"),
    (_rename_locally, "local header at offset 0 names it 'model.oNNx'"),
    (_directory_comment, "carries a comment of 3 bytes"),
    (lambda d: with_zip64_end(d, b"\0" * 8), "8 bytes at offset"),
    (lambda d: d[:-22] + b"\0" * 5 + d[-22:], "5 bytes at offset"),
])
def test_zip_layout_refuses(mutate, why):
    from edgekit.packaging.zipcheck import zip_layout_problem

    problem = zip_layout_problem(mutate(small_zip(**{"model.onnx": b"x" * 100, "model.json": b"{}"})))
    assert problem is not None and why in problem, problem


def test_zip_layout_refuses_data_descriptors():
    from edgekit.packaging.zipcheck import zip_layout_problem

    stream = _Stream()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("model.onnx", b"x")
    problem = zip_layout_problem(bytes(stream.data))
    assert problem is not None and "data descriptor" in problem


def test_zip_layout_problem_is_total():
    """Seeded mutations of a real layout: a sentence or None, never an exception (the fuzz target's contract)."""
    import random

    from edgekit.packaging.zipcheck import zip_layout_problem

    seed = with_zip64_end(small_zip(**{"model.json": b"{}", "model.onnx": b"x" * 300, "golden/": b""}))
    rng = random.Random(0)
    for _ in range(3000):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 4)):
            start = rng.randrange(len(data) + 1)
            if rng.random() < 0.5 and data:
                data[rng.randrange(len(data))] = rng.choice([0, 0xFF, rng.randrange(256)])
            else:
                data[start:start + rng.randint(0, 8)] = rng.randbytes(rng.randint(0, 8))
        problem = zip_layout_problem(bytes(data))
        assert problem is None or (isinstance(problem, str) and "\n" not in problem)


# -- USAGE.md: names from the model are data, never code or Markdown ----------------------------------------

INJECTIONS = [
    'x"); Runtime.getRuntime().exec("touch /tmp/p"); val y = ("',
    "a\nb",
    '${Runtime.getRuntime().exec("id")}',
    "$x",
    'x\u2028exec("id")\u2029',
    "a\\",
    "```\nexec(1)\n```",
    "`",
    " x ",
    "\r\n*/ exec(2) //\x00\x1b\u202e\U0001F600",
]
KOTLIN_ESCAPES = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "'": "'", '"': '"', "\\": "\\", "$": "$"}


def kotlin_line(line: str) -> tuple[str, list[str]]:
    """(the line outside its string literals, the literals' values). A literal must close on its line, use
    only Kotlin's escapes and hold no string template; AssertionError otherwise."""
    outside, literals, at = [], [], 0
    while at < len(line):
        if line[at] != '"':
            outside.append(line[at])
            at += 1
            continue
        assert not line.startswith('"""', at), line
        value, at = [], at + 1
        while True:
            assert at < len(line), f"unterminated string literal: {line!r}"
            char = line[at]
            if char == '"':
                at += 1
                break
            assert char != "$", f"string template in {line!r}"
            assert char.isprintable(), f"unprintable {char!r} in {line!r}"
            if char == "\\":
                escape = line[at + 1: at + 2]
                if escape == "u":
                    digits = line[at + 2: at + 6]
                    assert len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits), line
                    value.append(chr(int(digits, 16)))
                    at += 6
                    continue
                assert escape in KOTLIN_ESCAPES, f"bad escape in {line!r}"
                value.append(KOTLIN_ESCAPES[escape])
                at += 2
                continue
            value.append(char)
            at += 1
        literals.append("".join(value).encode("utf-16", "surrogatepass").decode("utf-16"))  # join pairs
    return "".join(outside), literals


def usage_manifest(fmt: str, name: str, **extra) -> dict:
    from edgekit.toolkit.contract.iospec import IOSpec, TensorSpec

    spec = IOSpec((TensorSpec(name, (1, 4), "float32"),), (TensorSpec(name + "_out", ("batch", 10), "float32"),))
    return {"name": "tiny", "model": {"format": fmt, "file": f"model.{fmt}", "precision": "none"},
            "io": spec.to_dict(), "preprocessing": None, "goldens": {"samples": 4},
            "provenance": {"packaged_with": {}}, **extra}


def check_usage(text: str, name: str, baseline: str, *, in_code: bool = True) -> None:
    """The Kotlin block parses line by line with ``name`` only inside a literal (when ``in_code``), the
    Markdown list shows it as a code span of itself or of its literal, and the page has the structure of
    the plain-name ``baseline`` (same lines and headings, one fence)."""
    from markdown_it import MarkdownIt

    assert len(text.splitlines()) == len(baseline.splitlines())
    tokens = MarkdownIt("commonmark").parse(text)
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1 and fences[0].info == "kotlin"
    assert not [t for t in tokens if t.type.startswith("html")]
    assert [t.tag for t in tokens if t.type == "heading_open"] == ["h1", "h2"]
    literals = []
    for line in fences[0].content.splitlines():
        outside, found = kotlin_line(line)
        assert "exec(" not in outside and "Runtime" not in outside, line
        literals += found
    assert (name in literals) == in_code
    spans = [child.content for t in tokens if t.type == "inline" for child in t.children or []
             if child.type == "code_inline"]
    assert any(span == name or (span.startswith('"') and kotlin_line(span) == ("", [name])) for span in spans), spans


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "executorch"])
@pytest.mark.parametrize("name", INJECTIONS)
def test_usage_keeps_hostile_names_in_string_literals(fmt, name):
    from edgekit.packaging.usage import usage

    # the ExecuTorch snippet names no tensor: there the name is only in the Markdown list
    check_usage(usage(usage_manifest(fmt, name)), name, usage(usage_manifest(fmt, "x")), in_code=fmt != "executorch")


def test_usage_escapes_model_json_strings_everywhere():
    from markdown_it import MarkdownIt

    from edgekit.packaging.usage import usage

    evil = 'm"+Runtime.getRuntime().exec("id")+"`\n# owned'
    manifest = usage_manifest("tflite", "x", preprocessing={"mean": evil, "size": [8, 8]})
    manifest["model"].update(file=evil, precision=evil)
    manifest["name"] = evil
    manifest["io"]["inputs"][0]["shape"] = [1, evil]
    manifest["io"]["inputs"][0]["dtype"] = "float32"
    manifest["provenance"]["packaged_with"] = {"ai-edge-litert": evil}
    text = usage(manifest)
    tokens = MarkdownIt("commonmark").parse(text)
    assert [t.tag for t in tokens if t.type == "heading_open"] == ["h1", "h2"]  # no "# owned" heading
    assert len([t for t in tokens if t.type == "fence"]) == 1
    code = next(t for t in tokens if t.type == "fence").content
    for line in code.splitlines():
        outside, _ = kotlin_line(line)
        assert "exec(" not in outside and "Runtime" not in outside, line
    assert "java.util.zip.ZipFile" in text and "ZipInputStream" in text


def test_package_writes_a_safe_usage_for_a_hostile_onnx_input_name(tmp_path):
    """End to end: the ONNX input name the red team used, through package and --verify."""
    from edgekit.packaging import package, usage
    from edgekit.packaging import verify as verify_bundle
    from edgekit.packaging.usage import kotlin_string

    name = INJECTIONS[0]
    bundle = tmp_path / "b.zip"
    package(tiny_onnx(tmp_path / "m.onnx", input_name=name), bundle, bench_seconds=0)
    with zipfile.ZipFile(bundle) as archive:
        text = archive.read("USAGE.md").decode()
        manifest = json.loads(archive.read("model.json"))
    assert manifest["io"]["inputs"][0]["name"] == name
    check_usage(text, name, usage({**manifest, "io": usage_manifest("onnx", "x")["io"]}))
    assert f"session.run(mapOf({kotlin_string(name)} to input))" in text
    assert verify_bundle(bundle).passed
