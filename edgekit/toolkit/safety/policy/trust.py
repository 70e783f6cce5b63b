"""``--trust``: the user vouches for a file, so refusals of code it carries are lifted — loudly.

What ``--trust`` never lifts is listed where each policy refuses it: pickles (edgekit never unpickles a
model, whoever vouches for it) and native code (compiled AOTInductor libraries in a ``.pt2``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from edgekit.toolkit.contract.errors import UnsafeModelError

TRUST_ENV = "EDGEKIT_TRUST"


def trusted() -> bool:
    """True when the user passed ``--trust`` (exported to child processes through the environment)."""
    return os.environ.get(TRUST_ENV, "").strip() not in ("", "0")


def set_trusted(value: bool) -> None:
    if value:
        os.environ[TRUST_ENV] = "1"
    else:
        os.environ.pop(TRUST_ENV, None)


def summary(findings: Sequence[str], shown: int = 3) -> str:
    text = "; ".join(findings[:shown])
    return text + (f"; and {len(findings) - shown} more" if len(findings) > shown else "")


def lifted(where: str, findings: Sequence[str]) -> None:
    """Say on stderr what ``--trust`` let through (the one place a refusal turns into a warning)."""
    print(f"edgekit: warning: --trust: {where}: loading it although it carries code: {summary(findings)}",
          file=sys.stderr, flush=True)


def refuse_unless_trusted(where: str, findings: Sequence[str], message: str, *, hint: str) -> None:
    """Refuse (exit 4) with ``message`` when there are findings, unless ``--trust`` lifts them (loudly)."""
    if not findings:
        return
    if trusted():
        lifted(where, findings)
        return
    raise UnsafeModelError(message, hint=hint)
