"""Does `edgekit bench` report what the native tools report?

Prints, in one run:
- edgekit's LiteRT p50 ÷ the median of LiteRT's own `litert-benchmark` for the same .tflite, at 1 and
  2 threads (target 0.95–1.05);
- edgekit's ONNX Runtime p50 ÷ a raw `session.run` loop on the same session settings (same target);
- the per-call cost of edgekit's harness on a trivial model (target ≤ 10 µs): edgekit's p50 minus the
  raw loop's on a one-Add ONNX model, and the harness timing a no-op.

    python benchmarks/bench_fidelity.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _models import converted, mobilenet

RUNS, WARMUP = 300, 30


def litert_benchmark_median(model: Path, threads: int) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        command = [str(Path(sys.executable).with_name("litert-benchmark")), "--model", str(model),
                   "--num_runs", str(RUNS), "--warmup_runs", str(WARMUP), "--num_threads", str(threads),
                   "--result_json", str(result)]
        subprocess.run(command, check=True, capture_output=True)
        return json.loads(result.read_text())["latency"]["median_ms"] / 1e3


def raw_ort_median(model: Path, feeds: dict, threads: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    for _ in range(WARMUP):
        session.run(None, feeds)
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter_ns()
        session.run(None, feeds)
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e9


def trivial_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "trivial", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgekit-bench-models")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    import numpy as np

    from edgekit.benchmarking import bench_inputs, bench_one
    from edgekit.targets import open_runtime
    from edgekit.targets.bench import BenchOptions, LatencyStats, time_inference

    tflite = converted(mobilenet(args.work, "keras"), "tflite")
    onnx_model = converted(mobilenet(args.work, "torch"), "onnx")

    def ours(path: Path, threads: int) -> float:
        return bench_one(path, BenchOptions(warmup=WARMUP, runs=RUNS, min_seconds=0, threads=threads)).stats.p50

    print(f"{'comparison':<46} {'edgekit ms':>10} {'native ms':>10} {'ratio':>6}  target 0.95–1.05")
    for threads in (1, 2):
        mine, theirs = ours(tflite, threads), litert_benchmark_median(tflite, threads)
        _row(f"LiteRT vs litert-benchmark, {threads} thread(s)", mine, theirs)
    with open_runtime(onnx_model) as runtime:
        feeds, _ = bench_inputs(runtime.io_spec, None, "random")
    for threads in (1, 2):
        mine, theirs = ours(onnx_model, threads), raw_ort_median(onnx_model, feeds, threads)
        _row(f"ONNX Runtime vs raw session.run, {threads} thread(s)", mine, theirs)

    trivial = trivial_onnx(args.work / "trivial.onnx")
    mine = ours(trivial, 1)
    raw = raw_ort_median(trivial, {"x": np.ones((1, 4), np.float32)}, 1)
    noop = LatencyStats.from_samples(time_inference(lambda: None, BenchOptions(warmup=100, runs=10000,
                                                                               min_seconds=0)).samples).p50
    print(f"\nharness overhead per call (target ≤ 10 µs): trivial ONNX model edgekit p50 {mine * 1e6:.2f} µs − "
          f"raw loop {raw * 1e6:.2f} µs = {(mine - raw) * 1e6:+.2f} µs; timing a no-op: {noop * 1e6:.2f} µs")
    return 0


def _row(name: str, mine: float, theirs: float) -> None:
    ratio = mine / theirs
    verdict = "ok" if 0.95 <= ratio <= 1.05 else "MISSES"
    print(f"{name:<46} {mine * 1e3:>10.3f} {theirs * 1e3:>10.3f} {ratio:>6.3f}  {verdict}")


if __name__ == "__main__":
    sys.exit(main())
