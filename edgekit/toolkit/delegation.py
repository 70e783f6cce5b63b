"""Delegation facts as people read them (numpy-free: the terminal renderer imports it at start-up)."""

from __future__ import annotations

from typing import Any


def delegation_summary(delegation: dict[str, Any]) -> str:
    """One short phrase: 'XNNPACK 66/66 ops', 'XnnpackBackend 12/12 calls', 'CPU 20 nodes'."""
    if "delegated_share" in delegation and "xnnpack_partitions" in delegation:
        return f"XNNPACK {delegation['delegated_operators']}/{delegation['operators']} ops"
    if "delegates" in delegation:
        total = delegation["delegate_calls"] + delegation["portable_kernel_calls"]
        return f"{', '.join(delegation['delegates']) or 'portable'} {delegation['delegate_calls']}/{total} calls"
    if "nodes_per_provider" in delegation:
        nodes = delegation["nodes_per_provider"].items()
        return ", ".join(f"{k.removesuffix('ExecutionProvider')} {v} nodes" for k, v in nodes)
    return ""
