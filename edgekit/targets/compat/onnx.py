"""ONNX targets: ONNX Runtime's NNAPI and CoreML execution providers (ONNX Runtime's own mobile usability
checker: its supported-op lists and partitioning estimate, static) and the ONNX Runtime releases that load
the model's IR and opsets (ORT's compatibility table, and a load in the installed ONNX Runtime)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgekit.toolkit.contract.compat import CompatTarget, Evidence, OpCompat, Support, TargetCompat
from edgekit.toolkit.contract.errors import InvalidInputError, first_line

# ONNX Runtime's published compatibility table (docs/reference/compatibility.md, its newest row 1.20): the newest
# ai.onnx opset, ai.onnx.ml opset and IR version each release loads.
ORT_RELEASES = (("1.0", 11, 2, 6), ("1.3", 12, 2, 7), ("1.6", 13, 2, 7), ("1.8", 14, 2, 7), ("1.9", 15, 2, 8),
                ("1.11", 16, 2, 8), ("1.12", 17, 3, 8), ("1.14", 18, 3, 8), ("1.15", 19, 3, 8), ("1.16", 19, 3, 9),
                ("1.17", 20, 4, 9), ("1.18", 21, 4, 10))


def _usability_checker() -> Any:
    """ONNX Runtime's ``tools.mobile_helpers.usability_checker``, without the ``onnxruntime.tools`` package's
    ``__init__``: that imports torch whenever torch is installed (for an export helper this check never calls),
    3.5 s of a 2 s check. The package is registered bare, as Python would before running its ``__init__``."""
    import importlib
    import importlib.util
    import sys

    if "onnxruntime.tools" not in sys.modules:
        import onnxruntime

        spec = importlib.util.spec_from_file_location(
            "onnxruntime.tools", Path(onnxruntime.__file__).parent / "tools" / "__init__.py",
            submodule_search_locations=[str(Path(onnxruntime.__file__).parent / "tools")])
        assert spec is not None
        sys.modules["onnxruntime.tools"] = importlib.util.module_from_spec(spec)
    return importlib.import_module("onnxruntime.tools.mobile_helpers.usability_checker")


def _load(path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # a truncated or foreign file: protobuf fails in many ways
        raise InvalidInputError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})",
                                hint="pass a .onnx file (external data beside it)") from None


def _refuse_if_malformed(path: Path, model: Any) -> None:
    """InvalidInputError when ONNX's own checker refuses the graph (a node input nothing produces, a cycle, a value
    produced twice); a graph it accepts returns."""
    import onnx

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        problem = " ".join(str(exc).split())  # the checker names the node on the lines after its first
        raise InvalidInputError(f"{path}: not a valid ONNX graph ({problem[:300]})",
                                hint="re-export the model; onnx.checker.check_model names the problem") from None
    except Exception:  # a model the checker cannot take whole (over 2 GB): no verdict either way
        return


def _versions(model: Any) -> tuple[int, dict[str, int]]:
    return int(model.ir_version), {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}


def _dynamic_inputs(model: Any) -> list[str]:
    out = []
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else ()
        if any(not d.HasField("dim_value") for d in dims):
            shown = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
            out.append(f"{value.name} {shown}")
    return out


def _ep(path: Path, target: CompatTarget, ep: str, partitions, fixed: bool, max_rank: int | None) -> TargetCompat:
    from onnx import shape_inference

    uc = _usability_checker()
    model = _load(path)
    try:
        model = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # the checker then works without value_info (and counts shapes it cannot see as dynamic)
        pass
    try:
        info = partitions(model, fixed)
    except Exception as exc:  # the checker raises ValueError on graphs it cannot walk, malformed or not
        _refuse_if_malformed(path, model)
        row = OpCompat(None, "model", Support.UNKNOWN, f"ONNX Runtime's usability checker cannot check it: "
                       f"{first_line(exc)}", Evidence.STATIC_RULE)
        return TargetCompat(target.name, target.description, Evidence.STATIC_RULE, (row,),
                            {"checker": f"onnxruntime {_ort_version()} tools.mobile_helpers.usability_checker"})
    checker = info.supported_ops_checker
    grouped = {id(node) for group in info.supported_groups for node in group}
    values = {v.name: v for v in (*model.graph.input, *model.graph.output, *model.graph.value_info)}
    constants = {i.name for i in model.graph.initializer}
    ops = []
    for index, node in enumerate(model.graph.node):
        label = node.op_type if not node.domain or node.domain == "ai.onnx" else f"{node.domain}:{node.op_type}"
        if id(node) in grouped:
            ops.append(OpCompat(index, label, Support.SUPPORTED, f"in one of the {ep} partitions", Evidence.STATIC_RULE,
                                node.name))
            continue
        if not checker.is_op_supported(node):
            reason = f"{label} is not in ONNX Runtime's {ep} supported-op list"
        elif fixed and not all(i in constants or (i in values and uc.is_fixed_size_tensor(values[i]))
                               for i in node.input if i):
            reason = f"an input's shape is not fixed; the {ep} EP needs fixed sizes"
        elif max_rank is not None and any(
                len(values[i].type.tensor_type.shape.dim) > max_rank
                for i in node.input if i in values and values[i].type.HasField("tensor_type")):
            reason = f"an input has rank > {max_rank}, more than the {ep} EP takes"
        else:
            reason = f"left out of every {ep} partition by ONNX Runtime's partitioner"
        ops.append(OpCompat(index, label, Support.UNSUPPORTED, reason, Evidence.STATIC_RULE, node.name))
    caveats = checker.get_caveats()
    notes = [f"ONNX Runtime's caveat for {c}" for c in caveats]
    if info.num_subgraphs:
        notes.append(f"{info.num_nodes_in_subgraphs} nodes inside {info.num_subgraphs} control-flow subgraphs are "
                     "counted in the partitions, not listed")
    dynamic = _dynamic_inputs(model)
    if dynamic:
        notes.append(f"dynamic input shapes ({'; '.join(dynamic)}): " + (
            f"the {ep} EP needs fixed sizes, so every node they reach is left to the CPU; re-export the model "
            "with a fixed batch" if fixed else
            f"the {ep} EP takes them only with flexible-shape support enabled in the app's session options"))
    facts = {"nodes": info.num_nodes, "supported_nodes": info.num_supported_nodes, "partitions": info.num_partitions,
             "unsupported_ops": sorted(info.unsupported_ops),
             "suitability": info.suitability().name if info.num_nodes else "NO",
             "checker": f"onnxruntime {_ort_version()} tools.mobile_helpers.usability_checker",
             "require_fixed_input_sizes": fixed}
    return TargetCompat(target.name, target.description, Evidence.STATIC_RULE, tuple(ops), facts,
                        (*notes, "op-type rules and partitioning, not a run on a device: per-op limits in the caveats "
                                 "are not checked"))


def nnapi(path: Path, target: CompatTarget) -> TargetCompat:
    return _ep(path, target, "NNAPI", _usability_checker().check_nnapi_partitions, fixed=True, max_rank=None)


def coreml(path: Path, target: CompatTarget) -> TargetCompat:
    def partitions(model, fixed):
        return _usability_checker().check_coreml_partitions(model, fixed, "coreml_supported_mlprogram_ops.md")

    return _ep(path, target, "CoreML", partitions, fixed=False, max_rank=5)


def oldest_release(ir: int, opsets: dict[str, int]) -> str | None:
    """The oldest ONNX Runtime release in ORT's table that loads ``ir`` and ``opsets``; None when the model is newer
    than the table's newest row (or uses a domain the table does not cover)."""
    for release, onnx_opset, ml_opset, max_ir in ORT_RELEASES:
        if ir <= max_ir and opsets.get("ai.onnx", 0) <= onnx_opset and opsets.get("ai.onnx.ml", 0) <= ml_opset:
            return release
    return None


def runtime(path: Path, target: CompatTarget) -> TargetCompat:
    import onnxruntime as ort

    model = _load(path)
    ir, imported = _versions(model)
    # ONNX Runtime validates every imported opset of ONNX's own domains, used or not (ONNX Runtime's quantizer
    # imports ai.onnx.ml 5 into a model without an ML node), so the table reads the imports. Other domains
    # (com.microsoft, …) are ONNX Runtime's own: the table says nothing of them, which matters only where a
    # node uses one.
    used = {n.domain or "ai.onnx" for n in model.graph.node} | \
        {n.domain or "ai.onnx" for f in model.functions for n in f.node}
    table_domains = {"ai.onnx", "ai.onnx.ml"}
    shown = {d: v for d, v in imported.items() if d in table_domains or d in used}
    installed = _ort_version()
    described = f"IR {ir}, " + ", ".join(f"{d} opset {v}" for d, v in sorted(shown.items()))
    oldest = oldest_release(ir, imported)
    outside = sorted(used - table_domains)
    table = f"oldest ONNX Runtime that loads it: {oldest} (ORT's compatibility table)" if oldest else \
        "it is newer than ORT's compatibility table reaches (1.20: IR 10, opset 21, ML opset 4)"
    if outside:
        table += f"; nodes in {', '.join(outside)} need that domain's kernels too (not in the table)"
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        row = OpCompat(None, "model", Support.SUPPORTED,
                       f"{described}: loads in onnxruntime {installed} here; {table}", Evidence.RUNTIME_CHECK)
    except Exception as exc:  # ORT raises several pybind error types; its message is the reason
        row = OpCompat(None, "model", Support.UNSUPPORTED,
                       f"{described}: onnxruntime {installed} here refuses it: {ort_refusal(exc)}; {table}",
                       Evidence.RUNTIME_CHECK)
    return TargetCompat(target.name, target.description, Evidence.RUNTIME_CHECK, (row,),
                        {"ir_version": ir, "opsets": imported, "installed": f"onnxruntime {installed}",
                         "oldest_release": oldest})


def ort_refusal(exc: BaseException) -> str:
    """ONNX Runtime's load error without its status prefix, source location and C++ signature; its opset
    refusal in one clause."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"^Load model from .*? failed:", "", text)
    text = re.sub(r"^\S+\.(?:h|cc|cpp):\d+ .*?\) ", "", text)
    newer = re.search(r"Opset (\d+) is under development.*?Current official support for domain (\S+) is till "
                      r"opset (\d+)", text)
    if newer:
        return f"{newer[2]} opset {newer[1]} is newer than it supports (up to opset {newer[3]})"
    return text.rstrip(".")


def _ort_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onnxruntime")
    except PackageNotFoundError:
        return "?"
