"""What `edgekit compat` costs per artifact, beside what making the artifact cost: the pipeline checks every
row's artifact on every target of its format, so this is its overhead per row.

Models are built from code (no training, no download): a transformers BERT from a small config (torch.export)
and a Keras MobileNetV2 (weights=None, 96², α 0.35), each converted by edgekit to every mobile format it
reaches. Then, in this one warm process (as in a pipeline worker, frameworks already imported), every target
of each artifact's format is checked in interleaved rounds.

    python benchmarks/compat_cost.py [--rounds 5] [--work DIR]

Prints per artifact and target the median check time with its range, and the artifact's conversion time
(one conversion, measured here) with the ratio: all targets of the format ÷ conversion.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def sources(work: Path) -> dict[str, Path]:
    import keras
    import torch
    from transformers import BertConfig, BertModel

    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                                intermediate_size=512, max_position_embeddings=128)).eval()

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids):
            return self.bert(input_ids=input_ids).last_hidden_state

    made = {"bert": work / "bert.pt2", "mobilenetv2": work / "mobilenetv2.keras"}
    if not made["bert"].exists():
        torch.export.save(torch.export.export(Hidden().eval(), (torch.randint(0, 1000, (1, 32)),)),
                          str(made["bert"]))
    if not made["mobilenetv2"].exists():
        keras.utils.set_random_seed(0)
        keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None,
                                       classes=10).save(made["mobilenetv2"])
    return made


def convert(source: Path, fmt: str, suffix: str) -> tuple[Path, float] | None:
    out = source.with_suffix(suffix)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "edgekit", "convert", str(source), "--to", fmt, "-o", str(out),
                             "--force", "--no-validate"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        print(f"  {source.name} → {fmt}: {result.stderr.strip().splitlines()[-1]}")
        return None
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgekit-compat-cost-"))

    from edgekit.toolkit.contract.compat import COMPAT_TARGETS, targets_for
    from edgekit.toolkit.contract.formats import Format

    artifacts = {}
    for name, source in sources(work).items():
        for fmt, suffix in ((Format.TFLITE, ".tflite"), (Format.ONNX, ".onnx"), (Format.EXECUTORCH, ".pte")):
            made = convert(source, fmt.value, suffix)
            if made is not None:
                artifacts[f"{name}{suffix}"] = (made[0], fmt, made[1])

    for path, fmt, _ in artifacts.values():  # first checks import each framework: not what a worker pays
        for target in targets_for(fmt):
            COMPAT_TARGETS[target].check(path)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for label, (path, fmt, _) in artifacts.items():
            for target in targets_for(fmt):
                start = time.perf_counter()
                COMPAT_TARGETS[target].check(path)
                times.setdefault((label, target), []).append(time.perf_counter() - start)

    print(f"{args.rounds} rounds, interleaved, in one warm process; conversion: one `edgekit convert --no-validate` "
          "(fresh process, imports included)")
    print(f"{'artifact':20} {'target':20} {'median':>9} {'range':>19}")
    for label, (_, fmt, convert_seconds) in artifacts.items():
        total = 0.0
        for target in targets_for(fmt):
            samples = times[(label, target)]
            median = statistics.median(samples)
            total += median
            low, high = min(samples) * 1e3, max(samples) * 1e3
            print(f"{label:20} {target:20} {median * 1e3:7.1f} ms  {low:7.1f}–{high:7.1f} ms")
        print(f"{label:20} {'all its targets':20} {total * 1e3:7.1f} ms  conversion {convert_seconds:6.1f} s  "
              f"ratio {total / convert_seconds:.4f}")


if __name__ == "__main__":
    main()
