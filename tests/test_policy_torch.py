"""The torch loading policies as pure functions: .pt2 program JSON, shape expressions, guards, targets,
TorchScript source — no archive, no framework."""

from __future__ import annotations

import pytest

from edgekit.toolkit.contract.errors import InvalidInputError
from edgekit.toolkit.safety.policy.exported import expression_refusal, guard_refusal, program_findings, target_refusal
from edgekit.toolkit.safety.policy.torch_ops import op_refusal
from edgekit.toolkit.safety.policy.torchscript import code_findings


@pytest.mark.parametrize("text", [
    "Symbol('s77', positive=True, integer=True)",
    "FloorDiv(s0, 2) + Mod(s1, 8) * 3 - 1",
    "Max(2, Min(s0, 64)) <= s1",
    "s0 ** 2 // 4",
    "-s3",
    "Eq(PythonMod(u0, 2), 0)",
])
def test_real_shape_expressions_pass(text):
    assert expression_refusal(text) is None


@pytest.mark.parametrize(("text", "reason"), [
    ("__import__('os').system('id')", "sympy function"),
    ("s0.__class__", "Attribute"),
    ("Symbol('x; import os')", "string"),
    ("lambda: 1", "Lambda"),
    ("open", "name 'open'"),
    ("Symbol('s0', positive=__import__('os'))", "keyword"),
    ("[s0 for s0 in (1,)]", "ListComp"),
    ("s0 +", "not a sympy expression"),
    ("(" * 5000 + "s0" + ")" * 5000, None),  # parses or not, never evaluated, never a crash
])
def test_dangerous_shape_expressions_are_refused(text, reason):
    refusal = expression_refusal(text)
    if reason is None:
        return
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize("guard", [
    "(L['x'].size()[0] // 2) <= L['x'].size()[0]",
    "L['x'].size()[1] == 3 and L['y'].stride()[0] >= 1",
    "math.floor(L['x'].size()[0] / 2) != 1",
    "torch.sym_float(L['x'].size()[0]) > 0.5",
])
def test_real_guards_pass(guard):
    assert guard_refusal(guard) is None


@pytest.mark.parametrize(("guard", "reason"), [
    ("__import__('os').system('id') == 0", "calls system"),
    ("L['x'].size.__globals__ is None", "attribute '__globals__'"),
    ("torch.save(L['x'], 'f') is None", "calls torch.save"),
    ("L['a\"); import os; os.system(\"id'] == 1", "constant"),  # breaks out of the generated string literal
    ("exec('1')", "calls exec"),
    ("[x for x in L]", "ListComp"),
])
def test_dangerous_guards_are_refused(guard, reason):
    refusal = guard_refusal(guard)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize(("target", "allowed"), [
    ("torch.ops.aten.linear.default", True),
    ("torch.ops.quantized_decomposed.quantize_per_tensor.default", True),
    ("torch.ops.higher_order.cond", True),
    ("_operator.getitem", True),
    ("torch.sym_max", True),
    ("torch.ops.aten.from_file.default", False),
    ("torch.ops.aten.save.default", False),
    ("torch.ops._c10d_functional.all_reduce.default", False),
    ("torch.ops.debugprims.load_tensor.default", False),
    ("torch.os.system", False),
    ("torch.serialization.load", False),
    ("builtins.eval", False),
    ("#custom_extension", False),
])
def test_targets(target, allowed):
    assert (target_refusal(target) is None) is allowed


def test_op_refusal_names_the_reason():
    assert "writes a file" in op_refusal("aten", "save")
    assert "namespace 'image'" in op_refusal("image", "read_file")
    assert op_refusal("aten", "conv2d") is None


def test_program_findings_walks_nested_graphs_and_fields():
    node = {"target": "torch.ops.aten.relu.default", "inputs": [], "outputs": [], "name": "relu"}
    evil_node = {"target": "torch.os.system", "inputs": [], "outputs": [], "name": "evil"}
    program = {
        "graph_module": {"graph": {"nodes": [node, {"target": "torch.ops.higher_order.cond", "name": "cond",
                                                    "outputs": [], "inputs": [{"arg": {"as_graph": {"graph": {
                                                        "nodes": [evil_node]}}}}]}],
                                   "tensor_values": {"x": {"sizes": [{"as_expr": {"expr_str": "eval('1')"}}]}}}},
        "range_constraints": {"s0": {"min_val": 2}, "open('x')": {}},
        "guards_code": ["L['x'].size()[0] > 1"],
    }
    findings = program_findings(program)
    assert len(findings) == 3
    assert any("torch.os.system" in f for f in findings)
    assert any("shape expression" in f for f in findings)
    assert any("range constraint" in f for f in findings)


@pytest.mark.parametrize("program", [[], {"guards_code": "x"}, {"range_constraints": []},
                                     {"nodes": [{"target": 5, "inputs": []}]}, {"x": {"expr_str": 3}}])
def test_malformed_programs_are_invalid_input(program):
    with pytest.raises(InvalidInputError):
        program_findings(program)


TORCHSCRIPT_MODULE = '''class Net(Module):
  __parameters__ = ["weight", ]
  weight : Tensor
  packed : __torch__.torch.classes.quantized.LinearPackedParamsBase
  def forward(self: __torch__.Net, x: Tensor) -> Tensor:
    y = ops.quantized.linear_dynamic(x, self.packed)
    ops.prim.RaiseException("no", "builtins.RuntimeError")
    return torch.add(torch.linear(x, self.weight), y)
'''


def test_plain_torchscript_code_has_no_findings():
    classes: set[str] = set()
    assert code_findings("code/__torch__.py", TORCHSCRIPT_MODULE, classes) == []
    assert classes == {"__torch__.Net"}


@pytest.mark.parametrize(("line", "found"), [
    ("t = torch.from_file(\"/tmp/x\", True, 16)", "aten::from_file"),
    ("t = torch.save(x, \"/tmp/x\")", "aten::save"),
    ("t = ops.image.read_file(\"/tmp/x\")", "namespace 'image'"),
    ("t = torch.ops._c10d_functional.all_reduce(x, \"sum\", \"0\")", "namespace '_c10d_functional'"),
    ("t = rpc_async(\"worker\", x)", "remote procedure call"),
    ("t = __torch__.torch.classes.myext.Thing()", "TorchBind class"),
])
def test_side_effecting_torchscript_code_is_found(line, found):
    source = TORCHSCRIPT_MODULE.replace("    return torch.add", f"    {line}\n    return torch.add")
    findings = code_findings("code/__torch__.py", source)
    assert any(found in f and "line 8" in f for f in findings), findings


def test_setstate_only_in_torch_own_classes():
    setstate = "  def __setstate__(self: __torch__.Net, state: int) -> NoneType:\n    return None\n"
    assert any("__setstate__" in f for f in code_findings("code/__torch__.py", TORCHSCRIPT_MODULE + setstate))
    own = TORCHSCRIPT_MODULE.replace("class Net", "class LinearPackedParams") + setstate
    assert code_findings("code/__torch__/torch/ao/nn/quantized/modules/linear.py", own) == []


@pytest.mark.parametrize("source", ["def f(:\n", "\x00", "x = (" * 2000 + ")" * 2000])
def test_unparseable_torchscript_is_invalid_input(source):
    with pytest.raises(InvalidInputError):
        code_findings("code/__torch__.py", source)
