"""USAGE.md: what the model expects and a Kotlin starting point for its runtime on Android."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, TensorSpec


def usage(manifest: dict[str, Any]) -> str:
    """USAGE.md: what the model expects and a snippet for its runtime on Android."""
    spec = IOSpec.from_dict(manifest["io"])
    fmt = Format(manifest["model"]["format"])
    model_file = manifest["model"]["file"]
    lines = [f"# {manifest['name']} ({fmt.value}, {manifest['model']['precision']})", "",
             "Inputs (batch of one):", ""]
    for ts in spec.inputs:
        quant = f", quantized: real = (q − {ts.quant.zero_point[0]}) × {ts.quant.scale[0]:.6g}" if ts.quant else ""
        lines.append(f"- `{ts.name}`: {ts.dtype} {list(ts.shape or [])} {ts.layout.value}{quant}")
    lines += ["", "Outputs:", ""]
    for ts in spec.outputs:
        quant = f", quantized: real = (q − {ts.quant.zero_point[0]}) × {ts.quant.scale[0]:.6g}" if ts.quant else ""
        lines.append(f"- `{ts.name}`: {ts.dtype} {list(ts.shape or [])}{quant}")
    prep = manifest.get("preprocessing")
    if prep:
        lines += ["", f"Preprocessing: `{json.dumps(prep)}` — apply it to raw pixels before the model."]
    lines += ["", "Smoke test on the device: feed `golden/input_0.bin` (little-endian, "
              f"{manifest['goldens']['samples']} samples back to back) and compare with `golden/output_0.bin` "
              f"within the tolerance in model.json. `edgekit package --verify` does the same here.", ""]
    versions = manifest.get("provenance", {}).get("packaged_with", {})
    lines += _snippet(fmt, model_file, spec, versions)
    return "\n".join(lines) + "\n"


def _kotlin_array(ts: TensorSpec) -> tuple[str, str]:
    kind = {"float32": ("FloatArray", "4"), "int8": ("ByteArray", "1"), "uint8": ("ByteArray", "1"),
            "int32": ("IntArray", "4"), "int64": ("LongArray", "8")}
    return kind.get(ts.dtype, ("FloatArray", "4"))


def _snippet(fmt: Format, model_file: str, spec: IOSpec, versions: dict[str, str]) -> list[str]:
    """A Kotlin starting point; the runtime version is the one that ran the goldens here."""
    ts_in = spec.inputs[0] if spec.inputs else None
    ts_out = spec.outputs[0] if spec.outputs else None
    in_shape = list(ts_in.concrete_shape()) if ts_in and ts_in.shape else [1]
    out_shape = list(ts_out.concrete_shape()) if ts_out and ts_out.shape else [1]
    in_count = int(np.prod(in_shape))
    out_count = int(np.prod(out_shape))
    shape = ", ".join(f"{d}L" for d in in_shape)  # Kotlin longArrayOf
    if fmt is Format.TFLITE:
        array, width = _kotlin_array(ts_in) if ts_in else ("FloatArray", "4")
        return [
            "## Android (LiteRT `Interpreter`, Kotlin)", "",
            "```kotlin",
            '// build.gradle.kts: implementation("com.google.ai.edge.litert:litert:'
            f'{versions.get("ai-edge-litert", "2.3.0")}")',
            "import org.tensorflow.lite.Interpreter",
            "import java.nio.ByteBuffer",
            "import java.nio.ByteOrder",
            "",
            f'val model = context.assets.openFd("{model_file}").use {{ fd ->',
            "    java.io.FileInputStream(fd.fileDescriptor).channel.map(",
            "        java.nio.channels.FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)",
            "}",
            "val interpreter = Interpreter(model, Interpreter.Options().setNumThreads(2))",
            f"// {ts_in.name if ts_in else 'input'}: {in_shape} {ts_in.dtype if ts_in else ''}, "
            f"{in_count} values ({array})",
            f"val input = ByteBuffer.allocateDirect({in_count} * {width}).order(ByteOrder.nativeOrder())",
            "// … put the preprocessed values (see Preprocessing) into `input` …",
            f"val output = ByteBuffer.allocateDirect({out_count} * {_kotlin_array(ts_out)[1] if ts_out else '4'})"
            ".order(ByteOrder.nativeOrder())",
            "interpreter.run(input, output)",
            "```",
        ]
    if fmt is Format.EXECUTORCH:
        return [
            "## Android (ExecuTorch `Module`, Kotlin)", "",
            "```kotlin",
            "// build.gradle.kts: the ExecuTorch AAR of the version that wrote this file "
            f"({versions.get('executorch', 'unknown')}):",
            f'// implementation("org.pytorch:executorch-android:{versions.get("executorch", "VERSION")}")',
            "import org.pytorch.executorch.EValue",
            "import org.pytorch.executorch.Module",
            "import org.pytorch.executorch.Tensor",
            "",
            f'val module = Module.load(File(context.filesDir, "{model_file}").absolutePath)  // copy it out of assets',
            f"val pixels = FloatArray({in_count})  // preprocessed, {ts_in.layout.value if ts_in else ''}",
            f"val input = Tensor.fromBlob(pixels, longArrayOf({shape}))",
            "val scores = module.forward(EValue.from(input))[0].toTensor().dataAsFloatArray"
            f"  // {out_count} values",
            "```",
        ]
    if fmt is Format.ONNX:
        return [
            "## Android (ONNX Runtime, Kotlin)", "",
            "```kotlin",
            '// build.gradle.kts: implementation("com.microsoft.onnxruntime:onnxruntime-android:'
            f'{versions.get("onnxruntime", "VERSION")}")',
            "import ai.onnxruntime.OnnxTensor",
            "import ai.onnxruntime.OrtEnvironment",
            "",
            "val env = OrtEnvironment.getEnvironment()",
            f'val session = env.createSession(context.assets.open("{model_file}").readBytes())',
            f"val input = OnnxTensor.createTensor(env, java.nio.FloatBuffer.wrap(FloatArray({in_count})), "
            f"longArrayOf({shape}))",
            f'val result = session.run(mapOf("{ts_in.name if ts_in else "input"}" to input))',
            "```",
        ]
    raise AssertionError(f"no snippet for {fmt}")  # packageable guards this
