"""Start-up cost of the CLI: wall time of `edgekit --help` ÷ `python -c pass` (target ≤ 10×).

Runs each command repeatedly in fresh interpreters and compares medians. A benchmark, not a test:
    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET_RATIO = 10.0


def median_wall(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    python = [sys.executable, "-c", "pass"]
    commands = {
        "python -c pass": python,
        "edgekit --help": [sys.executable, "-m", "edgekit", "--help"],
        "edgekit --version": [sys.executable, "-m", "edgekit", "--version"],
    }
    median_wall(python, 3)  # warm the page cache
    results = {name: median_wall(argv, args.runs) for name, argv in commands.items()}
    baseline = results["python -c pass"]
    print(f"{'command':<20} {'median ms':>10} {'÷ python':>9}")
    for name, seconds in results.items():
        print(f"{name:<20} {seconds * 1e3:>10.1f} {seconds / baseline:>8.1f}×")
    ratio = results["edgekit --help"] / baseline
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"edgekit --help is {ratio:.1f}× python -c pass: {verdict} the ≤ {TARGET_RATIO:.0f}× target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
