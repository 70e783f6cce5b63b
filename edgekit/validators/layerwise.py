"""Per-layer quantization error from paired tensors: pure arithmetic over what a tap captured (numpy only).

For every tensor of the float graph that the quantized model also computes, accumulated over the samples:
SQNR (dB, 10·log10 of signal over noise power), cosine and max |Δ|. Per layer (the unit ``--keep-float``
takes), its last tensor's figures, and its **share of the final-output error**, estimated to first order:
quantization noise relative to the signal travels through a network roughly unchanged, so the noise-to-signal
ratio (NSR) a layer *adds* over the worst of its inputs' is its contribution, and the final NSR is about their
sum. ``explained`` compares that sum with the measured final NSR, so a reader sees how far the estimate holds;
an accuracy budget verifies the ranking by reverting layers and re-measuring anyway.

The shares are computed on the worst samples (the quarter with the highest final NSR, at least 8), where the
accuracy is lost; the figures per tensor are over all samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

WORST_SHARE = 0.25
WORST_MINIMUM = 8


class _Node(Protocol):
    name: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class _Pair(Protocol):
    float: np.ndarray
    quantized: np.ndarray
    is_quantized: bool


@dataclass
class TensorError:
    """One tensor's error, accumulated over samples (per-sample signal and noise energy kept for the shares)."""

    signal: list[float] = field(default_factory=list)
    noise: list[float] = field(default_factory=list)
    dot: float = 0.0
    float_energy: float = 0.0
    quantized_energy: float = 0.0
    max_abs: float = 0.0
    quantized: bool = False

    def add(self, ref: np.ndarray, cand: np.ndarray, is_quantized: bool) -> None:
        r, c = ref.astype(np.float64).ravel(), cand.astype(np.float64).ravel()
        d = r - c
        self.signal.append(float(r @ r))
        self.noise.append(float(d @ d))
        self.dot += float(r @ c)
        self.float_energy += float(r @ r)
        self.quantized_energy += float(c @ c)
        self.max_abs = max(self.max_abs, float(np.abs(d).max()) if d.size else 0.0)
        self.quantized = self.quantized or is_quantized

    def nsr(self, samples: Sequence[int] | None = None) -> float:
        index = range(len(self.signal)) if samples is None else samples
        signal = sum(self.signal[i] for i in index)
        noise = sum(self.noise[i] for i in index)
        if signal <= 0:
            return 0.0 if noise <= 0 else math.inf
        return noise / signal

    @property
    def sqnr_db(self) -> float | None:
        nsr = self.nsr()
        if nsr <= 0:
            return None  # identical: no noise to measure
        return -10 * math.log10(nsr) if math.isfinite(nsr) else -math.inf

    @property
    def cosine(self) -> float | None:
        if self.float_energy <= 0 or self.quantized_energy <= 0:
            return None
        return self.dot / math.sqrt(self.float_energy * self.quantized_energy)

    def figures(self) -> dict[str, Any]:
        return {"sqnr_db": _round(self.sqnr_db, 2), "cosine": _round(self.cosine, 6),
                "max_abs_diff": _significant(self.max_abs)}


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return value
    return round(value, digits)


def _significant(value: float, digits: int = 6) -> float:
    """Six significant digits: activations of a deep random-weight network can be 1e-6 and smaller."""
    return float(f"{value:.{digits}g}") if math.isfinite(value) else value


def accumulate(pairs: Iterable[Mapping[str, _Pair]]) -> tuple[dict[str, TensorError], int]:
    """Every tensor's error over the samples (each mapping one sample's pairs), and the sample count. A tensor
    missing from a sample (a runtime that did not materialise it) is dropped from all, so per-sample rows align."""
    errors: dict[str, TensorError] = {}
    count = 0
    seen: dict[str, int] = {}
    for sample in pairs:
        for name, pair in sample.items():
            errors.setdefault(name, TensorError()).add(pair.float, pair.quantized, pair.is_quantized)
            seen[name] = seen.get(name, 0) + 1
        count += 1
    return {name: error for name, error in errors.items() if seen[name] == count}, count


@dataclass(frozen=True)
class LayerError:
    unit: str  # the name --keep-float takes (the tensor's own name where the route names no layer)
    keepable: bool  # unit is a layer --keep-float can take one by one
    tensor: str  # its last tensor, which the figures describe
    kinds: tuple[str, ...]
    operators: int
    quantized: bool
    figures: dict[str, Any]
    added_nsr: float
    share: float

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.unit, "keep_float": self.keepable, "tensor": self.tensor, "ops": list(self.kinds),
                "operators": self.operators, "quantized": self.quantized, **self.figures,
                "added_nsr": _significant(self.added_nsr), "share": round(self.share, 4)}


@dataclass(frozen=True)
class Analysis:
    layers: list[LayerError]  # worst first
    final: dict[str, dict[str, Any]]  # each float output's figures in the instrumented run
    final_nsr: float
    explained: float | None  # Σ added NSR ÷ final NSR on the worst samples
    matched: int  # tensors paired
    tensors: int  # tensors of the float graph
    worst_samples: list[int]
    samples: int


def worst_samples(errors: Mapping[str, TensorError], outputs: Sequence[str], count: int) -> list[int]:
    """The samples with the highest final NSR (over the outputs that were paired)."""
    paired = [errors[name] for name in outputs if name in errors]
    if not paired or count == 0:
        return list(range(count))
    per_sample = [max(e.noise[i] / e.signal[i] if e.signal[i] > 0 else 0.0 for e in paired) for i in range(count)]
    take = min(count, max(WORST_MINIMUM, math.ceil(count * WORST_SHARE)))
    return sorted(sorted(range(count), key=lambda i: -per_sample[i])[:take])


def analyse(nodes: Sequence[_Node], outputs: Sequence[str], errors: Mapping[str, TensorError], count: int,
            units: Mapping[str, str], keepable: Iterable[str], aliases: Mapping[str, str] | None = None) -> Analysis:
    """Layers ranked by their estimated share of the final error (module docstring). ``units`` maps a tensor to
    its layer's name; ``keepable`` names the layers --keep-float takes one by one; ``aliases`` maps a tensor the
    candidate's quantizer made elsewhere (a fused block's output) to the tensor whose layer makes it now."""
    aliases = aliases or {}
    keepable = set(keepable)
    worst = worst_samples(errors, outputs, count)
    producer = {out: node for node in nodes for out in node.outputs}
    memo: dict[str, float] = {}

    def carried(tensor: str, depth: int = 0) -> float:
        """The NSR a tensor carries: its own where paired, else the worst of what its producer read."""
        if tensor in errors:
            return errors[tensor].nsr(worst)
        if tensor in memo:
            return memo[tensor]
        memo[tensor] = 0.0  # graph inputs, constants, and cycles' back edges carry none
        node = producer.get(tensor)
        if node is not None and depth < 200:
            memo[tensor] = max((carried(i, depth + 1) for i in node.inputs), default=0.0)
        return memo[tensor]

    # each layer as a block: the noise at the tensors it hands on, over the worst of what it reads from outside
    members: dict[str, list[_Node]] = {}
    for node in nodes:
        unit = next((units[name] for out in node.outputs if (name := aliases.get(out, out)) in units),
                    next((out for out in node.outputs if out in errors), None))
        if unit is not None:
            members.setdefault(unit, []).append(node)
    consumers: dict[str, set[str]] = {}
    for unit, block in members.items():
        for node in block:
            for tensor in node.inputs:
                consumers.setdefault(tensor, set()).add(unit)
    final_tensors = set(outputs)
    rows: dict[str, dict[str, Any]] = {}
    for unit, block in members.items():
        made = [out for node in block for out in node.outputs]
        inside = set(made)
        handed = [t for t in made if t in errors and (t in final_tensors or consumers.get(t, set()) - {unit}
                                                      or t not in consumers)]
        paired = handed or [t for t in made if t in errors][-1:]
        if not paired:
            continue
        out_nsr = max(errors[t].nsr(worst) for t in paired)
        in_nsr = max((carried(t) for node in block for t in node.inputs if t not in inside), default=0.0)
        if math.isfinite(out_nsr):
            added = max(0.0, out_nsr - in_nsr) if math.isfinite(in_nsr) else 0.0
        else:
            added = math.inf if math.isfinite(in_nsr) else 0.0
        rows[unit] = {"added": added, "kinds": [node.kind for node in block], "operators": len(block),
                      "tensor": paired[-1], "quantized": any(errors[t].quantized for t in made if t in errors)}
    total = sum(r["added"] for r in rows.values() if math.isfinite(r["added"]))
    infinite = [u for u, r in rows.items() if not math.isfinite(r["added"])]
    layers = []
    for unit, row in rows.items():
        if infinite:
            share = 1.0 / len(infinite) if unit in infinite else 0.0
        else:
            share = row["added"] / total if total > 0 else 0.0
        layers.append(LayerError(unit, unit in keepable, row["tensor"], tuple(dict.fromkeys(row["kinds"])),
                                 row["operators"], row["quantized"], errors[row["tensor"]].figures(), row["added"],
                                 share))
    layers.sort(key=lambda layer: (-layer.share, -(layer.added_nsr if math.isfinite(layer.added_nsr) else 1e300)))
    final = {name: errors[name].figures() for name in outputs if name in errors}
    final_nsr = max((errors[name].nsr(worst) for name in outputs if name in errors), default=0.0)
    explained = total / final_nsr if final_nsr > 0 and math.isfinite(final_nsr) and not infinite else None
    made = {out for node in nodes for out in node.outputs}
    return Analysis(layers, final, final_nsr, explained, len(made & set(errors)), len(made), worst, count)
