"""Numerical parity of a candidate (converted) model against its reference, on identical real inputs.

Inputs: the reference's own test split (from ``edgekit train``/``import``), else ``--data``, else seeded
random data shaped by the contract (said in the report). Each sample runs at batch 1 in both models.
Candidate inputs are adapted, and the adaptation stated: NCHW ↔ NHWC by transposition, integer inputs
quantized with their scale/zero-point; integer outputs are dequantized. Outputs are matched by name,
then by order; a different count, shape or dtype family is a failure, never broadcast.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.artifact import Artifact, read_sidecar
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError, option
from edgekit.toolkit.contract.iospec import IOSpec, cast_checked, example_feeds
from edgekit.toolkit.data.datasets import DIGITS, INPUT_KEYS, load_digits, model_inputs_from_npz
from edgekit.toolkit.data.feeds import named_feeds, names_inputs, read_npz
from edgekit.toolkit.fsutil import sha256_of
from edgekit.validators.metrics import OutputMetrics, compare, top1_accuracy
from edgekit.validators.tolerances import DEFAULTS, Overrides, Profile, Tolerance, profile_for

PARITY_REPORT_VERSION = 1
DEFAULT_SAMPLES = 500


@dataclass(frozen=True)
class Check:
    name: str  # elementwise | cosine | top1_agreement | finite | shape | accuracy_drop
    passed: bool
    value: float | None
    threshold: float | None
    would_pass_at: float | None = None  # the tolerance that would have passed
    detail: str = ""
    # False when the data could not decide the check (top-1 agreement with too few decisive samples):
    # then ``passed`` is True, since no failure was shown, and ``detail`` gives the reason.
    judged: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(**jsonio.revive(cls, data))


@dataclass(frozen=True)
class OutputParity:
    reference_name: str
    candidate_name: str
    checks: tuple[Check, ...]
    metrics: OutputMetrics | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def not_judged(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.judged)


@dataclass(frozen=True)
class ParityReport:
    reference: str
    candidate: str
    profile: Profile
    data_source: str
    samples: int
    adaptations: tuple[str, ...]
    outputs: tuple[OutputParity, ...]
    accuracy: dict[str, float] | None = None
    accuracy_check: Check | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs) and (self.accuracy_check is None or self.accuracy_check.passed)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def failures(self) -> list[str]:
        lines = [f"{o.reference_name}: {c.name} {c.detail}" for o in self.outputs for c in o.checks if not c.passed]
        if self.accuracy_check is not None and not self.accuracy_check.passed:
            lines.append(f"accuracy_drop {self.accuracy_check.detail}")
        return lines

    def to_junit(self) -> str:
        """JUnit XML: a test case per output and check (CI systems show failures by name)."""
        return junit_xml(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "edgekit_report": "parity", "version": PARITY_REPORT_VERSION, "verdict": self.verdict,
            "reference": self.reference, "candidate": self.candidate, "profile": self.profile.value,
            "data_source": self.data_source, "samples": self.samples, "adaptations": list(self.adaptations),
            "outputs": [{"reference_name": o.reference_name, "candidate_name": o.candidate_name,
                         "passed": o.passed, "checks": [asdict(c) for c in o.checks],
                         "metrics": o.metrics.to_dict() if o.metrics else None} for o in self.outputs],
            "accuracy": self.accuracy,
            "accuracy_check": asdict(self.accuracy_check) if self.accuracy_check else None,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParityReport:
        if data.get("edgekit_report") != "parity" or data.get("version") != PARITY_REPORT_VERSION:
            raise ValueError("not an edgekit parity report of a supported version")
        outputs = tuple(
            OutputParity(o["reference_name"], o["candidate_name"], tuple(Check.from_dict(c) for c in o["checks"]),
                         OutputMetrics.from_dict(o["metrics"]) if o["metrics"] else None)
            for o in data["outputs"]
        )
        check = data.get("accuracy_check")
        return cls(data["reference"], data["candidate"], Profile(data["profile"]), data["data_source"],
                   data["samples"], tuple(data["adaptations"]), outputs, data.get("accuracy"),
                   Check.from_dict(check) if check else None, tuple(data.get("notes", ())))


def validate(
    reference: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    *,
    data: str | None = None,
    samples: int = DEFAULT_SAMPLES,
    profile: Profile = Profile.AUTO,
    overrides: Overrides | None = None,
    input_ranges: dict[str, tuple[float, float]] | None = None,
    input_shapes: dict[str, tuple] | None = None,
) -> ParityReport:
    from edgekit.targets import open_runtime

    if samples < 1:
        raise UsageError(f"{option('samples')} must be ≥ 1, got {samples}")
    reference, candidate = Path(reference), Path(candidate)
    ref_sidecar = read_sidecar(reference) if reference.is_file() else None
    cand_sidecar = read_sidecar(candidate) if candidate.is_file() else None
    with open_runtime(reference, io_hint=ref_sidecar.io_spec if ref_sidecar else None,
                      input_ranges=input_ranges, input_shapes=input_shapes) as ref_rt, \
            open_runtime(candidate, io_hint=cand_sidecar.io_spec if cand_sidecar else None) as cand_rt:
        chosen = _profile(profile, cand_sidecar, cand_rt)
        inputs, labels, source = parity_inputs(ref_rt.io_spec, ref_sidecar, cand_sidecar, data, samples)
        adapt, adaptations = input_adapter(ref_rt.io_spec, cand_rt.io_spec)
        ref_out, cand_out = _run_all(ref_rt, cand_rt, inputs, adapt, reference)
        ref_spec, cand_spec = ref_rt.io_spec, cand_rt.io_spec
    pairs, notes = _match_outputs(ref_spec, cand_spec)
    if cand_sidecar is not None and cand_sidecar.source_sha256 and reference.is_file() \
            and cand_sidecar.source_sha256 != sha256_of(reference):
        notes.append(f"{candidate.name} was converted from another file than {reference.name} (sidecar sha256)")
    outputs = []
    for ref_name, cand_name in pairs:
        cand_values = _dequantized(cand_out[cand_name], cand_spec, cand_name, adaptations)
        tolerance = (overrides or Overrides()).apply(DEFAULTS[chosen], ref_name)
        outputs.append(_judge(ref_name, cand_name, ref_out[ref_name], cand_values, tolerance,
                              output_step=_output_step(cand_spec, cand_name)))
    if len(ref_spec.outputs) != len(cand_spec.outputs):
        outputs.append(OutputParity("(outputs)", "(outputs)", (Check(
            "output_count", False, float(len(cand_spec.outputs)), float(len(ref_spec.outputs)),
            detail=f"candidate has {len(cand_spec.outputs)} outputs, the reference {len(ref_spec.outputs)}"),)))
    accuracy, accuracy_check = _accuracy(outputs, ref_out, cand_out, cand_spec, labels,
                                         (overrides or Overrides()).apply(DEFAULTS[chosen], "*"), list(adaptations))
    return ParityReport(str(reference), str(candidate), chosen, source, len(inputs), tuple(dict.fromkeys(adaptations)),
                        tuple(outputs), accuracy, accuracy_check, tuple(notes))


def _profile(profile: Profile, sidecar: Artifact | None, runtime: Any) -> Profile:
    if profile is not Profile.AUTO:
        return profile
    if sidecar is not None and "quantize" in sidecar.options:
        return profile_for(str(sidecar.options["quantize"]))
    dtypes = set(runtime.describe().quantization.get("weight_dtypes", {}))
    if any(t.quant is not None for t in (*runtime.io_spec.inputs, *runtime.io_spec.outputs)) or "int8" in dtypes:
        return Profile.INT8
    return Profile.FP16 if "float16" in dtypes else Profile.FP32


def parity_inputs(spec: IOSpec, ref_sidecar: Artifact | None, cand_sidecar: Artifact | None, data: str | None,
            samples: int) -> tuple[list[dict[str, np.ndarray]], np.ndarray | None, str]:
    """Real data first: the reference's (or candidate's) own test split, else --data, else seeded random."""
    own = next((s.data_path for s in (ref_sidecar, cand_sidecar) if s is not None and s.data_path is not None
                and s.data_path.is_file()), None)
    if data == DIGITS or (data not in (None, "random") and Path(data).is_dir()):
        return _through_preprocessing(data, spec, ref_sidecar, samples)
    path = Path(data) if data not in (None, "random") else (own if data is None else None)
    if path is None:
        feeds = [example_feeds(spec, seed=i) for i in range(min(samples, 32))]
        return feeds, None, f"{len(feeds)} seeded random samples (no real data: accuracy not measured)"
    arrays = read_npz(path)
    if names_inputs(arrays, spec, legacy_keys=INPUT_KEYS):
        found = named_feeds(path, spec, limit=samples, arrays=arrays, purpose="parity")
        source = found.source + "".join(f"; {step}" for step in dict.fromkeys(found.adaptations))
        return list(found.feeds), found.labels, source
    x, y, key = model_inputs_from_npz(path, samples)
    ts = spec.inputs[0]
    if not ts.accepts((1, *x.shape[1:])):
        raise InvalidInputError(f"{path}: samples of shape {list(x.shape[1:])} do not fit input {ts.name!r} "
                                f"{list(ts.shape or [])}", hint="give data preprocessed for the reference model")
    feeds = [{ts.name: x[i: i + 1].astype(ts.dtype)} for i in range(len(x))]
    return feeds, y, f"{len(feeds)} samples of {key} from {path.name}"


def _through_preprocessing(data: str, spec: IOSpec, sidecar: Artifact | None, samples: int
                           ) -> tuple[list[dict[str, np.ndarray]], np.ndarray | None, str]:
    """digits or an image directory, through the reference's recorded preprocessing (digits has labels)."""
    from edgekit.toolkit.data.calibration import resolve

    found = resolve(data, spec, sidecar=sidecar, samples=samples)
    assert found is not None
    labels = load_digits().labels[: len(found.feeds)] if data == DIGITS else None
    return list(found.feeds), labels, found.source


def input_adapter(ref: IOSpec, cand: IOSpec):
    """How to turn a reference feed into a candidate feed, and what that took (stated in the report)."""
    if len(ref.inputs) != len(cand.inputs):
        raise InvalidInputError(f"the candidate takes {len(cand.inputs)} inputs, the reference {len(ref.inputs)}",
                                hint="compare a model with its own conversion")
    steps: list[str] = []
    plans = []
    for r, c in zip(ref.inputs, cand.inputs, strict=True):
        transpose = None
        rs, cs = r.concrete_shape(), c.concrete_shape()
        if len(rs) == 4 and rs != cs:
            if (rs[0], rs[2], rs[3], rs[1]) == cs:
                transpose = (0, 2, 3, 1)
                steps.append(f"{c.name}: NCHW → NHWC")
            elif (rs[0], rs[3], rs[1], rs[2]) == cs:
                transpose = (0, 3, 1, 2)
                steps.append(f"{c.name}: NHWC → NCHW")
        quantized = c.quant is not None and np.dtype(c.dtype).kind in "iu" and np.dtype(r.dtype).kind == "f"
        if quantized:
            steps.append(f"{c.name}: quantized to {c.dtype} (scale {c.quant.scale[0]:.6g}, zp {c.quant.zero_point[0]})")
        elif r.dtype != c.dtype:
            steps.append(f"{c.name}: {r.dtype} → {c.dtype} (range-checked)")
        plans.append((r.name, c, transpose, quantized))

    def adapt(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for ref_name, c, transpose, quantized in plans:
            value = feed[ref_name]
            if transpose is not None:
                value = np.ascontiguousarray(value.transpose(transpose))
            if quantized:
                info = np.iinfo(c.dtype)
                value = np.clip(np.round(value / c.quant.scale[0] + c.quant.zero_point[0]), info.min, info.max)
                out[c.name] = value.astype(c.dtype)
            else:
                out[c.name] = cast_checked(value, c.dtype, name=c.name, origin="candidate input")
        return out

    return adapt, steps


def _run_all(ref_rt: Any, cand_rt: Any, inputs: list[dict[str, np.ndarray]], adapt: Any,
             reference: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    ref_runs, cand_runs = [], []
    for index, feed in enumerate(inputs):
        ref_result = ref_rt.run(feed)
        if not all(np.isfinite(v.astype(np.float64)).all() for v in ref_result.values()):
            raise InvalidInputError(f"{reference}: the reference itself produced NaN/inf on sample {index}",
                                    hint="parity against a non-finite reference is meaningless; check the data")
        ref_runs.append(ref_result)
        cand_runs.append(cand_rt.run(adapt(feed)))
    stack = lambda runs: {name: np.concatenate([r[name] for r in runs]) for name in runs[0]}  # noqa: E731
    return stack(ref_runs), stack(cand_runs)


def _match_outputs(ref: IOSpec, cand: IOSpec) -> tuple[list[tuple[str, str]], list[str]]:
    if set(ref.output_names) == set(cand.output_names):
        return [(n, n) for n in ref.output_names], ["outputs matched by name"]
    pairs = list(zip(ref.output_names, cand.output_names, strict=False))
    return pairs, [f"outputs matched by order ({', '.join(f'{r}↔{c}' for r, c in pairs)})"]


def _output_step(spec: IOSpec, name: str) -> float | None:
    """A quantized integer output's scale: one step of it is noise the top-k margin allows for."""
    ts = next((t for t in spec.outputs if t.name == name), None)
    if ts is None or ts.quant is None or len(ts.quant.scale) != 1 or np.dtype(ts.dtype).kind not in "iu":
        return None
    return float(ts.quant.scale[0])


def _dequantized(values: np.ndarray, spec: IOSpec, name: str, adaptations: list[str]) -> np.ndarray:
    ts = next(t for t in spec.outputs if t.name == name)
    if ts.quant is not None and np.dtype(ts.dtype).kind in "iu":
        adaptations.append(f"{name}: dequantized from {ts.dtype}")
        return ts.quant.dequantize(values)
    return values


def _judge(ref_name: str, cand_name: str, ref: np.ndarray, cand: np.ndarray, tol: Tolerance, *,
           output_step: float | None = None) -> OutputParity:
    """The checks of one output; ``output_step`` is the candidate output's quantization scale when its
    contract has one (it widens the top-k noise floor, metrics module doc)."""
    if ref.shape != cand.shape:
        return OutputParity(ref_name, cand_name, (Check("shape", False, None, None,
                            detail=f"candidate {list(cand.shape)} vs reference {list(ref.shape)} (never broadcast)"),))
    if np.dtype(cand.dtype).kind != np.dtype(ref.dtype).kind and np.dtype(cand.dtype).kind != "f":
        return OutputParity(ref_name, cand_name, (Check("dtype", False, None, None,
                            detail=f"candidate {cand.dtype} vs reference {ref.dtype}"),))
    metrics = compare(ref, cand, rtol=tol.rtol, resolution=tol.resolution, output_step=output_step)
    checks = [Check("finite", metrics.nonfinite_candidate == 0, float(metrics.nonfinite_candidate), 0.0,
                    detail=f"{metrics.nonfinite_candidate} non-finite values in the candidate")]
    if tol.atol is not None:
        checks.append(Check("elementwise", metrics.atol_needed <= tol.atol, metrics.max_abs, tol.atol,
                            would_pass_at=metrics.atol_needed,
                            detail=f"max |Δ| {metrics.max_abs:.3g} > atol {tol.atol:g} + rtol {tol.rtol:g}·|ref| "
                                   f"(would pass at atol {metrics.atol_needed:.3g})"))
    if tol.min_cosine is not None:
        checks.append(Check("cosine", metrics.cosine >= tol.min_cosine, metrics.cosine, tol.min_cosine,
                            would_pass_at=metrics.cosine,
                            detail=f"{metrics.cosine:.6f} < {tol.min_cosine} (would pass at ≥ {metrics.cosine:.6f})"))
    if tol.min_top1 is not None and metrics.class_samples is not None:
        checks.append(_top1_check(metrics, tol))
    return OutputParity(ref_name, cand_name, tuple(checks), metrics)


def _top1_check(metrics: OutputMetrics, tol: Tolerance) -> Check:
    """Top-1 agreement on the decisive samples; not judged when too few are (metrics module doc)."""
    assert tol.min_top1 is not None and metrics.class_samples is not None and metrics.top1_decisive is not None
    decisive, total, agreement = metrics.top1_decisive, metrics.class_samples, metrics.top1_agreement
    within = (f"{total - decisive} within the {tol.profile.value} noise floor "
              f"(reference top-1 margin ≤ {metrics.margin_floor:.3g})")
    if decisive < tol.min_decisive:
        return Check("top1_agreement", True, agreement, tol.min_top1, judged=False,
                     detail=f"not judged: {decisive} decisive samples of {total}, fewer than the "
                            f"{tol.min_decisive} it takes; {within}")
    assert agreement is not None
    passed = agreement >= tol.min_top1
    return Check("top1_agreement", passed, agreement, tol.min_top1, would_pass_at=agreement,
                 detail=f"{agreement:.3f} {'≥' if passed else '<'} {tol.min_top1} on {decisive} decisive "
                        f"samples of {total}; {within}")


def _accuracy(outputs: list[OutputParity], ref_out: dict, cand_out: dict, cand_spec: IOSpec,
              labels: np.ndarray | None, tol: Tolerance, adaptations: list[str]
              ) -> tuple[dict[str, float] | None, Check | None]:
    """Accuracy of both on the first class-score output when labels exist."""
    if labels is None:
        return None, None
    scored = next((o for o in outputs if o.metrics is not None and o.metrics.class_samples is not None), None)
    if scored is None:
        return None, None
    ref_acc = top1_accuracy(ref_out[scored.reference_name], labels)
    cand_values = _dequantized(cand_out[scored.candidate_name], cand_spec, scored.candidate_name, adaptations)
    cand_acc = top1_accuracy(cand_values, labels)
    drop = ref_acc - cand_acc
    accuracy = {"reference": ref_acc, "candidate": cand_acc, "delta": cand_acc - ref_acc}
    if tol.max_accuracy_drop is None:
        return accuracy, None
    return accuracy, Check("accuracy_drop", drop <= tol.max_accuracy_drop + 1e-12, drop, tol.max_accuracy_drop,
                           would_pass_at=drop,
                           detail=f"{drop * 100:.2f} points > {tol.max_accuracy_drop * 100:.2f}")


def junit_xml(report: ParityReport) -> str:
    """JUnit XML: one test case per output and check, so CI systems show each check."""
    from xml.etree import ElementTree as ET

    cases = [(f"{o.reference_name}.{c.name}", c) for o in report.outputs for c in o.checks]
    if report.accuracy_check is not None:
        cases.append(("accuracy_drop", report.accuracy_check))
    failures = sum(1 for _, c in cases if not c.passed)
    skipped = sum(1 for _, c in cases if c.passed and not c.judged)
    suite = ET.Element("testsuite", name=f"edgekit.parity {Path(report.candidate).name}", tests=str(len(cases)),
                       failures=str(failures), errors="0", skipped=str(skipped))
    properties = ET.SubElement(suite, "properties")
    for key, value in (("reference", report.reference), ("candidate", report.candidate),
                       ("profile", report.profile.value), ("data", report.data_source)):
        ET.SubElement(properties, "property", name=key, value=value)
    for name, check in cases:
        case = ET.SubElement(suite, "testcase", classname=f"parity.{Path(report.candidate).name}", name=name)
        if not check.passed:
            ET.SubElement(case, "failure", message=check.detail, type=check.name).text = check.detail
        elif not check.judged:  # too few decisive samples: neither a pass nor a failure
            ET.SubElement(case, "skipped", message=check.detail)
    root = ET.Element("testsuites", tests=str(len(cases)), failures=str(failures))
    root.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
