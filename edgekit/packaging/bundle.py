"""``edgekit package``: the bundle for one model (the model, model.json, goldens, labels, USAGE.md)."""

from __future__ import annotations

import io
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import __version__
from edgekit.packaging.layout import (
    BUNDLE_VERSION,
    FLOAT_ATOL,
    FLOAT_RTOL,
    GOLDEN_SAMPLES,
    INT_ATOL,
    MANIFEST,
    NAME,
    SIGNATURE_MEMBER,
    npz_key,
    packageable,
    sha256_hex,
)
from edgekit.packaging.signing import key_fingerprint, load_private_key, sign_manifest
from edgekit.packaging.usage import usage
from edgekit.packaging.zipcheck import file_layout_problem
from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.artifact import Artifact, read_sidecar
from edgekit.toolkit.contract.errors import (
    InvalidInputError,
    UsageError,
    option,
)
from edgekit.toolkit.contract.formats import Format, sniff
from edgekit.toolkit.contract.iospec import IOSpec, TensorSpec, example_feeds
from edgekit.toolkit.fsutil import atomic_path, check_writable_target
from edgekit.toolkit.sysinfo import package_versions


@dataclass(frozen=True)
class PackageResult:
    bundle: Path
    manifest: dict[str, Any]
    seconds: float
    signed_by: str | None = None  # the signing key's fingerprint (``key_fingerprint``)


def package(model: str | os.PathLike[str], output: str | os.PathLike[str], *, name: str | None = None,
            labels: str | os.PathLike[str] | None = None, bench_seconds: float = 0.5,
            force: bool = False, sign_key: str | os.PathLike[str] | None = None,
            data: str | os.PathLike[str] | None = None) -> PackageResult:
    """Write the bundle for ``model`` to ``output``; with ``sign_key`` (an Ed25519 private key, PEM PKCS8
    or OpenSSH, unencrypted) also ``signature.json``, its signature of model.json's bytes. ``data``: a .npz
    (one array per input name) the golden vectors are taken from (default: the model's own test split)."""
    start = time.perf_counter()
    model, output = Path(model), Path(output)
    sniffed = sniff(model)
    if sniffed.format not in packageable():
        supported = ", ".join(f.value for f in packageable())
        raise UsageError(f"{model}: {sniffed.format.value} models are not bundled for apps (supported: {supported})",
                         hint=f"convert first, e.g. edgekit convert {model} --to tflite")
    if output.suffix != ".zip":
        raise UsageError(f"-o {output}: a bundle is a .zip", hint=f"use -o {output.with_suffix('.zip')}")
    name = name or model.name.split(".")[0]
    if not NAME.match(name):
        raise UsageError(f"{option('name', name)}: use letters, digits, '_', '-' or '.' (at most 64)")
    check_writable_target(output, force=force)
    signer = load_private_key(sign_key) if sign_key is not None else None  # a bad key fails before any work
    sidecar = read_sidecar(model)
    label_list = _labels(labels) if labels is not None else list(sidecar.labels if sidecar else ())
    golden_in, golden_out, golden_source, spec = _goldens(model, sidecar, Path(data) if data is not None else None)
    if label_list and spec.outputs and spec.outputs[0].shape and spec.outputs[0].shape[-1] != len(label_list):
        raise InvalidInputError(f"{labels or model}: {len(label_list)} labels for {spec.outputs[0].shape[-1]} classes",
                                hint="give one label per output class")
    files: dict[str, bytes] = {packageable()[sniffed.format]: model.read_bytes()}
    files.update(_golden_files(spec, golden_in, golden_out))
    if label_list:
        files["labels.txt"] = ("\n".join(label_list) + "\n").encode()
    latency = _latency(model, bench_seconds) if bench_seconds > 0 else None
    manifest = _manifest(name, sniffed.format, spec, sidecar, label_list, (golden_source, len(golden_in)), latency,
                         files)
    files["USAGE.md"] = usage(manifest).encode()
    manifest["files"]["USAGE.md"] = sha256_hex(files["USAGE.md"])
    manifest_bytes = (jsonio.dumps(manifest) + "\n").encode()
    files = {MANIFEST: manifest_bytes, **files}
    if signer is not None:
        files[SIGNATURE_MEMBER] = sign_manifest(manifest_bytes, signer)
    with atomic_path(output, force=force) as staged:
        with zipfile.ZipFile(staged, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for member, data in files.items():
                info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))  # reproducible bytes
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                bundle.writestr(info, data)  # to a seekable file: sizes in the local header, no data descriptor
        problem = file_layout_problem(staged)  # what --verify requires of every bundle: it reads one way only
        if problem is not None:
            raise AssertionError(f"{output}: edgekit wrote a zip that readers may read differently: {problem}")
    return PackageResult(output, manifest, time.perf_counter() - start,
                         key_fingerprint(signer) if signer is not None else None)


def _labels(path: str | os.PathLike[str]) -> list[str]:
    from edgekit.toolkit.fsutil import MAX_LABELS_BYTES, read_regular_file

    path = Path(path)
    try:
        text = read_regular_file(path, what="labels file", limit=MAX_LABELS_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{option('labels', path)}: unreadable ({exc})",
                                hint="one label per line, UTF-8") from None
    if text.lstrip().startswith("["):
        try:
            values = jsonio.loads(text)
        except ValueError as exc:
            raise InvalidInputError(f"{option('labels', path)}: not a JSON list ({exc})",
                                    hint="one label per line") from None
        if not all(isinstance(v, str) for v in values):
            raise InvalidInputError(f"{option('labels', path)}: the JSON list must hold strings")
        return list(values)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _goldens(model: Path, sidecar: Artifact | None, data: Path | None
             ) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]], str, IOSpec]:
    """A few real samples (the model's own test split when it has one) and the model's outputs on them."""
    from edgekit.targets import open_runtime

    with open_runtime(model, io_hint=sidecar.io_spec if sidecar else None) as runtime:
        spec = runtime.io_spec
        feeds, source = _golden_inputs(spec, sidecar, data)
        outputs = []
        for feed in feeds:
            result = runtime.run(feed)
            outputs.append({n: np.asarray(result[n]) for n in spec.output_names})
    return feeds, outputs, source, spec


def _golden_inputs(spec: IOSpec, sidecar: Artifact | None, given: Path | None
                   ) -> tuple[list[dict[str, np.ndarray]], str]:
    from edgekit.targets.bench import to_model_input
    from edgekit.toolkit.data.datasets import INPUT_KEYS, model_inputs_from_npz
    from edgekit.toolkit.data.feeds import named_feeds, names_inputs, read_npz, source_names

    if given is not None:
        arrays, aliases = read_npz(given), source_names(sidecar)
        if names_inputs(arrays, spec, aliases, legacy_keys=INPUT_KEYS):
            found = named_feeds(given, spec, limit=GOLDEN_SAMPLES, arrays=arrays, aliases=aliases,
                                purpose="golden vectors")
            return list(found.feeds), found.source
    data = given or (sidecar.data_path if sidecar is not None else None)
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
        np.savez(buffer, **{npz_key(n): v for n, v in stacked.items()})
        files[f"golden/{kind}.npz"] = buffer.getvalue()
        for index, ts in enumerate(tensors):
            value = stacked[ts.name]
            files[f"golden/{kind[:-1]}_{index}.bin"] = value.astype(value.dtype.newbyteorder("<")).tobytes(order="C")
    return files


def _latency(model: Path, seconds: float) -> dict[str, Any] | None:
    from edgekit.targets.bench import BenchOptions, bench_one
    from edgekit.toolkit.sysinfo import cpu_info

    result = bench_one(model, BenchOptions(warmup=5, runs=20, min_seconds=seconds, threads=1))
    return {"p50_ms": result.stats.p50 * 1e3, "p90_ms": result.stats.p90 * 1e3, "threads": 1,
            "device": result.device, "runtime": result.runtime, "measured_on": cpu_info().model,
            "note": "measured on the packaging machine, not the phone: run the goldens on the device to time it"}


def _manifest(name: str, fmt: Format, spec: IOSpec, sidecar: Artifact | None, labels: list[str],
              goldens: tuple[str, int], latency: dict[str, Any] | None, files: dict[str, bytes]) -> dict[str, Any]:
    model_file = packageable()[fmt]
    parity = sidecar.extra.get("parity") if sidecar else None
    return {
        "edgekit_bundle": BUNDLE_VERSION,
        "name": name,
        "model": {"file": model_file, "format": fmt.value, "sha256": sha256_hex(files[model_file]),
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
        "files": {member: sha256_hex(data) for member, data in files.items()},
    }


def _golden_entry(ts: TensorSpec, index: int, kind: str) -> dict[str, Any]:
    return {"name": ts.name, "npz_key": npz_key(ts.name), "bin": f"golden/{kind}_{index}.bin",
            "shape_per_sample": list(ts.shape or []), "dtype": ts.dtype, "byte_order": "little",
            "layout": ts.layout.value}
