"""Float, full int8 and accuracy-budgeted int8, side by side: size, p50 and parity, per route, in one run.

For the digits CNN and the MobileNetV2-style model at 224² (both trained briefly by edgekit, so their
activations are a real model's), converted from the torch source to TFLite, ONNX and ExecuTorch:

- float, full ``--quantize int8``, and int8 inside ``--min-cosine C`` (default 0.995: tighter than the int8
  profile's 0.99, so the budget has something to choose; at 0.999 the 224² TFLite search ran past 20 minutes on
  2 cores), with the layers it kept float;
- for TFLite, the int8 model of each quantization path edgekit drives: TFLiteConverter's MLIR quantizer (from the
  Keras twin of the model), ai-edge-quantizer (from the torch source through litert-torch) and PT2E lowered by
  litert-torch (``--quantizer pt2e``; integer I/O only), float and integer I/O, with how much of each graph XNNPACK
  takes.

p50 is single-batch, one thread, the models of a route timed in interleaved blocks within a process and the
whole measurement repeated in ``--trials`` fresh processes (the median printed, the range beside it): on this VM
one process's ratio is an anecdote.

    python benchmarks/quant_budget.py [--work DIR] [--size 224] [--min-cosine 0.995] [--trials 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _models import code_fingerprint, converted, mobilenet
from _timing import RESULT, alternating, fresh_trials, prepared

ROUTES = ("tflite", "onnx", "executorch")


def tflite_paths(keras_source: Path, torch_source: Path) -> list[tuple[str, Path, str, str | None]]:
    """Each TFLite int8 path of the stack: (label, source, --quantize, --quantizer)."""
    return [("TFLiteConverter int8 (Keras)", keras_source, "int8", None),
            ("TFLiteConverter int8-io (Keras)", keras_source, "int8-io", None),
            ("ai-edge-quantizer int8 (torch)", torch_source, "int8", None),
            ("ai-edge-quantizer int8-io (torch)", torch_source, "int8-io", "ai-edge-quantizer"),
            ("PT2E int8-io (torch, litert-torch)", torch_source, "int8-io", "pt2e")]


def digits_cnn(work: Path, framework: str) -> Path:
    """The digits CNN of `edgekit train` (default architecture), trained once into ``work``."""
    from edgekit.models import Arch, Framework
    from edgekit.toolkit.stdio import framework_output_to_stderr
    from edgekit.training import TrainOptions, train

    path = work / ("digits-cnn.pt2" if framework == "torch" else "digits-cnn.keras")
    stamp = path.with_name(path.name + ".stamp")
    fingerprint = code_fingerprint(("training", "models"), "cnn")
    if not (path.exists() and stamp.is_file() and stamp.read_text() == fingerprint):
        print(f"training the digits CNN ({framework}) …", file=sys.stderr)
        with framework_output_to_stderr():
            train(TrainOptions(Framework(framework), Arch.CNN), path, force=True)
        stamp.write_text(fingerprint)
    return path


def budgeted(source: Path, target: str, min_cosine: float) -> tuple[Path, dict]:
    """int8 inside the cosine budget, judged on the model's own test split; what it kept and how it searched."""
    from edgekit.budget import Budget, budgeted_convert
    from edgekit.converters.base import ConvertOptions
    from edgekit.toolkit.contract.formats import Format
    from edgekit.toolkit.contract.options import QuantMode
    from edgekit.toolkit.stdio import framework_output_to_stderr

    out = source.with_name(f"{source.stem}.budget-{min_cosine}.{Format(target).spec.suffix.lstrip('.')}")
    print(f"converting {source.name} → {target} (int8, cosine ≥ {min_cosine}) …", file=sys.stderr)
    start = time.perf_counter()
    with framework_output_to_stderr():
        found = budgeted_convert(source, Format(target), ConvertOptions(quantize=QuantMode.INT8),
                                 Budget(min_cosine=min_cosine), output=out, force=True)
    return out, {"kept": list(found.kept), "met": found.met, "conversions": len(found.trials) + 1,
                 "seconds": time.perf_counter() - start}


def parity_cosine(reference: Path, candidate: Path) -> float:
    from edgekit.toolkit.stdio import framework_output_to_stderr
    from edgekit.validators.parity import validate

    with framework_output_to_stderr():
        report = validate(reference, candidate)
    return min(o.metrics.cosine for o in report.outputs if o.metrics is not None)


def trial(groups: dict[str, list[str]], rounds: int, runs_per_block: int) -> dict:
    """One process: per group, each model's p50 (interleaved blocks, one thread) and its delegation."""
    from edgekit.targets.bench import BenchOptions, LatencyStats, time_inference

    block = BenchOptions(warmup=5, runs=runs_per_block, min_seconds=0, threads=1)
    result = {}
    for name, paths in groups.items():
        runtimes, calls, _ = zip(*(prepared(Path(p), 1) for p in paths), strict=True)
        blocks = alternating([lambda call=call: time_inference(call, block).samples for call in calls], rounds)
        result[name] = {"p50": [LatencyStats.from_samples(np.concatenate(b)).p50 for b in blocks],
                        "delegation": [dict(rt.describe().delegation) for rt in runtimes]}
        for runtime in runtimes:
            runtime.close()
    return result


def cpu() -> str:
    """The host's CPU model and the int8 dot-product extensions it has (int8 kernels are slower than fp32 without)."""
    import platform

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    dot = [f for f in flags if "vnni" in f or f.startswith("amx")]
    return f"{model}, {', '.join(dot) if dot else 'no VNNI/AMX'}"


def delegated(delegation: dict) -> str:
    if "delegated_operators" in delegation:
        return f"XNNPACK {delegation['delegated_operators']}/{delegation['operators']} ops"
    if "nodes_per_provider" in delegation:
        return ", ".join(f"{k.removesuffix('ExecutionProvider')} {v}"
                         for k, v in delegation["nodes_per_provider"].items())
    if "delegate_calls" in delegation:
        return (f"{delegation['delegate_calls']} XNNPACK call(s), "
                f"{delegation.get('portable_kernel_calls', 0)} portable")
    return "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgekit-bench-models")
    parser.add_argument("--size", type=int, default=224, help="MobileNetV2 input side")
    parser.add_argument("--min-cosine", type=float, default=0.995)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs-per-block", type=int, default=20)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(RESULT + json.dumps(trial(json.loads(args.worker), args.rounds, args.runs_per_block)))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)

    models = {"digits CNN": (digits_cnn(args.work, "torch"), digits_cnn(args.work, "keras")),
              f"MobileNetV2 {args.size}²": (mobilenet(args.work, "torch", args.size),
                                            mobilenet(args.work, "keras", args.size))}
    groups: dict[str, list[str]] = {}
    facts: dict[str, list[dict]] = {}
    for model, (torch_source, keras_source) in models.items():
        for route in ROUTES:
            plain, full = converted(torch_source, route), converted(torch_source, route, "int8")
            chosen, search = budgeted(torch_source, route, args.min_cosine)
            key = f"{model} · {route}"
            groups[key] = [str(plain), str(full), str(chosen)]
            facts[key] = [{"label": "float"}, {"label": "int8"},
                          {"label": f"int8, cosine ≥ {args.min_cosine}", **search}]
        paths = [converted(torch_source, "tflite"), *(converted(source, "tflite", mode, tool)
                                                      for _, source, mode, tool in tflite_paths(keras_source,
                                                                                                torch_source))]
        key = f"{model} · TFLite int8 paths"
        groups[key] = [str(p) for p in paths]
        facts[key] = [{"label": "float (torch)", "reference": str(torch_source)},
                      *({"label": label, "reference": str(source)}
                        for label, source, _, _ in tflite_paths(keras_source, torch_source))]
        for key in (f"{model} · {route}" for route in ROUTES):
            for fact, path in zip(facts[key], groups[key], strict=True):
                fact["cosine"] = parity_cosine(torch_source, Path(path))
        for fact, path in zip(facts[f"{model} · TFLite int8 paths"], paths, strict=True):
            fact["cosine"] = parity_cosine(Path(fact["reference"]), path)

    command = [sys.executable, __file__, "--worker", json.dumps(groups), "--rounds", str(args.rounds),
               "--runs-per-block", str(args.runs_per_block)]
    trials = fresh_trials(command, args.trials)

    print(f"single batch, 1 thread; {args.trials} processes × {args.rounds} interleaved rounds × "
          f"{args.runs_per_block} runs; p50 = median over processes (range beside it); cosine: parity against the "
          f"source on its own test split; CPU: {cpu()}")
    for key, paths in groups.items():
        print(f"\n{key}")
        print(f"  {'model':<36} {'size':>9} {'p50 ms':>8} {'range':>13} {'vs first':>8} {'cosine':>9}  "
              f"{'delegation':<24} kept float")
        first = None
        for index, (path, fact) in enumerate(zip(paths, facts[key], strict=True)):
            p50s = [t[key]["p50"][index] for t in trials]
            p50 = statistics.median(p50s)
            first = first or p50
            kept = ", ".join(fact.get("kept", [])) or ("nothing" if "kept" in fact else "")
            if "kept" in fact:
                kept += f" ({fact['conversions']} conversions, {fact['seconds']:.0f} s" + (
                    ")" if fact["met"] else ", NOT met)")
            print(f"  {fact['label']:<36} {Path(path).stat().st_size / 1024:>7.1f}KB {p50 * 1e3:>8.3f} "
                  f"{min(p50s) * 1e3:>6.3f}–{max(p50s) * 1e3:<6.3f} {first / p50:>7.2f}× {fact['cosine']:>9.6f}  "
                  f"{delegated(trials[0][key]['delegation'][index]):<24} {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
