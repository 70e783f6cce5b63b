"""The loading policy: models are programs. Before any framework sees a file, what in it would run code
is found from its bytes and refused (exit 4) unless the user vouches for it with ``--trust``.

One module per format family, each with its own rationale: ``keras`` (configs read as JSON), ``onnx``
(external-data containment), ``exported`` (``.pt2`` archives: pickles, shape expressions, guards,
targets, native code), ``torchscript`` (code read with ``ast``, pickles scanned), ``torch_ops`` (the
operator namespaces and denylist both torch policies share), ``trust`` (what ``--trust`` lifts, loudly).
Pickles are classified by ``edgekit.toolkit.safety.pickles``; ``torch.load`` only ever runs weights-only.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgekit.toolkit.contract.errors import UnsafeModelError
from edgekit.toolkit.contract.formats import Format, Sniffed
from edgekit.toolkit.safety.policy.keras import check_keras_config, check_keras_file, keras_safe_mode, pickle_layers
from edgekit.toolkit.safety.policy.onnx import ExternalRef, check_external_data, check_onnx_file, external_refs
from edgekit.toolkit.safety.policy.trust import trusted, trusting

__all__ = [
    "PICKLE_HINT", "UNSAFE_TORCH_ENV", "ExternalRef", "check_external_data", "check_file",
    "check_keras_config", "check_keras_file", "check_onnx_file", "check_torch_environment", "check_torch_pickle",
    "external_refs", "keras_safe_mode", "pickle_layers", "trusted", "trusting",
]

UNSAFE_TORCH_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
PICKLE_HINT = (
    "save weights only (torch.save(model.state_dict(), path)) or export the program "
    "(torch.export.save(torch.export.export(model, args), 'model.pt2'))"
)


def check_torch_environment() -> None:
    """torch.load honours this variable by unpickling anything; edgekit refuses to run under it."""
    if os.environ.get(UNSAFE_TORCH_ENV, "").strip() not in ("", "0"):
        raise UnsafeModelError(
            f"{UNSAFE_TORCH_ENV} is set, which makes torch.load unpickle arbitrary code",
            hint=f"unset {UNSAFE_TORCH_ENV}",
        )


def check_torch_pickle(path: Path) -> None:
    """Refuse a pickle that references anything beyond tensors and containers (it would run code)."""
    from edgekit.toolkit.safety.pickles import scan_torch_pickle

    scan = scan_torch_pickle(path)
    if scan.is_code_bearing:
        names = ", ".join(f"{m}.{n}" for m, n in scan.disallowed[:3])
        more = f" and {len(scan.disallowed) - 3} more" if len(scan.disallowed) > 3 else ""
        raise UnsafeModelError(
            f"{path}: pickled whole model; unpickling it would import {names}{more} and run its code",
            hint=PICKLE_HINT,
        )


def check_file(sniffed: Sniffed) -> None:
    """Refuse code-bearing content of a sniffed model before any framework parses it."""
    path = Path(sniffed.path)
    if sniffed.format in (Format.TORCH_PICKLE, Format.TORCH_EXPORTED, Format.TORCHSCRIPT):
        check_torch_environment()
    if sniffed.format is Format.TORCH_PICKLE:
        check_torch_pickle(path)
    elif sniffed.format is Format.TORCH_EXPORTED:
        from edgekit.toolkit.safety.policy.exported import check_exported_archive

        check_exported_archive(path)
    elif sniffed.format is Format.TORCHSCRIPT:
        from edgekit.toolkit.safety.policy.torchscript import check_torchscript_archive

        check_torchscript_archive(path)
    elif sniffed.format in (Format.KERAS, Format.KERAS_H5):
        check_keras_file(path, h5=sniffed.format is Format.KERAS_H5)
    elif sniffed.format is Format.ONNX:
        check_onnx_file(path)
