"""Where a conversion's numbers part from its original's: pairing two traces' intermediate values and finding the
origin of the divergence (numpy only; :mod:`edgekit.targets.traces` captures the values).

**Pairing.** A reference value and a candidate value are partners when the candidate's name says so — the same
name (torch.onnx keeps FX node names, a quantizer keeps its float graph's, ExecuTorch taps carry FX node names), or a
scope the converter left in it (the torch module path in ``pkg.torch.onnx.name_scopes``; litert-torch's
``pkg.Class_attr/…`` locations, matched segment by segment, so ``mid_block`` is never ``block``; a Keras layer name
as a segment of a TFLite or tf2onnx name, with TensorFlow's ``_N`` uniquifier; edgekit's ONNX importer's module
named after its node) — and the shapes agree: exactly, up to unit or merged outer dimensions, or up to the layout
change a converter makes from the reference's convention (NCHW → NHWC from torch). Quantized candidate tensors
arrive dequantized with their own scale and zero point. Every match is checked against both graphs' dataflow
(:class:`_Dataflow`): the partners of a value's feeders must be upstream of its partner, or the match is dropped
and the choice made again — names mislead where a converter renumbers or names a tensor after several modules.

Where a name admits several partners (a fused block's tensor names every module it absorbed; a scope holds several
ops of one shape; a square tensor fits both layouts), the closest on the first sample wins: the names narrow the
choice to one scope, the values only say which op of it. A name-matched pair may stand one activation later on
either side (a converter fused the activation into the op's output, or split it off again with the bias Add, as
tf2onnx does from TFLite). A value no name pairs is paired by position: the unpaired candidate value read from its
input's partner, with a shape that fits (a decomposition renamed it).

A reference value whose module a paired candidate tensor names, but that has no tensor of its own, was **fused**
into that pair (a Conv whose ReLU the converter folded in); so was an op only a paired activation reads that the
candidate never materialised (an int8 ExecuTorch program tapped at its quantize nodes). A fused value counts as
matched, and the pair stands for the block, named by its first module. Ops that only move values (``MOVES``) and
pass-throughs are paired only as graph outputs and otherwise stand with their input. ``matched_share`` is the share
of the reference's run-time values paired or fused: values computed from weights alone (``constant``) and values no
output depends on (``unused``) are listed apart, since converters fold or drop them.

**Judging.** Each pair's error over all samples — SQNR, cosine, max |Δ| — judged under the candidate's precision
profile at the tensor's own scale (:class:`LayerRule`). Non-finite values always fail.

**Origin.** A pair's feeders are the nearest paired values upstream in the reference graph. The origin is the first
failing pair (in the reference's order) whose feeders all pass; a failing pair with a failing feeder upstream is
*propagated*; a failing pair whose every reader passes again is *absorbed* — its difference does not reach the
outputs (litert-torch folds attention's 1/√d into the query and key weights) — and fails nothing. Each pair also
has the error it *adds*: its noise-to-signal ratio over the worst of its feeders',
which ranks the layers whose own error dominates (quantization spreads error everywhere; the origin is only where
the first threshold is crossed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edgekit.validators.layerwise import TensorError

LOCALIZE_VERSION = 1
PERMUTATIONS = ((0, 2, 3, 1), (0, 3, 1, 2), (0, 2, 1), (0, 2, 3, 4, 1), (0, 4, 1, 2, 3))
LAYOUTS = {(0, 2, 3, 1): "NCHW → NHWC", (0, 3, 1, 2): "NHWC → NCHW", (0, 2, 1): "NCW ↔ NWC",
           (0, 2, 3, 4, 1): "NCDHW → NDHWC", (0, 4, 1, 2, 3): "NDHWC → NCDHW"}
# the layout changes a converter can make from a reference of each convention: a channels-first model (torch) may
# come out channels-last (litert-torch), a channels-last one (Keras, TFLite) channels-first; ONNX holds either
CHANNELS_FIRST_TO_LAST = ((0, 2, 3, 1), (0, 2, 1), (0, 2, 3, 4, 1))
CHANNELS_LAST_TO_FIRST = ((0, 3, 1, 2), (0, 2, 1), (0, 4, 1, 2, 3))
FP32_LAYER_ATOL = 1e-4
# elementwise activations converters fuse into the op before them (or split off it again)
ACTIVATIONS = {"relu", "relu6", "hardtanh", "clamp", "clip", "sigmoid", "logistic", "tanh", "gelu", "silu",
               "hardswish", "hard_swish", "leaky_relu", "leakyrelu", "elu", "prelu", "relu_n1_to_1", "activation"}


# ops a converter folds into the op before them: batch norms (into a Conv's weights), and what merely passes a value on
FOLDABLE = {"batchnormalization", "batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm",
            "getitem", "dropout", "identity", "alias", "clone", "contiguous", "detach"}
IDENTITIES = {"dropout", "identity", "alias", "clone", "contiguous", "detach", "lift_fresh_copy", "to", "_to_copy",
              "type_as", "cast"}
# ops that hand on their input's values in another shape, in the same order
RESHAPES = {"view", "reshape", "_unsafe_view", "flatten", "unflatten", "squeeze", "unsqueeze", "expand_dims"}
# ops that only move values: paired only as graph outputs, else they stand with their input. Converters rename
# and merge them freely (torch.onnx renumbers reshapes; litert-torch's attention scope holds many reshapes and
# transposes of one shape), and what a move gets wrong shows in the first op that computes on it
MOVES = RESHAPES | {"transpose", "permute", "t", "numpy_t", "swapaxes", "movedim", "cat", "concat", "concatenate",
                    "stack", "split", "split_with_sizes", "chunk", "unbind", "slice", "narrow", "expand", "repeat",
                    "pad", "constant_pad_nd", "zeropadding2d"}
PASS_THROUGH = IDENTITIES | MOVES  # what stands with its input instead of being paired


def _op(op: str) -> str:
    return op.lower().removesuffix("_").split(".")[0]


def is_activation(op: str) -> bool:
    return _op(op) in ACTIVATIONS


def is_foldable(op: str) -> bool:
    return _op(op) in ACTIVATIONS or _op(op) in FOLDABLE


class _Value(Protocol):
    name: str
    op: str
    inputs: tuple[str, ...]
    module_path: str | None
    keys: tuple[tuple[str, str], ...]
    scopes: tuple[str, ...]
    quantized: bool


def fits(ref: Sequence[int], cand: Sequence[int], layouts: Sequence[tuple[int, ...]] = PERMUTATIONS
         ) -> list[tuple[int, ...] | None]:
    """The layouts in which a candidate shape holds a reference shape: None (same), or the permutation p (one of
    ``layouts``) with candidate = reference.transpose(p)."""
    ref, cand = tuple(ref), tuple(cand)
    found: list[tuple[int, ...] | None] = [None] if ref == cand or _reshaped(ref, cand) else []
    for perm in layouts:
        if len(perm) == len(ref) and tuple(ref[i] for i in perm) == cand:  # square: both, the values decide
            found.append(perm)
    return found


def _reshaped(ref: Sequence[int], cand: Sequence[int]) -> bool:
    """The same values in the same order under another shape: unit dimensions added or dropped (a [16, 96] addmm
    computed as [1, 16, 96]), or outer dimensions merged with the innermost kept (a channels-last LayerNorm over
    [1, 16, 16, C] computed as [1, 256, C])."""
    ref, cand = tuple(ref), tuple(cand)
    if tuple(d for d in ref if d != 1) == tuple(d for d in cand if d != 1):
        return True
    return bool(ref) and bool(cand) and ref[-1] == cand[-1] and math.prod(ref) == math.prod(cand)


def to_reference_layout(value: np.ndarray, perm: tuple[int, ...] | None,
                        shape: Sequence[int] | None = None) -> np.ndarray:
    """A candidate value in the reference's layout (``perm`` undone) and, given its ``shape``, unit dimensions."""
    value = value if perm is None else value.transpose(np.argsort(perm))
    if shape is not None and value.shape != tuple(shape) and _reshaped(shape, value.shape):
        value = value.reshape(shape)
    return value


def _segments(scope: str) -> list[str]:
    return [s.split(":")[0] for s in scope.split("/") if s]


def name_rank(ref: _Value, cand: _Value) -> int | None:
    """0: the candidate carries the reference's own name; 1: it names the reference's scope; None: neither."""
    if cand.name == ref.name:
        return 0
    for kind, key in ref.keys:
        if kind == "module" and ("module:" + key in cand.scopes):
            return 1
        if kind == "litert" and key and any(s == key or s.endswith("/" + key) for s in cand.scopes):
            return 1
        if kind == "litert-root" and key in cand.scopes:
            return 1
        if kind == "attr" and key and any(s.split("/")[-1].endswith("_" + key) for s in cand.scopes if "/" in s):
            return 1
        if kind == "layer":
            pattern = re.compile(re.escape(key) + r"(_\d+)?")
            if any(pattern.fullmatch(seg) for s in cand.scopes for seg in _segments(s)):
                return 1
    if ref.module_path and getattr(cand, "module_path", None) == ref.module_path and ref.op == cand.op:
        return 1
    return None


def _finite(nsr: float) -> float:
    """A noise-to-signal ratio as a sort key (a non-finite one sorts last)."""
    return nsr if math.isfinite(nsr) else 1e300


def _nsr(ref: np.ndarray, cand: np.ndarray) -> float:
    r, c = ref.astype(np.float64).ravel(), cand.astype(np.float64).ravel()
    signal = float(r @ r)
    noise = float((r - c) @ (r - c))
    if signal <= 0:
        return 0.0 if noise <= 0 else math.inf
    return noise / signal


@dataclass(frozen=True)
class Match:
    reference: str
    candidate: str
    perm: tuple[int, ...] | None
    how: str  # name | scope | output


@dataclass
class Pairing:
    matches: list[Match]
    fused: dict[str, str]  # reference value → the reference value of the pair it was fused into
    unmatched: list[str]
    considered: list[str]  # reference values with a float tensor
    # unpaired values computed from weights alone, which a converter folds into constants (a position embedding)
    constant: list[str] = field(default_factory=list)
    # unpaired values no output depends on, which a converter drops (an LSTM's final states nobody reads)
    unused: list[str] = field(default_factory=list)

    @property
    def runtime_values(self) -> int:
        """The reference values a candidate computes at run time: the considered less constants and unused."""
        return len(self.considered) - len(self.constant) - len(self.unused)

    @property
    def matched_share(self) -> float:
        """Paired or fused over the reference values a candidate computes at run time."""
        total = self.runtime_values
        if total <= 0:
            return 0.0
        return (len(self.matches) + len(self.fused)) / total


def pair(ref_values: Sequence[_Value], ref_sample: Mapping[str, np.ndarray], ref_outputs: Sequence[str],
         cand_values: Sequence[_Value], cand_sample: Mapping[str, np.ndarray], cand_outputs: Sequence[str],
         layouts: Sequence[tuple[int, ...]] = PERMUTATIONS, sources: Collection[str] | None = None) -> Pairing:
    """Partners by name and shape (``layouts``: the permutations a candidate may hold a reference tensor in), ties
    broken by closeness on one sample (module docstring). ``sources``: the reference's graph inputs, which tell
    the values computed from weights alone (None: not known)."""
    considered = [v for v in ref_values if v.name in ref_sample and np.asarray(ref_sample[v.name]).dtype.kind == "f"]
    present = [(i, c) for i, c in enumerate(cand_values)
               if c.name in cand_sample and np.asarray(cand_sample[c.name]).dtype.kind == "f"]
    output_of = dict(zip(ref_outputs, cand_outputs, strict=False))
    by_cand = {c.name: c for _, c in present}
    cand_index = {c.name: i for i, c in present}
    ref_by_name = {v.name: v for v in considered}

    all_readers: dict[str, list[_Value]] = {}
    for v in ref_values:
        for source in v.inputs:
            all_readers.setdefault(source, []).append(v)

    def folded_after(name: str) -> list[_Value]:
        """The chain of ops a converter folds into ``name``'s op (BatchNorm, activation, pass-throughs), each the
        sole reader of the one before."""
        chain, tail = [], name
        for _ in range(4):
            readers = all_readers.get(tail, [])
            if len(readers) != 1 or not is_foldable(readers[0].op):
                break
            tail = readers[0].name
            chain.append(readers[0])
        return chain

    def add(r: _Value, c: _Value, rank: int, how: str, into: list) -> None:
        rv, cv = np.asarray(ref_sample[r.name]), np.asarray(cand_sample[c.name])
        for perm in fits(rv.shape, cv.shape, layouts):
            into.append((rank, _nsr(rv, to_reference_layout(cv, perm, rv.shape)), cand_index[c.name], r, c, perm,
                         how))

    found: dict[str, list] = {r.name: [] for r in considered}
    for r in considered:
        for _, c in present:
            if _op(r.op) in MOVES and output_of.get(r.name) != c.name:
                continue  # paired as a graph output only (below: it stands with its input)
            rank = 0 if output_of.get(r.name) == c.name else name_rank(r, c)
            if rank is None:
                continue
            how = "output" if output_of.get(r.name) == c.name else ("name" if rank == 0 else "scope")
            add(r, c, rank, how, found[r.name])
            # a converter that folded the BatchNorm and activation after r into r's op names the folded output
            # after r; one that split an activation off names the op before it: either way the later value may be
            # the partner
            for reader in folded_after(r.name):  # a pass-through on the way stands with its input (below)
                if reader.name in ref_by_name and _op(reader.op) not in PASS_THROUGH:
                    add(reader, c, rank, how + "+fused activation", found[reader.name])
            # split off: the op's bias Add and activation as separate nodes after it (tf2onnx from TFLite)
            tail = c
            for _ in range(3):
                readers = [v for _, v in present if tail.name in v.inputs]
                if len(readers) != 1 or not (is_activation(readers[0].op) or readers[0].op in ("Add", "BiasAdd")):
                    break
                tail = readers[0]
                add(r, tail, rank, how + "+split activation", found[r.name])
    consistent = _Dataflow(ref_values, cand_values)
    banned: set[tuple[str, str]] = set()
    for _ in range(64):  # structurally impossible matches are banned and the greedy choice made again
        options = []
        for r in considered:
            allowed = [o for o in found[r.name] if (r.name, o[4].name) not in banned]
            best = min((o[0] for o in allowed), default=None)
            options += [o for o in allowed if o[0] == best]
        # a tie between an op and the activation fused after it (a ReLU that clipped nothing): the fused tensor is
        # the activation's output
        options.sort(key=lambda o: (o[0], _finite(o[1]), o[2],
                                    "fused activation" not in o[6]))
        taken_ref: dict[str, Match] = {}
        taken_cand: set[str] = set()
        cost: dict[str, tuple[int, float]] = {}
        for rank, nsr, _, r, c, perm, how in options:
            if r.name in taken_ref or c.name in taken_cand:
                continue
            taken_ref[r.name] = Match(r.name, c.name, perm, how)
            taken_cand.add(c.name)
            cost[r.name] = (rank, _finite(nsr))
        wrong = consistent.violations(taken_ref, cost)
        if not wrong:
            break
        banned |= wrong
    # by position: a value no name pairs, read from the partner of one of its inputs with a shape that fits, is that
    # value (torch.onnx decomposes a root-level flatten into a view its name no longer says)
    for r in considered:
        if r.name in taken_ref or _op(r.op) in PASS_THROUGH:  # these stand with their input (below)
            continue
        partners = {taken_ref[i].candidate for i in r.inputs if i in taken_ref}
        if not partners:
            continue
        near = []
        for _, c in present:  # a candidate move holds its input's values, not a computed one's
            if c.name not in taken_cand and partners & set(c.inputs) and _op(c.op) not in PASS_THROUGH:
                add(r, c, 2, "position", near)
        if len({o[4].name for o in near}) == 1:  # one candidate value only: else the position says nothing
            _, _, _, _, c, perm, how = min(near, key=lambda o: (_finite(o[1]), o[2]))
            taken_ref[r.name] = Match(r.name, c.name, perm, how)
            taken_cand.add(c.name)
    order = {v.name: i for i, v in enumerate(considered)}
    matches = sorted(taken_ref.values(), key=lambda m: order[m.reference])
    fused: dict[str, str] = {}
    for r in considered:  # execution order: an input's standing is known before its readers'
        if r.name in taken_ref:
            continue
        # a pass-through (an eval-mode dropout, a cast) or a move holds its input's values: it stands with its
        # input (torch.onnx drops a no-op reshape; litert-torch merges reshapes into the ops beside them)
        if _op(r.op) in PASS_THROUGH:
            into = next((i if i in taken_ref else fused[i] for i in r.inputs if i in taken_ref or i in fused), None)
            if into is None:  # a move of a graph input (a leading pad a converter folds into the conv it feeds)
                reached = _reached(r.name, all_readers, taken_ref)
                into = min(reached, key=lambda name: order.get(name, len(order))) if reached else None
            if into is not None:
                fused[r.name] = into
                continue
        # the first pair r reaches through unpaired values whose candidate tensor names r's scope: the converter
        # computed r inside it (a fused name may carry scopes from anywhere in the graph, so only what r feeds)
        later = [name for name in _reached(r.name, all_readers, taken_ref)
                 if name_rank(r, by_cand[taken_ref[name].candidate])]
        if later:
            fused[r.name] = min(later, key=lambda name: order.get(name, len(order)))
    # an op only a paired activation reads, which the candidate never materialised: fused into it (an int8
    # ExecuTorch program tapped at its quantize nodes shows a Conv+ReLU block by the ReLU's output alone)
    for r in reversed(considered):
        if r.name in taken_ref or r.name in fused:
            continue
        only = all_readers.get(r.name, [])
        if len(only) == 1 and r.name not in ref_outputs and only[0].name in taken_ref and is_foldable(only[0].op):
            fused[r.name] = only[0].name
    live = set(ref_outputs)  # what the outputs depend on
    for v in reversed(ref_values):
        if v.name in live:
            live.update(v.inputs)
    # an activation or batch norm left over after its op, whose partner a converter fused them into
    for r in considered:
        if r.name not in taken_ref and r.name not in fused and r.name in live and is_foldable(r.op) \
                and len(r.inputs) == 1 and r.inputs[0] in taken_ref:
            fused[r.name] = r.inputs[0]
    unmatched = [r.name for r in considered if r.name not in taken_ref and r.name not in fused]
    unused = [name for name in unmatched if name not in live]
    unmatched = [name for name in unmatched if name in live]
    constant: list[str] = []
    if sources is not None:
        dynamic = set(sources)
        for v in ref_values:
            if dynamic.intersection(v.inputs):
                dynamic.add(v.name)
        constant = [name for name in unmatched if name not in dynamic]
        unmatched = [name for name in unmatched if name in dynamic]
    return Pairing(matches, fused, unmatched, [v.name for v in considered], constant, unused)


def nearest_paired_upstream(ref_values: Sequence[_Value], paired: Collection[str]) -> dict[str, list[str]]:
    """Each reference value's feeders: the nearest paired values upstream of its inputs."""
    found: dict[str, list[str]] = {}
    for v in ref_values:  # execution order: every input's entry is made before its readers'
        mine: list[str] = []
        for source in v.inputs:
            mine += [source] if source in paired else found.get(source, [])
        found[v.name] = list(dict.fromkeys(mine))
    return found


def _reached(name: str, readers: Mapping[str, Sequence[_Value]], paired: Mapping[str, Match]) -> list[str]:
    """The paired values ``name`` feeds through unpaired ones."""
    found, seen, todo = [], {name}, [name]
    while todo:
        for reader in readers.get(todo.pop(), ()):
            if reader.name in seen:
                continue
            seen.add(reader.name)
            if reader.name in paired:
                found.append(reader.name)
            else:
                todo.append(reader.name)
    return found


class _Dataflow:
    """Structural consistency of a matching: a candidate value can stand for a reference value only if the
    partners of the reference value's feeders (its nearest matched values upstream) are upstream of it in the
    candidate's graph. Names alone mislead where a converter renumbers (torch.onnx's decompositions shift its FX
    names, so its ``view_5`` is another reshape than the reference's) and a scope holds several ops of one shape;
    the check reads only the two graphs, never the values, so a broken conversion is matched as a sound one is."""

    def __init__(self, ref_values: Sequence[_Value], cand_values: Sequence[_Value]) -> None:
        self.ref_values = ref_values
        self.active = any(c.inputs for c in cand_values)  # ExecuTorch taps carry no graph: nothing to check
        self.bit: dict[str, int] = {}
        self.upstream: dict[str, int] = {}  # candidate value → bitset of every candidate value upstream of it
        for c in cand_values:
            seen = 0
            for source in c.inputs:
                seen |= self.upstream.get(source, 0) | (1 << self.bit.setdefault(source, len(self.bit)))
            self.bit.setdefault(c.name, len(self.bit))
            self.upstream[c.name] = seen

    def violations(self, taken: Mapping[str, Match], cost: Mapping[str, tuple[int, float]]
                   ) -> set[tuple[str, str]]:
        """The matches to drop: each edge feeder → value whose partners are not upstream → downstream in the
        candidate blames one of its two matches, the one in more such edges (a wrong match contradicts its feeders
        and its readers alike, a right one only the wrong neighbour), else the one paired on weaker evidence (a
        scope before a name, then the farther value on the first sample)."""
        if not self.active:
            return set()
        feeders = nearest_paired_upstream(self.ref_values, taken)
        edges = []
        for v in self.ref_values:
            match = taken.get(v.name)
            seen = self.upstream.get(match.candidate) if match is not None else None
            if seen is None:
                continue
            for f in feeders.get(v.name, []):
                partner = taken[f].candidate
                if partner in self.bit and not seen >> self.bit[partner] & 1:
                    edges.append((f, v.name))
        count: dict[str, int] = {}
        for edge in edges:
            for name in edge:
                count[name] = count.get(name, 0) + 1
        dropped: set[str] = set()
        for f, v in edges:
            if f in dropped or v in dropped:
                continue
            dropped.add(max((f, v), key=lambda name: (count[name], cost.get(name, (0, 0.0)))))
        return {(name, taken[name].candidate) for name in dropped}


@dataclass
class PairError(TensorError):
    """A pair's error over the samples, with what the judgement reads beyond :class:`TensorError`."""

    max_ref: float = 0.0
    nonfinite: int = 0

    def add_pair(self, ref: np.ndarray, cand: np.ndarray) -> None:
        finite = np.isfinite(cand)
        self.nonfinite += int((~finite).sum())
        cand = np.where(finite, cand, 0.0)
        self.add(ref, cand, False)
        self.max_ref = max(self.max_ref, float(np.abs(ref).max()) if ref.size else 0.0)


@dataclass(frozen=True)
class LayerRule:
    """How one pair is judged: the profile's minimum cosine and the SQNR it stands for, or (fp32) a max |Δ| at the
    tensor's scale. Cosine is blind to gain (a layer whose output is 1.5× too large has cosine 1); noise that costs
    a cosine c costs about 2(1 − c) of the signal's power, so the SQNR floor is −10·log10(2(1 − c)): 17 dB at
    int8's 0.99, 27 dB at fp16's 0.999."""

    profile: str
    min_cosine: float | None = None
    atol: float | None = None

    @property
    def min_sqnr_db(self) -> float | None:
        if self.min_cosine is None or self.min_cosine >= 1:
            return None
        return -10 * math.log10(2 * (1 - self.min_cosine))

    def judge(self, error: PairError) -> tuple[bool, str]:
        if error.nonfinite:
            return False, f"{error.nonfinite} non-finite values"
        if self.atol is not None:
            limit = self.atol * max(1.0, error.max_ref)
            return error.max_abs <= limit, f"max |Δ| {error.max_abs:.3g} vs {limit:.3g}"
        cosine = error.cosine
        if cosine is None:  # an all-zero side: passes only if both are
            both = error.float_energy <= 0 and error.quantized_energy <= 0
            return both, "both zero" if both else "one side is all zeros"
        assert self.min_cosine is not None
        if cosine < self.min_cosine:
            return False, f"cosine {cosine:.6f} vs {self.min_cosine}"
        sqnr, floor = error.sqnr_db, self.min_sqnr_db
        if sqnr is not None and floor is not None and sqnr < floor:
            return False, f"SQNR {sqnr:.1f} dB vs {floor:.1f} dB (cosine {cosine:.6f}: a gain error)"
        return True, f"cosine {cosine:.6f} vs {self.min_cosine}"

    def describe(self) -> str:
        if self.atol is not None:
            return f"{self.profile}: max |Δ| ≤ {self.atol:g}·max(1, max|ref|) per tensor"
        return f"{self.profile}: cosine ≥ {self.min_cosine} and SQNR ≥ {self.min_sqnr_db:.1f} dB per tensor"


@dataclass
class PairResult:
    match: Match
    reference: _Value
    candidate: _Value
    error: PairError
    passed: bool
    detail: str
    feeders: list[str]
    fused: list[str]
    depth: int
    head: _Value  # the first reference value of the pair's fused block (whose module a fault most likely sits in)
    # pass | origin (fails, its feeders pass; independent branches may have several) | propagated | absorbed (fails,
    # but every pair it feeds passes: the converter computed it another way, as a scale folded into the next weights)
    status: str = "pass"
    added_nsr: float = 0.0
    share: float = 0.0
    local: dict[str, Any] | None = None  # the candidate op run alone on the reference's inputs (ONNX)

    def to_dict(self) -> dict[str, Any]:
        m = self.match
        return {"reference_name": m.reference, "candidate_name": m.candidate,
                "module_path": self.head.module_path or self.reference.module_path, "op": self.head.op,
                "reference_op": self.reference.op, "candidate_op": self.candidate.op,
                "paired_by": m.how, "layout": LAYOUTS.get(m.perm) if m.perm else None,
                "permutation": list(m.perm) if m.perm else None,
                "dequantized": bool(self.candidate.quantized), "fused": self.fused, "feeders": self.feeders,
                "depth": self.depth, "status": self.status, "passed": self.passed, "detail": self.detail,
                "metrics": {**self.error.figures(), "max_abs_reference": _significant(self.error.max_ref),
                            "nonfinite": self.error.nonfinite},
                "added_nsr": _significant(self.added_nsr), "share": round(self.share, 4),
                **({"local": self.local} if self.local is not None else {})}


def _significant(value: float, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def judge(pairing: Pairing, ref_values: Sequence[_Value], cand_values: Sequence[_Value],
          errors: Mapping[str, PairError], rule: LayerRule) -> list[PairResult]:
    """Every pair judged, its feeders found, the origin(s) and propagated failures marked, shares computed."""
    by_name = {v.name: v for v in ref_values}
    cand_by_name = {v.name: v for v in cand_values}
    feeders = nearest_paired_upstream(ref_values, {m.reference for m in pairing.matches})

    fused_into: dict[str, list[str]] = {}
    for name, into in pairing.fused.items():
        fused_into.setdefault(into, []).append(name)
    order = {v.name: i for i, v in enumerate(ref_values)}
    results: dict[str, PairResult] = {}
    for depth, m in enumerate(pairing.matches):
        ref = by_name[m.reference]
        error = errors[m.reference]
        passed, detail = rule.judge(error)
        block = sorted([m.reference, *fused_into.get(m.reference, [])], key=lambda n: order[n])
        results[m.reference] = PairResult(m, ref, cand_by_name[m.candidate], error, passed, detail,
                                          feeders[m.reference], [n for n in block if n != m.reference], depth,
                                          by_name[block[0]])
    # a failing pair carries its error on unless every pair it feeds passes again (or is absorbed itself)
    readers: dict[str, list[str]] = {}
    for m in pairing.matches:
        for f in results[m.reference].feeders:
            readers.setdefault(f, []).append(m.reference)
    carries: dict[str, bool] = {}
    for m in reversed(pairing.matches):
        result = results[m.reference]
        later = readers.get(m.reference, [])
        carries[m.reference] = not result.passed and (not later or any(carries[r] for r in later))
    failing_upstream: dict[str, bool] = {}
    for m in pairing.matches:
        result = results[m.reference]
        upstream = any(carries[f] or failing_upstream.get(f, False) for f in result.feeders)
        failing_upstream[m.reference] = upstream
        if result.passed:
            continue
        result.status = "absorbed" if not carries[m.reference] else "propagated" if upstream else "origin"
    total = 0.0
    for result in results.values():
        own = result.error.nsr()
        inherited = max((results[f].error.nsr() for f in result.feeders), default=0.0)
        added = own - inherited if math.isfinite(own) and math.isfinite(inherited) else 0.0
        result.added_nsr = max(0.0, added)
        total += result.added_nsr
    for result in results.values():
        result.share = result.added_nsr / total if total > 0 else 0.0
    return [results[m.reference] for m in pairing.matches]


def accumulate(pairing: Pairing, samples: Iterable[tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]]]
               ) -> dict[str, PairError]:
    """Each pair's error over the samples (reference run, candidate run)."""
    errors = {m.reference: PairError() for m in pairing.matches}
    for ref_run, cand_run in samples:
        for m in pairing.matches:
            if m.reference in ref_run and m.candidate in cand_run:
                ref = np.asarray(ref_run[m.reference], np.float64)
                cand = to_reference_layout(np.asarray(cand_run[m.candidate], np.float64), m.perm, ref.shape)
                if ref.shape == cand.shape:
                    errors[m.reference].add_pair(ref, cand)
    return errors


@dataclass
class Localization:
    pairs: list[PairResult]
    pairing: Pairing
    rule: LayerRule
    notes: list[str] = field(default_factory=list)

    @property
    def origins(self) -> list[PairResult]:
        return [p for p in self.pairs if p.status == "origin"]

    @property
    def origin(self) -> PairResult | None:
        return next((p for p in self.pairs if p.status == "origin"), None)

    @property
    def failing(self) -> list[PairResult]:
        """The pairs whose error reaches further: origins and what they propagate to (absorbed ones do not)."""
        return [p for p in self.pairs if p.status in ("origin", "propagated")]

    @property
    def absorbed(self) -> list[PairResult]:
        return [p for p in self.pairs if p.status == "absorbed"]

    def worst(self, top: int = 10) -> list[PairResult]:
        """The pairs whose own (added) error is largest."""
        ranked = sorted(self.pairs, key=lambda p: -p.added_nsr)
        return [p for p in ranked if p.added_nsr > 0][:top]


def model_explorer_data(localization: Localization, *, metric: str = "sqnr_db") -> dict[str, Any]:
    """Model Explorer node data (the ``results``/``thresholds`` JSON ai-edge-quantizer's validator writes for it),
    keyed by the candidate's tensor names: each pair's SQNR in dB, the colour scale red below 10 dB, green above
    40 dB; the origin's tensor at −1000 so it stands out."""
    results = {}
    for p in localization.pairs:
        value = p.error.figures().get(metric)
        if value is None:
            value = 200.0  # identical: no noise
        if p.status == "origin":
            value = -1000.0
        results[p.match.candidate] = {"value": float(value) if math.isfinite(value) else -1000.0}
    thresholds = [{"value": -1000, "bgColor": "rgb(160, 0, 0)"}, {"value": 10, "bgColor": "rgb(230, 80, 40)"},
                  {"value": 20, "bgColor": "rgb(240, 170, 40)"}, {"value": 40, "bgColor": "rgb(200, 220, 60)"},
                  {"value": 1000, "bgColor": "rgb(80, 190, 90)"}]
    return {"results": results, "thresholds": thresholds}
