"""What full-int8 buys on this CPU, per runtime, for the MobileNetV2-style model.

Prints, in one run, fp32 vs full-int8 p50 (1 thread) for TFLite (XNNPACK), ONNX Runtime (QDQ U8S8)
and ExecuTorch (XNNPACK), the speed-up (target for TFLite: ≥ 1.8× on an AVX-512 VNNI CPU), and the
dynamic-range TFLite variant with its delegation status — it is slower than fp32 on x86 because its
hybrid kernels do not all run on XNNPACK, and edgekit says so.

Two kinds of noise are handled separately. Within a process, the variants of a runtime are timed
interleaved — alternating blocks of runs, each model loaded once — so a burst of host contention slows
both sides alike. Between processes the same two files can differ by 10–20% in ratio on this VM (memory
placement, which host core the vCPU lands on), so the whole measurement is repeated in ``--trials``
fresh processes and the verdict is taken on the median trial, with the range printed beside it: a
single process's ratio is an anecdote.

The input geometry printed is read from the converted models themselves. Below 96×96 (MobileNetV2's
smallest standard resolution) per-operator overhead, not arithmetic, dominates and the int8 gain shrinks;
`--size 64` shows it.

    python benchmarks/int8_speedup.py [--work DIR] [--threads 1] [--size 96] [--trials 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _models import converted, mobilenet
from _timing import RESULT, alternating, fresh_trials, prepared

TFLITE_TARGET = 1.8
TFLITE = "TFLite (Keras → TFLiteConverter)"
DYNAMIC = "TFLite dynamic-range int8"


def build(args: argparse.Namespace) -> dict[str, tuple[Path, Path]]:
    """fp32 and quantized file per comparison; trained and converted once into ``args.work``."""
    torch_model, keras_model = mobilenet(args.work, "torch", args.size), mobilenet(args.work, "keras", args.size)
    fp32_tflite = converted(keras_model, "tflite")
    return {
        TFLITE: (fp32_tflite, converted(keras_model, "tflite", "int8")),
        "ONNX Runtime (torch → QDQ)": (converted(torch_model, "onnx"), converted(torch_model, "onnx", "int8")),
        "ExecuTorch (torch → XNNPACK)": (converted(torch_model, "executorch"),
                                         converted(torch_model, "executorch", "int8")),
        DYNAMIC: (fp32_tflite, converted(keras_model, "tflite", "dynamic")),
    }


def trial(pairs: dict[str, list[str]], threads: int, rounds: int, runs_per_block: int) -> dict:
    """One process's measurement: per comparison, both p50s (interleaved blocks) and both delegations."""
    from edgekit.targets.bench import BenchOptions, LatencyStats, time_inference

    block = BenchOptions(warmup=5, runs=runs_per_block, min_seconds=0, threads=threads)
    result = {}
    for name, paths in pairs.items():
        runtimes, calls, _ = zip(*(prepared(Path(p), threads) for p in paths), strict=True)
        blocks = alternating([lambda call=call: time_inference(call, block).samples for call in calls], rounds)
        result[name] = {"p50": [LatencyStats.from_samples(np.concatenate(b)).p50 for b in blocks],
                        "delegation": [rt.describe().delegation for rt in runtimes]}
        for runtime in runtimes:
            runtime.close()
    return result


def run_trials(args: argparse.Namespace, pairs: dict[str, tuple[Path, Path]]) -> list[dict]:
    """``args.trials`` measurements, each in a fresh process (framework chatter passes to stderr)."""
    spec = json.dumps({name: [str(p) for p in paths] for name, paths in pairs.items()})
    command = [sys.executable, __file__, "--worker", spec, "--threads", str(args.threads),
               "--rounds", str(args.rounds), "--runs-per-block", str(args.runs_per_block)]
    return fresh_trials(command, args.trials)


def summarise(trials: list[dict], name: str) -> tuple[float, float, list[float]]:
    """Median fp32 p50, median quantized p50, and each trial's fp32 ÷ quantized ratio."""
    fp32 = statistics.median(t[name]["p50"][0] for t in trials)
    quant = statistics.median(t[name]["p50"][1] for t in trials)
    return fp32, quant, [t[name]["p50"][0] / t[name]["p50"][1] for t in trials]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgekit-bench-models")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20, help="alternating blocks per model, per trial")
    parser.add_argument("--runs-per-block", type=int, default=50)
    parser.add_argument("--trials", type=int, default=5, help="fresh processes; the verdict is the median's")
    parser.add_argument("--size", type=int, default=None, help="input side (default: the architecture's, 96)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one trial on these files, result on stdout
    args = parser.parse_args()
    if args.worker:
        print(RESULT + json.dumps(trial(json.loads(args.worker), args.threads, args.rounds, args.runs_per_block)))
        return 0
    if args.trials < 1:
        parser.error("--trials must be ≥ 1")
    args.work.mkdir(parents=True, exist_ok=True)

    from edgekit.targets import open_runtime

    pairs = build(args)
    with open_runtime(pairs[TFLITE][0]) as runtime:
        geometry = "×".join(str(d) for d in runtime.io_spec.inputs[0].concrete_shape()[1:])
    trials = run_trials(args, pairs)

    print(f"MobileNetV2-style, input {geometry} (read from the model), {args.threads} thread(s); "
          f"{args.trials} processes × {args.rounds} interleaved rounds × {args.runs_per_block} runs per model")
    print(f"{'runtime':<34} {'fp32 ms':>8} {'int8 ms':>8} {'speed-up':>9}  {'trials':>11}")
    for name in pairs:
        if name == DYNAMIC:
            continue
        fp32, int8, ratios = summarise(trials, name)
        speedup = statistics.median(ratios)
        verdict = ""
        if name == TFLITE:
            reached = sum(r >= TFLITE_TARGET for r in ratios)
            verdict = (f"  target ≥ {TFLITE_TARGET}×: {'ok' if speedup >= TFLITE_TARGET else 'MISSES'} "
                       f"({reached}/{len(ratios)} trials reach it)")
        print(f"{name:<34} {fp32 * 1e3:>8.3f} {int8 * 1e3:>8.3f} {speedup:>8.2f}×  "
              f"{min(ratios):.2f}–{max(ratios):.2f}×{verdict}")
    print("(ms: median over trials of each trial's p50; speed-up: median of the trials' ratios, range beside it)")

    fp32, dyn, ratios = summarise(trials, DYNAMIC)
    slowdowns = sorted(1 / r for r in ratios)
    slowdown = statistics.median(slowdowns)
    slower = sum(s > 1 for s in slowdowns)
    print(f"\n{DYNAMIC}: p50 {dyn * 1e3:.3f} ms = {slowdown:.2f}× the fp32 time "
          f"({slowdowns[0]:.2f}–{slowdowns[-1]:.2f}×) — "
          f"{'SLOWER than fp32' if slowdown > 1 else 'not slower than fp32'} in {slower}/{len(ratios)} trials")
    fp32_delegation, delegation = trials[0][DYNAMIC]["delegation"]
    print(f"  delegation: {delegation['delegated_operators']}/{delegation['operators']} operators on XNNPACK "
          f"({delegation['xnnpack_partitions']} partitions); on LiteRT's own CPU kernels: "
          f"{', '.join(f'{k}×{v}' for k, v in delegation['cpu_operators'].items()) or 'none'}")
    print(f"  fp32 for comparison: {fp32_delegation['delegated_operators']}/{fp32_delegation['operators']} "
          "on XNNPACK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
