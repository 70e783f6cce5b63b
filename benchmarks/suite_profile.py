"""Where the test suite's time goes: by module and by cost class, from one instrumented pytest run.

    python benchmarks/suite_profile.py                      # the whole suite, as `make test` runs it
    python benchmarks/suite_profile.py -- -m "not slow"     # anything after -- goes to pytest
    python benchmarks/suite_profile.py --keep prof/         # keep the per-test records …
    python benchmarks/suite_profile.py --from prof/         # … and read them again without running
    python benchmarks/suite_profile.py --from prof/ --write-durations tests/durations.json

``--write-durations`` writes each test's seconds (those of at least ``DURATION_FLOOR``), which the suite's
conftest uses to hand work to the xdist workers longest first; refresh it when the suite's slow tests change.

The cost classes (``_suite_timing.py``, a pytest plugin this script loads) are: framework imports in the test
processes and the warm CLI server's start; cold ``python -m edgekit`` children (imports + work); warm forked
CLI commands; headless Chromium; other child processes; edgekit's training, conversion, parity, localize and
bench run in-process; and the rest. Test time is summed over xdist workers (it exceeds the wall time when they
run side by side); the wall time is the pytest run's own.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DURATION_FLOOR = 1.0  # seconds: shorter tests are left out of --write-durations (the conftest's default covers them)
CLASSES = ("import", "cli-cold", "cli-warm", "browser", "subprocess", "training", "conversion", "parity", "localize",
           "bench", "other")


def run_suite(records: Path, pytest_args: list[str]) -> tuple[float, int]:
    env = dict(os.environ)
    env["EDGEKIT_SUITE_PROFILE_DIR"] = str(records)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH", "")]))
    argv = [sys.executable, "-m", "pytest", "-p", "_suite_timing", "-q", *pytest_args]
    print("running:", " ".join(argv), flush=True)
    start = time.perf_counter()
    rc = subprocess.run(argv, cwd=ROOT, env=env).returncode
    return time.perf_counter() - start, rc


def load(records: Path) -> list[dict]:
    rows = []
    for path in sorted(records.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{records}: no test records (was the run collected empty?)")
    return rows


def warm_summary(records: Path) -> str | None:
    commands, cold, seconds = 0, collections.Counter(), collections.Counter()
    for path in records.glob("*.warm.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        commands += data["warm_commands"]
        cold.update(data["cold_because"])
        seconds.update(data.get("seconds_by_command", {}))
    if not commands and not cold:
        return None
    reasons = ", ".join(f"{key} ×{count}" for key, count in cold.most_common()) or "none"
    by_command = ", ".join(f"{key} {value:.0f}" for key, value in seconds.most_common())
    return (f"warm CLI: {commands} commands forked; sent cold by the environment: {reasons}"
            + (f"\nwarm CLI seconds by command: {by_command}" if by_command else ""))


def report(rows: list[dict], wall: float | None, top: int) -> None:
    per_test: dict[str, float] = collections.defaultdict(float)
    per_test_classes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    modules: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    module_classes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    classes: collections.Counter = collections.Counter()
    workers = {row["worker"] for row in rows}
    for row in rows:
        module = row["test"].split("::")[0]
        per_test[row["test"]] += row["seconds"]
        modules[module][0] += row["seconds"]
        if row["when"] == "call":
            modules[module][1] += 1
        for kind, seconds in row["classes"].items():
            classes[kind] += seconds
            module_classes[module][kind] += seconds
            per_test_classes[row["test"]][kind] += seconds
    total = sum(per_test.values())
    head = f"{len(modules)} modules, {sum(count for _, count in modules.values())} tests, {total:,.0f} s of test time"
    head += f" on {len(workers)} worker(s)"
    if wall is not None:
        head += f"; wall {wall:,.0f} s ({total / wall:.2f}× parallel)"
    print("\n" + head)

    def split(counter: collections.Counter) -> str:
        parts = sorted(counter.items(), key=lambda item: -item[1])
        return ", ".join(f"{kind} {seconds:.0f}" for kind, seconds in parts if seconds >= 0.5)

    print(f"\nby cost class (seconds, share of test time)\n{'class':<12} {'seconds':>9} {'share':>7}")
    for kind in sorted(classes, key=lambda k: -classes[k]):
        print(f"{kind:<12} {classes[kind]:>9.0f} {classes[kind] / sum(classes.values()):>7.1%}")
    print(f"\nby module\n{'module':<40} {'tests':>5} {'seconds':>8} {'share':>6}  classes (s)")
    for module, (seconds, count) in sorted(modules.items(), key=lambda item: -item[1][0]):
        print(f"{module:<40} {count:>5} {seconds:>8.0f} {seconds / total:>6.1%}  {split(module_classes[module])}")
    print(f"\nslowest {top} tests (setup + call + teardown)")
    for test, seconds in sorted(per_test.items(), key=lambda item: -item[1])[:top]:
        print(f"{seconds:>8.1f}  {test}  [{split(per_test_classes[test])}]")


def write_durations(rows: list[dict], path: Path) -> None:
    """Each test's seconds (setup + call + teardown), keyed by its node id without xdist's ``@group``."""
    seconds: dict[str, float] = collections.defaultdict(float)
    for row in rows:
        test = row["test"]
        if test.rfind("@") > test.rfind("]"):
            test = test[:test.rfind("@")]
        seconds[test] += row["seconds"]
    kept = {test: round(value, 1) for test, value in sorted(seconds.items()) if value >= DURATION_FLOOR}
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(kept, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    temp.replace(path)
    print(f"{path}: {len(kept)} tests of at least {DURATION_FLOOR:g} s ({sum(kept.values()):,.0f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, help="records kept by an earlier --keep; no run")
    parser.add_argument("--keep", type=Path, help="keep the per-test records in this (new) directory")
    parser.add_argument("--top", type=int, default=30, help="how many of the slowest tests to list")
    parser.add_argument("--write-durations", type=Path, metavar="FILE",
                        help="write each test's seconds to FILE (tests/durations.json: xdist's work order)")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args()
    if args.source:
        rows = load(args.source)
        report(rows, None, args.top)
        print(warm_summary(args.source) or "")
        if args.write_durations:
            write_durations(rows, args.write_durations)
        return 0
    if args.keep and args.keep.exists():
        parser.error(f"{args.keep}: already exists (choose a new directory)")
    records = Path(tempfile.mkdtemp(prefix="suite-profile-"))
    try:
        wall, rc = run_suite(records, args.pytest_args)
        rows = load(records)
        report(rows, wall, args.top)
        print(warm_summary(records) or "")
        if args.write_durations:
            write_durations(rows, args.write_durations)
        if args.keep:
            shutil.copytree(records, args.keep)
            print(f"\nrecords kept in {args.keep}")
    finally:
        shutil.rmtree(records, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
