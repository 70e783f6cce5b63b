"""What the loading policy costs before a framework loads a file: `policy.check_file` (sniffing excluded)
beside the framework's own load of the same file, interleaved in one process, on real architectures
built from code (no training, no download): a transformers BERT from a small config and a MobileNetV2
as .pt2 (torch.export) and TorchScript, Keras MobileNetV2 (.keras, weights=None) and the BERT as ONNX.

    python benchmarks/policy_overhead.py [--rounds 7] [--work DIR]

Prints, per file, the policy's and the load's median time with their ranges and the ratio policy ÷ load
(median of the per-round ratios, range). Target: the policy stays a small fraction of the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build(work: Path) -> dict[str, tuple[Path, Callable[[Path], object]]]:
    import keras
    import onnxruntime
    import torch
    from transformers import BertConfig, BertModel

    from edgekit.models import Arch
    from edgekit.models.torch_zoo import build as torch_build

    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                                intermediate_size=512, max_position_embeddings=128)).eval()
    ids = torch.randint(0, 1000, (2, 32))
    mobilenet = torch_build(Arch.MOBILENETV2, channels=3, size=(96, 96), classes=10, seed=0).eval()
    image = torch.zeros(1, 3, 96, 96)
    files = {}
    bert_pt2 = work / "bert.pt2"
    if not bert_pt2.exists():
        torch.export.save(torch.export.export(bert, (ids,), dynamic_shapes=({1: torch.export.Dim("seq", max=128)},)),
                          bert_pt2)
    files["BERT-4L .pt2"] = (bert_pt2, lambda p: torch.export.load(str(p)).module())
    mobilenet_pt2 = work / "mobilenetv2.pt2"
    if not mobilenet_pt2.exists():
        torch.export.save(torch.export.export(mobilenet, (image,)), mobilenet_pt2)
    files["MobileNetV2 .pt2"] = (mobilenet_pt2, lambda p: torch.export.load(str(p)).module())
    mobilenet_ts = work / "mobilenetv2.torchscript.pt"
    if not mobilenet_ts.exists():
        torch.jit.script(mobilenet).save(str(mobilenet_ts))
    files["MobileNetV2 TorchScript"] = (mobilenet_ts, lambda p: torch.jit.load(str(p)))
    keras_path = work / "mobilenetv2.keras"
    if not keras_path.exists():
        keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10).save(keras_path)
    files["Keras MobileNetV2 .keras"] = (keras_path, lambda p: keras.saving.load_model(str(p), compile=False))
    bert_onnx = work / "bert.onnx"
    if not bert_onnx.exists():
        torch.onnx.export(bert, (ids,), str(bert_onnx), dynamo=True, external_data=False)
    files["BERT-4L .onnx"] = (bert_onnx, lambda p: onnxruntime.InferenceSession(str(p)))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgekit-bench-policy")
    args = parser.parse_args()

    from edgekit.toolkit.contract.formats import sniff
    from edgekit.toolkit.safety import policy
    from edgekit.toolkit.stdio import framework_output_to_stderr

    with framework_output_to_stderr():
        files = build(args.work)
    print(f"{'file':<26} {'size':>9}  {'policy ms (range)':>22}  {'load ms (range)':>24}  policy ÷ load (range)")
    for label, (path, load) in files.items():
        sniffed = sniff(path)
        policy_times, load_times = [], []
        with framework_output_to_stderr():
            load(path)  # warm: first loads pay one-time initialisation
            for _ in range(args.rounds):
                start = time.perf_counter()
                policy.check_file(sniffed)
                policy_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                load(path)
                load_times.append(time.perf_counter() - start)
        ratios = [p / q for p, q in zip(policy_times, load_times, strict=True)]

        def cell(values: list[float]) -> str:
            return f"{statistics.median(values) * 1e3:8.2f} ({min(values) * 1e3:.2f}–{max(values) * 1e3:.2f})"

        print(f"{label:<26} {path.stat().st_size / 2**20:7.2f} MB  {cell(policy_times):>22}  {cell(load_times):>24}  "
              f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})")


if __name__ == "__main__":
    main()
