"""Ed25519 signatures of a bundle's model.json (``package --sign``, ``--verify --public-key``) and the keys
that make them (``edgekit keygen``). ``cryptography`` is imported only when a key is used.

model.json lists the sha256 of every other member, so signing its exact bytes signs the whole bundle; the
signature lives beside it in ``signature.json``, the one member model.json does not list."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.packaging.layout import MANIFEST, sha256_hex
from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.errors import (
    InvalidInputError,
    MissingDependencyError,
    UsageError,
    first_line,
    option,
)
from edgekit.toolkit.fsutil import atomic_paths

SIGNATURE_VERSION = 1
MAX_KEY_BYTES = 64 << 10


@dataclass(frozen=True)
class KeyPair:
    private_key: Path
    public_key: Path
    fingerprint: str  # hex sha256 of the raw 32-byte Ed25519 public key


def _serialization() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise MissingDependencyError("signing bundles needs the cryptography package",
                                     hint="pip install 'cryptography>=42'") from None
    return serialization


def generate_keypair(private_path: str | os.PathLike[str], *, force: bool = False) -> KeyPair:
    """A new Ed25519 key: the private half to ``private_path`` (PEM PKCS8, unencrypted, mode 0600), the public
    half beside it (``public_key_path``, PEM). Both appear together, atomically; existing files are replaced
    only with ``force``."""
    serialization = _serialization()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path = Path(private_path)
    public_path = public_key_path(private_path)
    for path in (private_path, public_path):
        if path.is_dir():
            raise UsageError(f"-o {private_path}: {path} is a directory", hint="give a file name, e.g. -o signing.pem")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    with atomic_paths(private_path, public_path, force=force) as (private_tmp, public_tmp):
        os.chmod(private_tmp, 0o600)  # before the key is in it
        private_tmp.write_bytes(private_pem)
        public_tmp.write_bytes(public_pem)
    return KeyPair(private_path, public_path, key_fingerprint(key))


def public_key_path(private_path: str | os.PathLike[str]) -> Path:
    """Where ``generate_keypair`` puts the public half: ``KEY.pem`` → ``KEY.pub.pem``."""
    private_path = Path(private_path)
    stem = private_path.name[:-4] if private_path.name.lower().endswith(".pem") else private_path.name
    return private_path.with_name(f"{stem}.pub.pem")


def key_fingerprint(key: Any) -> str:
    """Hex sha256 of the raw 32-byte Ed25519 public key (of ``key`` itself, or of its public half)."""
    serialization = _serialization()
    public = key.public_key() if hasattr(key, "private_bytes") else key
    return sha256_hex(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """An unencrypted Ed25519 private key, PEM (PKCS8) or OpenSSH; InvalidInputError (exit 3) with the fix
    for anything else."""
    serialization = _serialization()
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    flag = option("sign_key")
    data = _read_key_file(path, flag)
    if b"PUBLIC KEY-----" in data or data.lstrip().startswith(b"ssh-"):
        raise InvalidInputError(f"{flag} {path}: holds a public key, not a private one",
                                hint=f"{flag} takes the private key; its .pub.pem is for {option('public_key')}")
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's "password was not given but the key is encrypted"
        raise InvalidInputError(
            f"{flag} {path}: the private key is encrypted; edgekit reads unencrypted keys only",
            hint=f"keep an unencrypted copy somewhere private (openssl pkey -in {path} -out plain.pem, or "
                 "ssh-keygen -p -N '' -f COPY), or make a key with edgekit keygen -o KEY.pem") from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInputError(f"{flag} {path}: not a PEM (PKCS8) or OpenSSH private key",
                                hint="make one with edgekit keygen -o KEY.pem") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInputError(f"{flag} {path}: {_key_kind(key)} key, not Ed25519",
                                hint="bundles are signed with Ed25519: make a key with edgekit keygen -o KEY.pem "
                                     "(or ssh-keygen -t ed25519)")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 public key, PEM (``BEGIN PUBLIC KEY``) or OpenSSH (``ssh-ed25519 …``)."""
    serialization = _serialization()
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    flag = option("public_key")
    data = _read_key_file(path, flag)
    if b"PRIVATE KEY-----" in data:
        raise InvalidInputError(f"{flag} {path}: holds a private key",
                                hint="give its public half (the .pub.pem edgekit keygen wrote); keep the private "
                                     "key with whoever signs")
    try:
        if data.lstrip().startswith(b"ssh-"):
            key = serialization.load_ssh_public_key(data.strip())
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInputError(f"{flag} {path}: not a PEM or OpenSSH public key",
                                hint="give the .pub.pem that edgekit keygen wrote beside the signing key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInputError(f"{flag} {path}: {_key_kind(key)} key, not Ed25519",
                                hint="edgekit bundles are signed with Ed25519 keys (edgekit keygen)")
    return key


def _read_key_file(path: Path, flag: str) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_BYTES:
            raise InvalidInputError(f"{flag} {path}: {path.stat().st_size} bytes is not a key file",
                                    hint="give the PEM file edgekit keygen wrote")
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"{flag} {path}: no such file",
                                hint="make a key pair with edgekit keygen -o KEY.pem") from None
    except OSError as exc:
        raise InvalidInputError(f"{flag} {path}: unreadable ({exc.strerror})", hint="check the path") from None


def _key_kind(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa, x448, x25519

    kinds = ((rsa.RSAPrivateKey, rsa.RSAPublicKey, "an RSA"), (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey,
             "an elliptic-curve (ECDSA)"), (dsa.DSAPrivateKey, dsa.DSAPublicKey, "a DSA"),
             (ed448.Ed448PrivateKey, ed448.Ed448PublicKey, "an Ed448"), (x25519.X25519PrivateKey,
             x25519.X25519PublicKey, "an X25519"), (x448.X448PrivateKey, x448.X448PublicKey, "an X448"))
    return next((kind for *classes, kind in kinds if isinstance(key, tuple(classes))), f"a {type(key).__name__}")


def sign_manifest(manifest_bytes: bytes, key: Any) -> bytes:
    """``signature.json``: ``key``'s Ed25519 signature of the exact bytes of model.json."""
    record = {"edgekit_bundle_signature": SIGNATURE_VERSION, "algorithm": "ed25519", "signed_member": MANIFEST,
              "public_key_sha256": key_fingerprint(key),
              "signature": base64.b64encode(key.sign(manifest_bytes)).decode("ascii")}
    return (json.dumps(record, indent=2) + "\n").encode()


def _parse_signature(data: bytes) -> tuple[str, bytes]:
    """(fingerprint, signature) from signature.json; ValueError saying what is wrong."""
    try:
        record = jsonio.loads(data)
    except ValueError as exc:
        raise ValueError(f"not JSON: {first_line(exc)}") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    version = record.get("edgekit_bundle_signature")
    if type(version) is not int or version != SIGNATURE_VERSION:
        raise ValueError(f"edgekit_bundle_signature {version!r}, this edgekit reads {SIGNATURE_VERSION}")
    if record.get("algorithm") != "ed25519":
        raise ValueError(f"algorithm {record.get('algorithm')!r}, not 'ed25519'")
    if record.get("signed_member") != MANIFEST:
        raise ValueError(f"it signs {record.get('signed_member')!r}, not {MANIFEST!r}")
    fingerprint = record.get("public_key_sha256")
    if not isinstance(fingerprint, str) or not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
        raise ValueError("public_key_sha256 is not 64 lowercase hex digits")
    try:
        signature = base64.b64decode(str(record.get("signature")), validate=True)
    except ValueError:
        raise ValueError("signature is not base64") from None
    if len(signature) != 64:
        raise ValueError(f"an Ed25519 signature has 64 bytes, this one {len(signature)}")
    return fingerprint, signature


def signature_check(manifest_bytes: bytes, signature_bytes: bytes | None, key: Any,
                     key_path: str | os.PathLike[str] | None) -> tuple[str, bool, str]:
    """The ``signature`` check: informational (passing) without a key, required with one."""
    if signature_bytes is None:
        if key is None:
            return ("signature", True, "none (unsigned bundle): this verification proves internal consistency "
                    "only, not who made the bundle; sign with --sign KEY.pem and check with --public-key")
        return ("signature", False, f"the bundle is unsigned, but --public-key {key_path} asks for a signature by "
                f"key {key_fingerprint(key)}")
    try:
        fingerprint, signature = _parse_signature(signature_bytes)
    except ValueError as exc:
        return ("signature", False, f"signature.json is malformed ({exc})")
    if key is None:
        return ("signature", True, f"present, by key {fingerprint}, but not checked: pass --public-key with that "
                "key's public half to check it")
    from cryptography.exceptions import InvalidSignature

    expected = key_fingerprint(key)
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        named = "" if fingerprint == expected else f"; signature.json names key {fingerprint}"
        return ("signature", False, f"not a valid signature of model.json by key {expected} ({key_path}){named}: "
                "the bundle was changed or re-signed after its signing")
    if fingerprint != expected:
        return ("signature", False, f"valid for key {expected} ({key_path}), but signature.json names key "
                f"{fingerprint}: it was edited")
    return ("signature", True, f"model.json, and through its sha256s every other member, is signed by key {expected} "
            f"({key_path})")
