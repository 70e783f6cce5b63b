"""``edgekit check``: a CI gate. A TOML config says what to run (models, targets, precisions) and the
thresholds to hold; the pipeline runs only that (latency only when a latency threshold asks for it),
and every violated threshold is listed by name with the measured value.

    [pipeline]                      # all optional; paths are relative to the config file
    models = ["models/digits_cnn.pt2"]   # omitted: the default digits models are trained
    to = ["tflite", "onnx"]
    quantize = ["none", "int8"]
    out = "edgekit-check"
    compat = ["all"]                # compat targets reported per row (default all; the required ones always)

    min_cosine = 0.995              # optional: an accuracy budget for every quantized row (as convert's
    max_accuracy_drop = 0.5         # --min-cosine / --max-accuracy-drop; here in points: 0.5 = half a point)

    [thresholds]                    # apply to every artifact …
    min_accuracy = 0.95
    max_accuracy_drop = 0.01        # fraction: 0.01 = one point
    max_p50_ratio = 1.5             # p50 ÷ the baseline's p50 for the same row
    max_size_bytes = 200_000
    compat = ["tflite-gpu"]         # each artifact must run every op on these targets (`edgekit compat`;
                                    # a target applies to rows of its format; a device profile names its targets)
    baseline = "baseline.json"      # a report.json from `edgekit pipeline` or `edgekit check`

    [thresholds."tflite.int8"]      # … unless a more specific table overrides them
    max_accuracy_drop = 0.02        # ("tflite.int8" beats "tflite" beats "int8" beats the global table)

Parsing and judging are numpy- and framework-free (unit-tested without running anything).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgekit.pipeline.report import PipelineReport, Row, RowStatus
from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError, first_line, option
from edgekit.toolkit.contract.formats import output_formats
from edgekit.toolkit.contract.options import QuantMode

DEFAULT_CONFIG = "edgekit.toml"
PIPELINE_KEYS = {"models", "to", "quantize", "data", "calibration", "out", "threads", "min_seconds", "samples",
                 "epochs", "seed", "executor", "jobs", "ray_address", "compat", "min_cosine", "max_accuracy_drop"}
INTEGER_RANGES = {"threads": (1, 1024), "samples": (1, 10_000_000), "epochs": (1, 100_000), "seed": (0, 2**32 - 1),
                  "jobs": (1, 1024)}
EXECUTORS = ("serial", "process", "ray")


@dataclass(frozen=True)
class Thresholds:
    min_accuracy: float | None = None
    max_accuracy_drop: float | None = None
    max_p50_ratio: float | None = None
    max_size_bytes: int | None = None
    require_parity: bool = True  # a parity-failed or conversion-failed row is a violation
    compat: tuple[str, ...] = ()  # compat targets every artifact of their format must fully support

    @classmethod
    def parse(cls, table: dict[str, Any], where: str, base: Thresholds | None = None) -> Thresholds:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in known:
                raise UsageError(f"{where}: unknown threshold {key!r}", hint=f"known: {', '.join(sorted(known))}")
            if key == "require_parity":
                if not isinstance(value, bool):
                    raise UsageError(f"{where}: require_parity must be true or false")
            elif key == "compat":
                value = _compat_list(where, value)
            elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                # NaN compares false with everything: it would silently turn the threshold off
                raise UsageError(f"{where}: {key} must be a finite number ≥ 0, got {value!r}")
            values[key] = value
        return replace(base or cls(), **values)

    @property
    def needs_latency(self) -> bool:
        return self.max_p50_ratio is not None


@dataclass(frozen=True)
class CheckConfig:
    path: Path
    models: tuple[Path, ...] = ()
    to: tuple[str, ...] = ("all",)
    quantize: tuple[str, ...] = ("all",)
    data: str | None = None
    calibration: str | None = None
    out: Path = Path("edgekit-check")
    threads: int = 1
    min_seconds: float = 0.25
    samples: int = 500
    epochs: int | None = None
    seed: int = 0
    thresholds: Thresholds = Thresholds()
    overrides: dict[str, Thresholds] = field(default_factory=dict)  # "tflite.int8" | "tflite" | "int8"
    baseline: Path | None = None
    executor: str = "process"
    jobs: int | None = None
    ray_address: str | None = None
    compat: tuple[str, ...] = ("all",)
    min_cosine: float | None = None  # [pipeline]: an accuracy budget for every quantized row …
    max_accuracy_drop: float | None = None  # … in points of top-1 (convert's --max-accuracy-drop)

    @property
    def needs_latency(self) -> bool:
        return self.thresholds.needs_latency or any(t.needs_latency for t in self.overrides.values())

    @property
    def compat_targets(self) -> tuple[str, ...]:
        """What the pipeline checks: the [pipeline] compat targets plus every required one."""
        from edgekit.targets.compat import parse_targets

        chosen = [*self.compat, *(t for limits in (self.thresholds, *self.overrides.values()) for t in limits.compat)]
        return tuple(parse_targets(chosen)) if chosen else ()

    def thresholds_for(self, row: Row) -> Thresholds:
        for key in (f"{row.format}.{row.precision}", row.format, row.precision):
            if key in self.overrides:
                return self.overrides[key]
        return self.thresholds


MAX_CONFIG_BYTES = 1 << 20  # an edgekit.toml is a few hundred bytes


def load_config(path: str | Path) -> CheckConfig:
    from edgekit.toolkit.fsutil import read_regular_file

    path = Path(path)
    try:  # a regular file only, opened without blocking: a FIFO swapped in after a check would hang the read
        text = read_regular_file(path, what="config file", limit=MAX_CONFIG_BYTES).decode("utf-8")
    except OSError:
        raise InvalidInputError(f"{path}: no such config file", hint=f"write one (see README: {DEFAULT_CONFIG}) or "
                                "pass --config FILE") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not valid TOML: {exc}", hint="save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise InvalidInputError(f"{path}: not valid TOML: {exc}", hint="fix the syntax (https://toml.io)") from None
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path) -> CheckConfig:
    unknown = set(data) - {"pipeline", "thresholds"}
    if unknown:
        raise UsageError(f"{path}: unknown table(s) {sorted(unknown)}", hint="edgekit.toml has [pipeline] and "
                         "[thresholds] (with optional [thresholds.\"FORMAT.PRECISION\"] overrides)")
    here = path.parent
    pipeline = data.get("pipeline", {})
    if not isinstance(pipeline, dict):
        raise UsageError(f"{path}: [pipeline] must be a table")
    bad = set(pipeline) - PIPELINE_KEYS
    if bad:
        raise UsageError(f"{path}: unknown [pipeline] key(s) {sorted(bad)}",
                         hint=f"known: {', '.join(sorted(PIPELINE_KEYS))}")
    config = CheckConfig(path=path, out=here / "edgekit-check")
    updates: dict[str, Any] = {}
    for key, value in pipeline.items():
        if key == "models":
            updates[key] = tuple(here / _string(path, key, v) for v in _list(path, key, value))
        elif key in ("to", "quantize"):
            updates[key] = tuple(_string(path, key, v) for v in _list(path, key, value))
        elif key == "compat":
            updates[key] = _compat_list(f"{path}: [pipeline]", value)
        elif key == "out":
            updates[key] = here / _string(path, key, value)
        elif key == "executor":
            text = _string(path, key, value)
            if text not in EXECUTORS:
                raise UsageError(f"{path}: [pipeline] executor must be one of {', '.join(EXECUTORS)}, got {text!r}")
            updates[key] = text
        elif key == "ray_address":
            updates[key] = _string(path, key, value)
        elif key in ("data", "calibration"):
            text = _string(path, key, value)
            updates[key] = text if text in ("digits", "random") else str(here / text)
        elif key in INTEGER_RANGES:
            low, high = INTEGER_RANGES[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise UsageError(f"{path}: [pipeline] {key} must be an integer from {low} to {high}, got {value!r}")
            updates[key] = value
        elif key in ("min_cosine", "max_accuracy_drop"):  # the accuracy budget's ranges (edgekit.budget.Budget)
            low, high, what = (-1.0, 1.0, "a cosine") if key == "min_cosine" else (0.0, 100.0, "points of top-1")
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise UsageError(f"{path}: [pipeline] {key} must be {what} from {low:g} to {high:g}, got {value!r}",
                                 hint="e.g. max_accuracy_drop = 0.5 (half a point) or min_cosine = 0.995")
            updates[key] = float(value)
        else:  # min_seconds
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise UsageError(f"{path}: [pipeline] {key} must be a finite number ≥ 0, got {value!r}")
            updates[key] = float(value)
    table = data.get("thresholds", {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [thresholds] must be a table, got {table!r}",
                         hint="write [thresholds] with one key = value per line")
    table = dict(table)
    baseline = table.pop("baseline", None)
    nested = {k: v for k, v in table.items() if isinstance(v, dict)}
    flat = {k: v for k, v in table.items() if not isinstance(v, dict)}
    thresholds = Thresholds.parse(flat, f"{path}: [thresholds]")
    overrides = {}
    for key, sub in nested.items():
        _check_override_key(path, key)
        overrides[key] = Thresholds.parse(sub, f'{path}: [thresholds."{key}"]', base=thresholds)
    if baseline is not None:
        updates["baseline"] = here / _string(path, "baseline", baseline)
    return replace(config, thresholds=thresholds, overrides=overrides, **updates)


def _check_override_key(path: Path, key: str) -> None:
    fmt, _, precision = key.partition(".")
    formats, modes = [f.value for f in output_formats()], [q.value for q in QuantMode]
    valid = (fmt in formats and (not precision or precision in modes)) or (not precision and fmt in modes)
    if not valid:
        raise UsageError(f'{path}: [thresholds."{key}"] names no format or quantization mode',
                         hint=f"use FORMAT, MODE or FORMAT.MODE: formats {', '.join(formats)}; "
                              f"modes {', '.join(modes)}")


def _compat_list(where: str, value: Any) -> tuple[str, ...]:
    """A compat list (``[]`` for none), each name a compat target, ``all`` or a device profile."""
    from edgekit.targets.compat import parse_targets

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where}: compat must be a list of target names, got {value!r}",
                         hint='e.g. compat = ["tflite-gpu", "onnx-nnapi"] (see `edgekit compat --help`)')
    try:
        parse_targets(value, None)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.message}", hint=exc.hint) from None
    return tuple(value)


def _list(path: Path, key: str, value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise UsageError(f"{path}: [pipeline] {key} must be a non-empty list of strings")
    return value


def _string(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{path}: {key} must be a non-empty string, got {value!r}")
    return value


def load_baseline(path: Path) -> PipelineReport:
    try:
        return PipelineReport.from_dict(jsonio.load_file(path, what="baseline"))
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: baseline not found", hint="write one with `edgekit check "
                                f"{option('write_baseline')} FILE` (or use a pipeline report.json)") from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the baseline ({exc.strerror})", hint="give a report.json file") \
            from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # fuzzing found each of these
        raise InvalidInputError(f"{path}: not an edgekit pipeline report: {first_line(exc)}",
                                hint="use the report.json of `edgekit pipeline` or `edgekit check`") from None


@dataclass(frozen=True)
class Verdict:
    violations: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.violations


def judge(report: PipelineReport, config: CheckConfig, baseline: PipelineReport | None = None) -> Verdict:
    """Every threshold against every row; each violation names the row, the threshold and both values."""
    violations: list[str] = []
    notes: list[str] = []
    for row in report.rows:
        limits = config.thresholds_for(row)
        name = row.label
        if row.status is RowStatus.CRASHED:  # no threshold tolerates a crashed worker
            violations.append(f"{name}: crashed: {row.reason}")
            continue
        if limits.require_parity and row.status is not RowStatus.PASSED:
            violations.append(f"{name}: {row.status.value} (require_parity): {row.reason}")
        if row.status is RowStatus.CONVERSION_FAILED:
            continue
        if limits.min_accuracy is not None:
            if row.accuracy is None:
                violations.append(f"{name}: min_accuracy {limits.min_accuracy:.4f} set but accuracy was not measured "
                                  "(no labelled data)")
            elif row.accuracy < limits.min_accuracy:
                violations.append(f"{name}: accuracy {row.accuracy:.4f} < min_accuracy {limits.min_accuracy:.4f}")
        if limits.max_accuracy_drop is not None and row.accuracy_delta is not None \
                and -row.accuracy_delta > limits.max_accuracy_drop + 1e-12:
            violations.append(f"{name}: accuracy drop {-row.accuracy_delta:.4f} > max_accuracy_drop "
                              f"{limits.max_accuracy_drop:.4f}")
        if limits.max_size_bytes is not None and row.size_bytes is not None and row.size_bytes > limits.max_size_bytes:
            violations.append(f"{name}: size {row.size_bytes} bytes > max_size_bytes {limits.max_size_bytes}")
        if limits.max_p50_ratio is not None:
            violations += _latency(row, limits.max_p50_ratio, baseline, notes)
        violations += _compat(row, limits.compat)
    return Verdict(tuple(violations), tuple(notes))


def _compat(row: Row, required: tuple[str, ...]) -> list[str]:
    """A required compat target of the row's format that the artifact does not fully run on (or that was not
    checked) is a violation; targets of other formats do not apply to the row."""
    if not required:
        return []
    from edgekit.targets.compat import parse_targets
    from edgekit.toolkit.contract.compat import COMPAT_TARGETS

    found = []
    for target in parse_targets(required):
        if COMPAT_TARGETS[target].format.value != row.format:
            continue
        cell = row.compat.get(target)
        if cell is None:
            found.append(f"{row.label}: compat {target} required but not checked")
        elif cell["support"] != "supported":
            found.append(f"{row.label}: {target} {cell['support']}: {cell['summary']} (compat)")
    return found


def _latency(row: Row, limit: float, baseline: PipelineReport | None, notes: list[str]) -> list[str]:
    name = row.label
    if baseline is None:
        return [f"{name}: max_p50_ratio {limit} set but no baseline is configured ([thresholds] baseline = FILE)"]
    before = baseline.row(*row.key)
    if before is None or before.latency is None:
        notes.append(f"{name}: no baseline latency for this row (new row): p50 not compared")
        return []
    if row.latency is None:
        return [f"{name}: max_p50_ratio {limit} set but latency was not measured"]
    ratio = row.latency.p50 / before.latency.p50
    if ratio > limit:
        return [f"{name}: p50 {row.latency.p50 * 1e3:.4f} ms is {ratio:.2f}× the baseline's "
                f"{before.latency.p50 * 1e3:.4f} ms > max_p50_ratio {limit}"]
    return []

