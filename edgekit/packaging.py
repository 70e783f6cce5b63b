"""``edgekit package``: a zip an app team can drop into a mobile project, and ``--verify`` to prove it.

The bundle holds the model, ``model.json`` (I/O contract with quantization parameters, preprocessing,
labels, sha256 of every file, versions, parity and latency summary), golden input/output vectors for
an on-device smoke test (``golden/*.npz`` and raw little-endian ``golden/*.bin``), ``labels.txt`` and
``USAGE.md`` with a snippet for the model's runtime on Android (LiteRT ``Interpreter`` or ExecuTorch
``Module``). ``--verify`` re-checks every sha256, then runs the goldens through the model again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import __version__
from edgekit.toolkit import jsonio
from edgekit.toolkit.artifact import Artifact, read_sidecar
from edgekit.toolkit.errors import EdgekitError, InvalidInputError, UsageError, first_line
from edgekit.toolkit.formats import Format, sniff
from edgekit.toolkit.fsutil import atomic_path, check_writable_target, scratch_directory
from edgekit.toolkit.iospec import IOSpec, TensorSpec, example_feeds
from edgekit.toolkit.sysinfo import package_versions

BUNDLE_VERSION = 1
# What mobile apps load. TorchScript is left out on purpose: PyTorch Mobile is deprecated for ExecuTorch,
# and its lite interpreter cannot load a plain TorchScript file anyway.
PACKAGEABLE = {Format.TFLITE: "model.tflite", Format.EXECUTORCH: "model.pte", Format.ONNX: "model.onnx"}
GOLDEN_SAMPLES = 4
# Re-running the goldens with the same runtime: floats to this tolerance, integers to one quantization step.
FLOAT_ATOL, FLOAT_RTOL, INT_ATOL = 1e-4, 1e-3, 1
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_MEMBER_BYTES = 2 << 30  # a bundle member larger than this is refused before it is read


@dataclass(frozen=True)
class PackageResult:
    bundle: Path
    manifest: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class VerifyResult:
    bundle: Path
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (name, passed, detail)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    def failures(self) -> list[str]:
        return [f"{name}: {detail}" for name, ok, detail in self.checks if not ok]


def package(model: str | os.PathLike[str], output: str | os.PathLike[str], *, name: str | None = None,
            labels: str | os.PathLike[str] | None = None, bench_seconds: float = 0.5,
            force: bool = False) -> PackageResult:
    start = time.perf_counter()
    model, output = Path(model), Path(output)
    sniffed = sniff(model)
    if sniffed.format not in PACKAGEABLE:
        supported = ", ".join(f.value for f in PACKAGEABLE)
        raise UsageError(f"{model}: {sniffed.format.value} models are not bundled for apps (supported: {supported})",
                         hint=f"convert first, e.g. edgekit convert {model} --to tflite")
    if output.suffix != ".zip":
        raise UsageError(f"-o {output}: a bundle is a .zip", hint=f"use -o {output.with_suffix('.zip')}")
    name = name or model.name.split(".")[0]
    if not NAME.match(name):
        raise UsageError(f"--name {name!r}: use letters, digits, '_', '-' or '.' (at most 64)")
    check_writable_target(output, force=force)
    sidecar = read_sidecar(model)
    label_list = _labels(labels) if labels is not None else list(sidecar.labels if sidecar else ())
    golden_in, golden_out, golden_source, spec = _goldens(model, sidecar)
    if label_list and spec.outputs and spec.outputs[0].shape and spec.outputs[0].shape[-1] != len(label_list):
        raise InvalidInputError(f"{labels or model}: {len(label_list)} labels for {spec.outputs[0].shape[-1]} classes",
                                hint="give one label per output class")
    files: dict[str, bytes] = {PACKAGEABLE[sniffed.format]: model.read_bytes()}
    files.update(_golden_files(spec, golden_in, golden_out))
    if label_list:
        files["labels.txt"] = ("\n".join(label_list) + "\n").encode()
    latency = _latency(model, bench_seconds) if bench_seconds > 0 else None
    manifest = _manifest(name, sniffed.format, spec, sidecar, label_list, (golden_source, len(golden_in)), latency,
                         files)
    files["USAGE.md"] = usage(manifest).encode()
    manifest["files"]["USAGE.md"] = _sha(files["USAGE.md"])
    files = {"model.json": (jsonio.dumps(manifest) + "\n").encode(), **files}
    with atomic_path(output, force=force) as staged:
        with zipfile.ZipFile(staged, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for member, data in files.items():
                info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))  # reproducible bytes
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                bundle.writestr(info, data)
    return PackageResult(output, manifest, time.perf_counter() - start)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _labels(path: str | os.PathLike[str]) -> list[str]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"--labels {path}: unreadable ({exc})", hint="one label per line, UTF-8") from None
    if text.lstrip().startswith("["):
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise InvalidInputError(f"--labels {path}: not a JSON list ({exc})", hint="one label per line") from None
        if not all(isinstance(v, str) for v in values):
            raise InvalidInputError(f"--labels {path}: the JSON list must hold strings")
        return list(values)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _goldens(model: Path, sidecar: Artifact | None) -> tuple[list[dict[str, np.ndarray]],
                                                            list[dict[str, np.ndarray]], str, IOSpec]:
    """A few real samples (the model's own test split when it has one) and the model's outputs on them."""
    from edgekit.targets import open_runtime

    with open_runtime(model, io_hint=sidecar.io_spec if sidecar else None) as runtime:
        spec = runtime.io_spec
        feeds, source = _golden_inputs(spec, sidecar)
        outputs = []
        for feed in feeds:
            result = runtime.run(feed)
            outputs.append({n: np.asarray(result[n]) for n in spec.output_names})
    return feeds, outputs, source, spec


def _golden_inputs(spec: IOSpec, sidecar: Artifact | None) -> tuple[list[dict[str, np.ndarray]], str]:
    from edgekit.benchmarking import to_model_input
    from edgekit.toolkit.datasets import model_inputs_from_npz

    data = sidecar.data_path if sidecar is not None else None
    if data is None or not data.is_file() or len(spec.inputs) != 1:
        return [example_feeds(spec, seed=i) for i in range(GOLDEN_SAMPLES)], "seeded random inputs"
    x, _labels, key = model_inputs_from_npz(data, GOLDEN_SAMPLES)
    ts = spec.inputs[0]
    feeds = [{ts.name: to_model_input(_layout_for(x[i: i + 1], ts), ts, data)} for i in range(len(x))]
    return feeds, f"{key}[:{len(x)}] of {data.name}"


def _layout_for(sample: np.ndarray, ts: TensorSpec) -> np.ndarray:
    """The data file holds the source's layout; a channels-last artifact (--nhwc) takes it transposed."""
    if ts.shape is None or ts.accepts(sample.shape) or sample.ndim != 4:
        return sample
    transposed = sample.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(transposed) if ts.accepts(transposed.shape) else sample


def _golden_files(spec: IOSpec, inputs: list[dict[str, np.ndarray]],
                  outputs: list[dict[str, np.ndarray]]) -> dict[str, bytes]:
    files = {}
    for kind, tensors, runs in (("inputs", spec.inputs, inputs), ("outputs", spec.outputs, outputs)):
        stacked = {ts.name: np.stack([run[ts.name] for run in runs]) for ts in tensors}
        buffer = io.BytesIO()
        np.savez(buffer, **{_safe(n): v for n, v in stacked.items()})
        files[f"golden/{kind}.npz"] = buffer.getvalue()
        for index, ts in enumerate(tensors):
            value = stacked[ts.name]
            files[f"golden/{kind[:-1]}_{index}.bin"] = value.astype(value.dtype.newbyteorder("<")).tobytes(order="C")
    return files


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _latency(model: Path, seconds: float) -> dict[str, Any] | None:
    from edgekit.benchmarking import bench_one
    from edgekit.targets.bench import BenchOptions
    from edgekit.toolkit.sysinfo import cpu_info

    result = bench_one(model, BenchOptions(warmup=5, runs=20, min_seconds=seconds, threads=1))
    return {"p50_ms": result.stats.p50 * 1e3, "p90_ms": result.stats.p90 * 1e3, "threads": 1,
            "device": result.device, "runtime": result.runtime, "measured_on": cpu_info().model,
            "note": "measured on the packaging machine, not the phone: run the goldens on the device to time it"}


def _manifest(name: str, fmt: Format, spec: IOSpec, sidecar: Artifact | None, labels: list[str],
              goldens: tuple[str, int], latency: dict[str, Any] | None, files: dict[str, bytes]) -> dict[str, Any]:
    model_file = PACKAGEABLE[fmt]
    parity = sidecar.extra.get("parity") if sidecar else None
    return {
        "edgekit_bundle": BUNDLE_VERSION,
        "name": name,
        "model": {"file": model_file, "format": fmt.value, "sha256": _sha(files[model_file]),
                  "size_bytes": len(files[model_file]),
                  "precision": (sidecar.options.get("quantize", "none") if sidecar else "unknown")},
        "io": spec.to_dict(),
        "preprocessing": sidecar.preprocessing.to_dict() if sidecar and sidecar.preprocessing else None,
        "labels": labels,
        "goldens": {
            "samples": goldens[1], "source": goldens[0],
            "inputs": [_golden_entry(ts, i, "input") for i, ts in enumerate(spec.inputs)],
            "outputs": [_golden_entry(ts, i, "output") for i, ts in enumerate(spec.outputs)],
            "tolerance": {"float_atol": FLOAT_ATOL, "float_rtol": FLOAT_RTOL, "integer_atol": INT_ATOL},
        },
        "parity": parity,
        "latency": latency,
        "provenance": {
            "route": list(sidecar.route) if sidecar else [],
            "source_sha256": sidecar.source_sha256 if sidecar else None,
            "options": sidecar.options if sidecar else {}, "versions": sidecar.versions if sidecar else {},
            "packaged_by": f"edgekit {__version__}",
            "packaged_with": {k: v for k, v in package_versions().items() if v},
        },
        "files": {member: _sha(data) for member, data in files.items()},
    }


def _golden_entry(ts: TensorSpec, index: int, kind: str) -> dict[str, Any]:
    return {"name": ts.name, "npz_key": _safe(ts.name), "bin": f"golden/{kind}_{index}.bin",
            "shape_per_sample": list(ts.shape or []), "dtype": ts.dtype, "byte_order": "little",
            "layout": ts.layout.value}


# -- verification ------------------------------------------------------------------------------------------


def verify(bundle: str | os.PathLike[str]) -> VerifyResult:
    """Every file against its sha256 in model.json, then the goldens re-run through the model."""
    bundle = Path(bundle)
    result = VerifyResult(bundle)
    members = _read_bundle(bundle)
    try:
        manifest = json.loads(members.pop("model.json"))
        version = manifest["edgekit_bundle"]
        recorded = dict(manifest["files"])
        model_entry = manifest["model"]
    except KeyError as exc:
        raise InvalidInputError(f"{bundle}: model.json lacks {exc}", hint="package it again with edgekit package") \
            from None
    except ValueError as exc:
        raise InvalidInputError(f"{bundle}: model.json is not JSON ({exc})") from None
    if version != BUNDLE_VERSION:
        raise InvalidInputError(f"{bundle}: bundle version {version!r}, this edgekit reads {BUNDLE_VERSION}")
    for member, digest in sorted(recorded.items()):
        if member not in members:
            result.checks.append((f"file {member}", False, "listed in model.json but missing from the bundle"))
        else:
            actual = _sha(members[member])
            result.checks.append((f"sha256 {member}", actual == digest,
                                  "matches model.json" if actual == digest else
                                  f"{actual[:16]}… ≠ {digest[:16]}… in model.json: the file was swapped or modified"))
    for extra in sorted(set(members) - set(recorded)):
        result.checks.append((f"file {extra}", False, "not listed in model.json (added after packaging)"))
    model_file = model_entry.get("file")
    if model_file in members and model_entry.get("sha256") != recorded.get(model_file):
        result.checks.append(("model sha256", False, "model.json's model.sha256 and files disagree"))
    if model_file in members and "golden/inputs.npz" in members and "golden/outputs.npz" in members:
        try:
            result.checks.extend(_rerun_goldens(manifest, members))
        except Exception as exc:  # a swapped model may not even take the golden inputs
            detail = exc.one_line() if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {first_line(exc)}"
            result.checks.append(("goldens", False, f"the model does not run on its goldens: {detail}"))
    return result


def _read_bundle(bundle: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(bundle) as archive:
            infos = archive.infolist()
            for info in infos:
                name = info.filename
                if name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in name:
                    raise InvalidInputError(f"{bundle}: member {name!r} points outside the bundle",
                                            hint="refusing to read it; re-package from the model")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise InvalidInputError(f"{bundle}: member {name!r} is a symbolic link", hint="re-package it")
                if info.file_size > MAX_MEMBER_BYTES:
                    raise InvalidInputError(f"{bundle}: member {name!r} claims {info.file_size} bytes")
            members = {info.filename: archive.read(info) for info in infos if not info.is_dir()}
    except FileNotFoundError:
        raise InvalidInputError(f"{bundle}: no such file", hint="give the .zip written by edgekit package") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise InvalidInputError(f"{bundle}: not a readable zip ({exc})", hint="package the model again") from None
    if "model.json" not in members:
        raise InvalidInputError(f"{bundle}: no model.json: not an edgekit bundle",
                                hint="package it with edgekit package")
    return members


def _rerun_goldens(manifest: dict[str, Any], members: dict[str, bytes]) -> list[tuple[str, bool, str]]:
    from edgekit.targets import open_runtime

    checks = []
    model_file = manifest["model"]["file"]
    spec = IOSpec.from_dict(manifest["io"])
    with scratch_directory("edgekit-verify-") as scratch:
        path = Path(scratch) / Path(model_file).name
        path.write_bytes(members[model_file])
        with np.load(io.BytesIO(members["golden/inputs.npz"]), allow_pickle=False) as archive:
            inputs = {ts.name: archive[_safe(ts.name)] for ts in spec.inputs}
        with np.load(io.BytesIO(members["golden/outputs.npz"]), allow_pickle=False) as archive:
            expected = {ts.name: archive[_safe(ts.name)] for ts in spec.outputs}
        samples = len(next(iter(inputs.values()))) if inputs else 0
        with open_runtime(path, io_hint=spec) as runtime:
            runs = [runtime.run({n: v[i] for n, v in inputs.items()}) for i in range(samples)]
    for ts in spec.outputs:
        got = np.stack([np.asarray(run[ts.name]) for run in runs]) if runs else np.empty((0,))
        want = expected[ts.name]
        if got.shape != want.shape:
            checks.append((f"golden {ts.name}", False, f"shape {list(got.shape)} ≠ golden {list(want.shape)}"))
            continue
        if np.dtype(want.dtype).kind in "iu":
            diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
            ok = bool((diff <= INT_ATOL).all())
            detail = f"max |Δ| {int(diff.max()) if diff.size else 0} step(s), allowed {INT_ATOL}"
        else:
            g, w = got.astype(np.float64), want.astype(np.float64)
            diff = np.abs(g - w)
            ok = bool(np.all(diff <= FLOAT_ATOL + FLOAT_RTOL * np.abs(w)))
            detail = f"max |Δ| {float(diff.max()) if diff.size else 0.0:.3g} (atol {FLOAT_ATOL}, rtol {FLOAT_RTOL})"
        checks.append((f"golden {ts.name} ({samples} samples)", ok, detail))
    return checks


# -- usage snippets ----------------------------------------------------------------------------------------


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
    raise AssertionError(f"no snippet for {fmt}")  # PACKAGEABLE guards this
