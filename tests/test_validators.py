"""Parity: metrics against hand-computed values, and seeded bad candidates that must never pass."""

import math
import warnings
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from conftest import strict_json
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.toolkit import jsonio
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError
from edgekit.validators.metrics import compare, cosine_similarity, snr_db, top1_accuracy, topk_agreement
from edgekit.validators.parity import ParityReport, junit_xml, validate
from edgekit.validators.tolerances import Overrides, Profile, parse_tolerances

runner = CliRunner()
RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((8, 10)).astype(np.float32)
W2 = RNG.standard_normal((8, 10)).astype(np.float32)


def test_metrics_hand_computed():
    ref = np.array([[3.0, 4.0]])
    assert cosine_similarity(ref, ref * 2) == pytest.approx(1.0)
    assert cosine_similarity(ref, np.array([[4.0, -3.0]])) == pytest.approx(0.0)
    assert snr_db(ref, ref + np.array([[0.0, 0.5]])) == pytest.approx(10 * math.log10(25 / 0.25))
    assert snr_db(ref, ref) == math.inf
    m = compare(np.array([[1.0, 2.0, 4.0]]), np.array([[1.5, 2.0, 3.0]]), rtol=0.1)
    assert (m.max_abs, m.mean_abs, m.max_rel) == pytest.approx((1.0, 0.5, 0.5))
    assert m.atol_needed == pytest.approx(0.6)  # max(|Δ| − 0.1·|ref|) = max(0.4, −0.2, 0.6)
    assert compare(np.array([[1.0, np.nan]]), np.array([[np.inf, 1.0]])).nonfinite_candidate == 1


def test_no_finite_pair_makes_every_error_metric_infinite_not_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # np.percentile([inf]) warns and returns NaN (inf − inf)
        m = compare(np.array([[1.0, np.nan]]), np.array([[np.inf, 1.0]]))
    assert m.max_abs == m.p99_abs == m.max_rel == math.inf
    assert m.abs_error_percentiles == (math.inf,) * len(m.abs_error_percentiles)


def test_agreement_and_accuracy():
    ref = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    cand = np.array([[0.2, 0.1, 0.7], [0.9, 0.0, 0.1]])
    assert topk_agreement(ref, cand, 1) == 0.5
    assert topk_agreement(ref, cand, 2) == 0.5  # row 0's class 1 is the candidate's last
    assert topk_agreement(ref, cand, 3) == 1.0
    assert top1_accuracy(ref, np.array([1, 1])) == 0.5


def test_tolerances_parse_globally_and_per_output():
    from edgekit.api import _overrides

    atol, rtol = parse_tolerances("atol", ["1e-3", "logits=0.5"]), parse_tolerances("rtol", ["scores=0.01"])
    assert atol == {"*": 1e-3, "logits": 0.5} and rtol == {"scores": 0.01}
    overrides = _overrides(atol, rtol)
    assert overrides.atol == 1e-3 and dict(overrides.atol_per_output) == {"logits": 0.5}
    assert dict(overrides.rtol_per_output) == {"scores": 0.01}
    with pytest.raises(UsageError, match="atol='x' is not a number"):
        parse_tolerances("atol", ["x"])


def _onnx(path, outputs):
    """A tiny ONNX model: x (1, 8) → named outputs computed as x @ W (+ optional tweaks)."""
    from onnx import TensorProto, helper, numpy_helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    nodes, inits, infos = [], [], []
    for index, (name, weight, tweak) in enumerate(outputs):
        w = f"w{index}"
        inits.append(numpy_helper.from_array(weight, w))
        raw = f"raw{index}"
        nodes.append(helper.make_node("MatMul", ["x", w], [raw if tweak is not None else name]))
        if tweak is not None:
            op, const = tweak
            c = f"c{index}"
            inits.append(numpy_helper.from_array(np.asarray(const, np.float32), c))
            nodes.append(helper.make_node(op, [raw, c], [name]))
        infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, weight.shape[1]]))
    graph = helper.make_graph(nodes, "m", [x], infos, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    save(model, str(path))
    return path


@pytest.fixture
def reference(tmp_path):
    return _onnx(tmp_path / "ref.onnx", [("logits", W1, None), ("scores", W2, None)])


def _report(reference, candidate, profile=Profile.AUTO):
    return validate(reference, candidate, profile=profile)


def _failed_checks(report):
    return {(o.reference_name, c.name) for o in report.outputs for c in o.checks if not c.passed}


def test_identical_copy_passes(reference, tmp_path):
    report = _report(reference, _onnx(tmp_path / "same.onnx", [("logits", W1, None), ("scores", W2, None)]))
    assert report.passed and report.verdict == "PASS" and "seeded random" in report.data_source


def test_nan_in_one_output_fails(reference, tmp_path):
    poison = np.zeros(10, np.float32)
    poison[3] = np.nan
    candidate = _onnx(tmp_path / "nan.onnx", [("logits", W1, ("Add", poison)), ("scores", W2, None)])
    report = _report(reference, candidate)
    assert not report.passed and ("logits", "finite") in _failed_checks(report)


def test_constant_output_posing_as_int8_fails(reference, tmp_path):
    candidate = _onnx(tmp_path / "const.onnx", [("logits", W1, ("Mul", np.zeros(10))), ("scores", W2, None)])
    report = _report(reference, candidate, Profile.INT8)
    assert {("logits", "cosine"), ("logits", "top1_agreement")} <= _failed_checks(report)


def test_swapped_outputs_fail(reference, tmp_path):
    candidate = _onnx(tmp_path / "swap.onnx", [("logits", W2, None), ("scores", W1, None)])
    assert {("logits", "elementwise"), ("scores", "elementwise")} <= _failed_checks(_report(reference, candidate))


def test_output_scaled_by_1_01_fails_at_fp32_and_names_the_tolerance(reference, tmp_path):
    candidate = _onnx(tmp_path / "scaled.onnx", [("logits", W1, ("Mul", [1.01])), ("scores", W2, None)])
    report = _report(reference, candidate)
    assert report.profile is Profile.FP32 and _failed_checks(report) == {("logits", "elementwise")}
    check = next(c for o in report.outputs for c in o.checks if c.name == "elementwise" and not c.passed)
    assert check.would_pass_at > 1e-4 and "would pass at atol" in check.detail
    loose = validate(reference, candidate, overrides=Overrides(atol_per_output=(("logits", check.would_pass_at),)))
    assert loose.passed


def test_wrong_output_shape_fails_without_broadcasting(reference, tmp_path):
    candidate = _onnx(tmp_path / "shape.onnx", [("logits", W1[:, :9], None), ("scores", W2, None)])
    assert ("logits", "shape") in _failed_checks(_report(reference, candidate))


def test_fewer_outputs_fail(reference, tmp_path):
    report = _report(reference, _onnx(tmp_path / "one.onnx", [("logits", W1, None)]))
    assert not report.passed and any(c.name == "output_count" for o in report.outputs for c in o.checks)


def test_reference_that_yields_nan_is_an_error(tmp_path):
    poison = np.full(10, np.nan, np.float32)
    bad_reference = _onnx(tmp_path / "badref.onnx", [("logits", W1, ("Add", poison))])
    with pytest.raises(InvalidInputError, match="reference itself produced NaN"):
        validate(bad_reference, _onnx(tmp_path / "c.onnx", [("logits", W1, None)]))


def test_json_round_trip_and_junit(reference, tmp_path):
    candidate = _onnx(tmp_path / "scaled.onnx", [("logits", W1, ("Mul", [1.01])), ("scores", W2, None)])
    report = _report(reference, candidate)
    assert ParityReport.from_dict(strict_json(jsonio.dumps(report.to_dict()))) == report
    root = ET.fromstring(junit_xml(report))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert root.tag == "testsuites" and int(suite.get("tests")) == len(cases) == 4
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["logits.elementwise"] and int(suite.get("failures")) == 1


def test_bit_exact_report_is_strict_json_and_reads_back_infinite(reference, tmp_path):
    """A bit-exact candidate's SNR is +inf: the report holds the string "Infinity" (strict JSON), and
    reading it back restores the float."""
    report = _report(reference, _onnx(tmp_path / "same.onnx", [("logits", W1, None), ("scores", W2, None)]))
    assert report.outputs[0].metrics.snr_db == math.inf
    data = strict_json(jsonio.dumps(report.to_dict()))
    assert data["outputs"][0]["metrics"]["snr_db"] == "Infinity"
    again = ParityReport.from_dict(data)
    assert again == report and again.outputs[0].metrics.snr_db == math.inf


def test_cli_exit_codes_and_report_files(reference, tmp_path):
    same = _onnx(tmp_path / "same.onnx", [("logits", W1, None), ("scores", W2, None)])
    ok = runner.invoke(app, ["validate", str(reference), str(same), "--json-out", str(tmp_path / "r.json"),
                             "--junit", str(tmp_path / "r.xml")])
    assert ok.exit_code == 0, ok.output
    written = strict_json((tmp_path / "r.json").read_text())
    assert written["verdict"] == "PASS" and written["outputs"][0]["metrics"]["snr_db"] == "Infinity"
    ET.parse(tmp_path / "r.xml")
    scaled = _onnx(tmp_path / "scaled.onnx", [("logits", W1, ("Mul", [1.01])), ("scores", W2, None)])
    failed = runner.invoke(app, ["validate", str(reference), str(scaled)])
    assert failed.exit_code == 1 and "parity FAIL: logits: elementwise" in failed.stderr
    loosened = runner.invoke(app, ["validate", str(reference), str(scaled), "--atol", "logits=1"])
    assert loosened.exit_code == 0, loosened.output
    bad = _onnx(tmp_path / "badref.onnx", [("logits", W1, ("Add", np.full(10, np.nan, np.float32)))])
    error = runner.invoke(app, ["validate", str(bad), str(scaled)])
    assert error.exit_code == 3 and len(error.stderr.strip().splitlines()) == 1
    assert runner.invoke(app, ["validate", str(reference), str(same), "--atol", "x=oops"]).exit_code == 2


def test_digits_and_image_directory_as_data(tmp_path):
    """A digits-shaped model compared with itself through --data digits (labels: accuracy measured) and an
    image directory (no labels)."""
    from onnx import TensorProto, helper, numpy_helper, save
    from PIL import Image

    weight = RNG.standard_normal((64, 10)).astype(np.float32)
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])
    shape = numpy_helper.from_array(np.array([1, 64], np.int64), "flat")
    nodes = [helper.make_node("Reshape", ["image", "flat"], ["v"]), helper.make_node("MatMul", ["v", "w"], ["logits"])]
    graph = helper.make_graph(nodes, "d", [x], [y], initializer=[shape, numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    save(model, str(tmp_path / "d.onnx"))
    save(model, str(tmp_path / "e.onnx"))
    report = validate(tmp_path / "d.onnx", tmp_path / "e.onnx", data="digits", samples=50)
    assert report.passed and report.samples == 50 and report.accuracy is not None
    images = tmp_path / "images"
    images.mkdir()
    for index in range(3):
        Image.fromarray(np.full((8, 8), index * 80, np.uint8)).save(images / f"{index}.png")
    report = validate(tmp_path / "d.onnx", tmp_path / "e.onnx", data=str(images))
    assert report.passed and report.samples == 3 and report.accuracy is None
