"""edgekit: take a model from where it was made to where it runs.

The Python API mirrors the CLI. Importing ``edgekit`` imports no ML framework; each function loads the
backend it needs when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekit._version import __version__

if TYPE_CHECKING:
    from edgekit.inspection import inspect_model

__all__ = ["__version__", "inspect_model"]


def __getattr__(name: str) -> Any:
    if name == "inspect_model":
        from edgekit.inspection import inspect_model

        return inspect_model
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
