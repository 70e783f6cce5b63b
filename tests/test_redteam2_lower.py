"""The red-team report's lower points: ONNX names that are nn.Module attributes, allocation bombs, a recipe's
calibration path outside its tree, FIFOs where a config, baseline or recipe goes, and onnxruntime's temp file in
the user's working directory."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import run_edgekit

from edgekit.toolkit.contract.errors import ExitCode, InvalidInputError, ResourceLimitError, UnsafeModelError

BIG = 1 << 40  # elements: 4 TiB of float32, over any machine's memory


def _model(nodes, initializers=(), inputs=(("x", (1, 4)),), opset=17):
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _const(name, values, dtype=np.int64):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


# -- (a) ONNX names that an nn.Module (or the importer) already uses -------------------------------------------

NAMES = ["forward", "training", "folded", "layers", "__init__", "_parameters", "__class__", "T_destination", "to",
         "eval", "", "a.b"]


def _named_model():
    """A chain of MatMul (a torch Linear, named after its node) and Mul by a constant (a parameter, named after its
    initializer), each node and initializer named after one of ``NAMES``."""
    from onnx import helper

    rng = np.random.default_rng(0)
    nodes, initializers, previous = [], [], "x"
    for i, name in enumerate(NAMES):
        scale = name or f"scale{i}"
        initializers += [_const(f"w{i}", rng.standard_normal((4, 4)) * 0.5, np.float32),
                         _const(scale, rng.uniform(0.5, 1.5, 4), np.float32)]
        nodes.append(helper.make_node("MatMul", [previous, f"w{i}"], [f"{name}:mm{i}"], name=name))
        nodes.append(helper.make_node("Mul", [nodes[-1].output[0], scale], [f"{name}~{i}"]))
        previous = nodes[-1].output[0]
    nodes.append(helper.make_node("Relu", [previous], ["y"]))
    return _model(nodes, initializers)


def test_onnx_names_that_are_module_attributes_import_and_agree_with_onnxruntime():
    import onnxruntime as ort
    import torch

    from edgekit.converters.onnx_torch import OnnxModule

    model = _named_model()
    x = np.random.default_rng(1).standard_normal((1, 4)).astype(np.float32)
    module = OnnxModule(model, [torch.from_numpy(x)], "names.onnx").eval()
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), want, rtol=1e-5, atol=1e-5)
    # the importer's own attributes are untouched, and every graph name lands in its own attribute
    assert module.layers == {"Linear": len(NAMES)} and module.folded == 0
    assert isinstance(module.training, bool) and callable(module.forward) and callable(module.to)
    children = dict(module.named_children())
    assert {"onnx_forward", "onnx_training", "onnx_folded", "onnx_layers", "init", "onnx_parameters", "onnx_class",
            "onnx_T_destination", "onnx_to", "onnx_eval", "a_b"} <= set(children)
    # localize pairs a layer with its node by the sanitized node name ending the module name
    for name in NAMES:
        if name:
            key = name.replace(".", "_").strip("_")
            assert any(child == key or child.endswith("_" + key) for child in children), name
    torch.export.export(module, (torch.from_numpy(x),), strict=False)


@pytest.mark.slow
def test_onnx_names_that_are_module_attributes_convert_to_tflite_and_pass_parity(tmp_path):
    import onnx

    onnx.save(_named_model(), str(tmp_path / "names.onnx"))
    result = run_edgekit("convert", tmp_path / "names.onnx", "--to", "tflite", "-o", tmp_path / "names.tflite",
                         "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["parity"]["verdict"] == "PASS"


# -- (b) allocation bombs: exit 6 naming the node ---------------------------------------------------------------

BOMB_OPS = ("ConstantOfShape", "Tile", "Expand", "Pad", "Range", "Resize", "Reshape")  # _bombs()'s keys, for collection


def _bombs():
    """One ONNX model per op in ``BOMB_OPS`` that asks it for far more memory than the budget."""
    from onnx import TensorProto, helper

    reduce_add = [helper.make_node("ReduceSum", ["big"], ["r"], keepdims=0), helper.make_node("Add", ["x", "r"], ["y"])]
    return {
        "ConstantOfShape": _model([helper.make_node("ConstantOfShape", ["s"], ["big"], name="bomb",
                                                    value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
                                   *reduce_add], [_const("s", [BIG])]),
        "Tile": _model([helper.make_node("Tile", ["x", "reps"], ["y"], name="bomb")], [_const("reps", [1, BIG >> 2])]),
        "Expand": _model([helper.make_node("Expand", ["x", "shape"], ["y"], name="bomb")],
                         [_const("shape", [BIG >> 2, 4])]),
        "Pad": _model([helper.make_node("Pad", ["x", "pads"], ["y"], name="bomb")], [_const("pads", [0, 0, 0, BIG])]),
        "Range": _model([helper.make_node("Range", ["a", "b", "d"], ["ints"], name="bomb"),
                         helper.make_node("Cast", ["ints"], ["big"], to=TensorProto.FLOAT), *reduce_add],
                        [_const("a", 0), _const("b", BIG), _const("d", 1)]),
        "Resize": _model([helper.make_node("Unsqueeze", ["x", "axes"], ["x4"]),
                          helper.make_node("Resize", ["x4", "", "scales"], ["y"], name="bomb", mode="nearest")],
                         [_const("axes", [0, 1]), _const("scales", [1, 1, 1 << 20, 1 << 18], np.float32)]),
        # a Reshape of an expanded view must copy it: the Expand's shape comes from the data (Shape → Concat), which
        # ONNX's shape inference does not read, so the importer measures it when it folds the chain
        "Reshape": _model([helper.make_node("Shape", ["x"], ["shape"]),
                           helper.make_node("Slice", ["shape", "one", "two"], ["width"]),
                           helper.make_node("Concat", ["rows", "width"], ["target"], axis=0),
                           helper.make_node("Expand", ["x", "target"], ["wide"], name="bomb"),
                           helper.make_node("Reshape", ["wide", "flat"], ["y"], name="flatten")],
                          [_const("one", [1]), _const("two", [2]), _const("rows", [BIG]), _const("flat", [-1])]),
    }


def test_every_bomb_is_in_the_parametrized_list():
    assert tuple(_bombs()) == BOMB_OPS


@pytest.mark.parametrize("op", BOMB_OPS)
def test_an_allocation_bomb_is_refused_before_it_allocates_naming_the_node(op):
    import torch

    from edgekit.converters.onnx_torch import OnnxModule
    from edgekit.toolkit.safety.policy.allocations import check_allocations

    model = _bombs()[op]
    refusals = []
    if op != "Reshape":  # the graph's own shapes (what every route checks first)
        with pytest.raises(ResourceLimitError) as refused:
            check_allocations(model, f"{op}.onnx")
        refusals.append(refused.value)
    with pytest.raises(ResourceLimitError) as refused:  # the importer, op by op as it folds
        OnnxModule(model, [torch.zeros(1, 4)], f"{op}.onnx")
    refusals.append(refused.value)
    for error in refusals:
        text = error.one_line()
        assert error.exit_code == ExitCode.RESOURCE_LIMIT
        assert text.startswith(f"{op}.onnx: ") and "node 'bomb'" in text and "TiB" in text and "\n" not in text


def test_an_allocator_failure_inside_the_importer_is_exit_6_naming_the_node(monkeypatch):
    import torch
    from onnx import helper

    from edgekit.converters import onnx_torch

    def refuse(ctx, node, x):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: not enough memory: you tried "
                           "to allocate 4398046511104 bytes.")

    monkeypatch.setitem(onnx_torch.OPS, "Relu", refuse)
    with pytest.raises(ResourceLimitError, match=r"^m\.onnx: out of memory at Relu node 'act'"):
        onnx_torch.OnnxModule(_model([helper.make_node("Relu", ["x"], ["y"], name="act")]), [torch.zeros(1, 4)],
                              "m.onnx")


@pytest.mark.parametrize("failure", [
    MemoryError(),
    RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 4398046511104 bytes"),
    RuntimeError("std::bad_alloc"),
    RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running ConstantOfShape node. "
                 "Name:'bomb' Status Message: bfc_arena.cc:360 AllocateRawInternal Failed to allocate memory for "
                 "requested buffer of size 4398046511104"),
])
def test_allocator_failures_of_every_framework_are_recognised(failure):
    from edgekit.toolkit.safety.policy.allocations import allocation_error, allocation_failure

    assert allocation_failure(failure)
    error = allocation_error("m.onnx", failure)
    assert error.exit_code == ExitCode.RESOURCE_LIMIT and error.message.startswith("m.onnx: out of memory")
    if "Name:'bomb'" in str(failure):
        assert "ConstantOfShape node 'bomb'" in error.message
    assert not allocation_failure(RuntimeError("shape '[3]' is invalid for input of size 4"))


def test_numpys_array_memory_error_is_an_allocator_failure():
    from edgekit.toolkit.safety.policy.allocations import allocation_failure

    with pytest.raises(MemoryError) as failed:
        np.empty(1 << 62, dtype=np.uint8)
    assert allocation_failure(failed.value)


@pytest.mark.parametrize("op, to", [("ConstantOfShape", "tflite"), ("Tile", "onnx")])
def test_edgekit_convert_of_an_allocation_bomb_exits_6_in_one_line(tmp_path, op, to, victim):
    import onnx

    onnx.save(_bombs()[op], str(tmp_path / "bomb.onnx"))
    extra = ("--quantize", "int8", "--calibration", "random") if to == "onnx" else ()
    result = run_edgekit("convert", tmp_path / "bomb.onnx", "--to", to, *extra, "-o", tmp_path / f"out.{to}",
                         timeout=300, cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.onnx"]  # no output, no temp file left
    assert result.returncode == ExitCode.RESOURCE_LIMIT, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error:")]
    assert len(errors) == 1 and "bomb.onnx" in errors[0] and f"{op} node 'bomb'" in errors[0], result.stderr
    assert not (tmp_path / f"out.{to}").exists()


# -- (c) a recipe's calibration path: inside its tree, or pinned by sha256 ---------------------------------------

def _recipe(directory, calibration, **pin):
    from edgekit.toolkit.contract.artifact import Artifact
    from edgekit.toolkit.contract.formats import Format
    from edgekit.toolkit.contract.iospec import IOSpec

    options = {"quantize": "int8", "calibration": str(calibration) if calibration is not None else None, **pin}
    artifact = Artifact(directory / "m.tflite", Format("tflite"), IOSpec((), ()), "0" * 64,
                        route=("torch-exported", "tflite"), options=options)
    return artifact.write_sidecar(force=True)


@pytest.fixture
def trees(tmp_path):
    """``project/`` (where recipes are) and ``outside/`` (a private data set beside it), each with a .npz."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    for directory in (project, outside, project / "data"):
        directory.mkdir()
    np.savez(outside / "private.npz", x=np.zeros((2, 4), np.float32))
    np.savez(project / "data" / "calib.npz", x=np.ones((2, 4), np.float32))
    return project, outside


def test_a_recipe_calibration_outside_its_tree_is_refused(trees):
    from edgekit.budget import read_recipe

    project, outside = trees
    (project / "link.npz").symlink_to(outside / "private.npz")
    for calibration in (outside / "private.npz", "../outside/private.npz", "link.npz", "data/../../outside"):
        with pytest.raises(UnsafeModelError, match="outside the recipe's directory") as refused:
            read_recipe(_recipe(project, calibration))
        assert str(project / "m.tflite.edgekit.json") in refused.value.message and refused.value.hint
    # a pinned file that is no longer the one recorded
    with pytest.raises(UnsafeModelError, match="not the file this recipe recorded"):
        read_recipe(_recipe(project, outside / "private.npz", calibration_sha256="1" * 64))


def test_a_symlinked_recipe_is_judged_in_the_directory_it_was_named_in(trees, tmp_path):
    from edgekit.budget import read_recipe

    project, outside = trees
    elsewhere = _recipe(outside, "private.npz")  # beside the real recipe, outside the project
    (project / "linked.edgekit.json").symlink_to(elsewhere)
    recipe = read_recipe(project / "linked.edgekit.json")
    assert recipe.options.calibration == os.path.realpath(project / "private.npz")  # never outside/private.npz
    (outside / "m.tflite.edgekit.json").unlink()
    _recipe(outside, "../outside/private.npz")
    with pytest.raises(UnsafeModelError):
        read_recipe(project / "linked.edgekit.json")


def test_a_recipe_calibration_inside_its_tree_or_pinned_is_read(trees):
    from edgekit.budget import read_recipe
    from edgekit.toolkit.data.calibration import pinned

    project, outside = trees
    (project / "inside.npz").symlink_to(project / "data" / "calib.npz")
    for calibration, read in (("data/calib.npz", project / "data" / "calib.npz"),
                              ("inside.npz", project / "data" / "calib.npz"), ("data", project / "data")):
        assert read_recipe(_recipe(project, calibration)).options.calibration == os.path.realpath(read)
    for named in (None, "digits", "random"):
        assert read_recipe(_recipe(project, named)).options.calibration == named
    # what edgekit convert records: the path from the artifact's directory and its sha256
    record = pinned(str(outside / "private.npz"), project)
    assert record["calibration"] == "../outside/private.npz" and len(record["calibration_sha256"]) == 64
    assert read_recipe(_recipe(project, **record)).options.calibration == str(project / "../outside/private.npz")
    absolute = {**record, "calibration": str(outside / "private.npz")}
    assert read_recipe(_recipe(project, **absolute)).options.calibration == str(outside / "private.npz")
    assert pinned("digits", project) == {} and pinned(str(project / "missing.npz"), project) == {}


def test_convert_recipe_with_a_calibration_outside_exits_4_in_one_line(trees, victim):
    project, outside = trees
    sidecar = _recipe(project, outside / "private.npz")
    result = run_edgekit("convert", project / "m.pt2", "--recipe", sidecar, timeout=120)
    assert result.returncode == ExitCode.REFUSED_UNSAFE, result.stderr[-2000:]
    assert result.stderr.count("edgekit: error:") == 1 and "private.npz" in result.stderr
    assert "--recipe" in result.stderr and "Traceback" not in result.stderr


# -- (d) configs, baselines and recipes are regular files, opened without blocking ---------------------------------

def test_read_regular_file_refuses_fifos_directories_and_devices_without_blocking(tmp_path):
    from edgekit.toolkit import jsonio
    from edgekit.toolkit.fsutil import read_regular_file

    os.mkfifo(tmp_path / "pipe.json")
    for path, kind in ((tmp_path / "pipe.json", "FIFO"), (tmp_path, "directory"), ("/dev/zero", "character device")):
        with pytest.raises(InvalidInputError, match=kind):
            jsonio.load_file(path, what="baseline")
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert jsonio.load_file(tmp_path / "ok.json", what="baseline") == {"a": 1}
    (tmp_path / "link.json").symlink_to(tmp_path / "ok.json")
    assert read_regular_file(tmp_path / "link.json", what="x") == b'{"a": 1}'
    with pytest.raises(InvalidInputError, match="symbolic link"):
        read_regular_file(tmp_path / "link.json", what="x", follow_symlinks=False)
    with pytest.raises(InvalidInputError, match="over 3 bytes"):
        read_regular_file(tmp_path / "ok.json", what="x", limit=3)
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing.json", what="x")


def test_a_fifo_as_checks_baseline_or_as_a_recipe_exits_3_promptly(tmp_path, victim):
    os.mkfifo(tmp_path / "baseline.json")
    (tmp_path / "edgekit.toml").write_text('[pipeline]\nmodels = ["m.pt2"]\nto = ["onnx"]\nquantize = ["none"]\n'
                                           f'out = "{tmp_path / "out"}"\n'
                                           '[thresholds]\nmax_p50_ratio = 1.5\nbaseline = "baseline.json"\n')
    # a hang fails the test (subprocess.TimeoutExpired) long before the 3600 s default --timeout
    result = run_edgekit("--timeout", "30", "check", "--config", tmp_path / "edgekit.toml", timeout=60)
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr[-2000:]
    assert "baseline.json: the baseline is a FIFO" in result.stderr and "Traceback" not in result.stderr
    os.mkfifo(tmp_path / "r.edgekit.json")
    result = run_edgekit("convert", tmp_path / "m.onnx", "--recipe", tmp_path / "r.edgekit.json", timeout=60)
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr[-2000:]
    assert "r.edgekit.json: the recipe is a FIFO" in result.stderr


# -- (e) nothing written outside the output and temp directories -------------------------------------------------

def _incomplete_symbolic_shapes():
    """Two inputs whose symbolic batches (a, b) meet in an Add: onnxruntime's symbolic shape inference gives up
    ("Incomplete symbolic shape inference") and saves sym_shape_infer_temp.onnx in the current directory first."""
    from onnx import helper

    weight = _const("w", np.random.default_rng(0).standard_normal((8, 8)), np.float32)
    return _model([helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
                   helper.make_node("Add", ["m", "z"], ["y"], name="add")], [weight],
                  inputs=(("x", ("a", 8)), ("z", ("b", 8))))


def test_onnx_pre_processing_leaves_nothing_in_the_working_directory(tmp_path, monkeypatch):
    import onnx

    from edgekit.converters.base import StepReport
    from edgekit.converters.onnx_quantize import prepare

    onnx.save(_incomplete_symbolic_shapes(), str(tmp_path / "sym.onnx"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    report = StepReport("onnxruntime")
    prepare(tmp_path / "sym.onnx", tmp_path / "prepared.onnx", report)
    assert "Incomplete symbolic shape inference" in report.details["pre_process"]  # the path that wrote the file
    assert list(work.iterdir()) == [] and os.getcwd() == str(work)
    assert (tmp_path / "prepared.onnx").is_file()


def test_int8_quantization_from_an_empty_working_directory_leaves_it_empty(tmp_path):
    import onnx

    onnx.save(_incomplete_symbolic_shapes(), str(tmp_path / "sym.onnx"))
    work = tmp_path / "cwd"
    work.mkdir()
    result = run_edgekit("convert", tmp_path / "sym.onnx", "--to", "onnx", "--quantize", "int8", "--calibration",
                         "random", "-o", tmp_path / "sym.int8.onnx", cwd=work, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(work.iterdir()) == []
    steps = json.loads((tmp_path / "sym.int8.onnx.edgekit.json").read_text())["extra"]["steps"]
    assert "without symbolic shape inference" in steps[-1]["details"]["pre_process"]


def test_a_recipe_made_with_calibration_elsewhere_pins_it_and_makes_the_same_file_again(tmp_path):
    """edgekit convert records the calibration file's sha256 (conversion.py: ``calibration_data.pinned``), so the
    recipe reads it again from outside its directory, and only while it is that very file."""
    import onnx
    from onnx import helper

    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    weight = _const("w", np.random.default_rng(0).standard_normal((4, 4)), np.float32)
    onnx.save(_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [weight]), str(tmp_path / "m.onnx"))
    np.savez(data / "calib.npz", x=np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32))
    made = run_edgekit("convert", tmp_path / "m.onnx", "--to", "onnx", "--quantize", "int8", "--calibration",
                       data / "calib.npz", "-o", out / "m.int8.onnx", "--no-validate", timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    options = json.loads((out / "m.int8.onnx.edgekit.json").read_text())["options"]
    assert options["calibration"] == "../data/calib.npz" and len(options["calibration_sha256"]) == 64
    again = run_edgekit("convert", tmp_path / "m.onnx", "--recipe", out / "m.int8.onnx.edgekit.json", "-o",
                        tmp_path / "again.onnx", "--no-validate", timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "again.onnx").read_bytes() == (out / "m.int8.onnx").read_bytes()
    np.savez(data / "calib.npz", x=np.zeros((8, 4), np.float32))  # another file under the recorded name
    changed = run_edgekit("convert", tmp_path / "m.onnx", "--recipe", out / "m.int8.onnx.edgekit.json", "-o",
                          tmp_path / "changed.onnx", "--no-validate", timeout=300)
    assert changed.returncode == ExitCode.REFUSED_UNSAFE and "not the file this recipe recorded" in changed.stderr


def test_inspect_of_an_allocation_bomb_exits_6_before_any_runtime_allocates(tmp_path, victim):
    """The size check runs with the loading policy, so every command refuses the same files."""
    import onnx

    onnx.save(_bombs()["Range"], str(tmp_path / "bomb.onnx"))
    result = run_edgekit("inspect", tmp_path / "bomb.onnx", timeout=120)
    assert result.returncode == ExitCode.RESOURCE_LIMIT, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error:")]
    assert len(errors) == 1 and "Range node 'bomb'" in errors[0] and "Traceback" not in result.stderr


def test_a_fifo_as_a_labels_file_is_refused_without_blocking(tmp_path):
    import importlib

    from edgekit.importing import read_labels

    bundle = importlib.import_module("edgekit.packaging.bundle")
    os.mkfifo(tmp_path / "labels.txt")
    for read in (read_labels, bundle._labels):
        with pytest.raises(InvalidInputError, match="labels.txt: the labels file is a FIFO"):
            read(tmp_path / "labels.txt")


def test_a_fifo_or_a_directory_as_checks_config_is_refused_without_blocking(tmp_path):
    from edgekit.pipeline.gate import load_config

    os.mkfifo(tmp_path / "edgekit.toml")
    with pytest.raises(InvalidInputError, match="edgekit.toml: the config file is a FIFO"):
        load_config(tmp_path / "edgekit.toml")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(InvalidInputError, match="dir.toml: the config file is a directory"):
        load_config(tmp_path / "dir.toml")
    with pytest.raises(InvalidInputError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
