"""What a bundle is made of: its member names, format version and the tolerances its goldens hold."""

from __future__ import annotations

import hashlib
import re

from edgekit.toolkit.contract.formats import Format

BUNDLE_VERSION = 1
# What mobile apps load, and under which member name: the format table's bundle_member column. TorchScript
# has none on purpose: PyTorch Mobile is deprecated for ExecuTorch, and its lite interpreter cannot load a
# plain TorchScript file anyway.
def packageable() -> dict[Format, str]:
    return {f: f.spec.bundle_member for f in Format if f.spec.bundle_member}


GOLDEN_SAMPLES = 4
# Re-running the goldens with the same runtime: floats to this tolerance, integers to one quantization step.
FLOAT_ATOL, FLOAT_RTOL, INT_ATOL = 1e-4, 1e-3, 1
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_MEMBER_BYTES = 2 << 30  # a bundle member larger than this is refused before it is read
MANIFEST = "model.json"
SIGNATURE_MEMBER = "signature.json"  # not listed in model.json: it signs model.json's bytes
REPACKAGE_HINT = "package the model again with edgekit package; do not edit a bundle by hand"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npz_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)
