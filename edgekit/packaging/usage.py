"""USAGE.md: what the model expects and a Kotlin starting point for its runtime on Android.

Tensor names, versions and file names come from the model and model.json, which an attacker may have
written: every one enters Kotlin only as an escaped string literal (``kotlin_string``; a ``$`` would start a
string template, which runs code), Markdown only as a code span nothing in it can close (``code_span``),
so no name can add code to the snippet or break the page around it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from edgekit.toolkit.contract.formats import Format
from edgekit.toolkit.contract.iospec import IOSpec, TensorSpec

# Kotlin's escapes; any other character that is not printable (controls, U+2028/U+2029, bidi overrides,
# lone surrogates) is written as \uXXXX.
_KOTLIN_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")  # shown as is in a heading
ZIP_READING = ("Read the bundle through its central directory (`java.util.zip.ZipFile`, or another zip library "
               "that reads the directory), not by streaming it with `java.util.zip.ZipInputStream`: "
               "`edgekit package --verify` checks the members the directory lists, a streaming reader returns "
               "whatever local header comes first.")


def kotlin_string(text: str) -> str:
    """``text`` as a Kotlin string literal (quotes included) that means exactly ``text``: backslash, quote
    and ``$`` escaped, every character that is not printable written as an escape, so the literal holds
    no line break and no string template."""
    return '"' + "".join(_KOTLIN_ESCAPES.get(c) or (c if c.isprintable() else _unicode_escape(c)) for c in text) + '"'


def _unicode_escape(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:  # \u takes four hex digits: a UTF-16 surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
    return f"\\u{code:04X}"


def code_span(text: str) -> str:
    """A name as a Markdown code span it cannot close or leave: as is when it is printable and holds no
    ``\\`` or ``"``, else as its (escaped, one-line) string literal."""
    plain = text and text.isprintable() and not set(text) & {"\\", '"'}
    return _span(text if plain else kotlin_string(text))


def _span(line: str) -> str:
    """A printable one-line ``line`` as a code span: fenced with more backticks than it holds in a row, and
    padded with a space where it starts or ends with a backtick or space (CommonMark strips one)."""
    fence = "`" * (max((len(run) for run in re.findall("`+", line)), default=0) + 1)
    pad = " " if line[:1] in ("`", " ") or line[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{line}{pad}{fence}"


def _word(text: Any) -> str:
    """A short value of model.json in running text: as is when it is a plain word, else a code span."""
    text = str(text)
    return text if _PLAIN_WORD.match(text) else code_span(text)


def _code_block(language: str, lines: list[str]) -> list[str]:
    """A fenced block no line of which can close it: the fence is longer than any backtick run inside."""
    longest = max((len(run) for line in lines for run in re.findall("`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, *lines, fence]


def usage(manifest: dict[str, Any]) -> str:
    """USAGE.md: what the model expects and a snippet for its runtime on Android."""
    spec = IOSpec.from_dict(manifest["io"])
    fmt = Format(manifest["model"]["format"])
    model_file = manifest["model"]["file"]
    lines = [f"# {_word(manifest['name'])} ({fmt.value}, {_word(manifest['model']['precision'])})", "",
             ZIP_READING, "", "Inputs (batch of one):", ""]
    for ts in spec.inputs:
        layout = f" {ts.layout.value}" if ts.layout.value else ""
        lines.append(f"- {code_span(ts.name)}: {_tensor_text(ts)}{layout}{_quant_text(ts)}")
    lines += ["", "Outputs:", ""]
    for ts in spec.outputs:
        lines.append(f"- {code_span(ts.name)}: {_tensor_text(ts)}{_quant_text(ts)}")
    prep = manifest.get("preprocessing")
    if prep:
        # ensure_ascii: one printable line, every control character escaped
        lines += ["", f"Preprocessing: {_span(json.dumps(prep, ensure_ascii=True))} — apply it to raw pixels "
                  "before the model."]
    lines += ["", "Smoke test on the device: feed `golden/input_0.bin` (little-endian, "
              f"{int(manifest['goldens']['samples'])} samples back to back) and compare with `golden/output_0.bin` "
              f"within the tolerance in model.json. `edgekit package --verify` does the same here.", ""]
    versions = manifest.get("provenance", {}).get("packaged_with", {})
    lines += _snippet(fmt, model_file, spec, versions)
    return "\n".join(lines) + "\n"


def _tensor_text(ts: TensorSpec) -> str:
    shape = "[" + ", ".join(str(d) if isinstance(d, int) else kotlin_string(d) for d in ts.shape or []) + "]"
    symbolic = any(not isinstance(d, int) for d in ts.shape or [])
    return f"{_word(ts.dtype)} {_span(shape) if symbolic else shape}"


def _quant_text(ts: TensorSpec) -> str:
    if not ts.quant:
        return ""
    return f", quantized: real = (q − {ts.quant.zero_point[0]}) × {ts.quant.scale[0]:.6g}"


def _kotlin_array(ts: TensorSpec) -> tuple[str, str]:
    kind = {"float32": ("FloatArray", "4"), "int8": ("ByteArray", "1"), "uint8": ("ByteArray", "1"),
            "int32": ("IntArray", "4"), "int64": ("LongArray", "8")}
    return kind.get(ts.dtype, ("FloatArray", "4"))


def _comment(text: Any) -> str:
    """A value in a ``//`` comment: as is when printable (nothing printable ends the line), else its literal."""
    text = str(text)
    return text if text.isprintable() else kotlin_string(text)


def _snippet(fmt: Format, model_file: str, spec: IOSpec, versions: dict[str, str]) -> list[str]:
    """A Kotlin starting point; the runtime version is the one that ran the goldens here."""
    ts_in = spec.inputs[0] if spec.inputs else None
    ts_out = spec.outputs[0] if spec.outputs else None
    in_shape = list(ts_in.concrete_shape()) if ts_in and ts_in.shape else [1]
    out_shape = list(ts_out.concrete_shape()) if ts_out and ts_out.shape else [1]
    counts = int(np.prod(in_shape)), int(np.prod(out_shape))
    if fmt is Format.TFLITE:
        title, code = "LiteRT `Interpreter`", _tflite(model_file, ts_in, ts_out, in_shape, counts, versions)
    elif fmt is Format.EXECUTORCH:
        title, code = "ExecuTorch `Module`", _executorch(model_file, ts_in, in_shape, counts, versions)
    elif fmt is Format.ONNX:
        title, code = "ONNX Runtime", _onnx(model_file, ts_in, in_shape, counts, versions)
    else:
        raise AssertionError(f"no snippet for {fmt}")  # packageable guards this
    return [f"## Android ({title}, Kotlin)", "", *_code_block("kotlin", code)]


def _tflite(model_file: str, ts_in: TensorSpec | None, ts_out: TensorSpec | None, in_shape: list[int],
            counts: tuple[int, int], versions: dict[str, str]) -> list[str]:
    array, width = _kotlin_array(ts_in) if ts_in else ("FloatArray", "4")
    artifact = kotlin_string(f"com.google.ai.edge.litert:litert:{versions.get('ai-edge-litert', '2.3.0')}")
    return [
        f"// build.gradle.kts: implementation({artifact})",
        "import org.tensorflow.lite.Interpreter",
        "import java.nio.ByteBuffer",
        "import java.nio.ByteOrder",
        "",
        f"val model = context.assets.openFd({kotlin_string(model_file)}).use {{ fd ->",
        "    java.io.FileInputStream(fd.fileDescriptor).channel.map(",
        "        java.nio.channels.FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)",
        "}",
        "val interpreter = Interpreter(model, Interpreter.Options().setNumThreads(2))",
        f"// input {kotlin_string(ts_in.name) if ts_in else ''}: {in_shape} {_comment(ts_in.dtype) if ts_in else ''}, "
        f"{counts[0]} values ({array})",
        f"val input = ByteBuffer.allocateDirect({counts[0]} * {width}).order(ByteOrder.nativeOrder())",
        "// … put the preprocessed values (see Preprocessing) into `input` …",
        f"val output = ByteBuffer.allocateDirect({counts[1]} * {_kotlin_array(ts_out)[1] if ts_out else '4'})"
        ".order(ByteOrder.nativeOrder())",
        "interpreter.run(input, output)",
    ]


def _executorch(model_file: str, ts_in: TensorSpec | None, in_shape: list[int], counts: tuple[int, int],
                versions: dict[str, str]) -> list[str]:
    artifact = kotlin_string(f"org.pytorch:executorch-android:{versions.get('executorch', 'VERSION')}")
    return [
        "// build.gradle.kts: the ExecuTorch AAR of the version that wrote this file "
        f"({_comment(versions.get('executorch', 'unknown'))}):",
        f"// implementation({artifact})",
        "import org.pytorch.executorch.EValue",
        "import org.pytorch.executorch.Module",
        "import org.pytorch.executorch.Tensor",
        "",
        f"val module = Module.load(File(context.filesDir, {kotlin_string(model_file)}).absolutePath)"
        "  // copy it out of assets",
        f"val pixels = FloatArray({counts[0]})  // preprocessed, {ts_in.layout.value if ts_in else ''}",
        f"val input = Tensor.fromBlob(pixels, longArrayOf({_long_array(in_shape)}))",
        f"val scores = module.forward(EValue.from(input))[0].toTensor().dataAsFloatArray  // {counts[1]} values",
    ]


def _onnx(model_file: str, ts_in: TensorSpec | None, in_shape: list[int], counts: tuple[int, int],
          versions: dict[str, str]) -> list[str]:
    artifact = kotlin_string(f"com.microsoft.onnxruntime:onnxruntime-android:{versions.get('onnxruntime', 'VERSION')}")
    return [
        f"// build.gradle.kts: implementation({artifact})",
        "import ai.onnxruntime.OnnxTensor",
        "import ai.onnxruntime.OrtEnvironment",
        "",
        "val env = OrtEnvironment.getEnvironment()",
        f"val session = env.createSession(context.assets.open({kotlin_string(model_file)}).readBytes())",
        f"val input = OnnxTensor.createTensor(env, java.nio.FloatBuffer.wrap(FloatArray({counts[0]})), "
        f"longArrayOf({_long_array(in_shape)}))",
        f"val result = session.run(mapOf({kotlin_string(ts_in.name if ts_in else 'input')} to input))",
    ]


def _long_array(shape: list[int]) -> str:
    return ", ".join(f"{int(d)}L" for d in shape)  # Kotlin longArrayOf
