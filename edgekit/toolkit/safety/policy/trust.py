"""``--trust``: the user vouches for a file, so refusals of code it carries are lifted — loudly.

What ``--trust`` never lifts is listed where each policy refuses it: pickles (edgekit never unpickles a
model, whoever vouches for it) and native code (compiled AOTInductor libraries in a ``.pt2``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

from edgekit.toolkit.contract.errors import UnsafeModelError, option

_TRUST = {"on": False}  # process-wide, inherited by a forked worker; set only by ``trusting``


def trusted() -> bool:
    """True while the caller vouches for the files being loaded (``--trust``, or ``trust=True`` in the API)."""
    return _TRUST["on"]


@contextlib.contextmanager
def trusting(value: bool) -> Iterator[None]:
    """Lift the policy's code refusals (with a warning each) while the block runs, when ``value``."""
    before = _TRUST["on"]
    _TRUST["on"] = bool(value)
    try:
        yield
    finally:
        _TRUST["on"] = before


def summary(findings: Sequence[str], shown: int = 3) -> str:
    text = "; ".join(findings[:shown])
    return text + (f"; and {len(findings) - shown} more" if len(findings) > shown else "")


def lifted(where: str, findings: Sequence[str]) -> None:
    """Say on stderr what ``--trust`` let through (the one place a refusal turns into a warning)."""
    print(f"edgekit: warning: {option('trust', True)}: {where}: loading it although it carries code: "
          f"{summary(findings)}",
          file=sys.stderr, flush=True)


def refuse_unless_trusted(where: str, findings: Sequence[str], message: str, *, hint: str) -> None:
    """Refuse (exit 4) with ``message`` when there are findings, unless ``--trust`` lifts them (loudly)."""
    if not findings:
        return
    if trusted():
        lifted(where, findings)
        return
    raise UnsafeModelError(message, hint=hint)
