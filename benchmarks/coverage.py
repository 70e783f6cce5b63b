"""The coverage matrix: architectures users bring (built from code, `coverage_models.py`) × every route edgekit
plans × every quantization mode, each converted with parity on, in its own subprocess.

    python benchmarks/coverage.py                       # the full matrix (tens of minutes on 2 cores)
    python benchmarks/coverage.py --models hf-bert,keras-lstm --routes tflite --modes none,int8
    python benchmarks/coverage.py --markdown --json-out cells.json
    python benchmarks/coverage.py --render cells.json --markdown   # redraw a previous run's table

Routes and modes come from edgekit itself (the converter registry, the planner, ``QUANT_MODE_SPECS``), so a
new converter or mode shows up here without editing this file. A cell is

    ✅ converted and parity PASS      ❎ converted, parity FAIL (the failing check)
    ❌ failed (exit code, edgekit's one-line error)      — no route for that source, format and mode

A cell runs `edgekit convert SOURCE --to … --quantize … --json` (with `--calibration random` for calibrating
modes) as a user would, in its own process with a timeout, so a crash or hang costs one cell. What the
user's terminal would show is checked: a cell whose output holds a Python traceback is flagged (⚠ in the
table), whatever its verdict, and lines that are not edgekit's own are counted. Each cell's stderr and
stdout are kept in WORK/logs/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # coverage_models beside this script, when run from anywhere

TRACEBACK = "Traceback (most recent call last)"
PASSED, PARITY_FAILED, FAILED, NO_ROUTE = "✅", "❎", "❌", "—"
LEAK = "⚠"
DEFAULT_WORK = HERE.parent / "build" / "coverage"
DEFAULT_TIMEOUT = 300.0
KILL_GRACE = 60.0  # beyond the api's own timeout: edgekit's clean timeout error comes first
SHORT_MODE = {"none": "fp32", "dynamic": "dyn", "int8-io": "i8io", "int16x8": "i16x8"}  # header text only
VERSIONED = ("edgekit", "torch", "transformers", "executorch", "torchao", "litert-torch", "ai-edge-litert",
             "ai-edge-quantizer", "tensorflow", "keras", "tf2onnx", "onnx", "onnxscript", "onnxruntime", "numpy")


@dataclass(frozen=True)
class Column:
    to: str  # the format --to writes
    mode: str  # a QUANT_MODE_SPECS name

    @property
    def key(self) -> str:
        return f"{self.to}/{self.mode}"


@dataclass(frozen=True)
class Cell:
    model: str
    to: str
    mode: str
    status: str  # PASSED, PARITY_FAILED, FAILED or NO_ROUTE
    reason: str = ""  # one line for every status but PASSED
    exit_code: int | None = None
    seconds: float = 0.0
    traceback_leak: bool = False
    output_lines: int = 0  # lines on the user's terminal (stderr) that are not edgekit's own
    route: tuple[str, ...] = ()
    log: str = ""

    @property
    def applicable(self) -> bool:
        return self.status != NO_ROUTE


# -- what edgekit offers ------------------------------------------------------------------------------------


def quant_modes() -> list[str]:
    from edgekit.toolkit.contract.options import QUANT_MODE_SPECS

    return [spec.name for spec in QUANT_MODE_SPECS]


def int8_family() -> set[str]:
    """The full-integer modes (they calibrate): judged apart, since recovering their losses is its own work."""
    from edgekit.toolkit.contract.options import QUANT_MODE_SPECS

    return {spec.name for spec in QUANT_MODE_SPECS if spec.needs_calibration}


def route_for(source: Path, column: Column) -> tuple[list[str] | None, str]:
    """The converters edgekit would chain for this cell, or None and why there is no route."""
    from edgekit.converters.planning import plan
    from edgekit.toolkit.contract.errors import UsageError
    from edgekit.toolkit.contract.formats import Format, sniff
    from edgekit.toolkit.contract.options import QuantMode

    try:
        steps = plan(sniff(source).format, Format(column.to), QuantMode(column.mode))
    except UsageError:
        return None, "no route"
    missing = sorted({module for step in steps for module in step.missing()})
    if missing:
        return None, f"not installed: {', '.join(missing)}"
    return [step.name for step in steps], ""


def all_columns(sources: Iterable[Path], tos: Sequence[str] | None, modes: Sequence[str] | None) -> list[Column]:
    """Every format × mode some source has a route for, in edgekit's table order."""
    from edgekit.toolkit.contract.formats import output_formats

    columns = [Column(fmt.value, mode) for fmt in output_formats() for mode in quant_modes()
               if (not tos or fmt.value in tos) and (not modes or mode in modes)]
    sources = list(sources)
    return [c for c in columns if any(route_for(s, c)[0] is not None for s in sources)]


# -- building the models (one subprocess per framework: a failed build names the model, ends nothing) -------


def models_stamp() -> str:
    """Models are rebuilt when their code or the frameworks that make them change."""
    digest = hashlib.sha256((HERE / "coverage_models.py").read_bytes())
    for package in ("torch", "transformers", "tensorflow", "keras"):
        digest.update(_version(package).encode())
    return digest.hexdigest()[:16]


def build_models(names: Sequence[str], work: Path, timeout: float) -> dict[str, Path | str]:
    """name → the saved model, or the one-line reason it could not be built."""
    from coverage_models import by_name

    specs = by_name()
    models_dir = work / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    stamp = models_stamp()
    built: dict[str, Path | str] = {}
    for framework in ("torch", "keras"):
        wanted = [n for n in names if specs[n].framework == framework]
        stale = [n for n in wanted if not _current_build(models_dir, n, stamp)]
        if stale:
            print(f"building {len(stale)} {framework} model(s) …", file=sys.stderr, flush=True)
            _build_in_subprocess(stale, models_dir, stamp, timeout, work / "logs" / f"build-{framework}.log")
        for name in wanted:
            result = _read_json(models_dir / f"{name}.build.json") or {}
            built[name] = (Path(result["path"]) if _current_build(models_dir, name, stamp)
                           else result.get("error") or "build did not finish")
    return built


def _current_build(models_dir: Path, name: str, stamp: str) -> bool:
    result = _read_json(models_dir / f"{name}.build.json") or {}
    return result.get("stamp") == stamp and bool(result.get("path")) and Path(result["path"]).exists()


def _build_in_subprocess(names: Sequence[str], models_dir: Path, stamp: str, timeout: float, log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "--build", ",".join(names), "--work", str(models_dir),
            "--stamp", stamp]
    _code, stdout, stderr = _supervised(argv, timeout * len(names))
    log.write_text(stdout + stderr)


def _build_main(names: Sequence[str], models_dir: Path, stamp: str) -> int:
    """Child: build each model, recording its path or its error beside it."""
    from coverage_models import by_name

    specs = by_name()
    for name in names:
        record: dict[str, Any] = {"stamp": stamp}
        start = time.perf_counter()
        try:
            record["path"] = str(specs[name].build(models_dir))
        except Exception as exc:  # a builder that breaks is reported on its row, the others still build
            record["error"] = f"build failed: {type(exc).__name__}: {_first_line(str(exc))}"
        record["seconds"] = round(time.perf_counter() - start, 2)
        (models_dir / f"{name}.build.json").write_text(json.dumps(record))
    return 0


# -- one cell ----------------------------------------------------------------------------------------------


def run_cell(model: str, source: Path, column: Column, route: Sequence[str], *, work: Path, timeout: float,
             calibration_samples: int, keep: bool) -> Cell:
    """``edgekit convert`` as a user runs it, in its own process: stdout is its --json result, stderr what the
    user's terminal shows (kept in WORK/logs/), the exit code the verdict (0 PASS, 1 parity FAIL, else error)."""
    tag = f"{model}.{column.to}.{column.mode}"
    log = work / "logs" / f"{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    from edgekit.toolkit.contract.formats import Format
    from edgekit.toolkit.contract.options import QuantMode

    mode = QuantMode(column.mode)
    output = work / "artifacts" / f"{source.stem}{mode.spec.file_tag}{Format(column.to).spec.suffix}"
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "edgekit", "--timeout", str(timeout), "convert", str(source), "--to", column.to,
            "--quantize", column.mode, "-o", str(output), "--force", "--json"]
    if mode.spec.needs_calibration:
        argv += ["--calibration", "random", "--calibration-samples", str(calibration_samples)]
    start = time.perf_counter()
    exit_code, stdout, stderr = _supervised(argv, timeout + KILL_GRACE)
    seconds = time.perf_counter() - start
    log.write_text(f"$ {' '.join(argv)}\n# exit {exit_code}\n# stderr\n{stderr}\n# stdout\n{stdout}\n")
    if not keep:
        _remove_artifact(output)
    foreign = [line for line in stderr.splitlines() if line.strip() and not line.startswith("edgekit:")]
    base = Cell(model, column.to, column.mode, FAILED, seconds=round(seconds, 1),
                traceback_leak=TRACEBACK in stderr or TRACEBACK in stdout, output_lines=len(foreign),
                route=tuple(route), log=str(log), exit_code=exit_code)
    if exit_code is None:
        return replace(base, reason=f"killed after {timeout + KILL_GRACE:g} s")
    result = _json(stdout) if exit_code in (0, 1) else None
    if result is not None:
        parity = result.get("parity")
        base = replace(base, route=tuple(result.get("route", route)))
        return replace(base, status=PASSED) if exit_code == 0 else \
            replace(base, status=PARITY_FAILED, reason=_parity_reason(parity))
    error = next((line for line in stderr.splitlines() if line.startswith("edgekit: error:")), "")
    return replace(base, reason=_first_line(error.removeprefix("edgekit: error: ") or
                                            f"exit {exit_code} without an error line"))


def _json(text: str) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError):
        data = json.loads(text)
        return data if isinstance(data, dict) else None
    return None


_LIVE: set[subprocess.Popen] = set()  # cell processes running now: killed with their groups if the run stops
_STOPPING = threading.Event()


def _supervised(argv: list[str], timeout: float) -> tuple[int | None, str, str]:
    """(exit code, stdout, stderr); the code is None when it ran past ``timeout`` (then its whole process group
    is killed: edgekit's worker and the converters' own subprocesses go with it)."""
    if _STOPPING.is_set():
        return None, "", ""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                               start_new_session=True)
    _LIVE.add(process)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        return process.returncode, stdout, stderr
    except subprocess.TimeoutExpired:
        _kill_group(process)
        stdout, stderr = process.communicate()
        return None, stdout, stderr
    finally:
        _kill_group(process)
        _LIVE.discard(process)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _remove_artifact(artifact: Path) -> None:
    """The artifact and its sidecar(s): a full matrix of ResNet50s would fill the disk."""
    for path in artifact.parent.glob(artifact.name + "*"):
        with contextlib.suppress(OSError):
            path.unlink()


def _parity_reason(parity: dict[str, Any] | None) -> str:
    """The first failed check of a parity report (its JSON form), as edgekit's failure line words it."""
    failures = [f"{o['reference_name']}: {c['name']} {c['detail']}" for o in (parity or {}).get("outputs", [])
                for c in o["checks"] if not c["passed"]]
    check = (parity or {}).get("accuracy_check")
    if check and not check["passed"]:
        failures.append(f"accuracy_drop {check['detail']}")
    if not failures:
        return "parity FAIL"
    more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
    return _first_line(failures[0]) + more


# -- the whole matrix --------------------------------------------------------------------------------------


@dataclass
class Run:
    models: list[str]
    columns: list[Column]
    cells: list[Cell] = field(default_factory=list)
    started: str = ""
    seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"edgekit_report": "coverage", "version": 1, "started": self.started, "seconds": self.seconds,
                "versions": self.versions, "interrupted": self.interrupted, "models": self.models,
                "columns": [asdict(c) for c in self.columns],
                "cells": [asdict(c) for c in self.cells]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        cells = [Cell(**{**c, "route": tuple(c.get("route", ()))}) for c in data["cells"]]
        return cls(data["models"], [Column(**c) for c in data["columns"]], cells, data.get("started", ""),
                   data.get("seconds", 0.0), data.get("versions", {}), data.get("interrupted", False))


def schedule(models: Sequence[str], columns: Sequence[Column]) -> list[tuple[str, Column]]:
    """Float modes first, then the int8 family: a run cut short still answers the first question."""
    family = int8_family()
    order = {mode: index for index, mode in enumerate(quant_modes())}
    return sorted(((m, c) for m in models for c in columns),
                  key=lambda mc: (mc[1].mode in family, order[mc[1].mode], models.index(mc[0])))


def run_matrix(models: Sequence[str], built: dict[str, Path | str], columns: list[Column], args: argparse.Namespace
               ) -> Run:
    """Every cell, ``args.jobs`` at a time, each appended to WORK/cells.jsonl as it ends. Ctrl-C or SIGTERM
    stops the run (the running cells' process groups are killed) and returns the cells done so far."""
    run = Run(list(models), columns, started=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              versions=versions())
    jobs = []
    for model, column in schedule(models, columns):
        source = built[model]
        route, why = route_for(source, column) if isinstance(source, Path) else ([], "")
        if route is None:
            run.cells.append(Cell(model, column.to, column.mode, NO_ROUTE, why))
        else:
            jobs.append((model, source, column, route))
    progress = args.work / "cells.jsonl"
    with progress.open("w") as out:  # what --render needs to draw a run that is still going
        out.write(json.dumps({"started": run.started, "versions": run.versions}, ensure_ascii=False) + "\n")
        out.writelines(json.dumps(asdict(cell), ensure_ascii=False) + "\n" for cell in run.cells)
    start = time.perf_counter()

    def one(job: tuple[str, Path | str, Column, list[str]]) -> Cell:
        model, source, column, route = job
        if isinstance(source, str):
            return Cell(model, column.to, column.mode, FAILED, source)
        return run_cell(model, source, column, route, work=args.work, timeout=args.timeout,
                        calibration_samples=args.calibration_samples, keep=args.keep)

    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        for index, cell in enumerate(pool.map(one, jobs), 1):
            run.cells.append(cell)
            with progress.open("a") as out:
                out.write(json.dumps(asdict(cell), ensure_ascii=False) + "\n")
            leak = f" {LEAK} traceback" if cell.traceback_leak else ""
            print(f"[{index}/{len(jobs)}] {cell.model} → {cell.to} {cell.mode}: {cell.status} "
                  f"{cell.seconds:.0f} s{leak} {cell.reason[:120]}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        _STOPPING.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list(_LIVE):
            _kill_group(process)
        run.interrupted = True
    finally:
        pool.shutdown(wait=True)
    run.seconds = round(time.perf_counter() - start, 1)
    return run


# -- rendering ---------------------------------------------------------------------------------------------


def _width(text: str) -> int:
    """Terminal columns: the status emoji take two."""
    return sum(2 if ch in (PASSED + PARITY_FAILED + FAILED) else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _symbol(cell: Cell | None) -> str:
    if cell is None:
        return ""
    return cell.status + (LEAK if cell.traceback_leak else "")


def table(run: Run) -> str:
    """Rows are models, columns route × mode, two header lines (format, then mode)."""
    cells = {(c.model, c.to, c.mode): c for c in run.cells}
    name_width = max([len("model"), *map(len, run.models)])
    widths = [max(3, len(SHORT_MODE.get(c.mode, c.mode))) for c in run.columns]
    groups: list[tuple[str, int]] = []
    for column, width in zip(run.columns, widths, strict=True):
        if groups and groups[-1][0] == column.to:
            groups[-1] = (column.to, groups[-1][1] + width + 1)
        else:
            groups.append((column.to, width))
    lines = [" " * name_width + " │ " + " │ ".join(_pad(to, width) for to, width in groups)]
    heads, start = [], 0
    for to, _ in groups:
        count = sum(1 for c in run.columns if c.to == to)
        heads.append(" ".join(_pad(SHORT_MODE.get(c.mode, c.mode), w)
                              for c, w in zip(run.columns[start:start + count], widths[start:start + count],
                                              strict=True)))
        start += count
    lines.append(_pad("model", name_width) + " │ " + " │ ".join(heads))
    lines.append("─" * name_width + "─┼─" + "─┼─".join("─" * width for _, width in groups))
    for model in run.models:
        row, start = [], 0
        for to, _ in groups:
            count = sum(1 for c in run.columns if c.to == to)
            row.append(" ".join(_pad(_symbol(cells.get((model, c.to, c.mode))), w)
                                for c, w in zip(run.columns[start:start + count], widths[start:start + count],
                                                strict=True)))
            start += count
        lines.append(_pad(model, name_width) + " │ " + " │ ".join(row))
    return "\n".join(lines)


def markdown(run: Run) -> str:
    cells = {(c.model, c.to, c.mode): c for c in run.cells}
    heads = [f"{c.to}<br>{SHORT_MODE.get(c.mode, c.mode)}" for c in run.columns]
    lines = ["| model | " + " | ".join(heads) + " |", "|---|" + "|".join(":-:" for _ in heads) + "|"]
    for model in run.models:
        lines.append(f"| {model} | " + " | ".join(_symbol(cells.get((model, c.to, c.mode))) for c in run.columns)
                     + " |")
    return "\n".join(lines)


def reasons(run: Run) -> list[str]:
    return [f"{c.status} {c.model} → {c.to} {c.mode}: {c.reason}" + (f" [{LEAK} traceback in {c.log}]"
                                                                       if c.traceback_leak else "")
            for c in run.cells if c.applicable and (c.status != PASSED or c.traceback_leak)]


def rates(run: Run) -> list[str]:
    family = int8_family()
    lines = []
    for title, group in (("none/fp16/dynamic", [c for c in run.cells if c.applicable and c.mode not in family]),
                         ("int8 family", [c for c in run.cells if c.applicable and c.mode in family])):
        if not group:
            continue
        counts = {status: sum(1 for c in group if c.status == status) for status in (PASSED, PARITY_FAILED, FAILED)}
        lines.append(f"{title}: {counts[PASSED]}/{len(group)} {PASSED} ({100 * counts[PASSED] / len(group):.0f}%), "
                     f"{counts[PARITY_FAILED]} {PARITY_FAILED}, {counts[FAILED]} {FAILED}")
    leaks = sum(1 for c in run.cells if c.traceback_leak)
    lines.append(f"traceback leaks: {leaks} cell(s)")
    noisy = [c for c in run.cells if c.applicable and c.output_lines]
    lines.append(f"cells printing lines that are not edgekit's own: {len(noisy)}"
                 + (f" ({', '.join(f'{c.model} → {c.to} {c.mode}' for c in noisy[:5])}"
                    f"{', …' if len(noisy) > 5 else ''})" if noisy else ""))
    return lines


def footer(run: Run) -> str:
    timed = [c.seconds for c in run.cells if c.applicable and c.seconds]
    per_cell = f", {sum(timed) / len(timed):.0f} s per cell on average" if timed else ""
    libraries = ", ".join(f"{name} {version}" for name, version in run.versions.items())
    stopped = " · incomplete: the cells not run are missing" if run.interrupted else ""
    return f"{run.started} · {run.seconds / 60:.1f} min{per_cell}{stopped} · {libraries}"


def report(run: Run, *, as_markdown: bool) -> str:
    parts = [markdown(run) if as_markdown else table(run), ""]
    legend = f"{PASSED} passed · {PARITY_FAILED} converted, parity FAIL · {FAILED} failed · {NO_ROUTE} no route"
    parts += [legend + f" · {LEAK} printed a traceback", ""]
    listed = reasons(run)
    if listed:
        parts += [("- " if as_markdown else "") + line for line in listed] + [""]
    bullet = "- " if as_markdown else ""
    parts += [bullet + line for line in rates(run)] + ["", footer(run)]
    return "\n".join(parts)


def _load_run(path: Path) -> Run:
    """A --json-out file, or WORK/cells.jsonl of a run still going (or cut short): its table so far."""
    text = path.read_text()
    if text.lstrip().startswith("{\n") or '"edgekit_report"' in text.split("\n", 1)[0]:
        return Run.from_dict(json.loads(text))
    from coverage_models import MODELS

    from edgekit.toolkit.contract.formats import output_formats

    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    header = next((row for row in rows if "status" not in row), {})
    cells = [Cell(**{**c, "route": tuple(c.get("route", ()))}) for c in rows if "status" in c]
    seen = {(c.to, c.mode) for c in cells if c.applicable}
    columns = [Column(f.value, m) for f in output_formats() for m in quant_modes() if (f.value, m) in seen]
    models = [spec.name for spec in MODELS if any(c.model == spec.name for c in cells)]
    return Run(models, columns, cells, header.get("started", ""), sum(c.seconds for c in cells),
               header.get("versions", {}), interrupted=True)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    found.update({name: _version(name) for name in VERSIONED if _version(name) != "missing"})
    found["edgekit source"] = edgekit_source()
    return found


def edgekit_source() -> str:
    """Where the cells' edgekit comes from (PYTHONPATH may point at a snapshot), with its git commit when that is
    a checkout: a matrix is only comparable with another made from the same code."""
    import importlib.util

    spec = importlib.util.find_spec("edgekit")
    root = Path(spec.origin).resolve().parent.parent if spec and spec.origin else None
    if root is None:
        return "unknown"
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "edgekit"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(root)
    return f"{root} at {commit}" + (" with uncommitted changes" if dirty else "")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _first_line(text: str, limit: int = 240) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- command line ------------------------------------------------------------------------------------------


def _csv(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma-separated names (default: all); --list shows them")
    parser.add_argument("--routes", "--to", dest="routes", help="formats to convert to, e.g. tflite,onnx")
    parser.add_argument("--modes", help="quantization modes, e.g. none,int8 (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="cells at once (default 1)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per cell")
    parser.add_argument("--calibration-samples", type=int, default=32, help="random calibration samples (int8)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="models, logs and scratch artifacts")
    parser.add_argument("--keep", action="store_true", help="keep the converted artifacts")
    parser.add_argument("--json-out", type=Path, help="write the cells as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for the README)")
    parser.add_argument("--render", type=Path, help="print the table of a --json-out (or of WORK/cells.jsonl, a run "
                        "still going), run nothing")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    parser.add_argument("--build", help=argparse.SUPPRESS)  # child: build these models
    parser.add_argument("--stamp", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.build:
        return _build_main(_csv(args.build), args.work, args.stamp)
    if args.render:
        print(report(_load_run(args.render), as_markdown=args.markdown))
        return 0
    from coverage_models import MODELS, by_name

    if args.list:
        for spec in MODELS:
            print(f"{spec.name:<24} {spec.framework:<6} {spec.summary}")
        return 0
    names = _csv(args.models) or [spec.name for spec in MODELS]
    unknown = [n for n in names if n not in by_name()]
    if unknown:
        print(f"unknown model(s): {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    unknown_modes = [m for m in _csv(args.modes) if m not in quant_modes()]
    if unknown_modes:
        print(f"unknown mode(s): {', '.join(unknown_modes)}; edgekit offers {', '.join(quant_modes())}",
              file=sys.stderr)
        return 2
    args.work = args.work.resolve()
    built = build_models(names, args.work, args.timeout)
    columns = all_columns([p for p in built.values() if isinstance(p, Path)], _csv(args.routes), _csv(args.modes))
    if not columns:
        print("no route × mode applies to these models", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` ends the run as Ctrl-C does, reporting what is done
    run = run_matrix(names, built, columns, args)
    if args.json_out:
        args.json_out.write_text(json.dumps(run.to_dict(), indent=1, ensure_ascii=False))
    print(report(run, as_markdown=args.markdown))
    return 130 if run.interrupted else 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.exit(main())
