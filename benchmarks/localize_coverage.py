"""`edgekit localize` on the architectures users bring (`coverage_models.py`: Keras applications, transformers
models, recurrent and attention modules, two-input/two-output models, all built from code with seeded random
weights) against each float conversion edgekit makes of them: how much of each reference graph finds a partner,
whether a sound conversion is judged sound (no origin, exit 0), how many pairs are absorbed, and what it costs.

    python benchmarks/localize_coverage.py                          # every model × tflite, onnx, executorch
    python benchmarks/localize_coverage.py --models hf-bert,keras-lstm --routes onnx,tflite

Each conversion (`edgekit convert --no-validate`) and each localize (`edgekit localize --json`, ExecuTorch with
`--taps`) runs as a user would run it, in its own process; converted files are kept under WORK and reused. A
cell prints the localize exit code (0: no layer fails; 1: an origin or failing outputs; else the error), the
matched share over the reference's run-time values, the pairs by status, the unmatched values and the seconds the
localize process took (framework imports included). A sound float conversion should read exit 0 with a high
share: anything else is a pairing or judging fault to look at, or a converter that really changed the numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from coverage_models import MODELS, by_name  # noqa: E402

ROUTES = {"tflite": ".tflite", "onnx": ".onnx", "executorch": ".pte"}
DEFAULT_WORK = HERE.parent / "build" / "localize-coverage"


def edgekit(*args: object, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def build(name: str, work: Path) -> Path:
    """The model's file, built in a fresh process (torch and TensorFlow stay out of this one)."""
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); from coverage_models import by_name; "
            f"print(by_name()[{name!r}].build(__import__('pathlib').Path({str(work)!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return Path(done.stdout.strip().splitlines()[-1])


def cell(source: Path, route: str, work: Path, samples: int, timeout: float) -> dict:
    artifact = work / f"{source.stem}{ROUTES[route]}"
    if not artifact.exists():
        made = edgekit("convert", source, "--to", route, "-o", artifact, "--no-validate", "--force", timeout=timeout)
        if made.returncode != 0:
            return {"route": route, "error": f"convert exit {made.returncode}: "
                                             f"{(made.stderr.strip().splitlines() or [''])[-1][:160]}"}
    started = time.perf_counter()
    found = edgekit("localize", source, artifact, "--json", "--samples", samples,
                    *(["--taps"] if route == "executorch" else []), timeout=timeout)
    seconds = time.perf_counter() - started
    if not found.stdout.strip():
        return {"route": route, "error": f"localize exit {found.returncode}: "
                                         f"{(found.stderr.strip().splitlines() or [''])[-1][:160]}"}
    report = json.loads(found.stdout)
    statuses: dict[str, int] = {}
    for pair in report["pairs"]:
        statuses[pair["status"]] = statuses.get(pair["status"], 0) + 1
    origin = report["origin"]
    return {"route": route, "exit": found.returncode, "share": report["matched_share"],
            "values": report["reference_values"], "statuses": statuses, "unmatched": report["unmatched"],
            "constant": len(report["constant"]), "seconds": seconds,
            "origin": (origin["module_path"] or origin["reference_name"]) if origin else None,
            "deployed": report["deployed"]["passed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--routes", default=",".join(ROUTES), help="comma-separated: tflite, onnx, executorch")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    specs = [by_name()[n] for n in args.models.split(",") if n] or list(MODELS)
    routes = [r for r in args.routes.split(",") if r]
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'model':24} {'route':10} {'exit':>4} {'share':>6} {'values':>6}  pairs (pass/origin/propagated/"
          f"absorbed)  {'s':>5}  unmatched")
    for spec in specs:
        try:
            source = build(spec.name, args.work)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{spec.name:24} build failed: {exc}")
            continue
        for route in routes:
            if route == "executorch" and spec.framework != "torch":
                continue
            try:
                row = cell(source, route, args.work, args.samples, args.timeout)
            except subprocess.TimeoutExpired:
                row = {"route": route, "error": f"timed out after {args.timeout:.0f} s"}
            rows.append({"model": spec.name, **row})
            if "error" in row:
                print(f"{spec.name:24} {route:10} {row['error']}")
                continue
            s = row["statuses"]
            counts = "/".join(str(s.get(k, 0)) for k in ("pass", "origin", "propagated", "absorbed"))
            unmatched = ", ".join(row["unmatched"][:4]) + (" …" if len(row["unmatched"]) > 4 else "")
            print(f"{spec.name:24} {route:10} {row['exit']:>4} {row['share']:>6.3f} {row['values']:>6}  "
                  f"{counts:>36}  {row['seconds']:>5.1f}  {unmatched}"
                  + (f"  origin: {row['origin']}" if row["origin"] else ""), flush=True)
    done = [r for r in rows if "error" not in r]
    if done:
        shares = sorted(r["share"] for r in done)
        print(f"\n{len(done)} cells: exit 0 in {sum(r['exit'] == 0 for r in done)}; matched share median "
              f"{shares[len(shares) // 2]:.3f}, min {shares[0]:.3f}; ≥ 0.9 in {sum(s >= 0.9 for s in shares)}; "
              f"{sum(1 for r in rows if 'error' in r)} errors")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
