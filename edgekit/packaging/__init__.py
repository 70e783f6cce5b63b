r"""``edgekit package``: a zip an app team can drop into a mobile project, and ``--verify`` to prove it.

The bundle holds the model, ``model.json`` (I/O contract with quantization parameters, preprocessing,
labels, sha256 of every file, versions, parity and latency summary), golden input/output vectors for
an on-device smoke test (``golden/*.npz`` and raw little-endian ``golden/*.bin``), ``labels.txt`` and
``USAGE.md`` with a snippet for the model's runtime on Android (LiteRT ``Interpreter``, ExecuTorch
``Module`` or ONNX Runtime).

``--verify`` (``verify``) trusts nothing in the zip until it has checked it, in this order:

1. The zip is read strictly (``formats.open_zip_names``: consistent directory, first member at offset 0,
   CRCs, no encrypted members, no name twice), and every member name must mean the same file to every
   extractor: no ``\``, drive letter, ``:``, absolute path, ``..``/``.``/empty component, NUL or control
   character, Windows-reserved name or trailing dot/space, no second "Unicode Path" name, and no two
   names equal when case is ignored (Windows and macOS extractors overwrite one with the other).
   Symbolic links and members over ``MAX_MEMBER_BYTES`` are refused before anything is decompressed.
2. Every member's sha256 against model.json (a member model.json does not list fails, except
   ``signature.json``).
3. The signature (below): with a public key it must be there and valid; without one it is only reported.
4. The model member's *bytes* must be one of the bundleable formats (``packageable``: tflite, executorch,
   onnx), the format model.json declares, under that format's canonical name; a member holding anything
   else (a torch.export archive, TorchScript, Keras, a pickle) is refused (exit 4) before any runtime
   sees it.
5. The goldens re-run through the model, loaded by ``open_runtime`` (the loading policy), unless a
   required signature failed; a bundle without its model or goldens, or whose model.json leaves nothing to
   compare, fails. The CLI runs all of ``verify`` in its isolated worker.

What that proves, and what it does not: an unsigned bundle that verifies is internally consistent and its
model reproduces its goldens, but anyone can regenerate such a bundle around another model (new goldens,
new sha256s), so it says nothing about who made it. Signing closes that: ``package(..., sign_key=KEY)``
adds ``signature.json``, an Ed25519 signature of the exact bytes of model.json, which lists the sha256 of
every other member, and ``verify(bundle, public_key=KEY.pub)`` then requires a valid signature by that key
(and does not load the model of a bundle that fails it). ``generate_keypair`` (``edgekit keygen``) makes a
key pair. ``cryptography`` is imported only when a key is used.

Modules: ``bundle`` (writing one), ``verify`` (checking one), ``names`` (member names every extractor reads
alike), ``signing`` (Ed25519 keys and signatures), ``usage`` (USAGE.md), ``layout`` (member names,
versions, tolerances).
"""

from edgekit.packaging.bundle import PackageResult, package
from edgekit.packaging.layout import BUNDLE_VERSION, GOLDEN_SAMPLES, MANIFEST, SIGNATURE_MEMBER, packageable
from edgekit.packaging.names import member_name_collision, member_name_problem
from edgekit.packaging.signing import (
    KeyPair,
    generate_keypair,
    key_fingerprint,
    load_private_key,
    load_public_key,
    public_key_path,
    sign_manifest,
)
from edgekit.packaging.usage import usage
from edgekit.packaging.verify import VerifyResult, verify

__all__ = [
    "BUNDLE_VERSION", "GOLDEN_SAMPLES", "MANIFEST", "packageable", "SIGNATURE_MEMBER", "KeyPair", "PackageResult",
    "VerifyResult", "generate_keypair", "key_fingerprint", "load_private_key", "load_public_key",
    "member_name_collision", "member_name_problem", "package", "public_key_path", "sign_manifest", "usage", "verify",
]
