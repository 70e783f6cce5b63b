"""``edgekit quant-report MODEL ARTIFACT``: which layers cost a quantized model its accuracy.

The artifact's sidecar holds its recipe; the model is converted again by it (same route, options and
calibration), and the quantizing step shows the float graph it quantized (``ConvertOptions.tap``). Both run side by
side on the model's data (or ``--data``) through the backend's own instrument (:mod:`edgekit.targets.tensors`), and
every layer gets SQNR, cosine and max |Δ| of its output against the float graph and its estimated share of the
final-output error (:mod:`edgekit.validators.layerwise`), worst first.

The report is about the artifact's own bytes when the conversion makes them again (it says so: ``same_bytes``);
the deployed artifact's final outputs (parity, on its real runtime) are shown beside the instrumented run's,
since an instrumented run computes with reference kernels and the deployed one with the runtime's own.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.converters.base import Twin
from edgekit.toolkit.contract.errors import UsageError, option
from edgekit.toolkit.contract.options import QuantMode
from edgekit.toolkit.fsutil import scratch_directory, sha256_of
from edgekit.toolkit.safety.isolation import phase
from edgekit.validators.layerwise import Analysis

QUANT_REPORT_VERSION = 1
DEFAULT_SAMPLES = 32
INSTRUMENTED_ROUTES = "--to tflite, --to onnx (int8, int8-io, int16x8, dynamic), torch → executorch (int8, dynamic)"


class TwinCollector:
    """A ``ConvertOptions.tap`` keeping each twin, its float model copied out of the converter's scratch."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.twins: list[Twin] = []

    def __call__(self, twin: Twin) -> None:
        if twin.float_model is not None:
            copy = self.directory / f"twin{len(self.twins)}{twin.float_model.suffix}"
            shutil.copyfile(twin.float_model, copy)
            twin = replace(twin, float_model=copy)
        self.twins.append(twin)


def layer_analysis(twin: Twin, candidate: Path, model: Path, keepable: list[str], scratch: Path, *,
                   data: str | None, samples: int, input_shapes: dict | None = None,
                   input_ranges: dict | None = None) -> tuple[Analysis, str, str]:
    """The per-layer error of ``candidate`` against ``twin``'s float graph on ``model``'s data: the analysis, the
    instrument that captured the tensors and where the samples came from."""
    from edgekit.targets import open_runtime
    from edgekit.targets.tensors import open_tap, run_pairs
    from edgekit.toolkit.contract.artifact import read_sidecar
    from edgekit.validators.layerwise import accumulate, analyse
    from edgekit.validators.parity import parity_inputs

    sidecar = read_sidecar(model) if model.is_file() else None
    with open_runtime(model, io_hint=sidecar.io_spec if sidecar else None, input_shapes=input_shapes,
                      input_ranges=input_ranges) as runtime:
        reference = runtime.io_spec
    feeds, _, source = parity_inputs(reference, sidecar, None, data, samples)
    phase(f"quant-report: capturing every layer's output on {len(feeds)} samples")
    tap = open_tap(twin, candidate, reference, scratch)
    try:
        errors, count = accumulate(run_pairs(tap, feeds))
    finally:
        tap.close()
    return (analyse(tap.nodes, tap.outputs, errors, count, twin.units, keepable, tap.aliases), tap.instrument,
            source)


@dataclass
class QuantReport:
    model: Path
    artifact: Path
    route: list[str]
    quantize: str
    keep_float: list[str]
    tool: str
    instrument: str
    data_source: str
    same_bytes: bool
    analysis: Analysis
    deployed: dict[str, Any]  # parity of the artifact on its runtime: per output cosine, and the verdict
    notes: list[str] = field(default_factory=list)

    @property
    def share_method(self) -> str:
        return ("first-order: the noise-to-signal ratio each layer adds over its inputs', ÷ the sum, on the "
                f"{len(self.analysis.worst_samples)} worst samples")

    def to_dict(self) -> dict[str, Any]:
        a = self.analysis
        return {"edgekit_report": "quant-report", "version": QUANT_REPORT_VERSION, "model": str(self.model),
                "artifact": str(self.artifact), "route": self.route, "quantize": self.quantize,
                "keep_float": self.keep_float, "quantizer": self.tool, "instrument": self.instrument,
                "data": self.data_source, "samples": a.samples,
                "same_bytes": self.same_bytes,
                "share_method": self.share_method,
                "explained": None if a.explained is None else round(a.explained, 3),
                "matched_tensors": a.matched, "graph_tensors": a.tensors,
                "instrumented_outputs": a.final, "deployed": self.deployed,
                "layers": [layer.to_dict() for layer in a.layers], "notes": self.notes}


def _deployed(parity: Any) -> dict[str, Any]:
    if parity is None:
        return {}
    return {"verdict": parity.verdict,
            "outputs": {o.candidate_name: {"cosine": o.metrics.cosine if o.metrics else None} for o in parity.outputs},
            **({"accuracy": parity.accuracy} if parity.accuracy else {})}


def report_on(result: Any, twins: list[Twin], model: Path, artifact: Path, scratch: Path, *, data: str | None,
              samples: int = DEFAULT_SAMPLES, same_bytes: bool = True, notes: list[str] | None = None,
              input_shapes: dict | None = None, input_ranges: dict | None = None) -> QuantReport:
    """The per-layer report of a conversion ``result`` made with a :class:`TwinCollector` tap (``twins``)."""
    mode = str(result.artifact.options.get("quantize", "none"))
    notes = list(notes or [])
    if not twins:
        raise UsageError(f"{artifact.name}: the {' → '.join(result.artifact.route)} route's {mode} quantizer shows "
                         "no float graph to compare layers with", hint=f"quant-report covers {INSTRUMENTED_ROUTES}")
    twin = twins[-1]
    analysis, instrument, source = layer_analysis(twin, result.artifact.path, model, list(result.steps[-1].units),
                                                  scratch, data=data, samples=samples, input_shapes=input_shapes,
                                                  input_ranges=input_ranges)
    deployed = _deployed(result.parity)
    instrumented = [f.get("cosine") for f in analysis.final.values()]
    shipped = [o.get("cosine") for o in deployed.get("outputs", {}).values()]
    for mine, theirs in zip(instrumented, shipped, strict=False):
        # where the model still works (a wrecked one's outputs differ at random)
        if mine is not None and theirs is not None and abs(mine - theirs) > 0.01 and max(mine, theirs) > 0.9:
            notes.append(f"the instrumented run's output (cosine {mine:.4f}) differs from the deployed artifact's "
                         f"({theirs:.4f}): the rest of the difference sits in the runtime's own kernels, which the "
                         "instrument does not use, not in the layers' quantization")
    if analysis.explained is not None and not 0.1 <= analysis.explained <= 10:
        notes.append(f"the layers' added errors sum to {analysis.explained:.3g}× the measured final error: the "
                     "first-order estimate does not hold on this model (outputs that saturate or vanish), so the "
                     "shares rank the layers, not apportion the error")
    if analysis.matched < max(1, analysis.tensors // 2):
        notes.append(f"only {analysis.matched} of the float graph's {analysis.tensors} tensors found a partner in the "
                     "quantized model")
    return QuantReport(model, artifact, list(result.artifact.route), mode,
                       list(result.artifact.options.get("keep_float", [])), twin.tool, instrument, source, same_bytes,
                       analysis, deployed, notes)


def quant_report(model: str | os.PathLike[str], artifact: str | os.PathLike[str], *, data: str | None = None,
                 samples: int = DEFAULT_SAMPLES) -> QuantReport:
    """Convert ``model`` again by ``artifact``'s recipe with the quantizer's float graph shown, and report each
    layer's error (module docstring)."""
    from edgekit.budget import read_recipe
    from edgekit.conversion import convert

    model, artifact = Path(model), Path(artifact)
    if samples < 1:
        raise UsageError(f"{option('samples')} must be ≥ 1, got {samples}")
    recipe = read_recipe(artifact)
    if recipe.options.quantize is QuantMode.NONE:
        raise UsageError(f"{artifact.name} is not quantized: there is no quantization error to report",
                         hint="give an artifact edgekit convert --quantize made")
    with scratch_directory("edgekit-quant-report-") as scratch_dir:
        scratch = Path(scratch_dir)
        collect = TwinCollector(scratch)
        remade = scratch / f"remade{recipe.to.spec.suffix}"
        phase(f"quant-report: converting {model.name} again by {artifact.name}'s recipe")
        result = convert(model, recipe.to, replace(recipe.options, tap=collect, list_units=True), output=remade,
                         force=True, via=recipe.via, validation_data=data,
                         overrides=recipe.budget.overrides() if recipe.budget else None)
        same = sha256_of(remade) == sha256_of(artifact)
        notes = [] if same else [f"the conversion by {artifact.name}'s recipe did not make its bytes again (another "
                                 "source file or library version): the layers are those of the re-made model"]
        report = report_on(result, collect.twins, model, remade, scratch, data=data, samples=samples,
                           same_bytes=same, notes=notes)
    report.artifact = artifact
    return report


def quant_report_html(report: dict[str, Any], top: int = 30) -> str:
    """A self-contained page: the layers' shares as a bar chart (PNG inline) and the table; a chart that cannot
    be drawn is a line saying why, and the page is written all the same."""
    from edgekit.pipeline.html import CSS, drawn, figure_html
    from edgekit.toolkit.text import html_text as esc

    chart = figure_html("Share of the final-output error per layer", *drawn(_share_chart, report, top),
                        empty="no layers to plot")
    head = ("layer", "ops", "share", "SQNR dB", "cosine", "max |Δ|", "quantized")
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in (
            layer["layer"], ", ".join(layer["ops"]), f"{100 * layer['share']:.1f}%", layer["sqnr_db"],
            layer["cosine"], layer["max_abs_diff"], "yes" if layer["quantized"] else "float")) + "</tr>"
        for layer in report["layers"])
    notes = "".join(f"<li>{esc(n)}</li>" for n in report["notes"])
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edgekit quant-report: "
            f"{esc(Path(report['artifact']).name)}</title><style>{CSS}</style></head><body>"
            f"<h1>Per-layer quantization error: {esc(Path(report['artifact']).name)}</h1>"
            f"<p class='muted'>{esc(' → '.join(report['route']))}, {esc(report['quantize'])} by "
            f"{esc(report['quantizer'])}; tensors by {esc(report['instrument'])}; data: {esc(report['data'])}. "
            f"Share: {esc(report['share_method'])}.</p>{chart}"
            f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{rows}</table>"
            + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "") + "</body></html>")


def _share_chart(report: dict[str, Any], top: int) -> str | None:
    """The ``top`` layers' shares as horizontal bars, worst at the top, labelled by name (as text, never math)."""
    from edgekit.pipeline.html import _png, _pyplot
    from edgekit.toolkit.text import plot_label

    layers = report["layers"][:top]
    if not layers:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, max(2.0, 0.28 * len(layers) + 1)))
    names = [plot_label(layer["layer"]) for layer in layers][::-1]
    shares = [100 * layer["share"] for layer in layers][::-1]
    # by position, labelled after: two layers whose labels read the same keep a bar each
    ax.barh(range(len(shares)), shares, color=["#cf222e" if s >= 20 else "#0969da" for s in shares])
    ax.set_yticks(range(len(names)), labels=names)
    ax.set_xlabel("estimated share of the final-output error (%)")
    ax.set_title(f"{plot_label(Path(report['artifact']).name)}: {plot_label(report['quantize'])}, worst layers "
                 "first")
    return _png(fig)
