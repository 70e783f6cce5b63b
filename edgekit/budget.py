"""Accuracy-budgeted quantization: quantize fully, measure, and where the model misses the user's budget leave
the layers that cost the most in float until it meets it.

The budget is ``--min-cosine C`` (every float output's cosine against the original, no labels needed) and/or
``--max-accuracy-drop D`` (points of top-1 on the model's labelled data). It replaces the tolerance profile's
accuracy criteria (cosine, top-1 agreement, accuracy drop) by the ones it names, so the final parity verdict is
the budget's verdict; the structural checks (shapes, finite values) still hold.

The search (every measurement a real conversion, on the route's own quantizer, judged by the parity engine on
the same data):

1. Quantize fully. Inside the budget: done, nothing kept float.
2. Rank the layers the route's quantizer can leave float (``StepReport.units``: torch module paths, Keras
   layers, ONNX weighted nodes) by the per-layer report of the fully quantized model (:mod:`edgekit.quant_report`:
   the error each layer adds on the worst samples, read through the backend's own instrument from the very
   conversion just measured, no extra conversion). Where no instrument can run, probe instead: one conversion per
   layer with that layer alone float, ranked by the error left.
3. Greedy: take layers in that order, re-measuring after each; a revert that does not improve on the best so far
   is taken back (one step back) and the next is tried; stop when inside the budget. Layers the ranking gave no
   share come last, not never: beside a layer already kept one can still help.
4. Unreachable: exit 1 with the best model found and the float-vs-best figures.

The chosen model is converted once more, from the recorded recipe (its options, ``keep_float`` included), into
the output: what ``convert --recipe SIDECAR`` does later, byte for byte.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.conversion import ConversionResult, convert
from edgekit.converters.base import ConvertOptions
from edgekit.quant_report import TwinCollector, report_on
from edgekit.toolkit.contract.errors import EdgekitError, UsageError, first_line, option
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import Dim
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.fsutil import scratch_directory
from edgekit.toolkit.safety.isolation import phase

BUDGET_REPORT_VERSION = 1


@dataclass(frozen=True)
class Budget:
    min_cosine: float | None = None
    max_accuracy_drop: float | None = None  # points of top-1 (0.5 = half a point)

    def __post_init__(self) -> None:
        if self.min_cosine is None and self.max_accuracy_drop is None:
            raise UsageError("an accuracy budget needs --min-cosine or --max-accuracy-drop")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise UsageError(f"{option('min_cosine', self.min_cosine)}: a cosine is between -1 and 1",
                             hint=f"e.g. {option('min_cosine', 0.995)}")
        if self.max_accuracy_drop is not None and not 0.0 <= self.max_accuracy_drop <= 100.0:
            raise UsageError(f"{option('max_accuracy_drop', self.max_accuracy_drop)}: points of top-1, 0 to 100",
                             hint=f"e.g. {option('max_accuracy_drop', 0.5)} (half a point)")

    def overrides(self) -> Any:
        from edgekit.validators.tolerances import Overrides

        drop = self.max_accuracy_drop / 100 if self.max_accuracy_drop is not None else None
        return Overrides(budget=True, min_cosine=self.min_cosine, max_accuracy_drop=drop)

    def describe(self) -> str:
        parts = []
        if self.min_cosine is not None:
            parts.append(f"cosine ≥ {self.min_cosine}")
        if self.max_accuracy_drop is not None:
            parts.append(f"top-1 drop ≤ {self.max_accuracy_drop} pt")
        return " and ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"min_cosine": self.min_cosine, "max_accuracy_drop": self.max_accuracy_drop}


@dataclass(frozen=True)
class Trial:
    """One measured conversion of the search."""

    stage: str  # full | probe | greedy | undone
    keep: tuple[str, ...]  # the --keep-float patterns it was made with
    layer: str | None  # the layer this trial reverted (None for the full quantization)
    cosine: float | None  # the lowest cosine over the float outputs
    drop: float | None  # top-1 points lost (None without labels)
    size: int
    passed: bool
    seconds: float
    refused: str | None = None  # the route refused this combination: why
    p50: float | None = None  # seconds per single-batch inference, one thread (a short bench: a guide, not a figure)

    def shortfall(self, budget: Budget) -> float:
        """How far outside the budget (0 inside): what the search minimises. Points of drop and cosine
        shortfall ×100 (one point per 0.01 of cosine) add up when both are asked for."""
        total = 0.0
        if budget.max_accuracy_drop is not None and self.drop is not None:
            total += max(0.0, self.drop - budget.max_accuracy_drop)
        if budget.min_cosine is not None:
            total += max(0.0, budget.min_cosine - (self.cosine if self.cosine is not None else -1.0)) * 100
        return total

    def error(self, budget: Budget) -> float:
        """The model's error, inside the budget or not: the drop where the budget has one, else 1 − cosine (the
        probes rank layers by how much of it they remove)."""
        if budget.max_accuracy_drop is not None and self.drop is not None:
            return self.drop + (1 - (self.cosine if self.cosine is not None else -1.0))
        return 1 - (self.cosine if self.cosine is not None else -1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "layer": self.layer, "keep_float": list(self.keep), "cosine": self.cosine,
                "accuracy_drop_points": self.drop, "size_bytes": self.size, "passed": self.passed,
                "seconds": round(self.seconds, 2), "p50_seconds": self.p50,
                **({"refused": self.refused} if self.refused else {})}


@dataclass
class BudgetResult:
    budget: Budget
    result: ConversionResult  # the kept model, written to the output
    trials: list[Trial]
    met: bool
    float_figures: dict[str, Any] = field(default_factory=dict)

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(self.result.artifact.options.get("keep_float", ()))

    def to_dict(self) -> dict[str, Any]:
        return {"edgekit_report": "budget", "version": BUDGET_REPORT_VERSION, "budget": self.budget.to_dict(),
                "met": self.met, "kept_float": list(self.kept), "trials": [t.to_dict() for t in self.trials],
                "conversion": self.result.to_dict()}


def _p50(path: Path, data: str | None) -> float | None:
    """A short single-thread bench of a trial's artifact (what keeping a layer float costs in time); None where
    it cannot run (the trial's verdict does not depend on it)."""
    from edgekit.targets.bench import BenchOptions, bench_one

    try:
        result = bench_one(path, BenchOptions(warmup=3, runs=20, min_seconds=0.1, max_seconds=5.0),
                           data=data if data is not None and data.endswith(".npz") else None)
    except Exception:
        return None
    return result.stats.p50


def _trial(stage: str, keep: tuple[str, ...], layer: str | None, result: ConversionResult, seconds: float,
           data: str | None = None) -> Trial:
    parity = result.parity
    assert parity is not None
    cosines = [o.metrics.cosine for o in parity.outputs if o.metrics is not None and o.metrics.cosine is not None
               and math.isfinite(o.metrics.cosine)]
    drop = -parity.accuracy["delta"] * 100 if parity.accuracy else None
    return Trial(stage, keep, layer, min(cosines) if cosines else None, drop,
                 result.artifact.path.stat().st_size, parity.passed, seconds, p50=_p50(result.artifact.path, data))


def budgeted_convert(model: str | os.PathLike[str], to: Format, options: ConvertOptions, budget: Budget, *,
                     output: str | os.PathLike[str] | None = None, force: bool = False, via: Format | None = None,
                     input_shapes: dict[str, tuple[Dim, ...]] | None = None,
                     input_ranges: dict[str, tuple[float, float]] | None = None, data: str | None = None,
                     on_trial: Callable[[Trial], None] | None = None) -> BudgetResult:
    """Convert ``model`` to ``to`` quantized by ``options.quantize`` inside ``budget`` (module docstring). The
    user's own ``options.keep_float`` stays float throughout. ``on_trial`` sees each measurement as it lands."""
    if options.quantize is QuantMode.NONE:
        raise UsageError(f"an accuracy budget ({budget.describe()}) chooses what to quantize, and nothing is",
                         hint=f"add {option('quantize', 'int8')} (or another mode)")
    if not options.validate:
        raise UsageError(f"{option('no_validate')}: an accuracy budget is measured by parity validation")
    overrides = budget.overrides()
    trials: list[Trial] = []
    suffix = to.spec.suffix

    def measure(stage: str, keep: tuple[str, ...], layer: str | None, out: Path, list_units: bool = False,
                tap: Any = None) -> tuple[Trial, ConversionResult]:
        phase(f"budget: quantizing with {', '.join(keep) or 'nothing'} float")
        start = time.perf_counter()
        result = convert(model, to, replace(options, keep_float=keep, list_units=list_units, tap=tap), output=out,
                         force=True, via=via, input_shapes=input_shapes, input_ranges=input_ranges,
                         validation_data=data, overrides=overrides)
        return _trial(stage, keep, layer, result, time.perf_counter() - start, data), result

    def attempt(stage: str, keep: tuple[str, ...], layer: str, out: Path) -> Trial:
        """A probe or greedy step; one the route refuses (a backend that rejects a partly quantized graph, every
        operator left float) is a trial that failed, not the end of the search."""
        start = time.perf_counter()
        try:
            return measure(stage, keep, layer, out)[0]
        except EdgekitError as exc:
            return Trial(stage, keep, layer, None, None, 0, False, time.perf_counter() - start,
                         refused=first_line(exc, 160))

    def record(trial: Trial) -> None:
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)

    base = tuple(options.keep_float)
    ranking: dict[str, Any] = {}
    with scratch_directory("edgekit-budget-") as scratch:
        work = Path(scratch)
        twins = TwinCollector(work)
        full, full_result = measure("full", base, None, work / f"full{suffix}", list_units=True, tap=twins)
        record(full)
        if budget.max_accuracy_drop is not None and full.drop is None:
            raise UsageError(f"{option('max_accuracy_drop')} needs labelled data, and "
                             f"{Path(model).name}'s parity ran on {full_result.parity.data_source}",  # type: ignore[union-attr]
                             hint=f"give {option('data', 'FILE.npz')} with labels, or use {option('min_cosine')}")
        best = full
        if not full.passed:
            units = [u for u in full_result.steps[-1].units if u not in base]
            if not units:
                raise UsageError(f"{Path(model).name}: the {to.value} quantizer reports no layer it can leave float",
                                 hint="an accuracy budget needs --keep-float's support on this route")
            ranking = _rank(twins, full_result, model, units, work, data, input_shapes, input_ranges)
            if ranking.get("order"):  # the per-layer report's order, every layer verified by reverting it
                order = ranking["order"]
                first: dict[str, Trial] = {}
            else:  # no instrument here: one conversion per layer measures what reverting it alone gains
                probes = []
                for i, unit in enumerate(units):
                    probe = attempt("probe", (*base, unit), unit, work / f"probe{i}{suffix}")
                    record(probe)
                    probes.append(probe)
                # Every probe, best first: a layer that gains nothing alone can still help beside one already kept
                # (a Linear whose input is quantized by its float neighbour's output); the undo rule drops it if not.
                ranked = sorted((p for p in probes if p.refused is None), key=lambda p: (p.error(budget), p.size))
                order = [p.layer for p in ranked if p.layer is not None]
                first = {p.layer: p for p in ranked if p.layer is not None}
            keep = base
            for unit in order:
                if best.passed:
                    break
                if keep == base and unit in first:  # the probe already measured the first revert
                    candidate = replace(first[unit], stage="greedy")
                else:
                    candidate = attempt("greedy", (*keep, unit), unit, work / f"greedy{len(trials)}{suffix}")
                if candidate.refused is None and (candidate.error(budget) < best.error(budget)
                                                  or (candidate.passed and not best.passed)):
                    keep, best = candidate.keep, candidate
                    record(candidate)
                else:  # one step back: this revert made it no better
                    record(replace(candidate, stage="undone"))
        float_figures: dict[str, Any] = {}
        if not best.passed:  # what the budget is measured against: the unquantized model
            phase("budget: converting without quantization for the float figures")
            plain = convert(model, to, ConvertOptions(validate=False, opset=options.opset, nhwc=options.nhwc,
                                                      script=options.script),
                            output=work / f"float{suffix}", force=True, via=via, input_shapes=input_shapes,
                            input_ranges=input_ranges)
            float_figures = {"size_bytes": plain.artifact.path.stat().st_size,
                             "full": full.to_dict(), "best": best.to_dict()}
        phase("budget: writing the chosen model from its recipe")
        final = convert(model, to, replace(options, keep_float=best.keep), output=output, force=force, via=via,
                        input_shapes=input_shapes, input_ranges=input_ranges, validation_data=data,
                        overrides=overrides,
                        extra={"budget": {"budget": budget.to_dict(), "met": best.passed,
                                          **({"ranking": ranking["report"]} if ranking else {}),
                                          "trials": [t.to_dict() for t in trials],
                                          **({"float": float_figures} if float_figures else {})}})
    return BudgetResult(budget, final, trials, final.passed, float_figures)


RANKED_SHOWN = 20  # layers of the ranking the sidecar records


def _rank(twins: TwinCollector, full: ConversionResult, model: str | os.PathLike[str], units: list[str], work: Path,
          data: str | None, input_shapes: Any, input_ranges: Any) -> dict[str, Any]:
    """The layers to revert, most costly first, by the per-layer report of the fully quantized model (the worst
    samples' error each layer adds), then the layers it could not rank in the model's order; empty where the route
    shows no float graph to compare with."""
    if not twins.twins:
        return {}
    phase("budget: ranking the layers by their quantization error")
    try:
        report = report_on(full, twins.twins, Path(model), full.artifact.path, work, data=data,
                           input_shapes=input_shapes, input_ranges=input_ranges)
    except Exception as exc:  # an instrument that cannot run this graph: the probes rank it instead
        return {"report": {"failed": first_line(exc, 160)}}
    ranked = [layer.unit for layer in report.analysis.layers if layer.unit in units]
    order = list(dict.fromkeys([*ranked, *units]))
    return {"order": order, "report": {
        "by": report.instrument, "share_method": report.share_method,
        "layers": [{"layer": layer.unit, "share": round(layer.share, 4), "sqnr_db": layer.figures["sqnr_db"]}
                   for layer in report.analysis.layers if layer.unit in units][:RANKED_SHOWN]}}


@dataclass(frozen=True)
class Recipe:
    """What made an artifact, as its sidecar records it: enough to make the same file again."""

    to: Format
    via: Format | None
    options: ConvertOptions
    source_sha256: str | None
    artifact_sha256: str
    path: Path
    budget: Budget | None = None  # the accuracy budget it was judged by: judged by it again

    def to_kwargs(self) -> dict[str, Any]:
        o = self.options
        return {"to": self.to, "via": self.via, "quantize": o.quantize, "calibration": o.calibration,
                "calibration_samples": o.calibration_samples, "nhwc": o.nhwc, "script": o.script, "opset": o.opset,
                "keep_float": o.keep_float, "quantizer": o.quantizer,
                "min_cosine": self.budget.min_cosine if self.budget else None,
                "max_accuracy_drop": self.budget.max_accuracy_drop if self.budget else None}


def read_recipe(path: str | os.PathLike[str]) -> Recipe:
    """The recipe in a sidecar (``model.int8.tflite.edgekit.json``); an artifact's path stands for its sidecar."""
    from edgekit.toolkit import jsonio
    from edgekit.toolkit.contract.artifact import Artifact, sidecar_path
    from edgekit.toolkit.contract.errors import InvalidInputError

    path = Path(path)
    sidecar = path if path.name.endswith(".edgekit.json") else sidecar_path(path)
    try:
        data = jsonio.load_file(sidecar, what="recipe")
    except OSError:
        raise InvalidInputError(f"{path}: no edgekit sidecar to read a recipe from", hint="give the artifact's "
                                ".edgekit.json (written beside it by edgekit convert)") from None
    except ValueError as exc:
        raise InvalidInputError(f"{sidecar}: not a recipe edgekit can read ({exc})",
                                hint="give the .edgekit.json an edgekit convert wrote") from None
    try:
        record = Artifact.from_dict(data, directory=sidecar.parent)
        o = record.options
        calibration = recipe_calibration(o.get("calibration"), o.get("calibration_sha256"), sidecar)
        options = ConvertOptions(QuantMode(o.get("quantize", "none")), calibration,
                                 int(o.get("calibration_samples", 100)), bool(o.get("nhwc", False)),
                                 bool(o.get("script", False)), o.get("opset"), True, tuple(o.get("keep_float", ())),
                                 o.get("quantizer"))
        formats = [Format(f) for f in record.route]
        recorded = (record.extra.get("budget") or {}).get("budget")
        budget = Budget(recorded.get("min_cosine"), recorded.get("max_accuracy_drop")) if recorded else None
    except EdgekitError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"{sidecar}: not a recipe edgekit can read ({exc})",
                                hint="give the .edgekit.json an edgekit convert wrote") from None
    if len(formats) < 2:
        raise InvalidInputError(f"{sidecar}: records no conversion route (an imported or trained model's sidecar)",
                                hint="give the sidecar of a converted artifact")
    # the format the route went through (torch → onnx → int8 onnx went through none: its middle is its end)
    via = next((f for f in formats[1:-1] if f not in (formats[0], formats[-1])), None)
    return Recipe(formats[-1], via, options, record.source_sha256, record.sha256, sidecar, budget)


def recipe_calibration(value: Any, pinned_sha256: Any, sidecar: Path) -> str | None:
    """The calibration a recipe names, by the rule a sidecar's ``data`` follows: a recipe is a file someone else
    may have written, and it must not make edgekit read (and quantize into an artifact, or show in a report) a file
    outside its own tree, say someone's private data set.

    - ``None``, ``digits`` and ``random`` name no file.
    - A file the recipe pins by sha256 (``calibration_sha256``, which ``edgekit convert`` records) is read wherever
      it is, if it is still that very file: relative to the recipe's directory, or absolute.
    - Otherwise the path must be relative and resolve, symlinks followed, inside the directory the recipe was named
      in. A symlinked recipe is judged where the user named it, not where its target lies: its paths cannot reach
      out of the tree the user pointed at, through ``..``, an absolute path or a symlink inside it.

    A path outside (or a pinned file that changed) is exit 4 naming the recipe; the hint says how to go on."""
    from edgekit.toolkit.contract.errors import InvalidInputError, UnsafeModelError
    from edgekit.toolkit.data.calibration import is_named_set
    from edgekit.toolkit.fsutil import sha256_of

    if is_named_set(value):
        return value
    if not isinstance(value, str) or not value or "\0" in value or len(value) > 4096:
        raise InvalidInputError(f"{sidecar}: calibration {str(value)[:80]!r} is not a path",
                                hint="give the .edgekit.json an edgekit convert wrote")
    root = Path(os.path.abspath(sidecar.parent))
    target = Path(value) if os.path.isabs(value) else root / value
    retry = f"convert without {option('recipe')}, giving {option('calibration', 'FILE')}"
    if pinned_sha256 is not None:
        if not (target.is_file() or target.is_dir()):
            raise InvalidInputError(f"{sidecar}: calibration {value!r} is not there any more",
                                    hint=f"restore it, or {retry}")
        if not isinstance(pinned_sha256, str) or sha256_of(target) != pinned_sha256.lower():
            raise UnsafeModelError(f"{sidecar}: calibration {value!r} is not the file this recipe recorded (sha256)",
                                   hint=f"{retry}, if it is the file you mean")
        return str(target)
    real_root = Path(os.path.realpath(root))
    resolved = Path(os.path.realpath(target))
    if os.path.isabs(value) or (resolved != real_root and real_root not in resolved.parents):
        how = "is an absolute path" if os.path.isabs(value) else f"resolves to {resolved}"
        raise UnsafeModelError(f"{sidecar}: calibration {value!r} {how}, outside the recipe's directory, and the "
                               "recipe pins no sha256 for it", hint=f"copy the data beside the recipe, or {retry}")
    return str(resolved)
