"""Kill the conversion worker at random points, many times: the output path must always hold the
previous artifact byte-identical or the complete new one — never a partial file, never a temp file.

    python benchmarks/kill_trials.py [--trials 200] [--seed 1]

The same trial as tests/test_isolation.py (50 trials there), run longer; prints the outcomes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from test_isolation import run_kill_trials

    from edgekit.samples import write_sample
    from edgekit.toolkit.contract.formats import Format

    with tempfile.TemporaryDirectory() as scratch:
        source = write_sample(Format.ONNX, Path(scratch))
        work = Path(scratch) / "out"
        work.mkdir()
        start = time.perf_counter()
        outcomes = run_kill_trials(source, work, trials=args.trials, seed=args.seed)
        seconds = time.perf_counter() - start
    print(f"{args.trials} trials in {seconds:.0f} s: output held the previous bytes {outcomes['previous']}×, "
          f"the complete new artifact {outcomes['new']}×, anything else 0× (each trial asserts it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
