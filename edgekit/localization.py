"""``edgekit localize REFERENCE CANDIDATE``: the layer where a conversion's numbers part from the original's.

Both models run on the same inputs (the model's own data, ``--data``, or its domain-respecting synthetic inputs) with
every intermediate value captured (:mod:`edgekit.targets.traces`); the values are paired by the names the converters
keep, up to layout and quantization, and judged under the candidate's precision profile; the origin is the first
failing pair whose feeders pass (:mod:`edgekit.validators.localize`).

Honest instrumentation: the instrumented candidate run (LiteRT without XNNPACK, onnxruntime without fusions, an
ExecuTorch program with taps) may compute differently from the deployed one, so the deployed artifact also runs on
its own runtime and its final outputs are shown beside the instrumented run's. When they differ, the report says the
fault sits in the deployed kernels, not the conversion. A delegate that hides its inside (an ExecuTorch program
without taps) is reported at the granularity it allows: the delegate call.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.toolkit.contract.errors import InvalidInputError, UsageError, option
from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.fsutil import scratch_directory, sha256_of
from edgekit.toolkit.safety.isolation import phase
from edgekit.validators.localize import LOCALIZE_VERSION, LayerRule, Localization

DEFAULT_SAMPLES = 32
REFERENCES = (Format.TORCH_EXPORTED, Format.KERAS, Format.KERAS_H5, Format.ONNX, Format.TFLITE)
CANDIDATES = (Format.ONNX, Format.TFLITE, Format.EXECUTORCH, Format.TORCH_EXPORTED)


def layer_rule(profile: Any) -> LayerRule:
    from edgekit.validators.localize import FP32_LAYER_ATOL
    from edgekit.validators.tolerances import DEFAULTS, Profile

    if profile is Profile.FP32:
        return LayerRule(profile.value, atol=FP32_LAYER_ATOL)
    return LayerRule(profile.value, min_cosine=DEFAULTS[profile].min_cosine)


@dataclass
class LocalizeReport:
    reference: Path
    candidate: Path
    localization: Localization
    instruments: dict[str, str]
    data_source: str
    samples: int
    deployed: dict[str, Any]  # the deployed artifact's final outputs vs the reference, and vs the instrumented run
    notes: list[str] = field(default_factory=list)

    @property
    def origin(self) -> Any:
        return self.localization.origin

    @property
    def passed(self) -> bool:
        return not self.localization.failing and self.deployed.get("passed", True)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def verdict(self) -> str:
        if self.passed:
            return "PASS"
        return "ORIGIN FOUND" if self.origin is not None else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        loc = self.localization
        pairing = loc.pairing
        origin = loc.origin
        return {"edgekit_report": "localize", "version": LOCALIZE_VERSION, "reference": str(self.reference),
                "candidate": str(self.candidate), "verdict": self.verdict, "passed": self.passed,
                "rule": loc.rule.describe(), "profile": loc.rule.profile, "data": self.data_source,
                "samples": self.samples, "instruments": self.instruments,
                "origin": origin.to_dict() if origin is not None else None,
                "origins": [p.match.reference for p in loc.origins],
                "worst": [p.match.reference for p in loc.worst()],
                "matched_share": round(pairing.matched_share, 4), "matched": len(pairing.matches),
                "fused": pairing.fused, "unmatched": pairing.unmatched, "constant": pairing.constant,
                "unused": pairing.unused, "reference_values": pairing.runtime_values,
                "pairs": [p.to_dict() for p in loc.pairs], "deployed": self.deployed, "notes": self.notes}


def _open_trace(runtime: Any, path: Path, ref_spec: Any, scratch: Path, *, reference: bool,
                taps: tuple[list, int] | None = None) -> Any:
    from edgekit.targets import traces
    from edgekit.validators.parity import input_adapter

    fmt = runtime.format
    spec = runtime.io_spec
    adapt = (lambda feed: feed) if reference else input_adapter(ref_spec, spec)[0]
    if fmt is Format.TORCH_EXPORTED:
        if not reference:
            return _adapted(traces.torch_trace(runtime._program, spec), adapt)
        return traces.torch_trace(runtime._program, spec)
    if fmt in (Format.KERAS, Format.KERAS_H5) and reference:
        return traces.keras_trace(runtime.model, spec)
    if fmt is Format.ONNX:
        return traces.onnx_trace(path, spec, adapt, scratch)
    if fmt is Format.TFLITE:
        return traces.tflite_trace(path, spec, adapt)
    if fmt is Format.EXECUTORCH and not reference:
        specs, users = taps if taps is not None else (None, len(spec.outputs))
        return traces.executorch_trace(path, spec, adapt, specs, users)
    allowed = REFERENCES if reference else CANDIDATES
    why = ("a TorchScript module runs as one inlined graph and keeps neither module paths nor op names to pair by"
           if fmt is Format.TORCHSCRIPT else "edgekit has no instrument that shows its intermediate values")
    role = "references" if reference else "candidates"
    raise UsageError(f"{path.name}: localize cannot trace a {fmt.value} {role[:-1]} ({why})",
                     hint=f"{role}: {', '.join(f.value for f in allowed)}")


def _adapted(trace: Any, adapt: Any) -> Any:
    run = trace.run
    trace.run = lambda feed: run(adapt(feed))
    return trace


def _tapped_program(candidate: Path, scratch: Path, source: Path | None) -> tuple[Path, list, int, str]:
    """The candidate's conversion made again by its recipe with every op tapped: (program, tap specs, user outputs,
    what it was made from)."""
    from edgekit.budget import read_recipe
    from edgekit.conversion import convert
    from edgekit.toolkit.contract.artifact import read_sidecar

    sidecar = read_sidecar(candidate)
    if sidecar is None:
        raise InvalidInputError(f"{candidate}: --taps re-lowers the program by its edgekit sidecar, and it has none",
                                hint="convert the model with edgekit convert --to executorch, then localize that")
    if source is None:
        recorded = Path(str(sidecar.extra.get("source", "")))
        if not recorded.is_file() or (sidecar.source_sha256 and sha256_of(recorded) != sidecar.source_sha256):
            raise InvalidInputError(f"{candidate}: the source its sidecar names ({recorded}) is gone or changed",
                                    hint=f"give the .pt2 it was converted from with {option('taps_source')}")
        source = recorded
    recipe = read_recipe(candidate)
    out = scratch / "tapped.pte"
    phase(f"localize: lowering {source.name} again by {candidate.name}'s recipe, every op tapped")
    result = convert(source, recipe.to, replace(recipe.options, debug_taps=True, validate=False), output=out,
                     force=True, via=recipe.via)
    details = result.steps[-1].details
    if "taps" not in details:
        raise UsageError(f"{candidate.name}: its route ({' → '.join(result.artifact.route)}) ends in no ExecuTorch "
                         "lowering that can be tapped", hint="--taps is for torch → executorch programs")
    return out, details["taps"], int(details["user_outputs"]), str(source)


def localize(reference: str | os.PathLike[str], candidate: str | os.PathLike[str], *, data: str | None = None,
             samples: int = DEFAULT_SAMPLES, profile: str = "auto", taps: bool = False,
             taps_source: str | os.PathLike[str] | None = None, input_ranges: dict | None = None,
             input_shapes: dict | None = None) -> LocalizeReport:
    """Trace both models, pair their values and find where they part (module docstring)."""
    from edgekit.targets import open_runtime
    from edgekit.toolkit.contract.artifact import read_sidecar
    from edgekit.validators.parity import _profile, input_adapter, parity_inputs
    from edgekit.validators.tolerances import Profile

    if samples < 1:
        raise UsageError(f"{option('samples')} must be ≥ 1, got {samples}")
    reference, candidate = Path(reference), Path(candidate)
    ref_sidecar = read_sidecar(reference) if reference.is_file() else None
    cand_sidecar = read_sidecar(candidate) if candidate.is_file() else None
    notes: list[str] = []
    with scratch_directory("edgekit-localize-") as scratch_dir:
        scratch = Path(scratch_dir)
        with open_runtime(reference, io_hint=ref_sidecar.io_spec if ref_sidecar else None, input_ranges=input_ranges,
                          input_shapes=input_shapes) as ref_rt, \
                open_runtime(candidate, io_hint=cand_sidecar.io_spec if cand_sidecar else None) as cand_rt:
            if ref_rt.format not in REFERENCES:
                _open_trace(ref_rt, reference, ref_rt.io_spec, scratch, reference=True)  # raises, naming formats
            if taps and cand_rt.format is not Format.EXECUTORCH:
                raise UsageError(f"{option('taps')} is for ExecuTorch programs; {candidate.name} is "
                                 f"{cand_rt.format.value}, whose values localize reads without taps")
            chosen = _profile(Profile(profile), cand_sidecar, cand_rt)
            feeds, _, source = parity_inputs(ref_rt.io_spec, ref_sidecar, cand_sidecar, data, samples)
            adapt, _ = input_adapter(ref_rt.io_spec, cand_rt.io_spec)
            phase(f"localize: running {candidate.name} as deployed on {len(feeds)} samples")
            deployed_runs = [cand_rt.run(adapt(feed)) for feed in feeds]
            cand_spec = cand_rt.io_spec
            ref_trace = _open_trace(ref_rt, reference, ref_rt.io_spec, scratch, reference=True)
            instrumented_path, tap_specs = candidate, None
            if taps:
                instrumented_path, specs, users, made_from = _tapped_program(
                    candidate, scratch, Path(taps_source) if taps_source else None)
                tap_specs = (specs, users)
                notes.append(f"the taps are in a program lowered again from {Path(made_from).name} by "
                             f"{candidate.name}'s recipe; its outputs are checked against the deployed program's")
            if instrumented_path != candidate:
                with open_runtime(instrumented_path) as tapped_rt:
                    cand_trace = _open_trace(tapped_rt, instrumented_path, ref_rt.io_spec, scratch, reference=False,
                                             taps=tap_specs)
                    cand_trace.outputs = cand_trace.outputs[: len(cand_spec.outputs)]
                    return _finish(reference, candidate, ref_trace, cand_trace, feeds, source, chosen,
                                   deployed_runs, cand_spec, notes, cand_sidecar)
            cand_trace = _open_trace(cand_rt, candidate, ref_rt.io_spec, scratch, reference=False)
            return _finish(reference, candidate, ref_trace, cand_trace, feeds, source, chosen, deployed_runs,
                           cand_spec, notes, cand_sidecar)


def _finish(reference: Path, candidate: Path, ref_trace: Any, cand_trace: Any, feeds: list, source: str,
            chosen: Any, deployed_runs: list, cand_spec: Any, notes: list[str], cand_sidecar: Any) -> LocalizeReport:
    from edgekit.validators import localize as logic

    rule = layer_rule(chosen)
    phase(f"localize: tracing both models on {len(feeds)} samples")
    runs = []
    for feed in feeds:
        runs.append((ref_trace.run(feed), cand_trace.run(feed)))
    layouts = {"torch": logic.CHANNELS_FIRST_TO_LAST, "keras": logic.CHANNELS_LAST_TO_FIRST,
               "tflite": logic.CHANNELS_LAST_TO_FIRST}.get(ref_trace.kind, logic.PERMUTATIONS)
    pairing = logic.pair(ref_trace.values, runs[0][0], ref_trace.outputs, cand_trace.values, runs[0][1],
                         cand_trace.outputs, layouts, ref_trace.sources)
    errors = logic.accumulate(pairing, runs)
    pairs = logic.judge(pairing, ref_trace.values, cand_trace.values, errors, rule)
    localization = Localization(pairs, pairing, rule)
    if cand_trace.kind == "onnx":
        _local_errors(localization, cand_trace, runs[: min(4, len(runs))], rule)
    deployed = _deployed(ref_trace, cand_trace, runs, deployed_runs, cand_spec, rule)
    notes = list(cand_trace.notes) + notes
    if deployed.get("instrumented_differs"):
        if deployed["passed"] and not deployed["instrumented_passed"]:
            notes.append("the deployed run's outputs pass but the instrumented run's do not: the failing pairs come "
                         "from the instrument's kernels, not the conversion")
        elif not deployed["passed"] and deployed["instrumented_passed"]:
            notes.append("the instrumented run passes at every layer but the deployed run's outputs fail: the fault "
                         "sits in the deployed kernels (delegate or fused kernels the instrument turns off), not in "
                         "the conversion")
        else:
            notes.append("the instrumented run's outputs differ from the deployed run's (other kernels); the layers "
                         "are those of the instrumented run")
    if localization.absorbed:
        names = ", ".join(p.head.module_path or p.match.reference for p in localization.absorbed[:6])
        notes.append(f"{len(localization.absorbed)} pair(s) differ but every pair they feed agrees again ({names}"
                     f"{', …' if len(localization.absorbed) > 6 else ''}): their difference does not reach the "
                     "outputs, so they are marked absorbed, not failing (a converter that computes them another "
                     "way, as litert-torch folds attention's 1/√d into the query and key weights, or an error the "
                     "next layers drown)")
    if cand_trace.opaque:
        origin = localization.origin
        if origin is not None:
            notes.append(f"the origin can be no finer than {origin.candidate.op}, which makes {origin.match.candidate}:"
                         f" the divergence is somewhere inside that call")
    if pairing.matched_share < 0.5 and not cand_trace.opaque:
        notes.append(f"only {len(pairing.matches) + len(pairing.fused)} of the reference's {len(pairing.considered)} "
                     "values found a partner: the converter renamed them beyond what localize reads")
    if cand_sidecar is not None and cand_sidecar.source_sha256 and reference.is_file() \
            and cand_sidecar.source_sha256 != sha256_of(reference):
        notes.append(f"{candidate.name} was converted from another file than {reference.name} (sidecar sha256)")
    return LocalizeReport(reference, candidate, localization, {"reference": ref_trace.instrument,
                                                               "candidate": cand_trace.instrument},
                          source, len(feeds), deployed, notes)


def _deployed(ref_trace: Any, cand_trace: Any, runs: list, deployed_runs: list, cand_spec: Any,
              rule: LayerRule) -> dict[str, Any]:
    """The deployed artifact's outputs against the reference's, and against the instrumented run's."""
    from edgekit.validators.localize import PairError

    outputs = {}
    passed = instrumented_passed = True
    differs = False
    for index, (ref_name, spec) in enumerate(zip(ref_trace.outputs, cand_spec.outputs, strict=False)):
        against_ref, against_instrumented, instrumented = PairError(), PairError(), PairError()
        inst_name = cand_trace.outputs[index] if index < len(cand_trace.outputs) else None
        for (ref_run, cand_run), deployed in zip(runs, deployed_runs, strict=True):
            value = np.asarray(deployed[spec.name])
            if spec.quant is not None and value.dtype.kind in "iu":
                value = spec.quant.dequantize(value)
            ref_value = np.asarray(ref_run[ref_name], np.float64)
            value = np.asarray(value, np.float64)
            if value.shape != ref_value.shape and value.size == ref_value.size:
                value = value.reshape(ref_value.shape)
            if value.shape != ref_value.shape:
                continue
            against_ref.add_pair(ref_value, value)
            if inst_name is not None and inst_name in cand_run:
                inst = np.asarray(cand_run[inst_name], np.float64)
                if inst.shape == value.shape:
                    against_instrumented.add_pair(inst, value)
                    instrumented.add_pair(ref_value, inst)
        ok, detail = rule.judge(against_ref)
        inst_ok, _ = rule.judge(instrumented) if instrumented.signal else (True, "")
        same = against_instrumented.max_abs <= 1e-4 * max(1.0, against_instrumented.max_ref) \
            if against_instrumented.signal else True
        passed, instrumented_passed, differs = passed and ok, instrumented_passed and inst_ok, differs or not same
        outputs[spec.name] = {"reference": ref_name, "passed": ok, "detail": detail, **against_ref.figures(),
                              "instrumented": instrumented.figures() if instrumented.signal else None,
                              "deployed_vs_instrumented_max_abs_diff": against_instrumented.figures()["max_abs_diff"]
                              if against_instrumented.signal else None}
    return {"passed": passed, "instrumented_passed": instrumented_passed, "instrumented_differs": differs,
            "outputs": outputs}


def _local_errors(localization: Localization, trace: Any, runs: list, rule: LayerRule) -> None:
    """Run the ONNX nodes that make each failing pair alone, on the reference's values of the paired values they
    read (graph inputs as given): the error they make by themselves, without what they inherit. A torch Linear is
    a MatMul and an Add in ONNX: both run, fed at the pair upstream."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(trace.path))
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    initializers = {i.name: i for i in graph.initializer}
    graph_inputs = {i.name: i for i in graph.input}
    by_candidate = {p.match.candidate: p for p in localization.pairs}
    for result in localization.pairs:
        if result.passed:
            continue
        made = _making_nodes(result.match.candidate, producer, initializers, graph_inputs, by_candidate)
        if made is None:
            continue
        nodes, feeds_from = made
        try:
            result.local = _run_alone(onnx, ort, model, [n for n in graph.node if id(n) in nodes], initializers,
                                      feeds_from, result, runs, rule)
        except Exception as exc:  # ops that cannot stand alone (an outer-scope subgraph, a sequence): no local error
            result.local = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}


def _making_nodes(target: str, producer: dict, initializers: dict, graph_inputs: dict, by_candidate: dict,
                  limit: int = 64) -> tuple[set[int], dict[str, tuple[str, Any]]] | None:
    """The nodes between ``target`` and the paired values or graph inputs it reads, and those feeds; None when
    they are too many to say anything local."""
    nodes: set[int] = set()
    feeds: dict[str, tuple[str, Any]] = {}
    todo, seen = [target], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        node = producer.get(name)
        if node is None:
            return None
        if id(node) in nodes:
            continue
        nodes.add(id(node))
        if len(nodes) > limit:
            return None
        for source in node.input:
            if not source or source in initializers:
                continue
            if source in by_candidate:
                feeds[source] = ("pair", by_candidate[source])
            elif source in graph_inputs:
                feeds[source] = ("input", None)
            else:
                todo.append(source)
    return nodes, feeds


def _run_alone(onnx: Any, ort: Any, model: Any, nodes: list, initializers: dict, feeds_from: dict, result: Any,
               runs: list, rule: LayerRule) -> dict[str, Any]:
    from onnx import helper

    from edgekit.validators.localize import PairError, to_reference_layout

    declared = {i.name: i for i in model.graph.input}
    inputs = [declared[name] if kind == "input" else helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
              for name, (kind, _) in feeds_from.items()]
    out = helper.make_tensor_value_info(result.match.candidate, onnx.TensorProto.FLOAT, None)
    used = [initializers[n] for n in dict.fromkeys(i for node in nodes for i in node.input) if n in initializers]
    graph = helper.make_graph(nodes, "alone", inputs, [out], initializer=used)
    alone = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(alone.SerializeToString(), options, providers=["CPUExecutionProvider"])
    error = PairError()
    for ref_run, cand_run in runs:
        given = {}
        for name, (kind, partner) in feeds_from.items():
            if kind == "input":
                given[name] = np.asarray(cand_run[name])  # the onnx trace returns its (adapted) inputs too
            else:
                ref_value = np.asarray(ref_run[partner.match.reference], np.float32)
                ref_value = ref_value if partner.match.perm is None else ref_value.transpose(partner.match.perm)
                given[name] = np.ascontiguousarray(ref_value.reshape(np.shape(cand_run[name])))
        produced = session.run(None, given)[0]
        error.add_pair(np.asarray(ref_run[result.match.reference], np.float64),
                       to_reference_layout(np.asarray(produced, np.float64), result.match.perm,
                                           np.shape(ref_run[result.match.reference])))
    passed, detail = rule.judge(error)
    ops = "the node" if len(nodes) == 1 else f"its {len(nodes)} nodes ({', '.join(n.op_type for n in nodes[:4])}" \
        f"{', …' if len(nodes) > 4 else ''})"
    return {"metrics": error.figures(), "passed": passed, "detail": detail, "nodes": [n.name or n.output[0]
                                                                                     for n in nodes],
            "meaning": f"{ops} run alone on the reference's values of {'its' if len(nodes) == 1 else 'their'} "
                       f"inputs: {'wrong' if not passed else 'right'} by "
                       f"{'itself' if len(nodes) == 1 else 'themselves'}"
                       + ("" if not passed else ", the inputs carry the error")}


def passed_summary(report: dict[str, Any]) -> str:
    """Why a report passed: no pair fails, or the ones that do are absorbed before the outputs."""
    absorbed = sum(p["status"] == "absorbed" for p in report["pairs"])
    if not absorbed:
        return "No pair fails."
    return f"No pair's error reaches the outputs ({absorbed} differ and are absorbed again: see the notes)."


def left_out(report: dict[str, Any]) -> str:
    """What the matched share leaves out, for the terminal and the page."""
    parts = []
    if report["constant"]:
        parts.append(f"{len(report['constant'])} more computed from weights alone, folded by the converter")
    if report["unused"]:
        parts.append(f"{len(report['unused'])} more no output depends on")
    return "".join(f"; {p}" for p in parts)


def localize_html(report: dict[str, Any]) -> str:
    """A self-contained page: each pair's error against its depth in the reference graph (SQNR, dB), the origin
    marked, and the pairs' table; a chart that cannot be drawn is a line saying why, and the page is written."""
    from edgekit.pipeline.html import CSS, drawn
    from edgekit.toolkit.text import html_text as esc

    pairs = report["pairs"]
    image, failed = drawn(_depth_chart, report)
    chart = (f"<figure><img class='plot' alt='error against depth' src='data:image/png;base64,{image}'></figure>"
             if image is not None else f"<p class='muted'>Error against depth: the plot could not be drawn "
             f"({esc(failed or 'no pairs')}).</p>")
    head = ("depth", "reference", "module", "candidate", "layout", "status", "SQNR dB", "cosine", "max |Δ|")
    rows = "".join(
        f"<tr class='{esc(p['status'])}'>" + "".join(f"<td>{esc(v)}</td>" for v in (
            p["depth"], p["reference_name"], p["module_path"] or "", p["candidate_name"], p["layout"] or "",
            p["status"], p["metrics"]["sqnr_db"], p["metrics"]["cosine"], p["metrics"]["max_abs_diff"])) + "</tr>"
        for p in pairs)
    origin = report["origin"]
    summary = (f"Origin: <b>{esc(origin['module_path'] or origin['reference_name'])}</b> ({esc(origin['op'])}; "
               f"reference {esc(origin['reference_name'])} ↔ candidate {esc(origin['candidate_name'])})"
               if origin else passed_summary(report) if report["passed"] else "No origin among the pairs.")
    notes = "".join(f"<li>{esc(n)}</li>" for n in report["notes"])
    unmatched = ", ".join(report["unmatched"]) or "none"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edgekit localize: "
            f"{esc(Path(report['candidate']).name)}</title><style>{CSS} tr.origin td{{color:#cf222e;font-weight:600}}"
            f"</style></head><body><h1>Where {esc(Path(report['candidate']).name)} parts from "
            f"{esc(Path(report['reference']).name)}</h1><p>{summary}</p>"
            f"<p class='muted'>{esc(report['rule'])}; data: {esc(report['data'])}; matched "
            f"{100 * report['matched_share']:.0f}% of {report['reference_values']} reference values "
            f"(unmatched: {esc(unmatched)}"
            + left_out(report) + f"). Reference: {esc(report['instruments']['reference'])}. Candidate: "
            f"{esc(report['instruments']['candidate'])}.</p>{chart}"
            f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{rows}</table>"
            + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "") + "</body></html>")


def _depth_chart(report: dict[str, Any]) -> str | None:
    """Each pair's SQNR against its depth, coloured by status, the origin labelled by name (as text, never math)."""
    from edgekit.pipeline.html import _png, _pyplot
    from edgekit.toolkit.text import plot_label

    pairs = report["pairs"]
    if not pairs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.6))
    depth = [p["depth"] for p in pairs]
    sqnr = [p["metrics"]["sqnr_db"] if p["metrics"]["sqnr_db"] is not None else 150.0 for p in pairs]
    sqnr = [v if v is not None and math.isfinite(v) else -20.0 for v in sqnr]
    colours = [{"origin": "#cf222e", "propagated": "#bf8700", "absorbed": "#8250df"}.get(p["status"], "#0969da")
               for p in pairs]
    ax.plot(depth, sqnr, color="#8c959f", linewidth=1)
    ax.scatter(depth, sqnr, c=colours, s=22, zorder=3)
    for p, y in zip(pairs, sqnr, strict=True):
        if p["status"] == "origin":
            ax.annotate(plot_label(p["module_path"] or p["reference_name"]), (p["depth"], y),
                        textcoords="offset points", xytext=(6, 8), color="#cf222e", fontsize=8)
    ax.set_xlabel("depth (paired values in the reference's order)")
    ax.set_ylabel("SQNR (dB; higher is closer)")
    ax.set_title(f"{plot_label(Path(report['candidate']).name)} vs {plot_label(Path(report['reference']).name)}: "
                 f"{plot_label(report['verdict'])}")
    return _png(fig)
