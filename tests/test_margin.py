"""Margin-aware top-k agreement: the noise-floor rule, ties that are not disagreements, flips that still fail,
and reports that round-trip (old ones included)."""

import numpy as np
import pytest
from conftest import strict_json

from edgekit.toolkit import jsonio
from edgekit.validators.metrics import MARGIN_STEPS, OutputMetrics, compare, decisive_rows, margin_floor
from edgekit.validators.parity import Check, ParityReport, _judge, validate
from edgekit.validators.tolerances import DEFAULTS, FP16_STEP, INT8_STEP, Profile

INT8 = DEFAULTS[Profile.INT8]


def _checks(parity):
    return {c.name: c for c in parity.checks}


def test_the_floor_is_four_steps_of_the_precision_at_the_outputs_scale():
    reference = np.array([[2.0, -8.0, 1.0], [0.5, 0.25, 0.0]])
    assert margin_floor(reference, resolution=INT8_STEP) == pytest.approx(MARGIN_STEPS * 8.0 / 127)
    assert margin_floor(reference, resolution=FP16_STEP) == pytest.approx(4 * 8.0 * 2**-10)
    # A quantized candidate output: its scale, when coarser than the precision's step at the output's scale.
    assert margin_floor(reference, resolution=INT8_STEP, output_step=0.5) == pytest.approx(2.0)
    assert margin_floor(reference, resolution=0.0) == 0.0  # then only exact ties are indecisive


def test_decisive_rows_hold_the_top1_against_the_runner_up_and_top_k_against_the_k_plus_1th():
    reference = np.array([[5.0, 4.95, 0.0, -1.0], [5.0, 3.0, 2.99, -1.0], [1.0, 1.0, 0.0, 0.0]])
    assert decisive_rows(reference, 1, 0.1).tolist() == [False, True, False]
    assert decisive_rows(reference, 2, 0.1).tolist() == [True, True, True]
    assert decisive_rows(reference, 1, 0.0).tolist() == [True, True, False]  # an exact tie is never decisive
    assert decisive_rows(reference, 5, 0.1).all()  # 4 classes: the top-1 is always in the top-5


def test_flat_outputs_are_not_judged_on_top1_and_pass_on_cosine():
    """The issue's case: nearly flat scores (a random-weight network), an int8 candidate with cosine 1.000000
    and SNR 36 dB whose top-1 is a coin toss between near-equal scores."""
    rng = np.random.default_rng(0)
    reference = 1.0 + 1e-4 * rng.standard_normal((40, 1000))
    candidate = reference * 1.0158 + 1e-4 * rng.standard_normal(reference.shape)
    parity = _judge("scores", "scores", reference, candidate, INT8)
    m, top1 = parity.metrics, _checks(parity)["top1_agreement"]
    assert m.top1_agreement_all < 0.95 and round(m.cosine, 6) == 1.0 and 35 < m.snr_db < 37
    assert parity.passed and _checks(parity)["cosine"].passed and _checks(parity)["cosine"].judged
    assert not top1.judged and top1.passed and m.top1_decisive == 0 and m.class_samples == 40
    assert top1.detail.startswith("not judged: 0 decisive samples of 40, fewer than the 20 it takes; "
                                  "40 within the int8 noise floor")
    assert parity.not_judged == (top1,)


def test_a_real_top1_flip_beyond_the_floor_still_fails():
    rng = np.random.default_rng(1)
    reference = 3.0 * rng.standard_normal((40, 10))
    candidate = reference + 1e-3 * rng.standard_normal(reference.shape)
    floor = margin_floor(reference, resolution=INT8_STEP)
    ordered = np.argsort(-reference, axis=1)
    margins = reference[np.arange(40), ordered[:, 0]] - reference[np.arange(40), ordered[:, 1]]
    flipped = np.flatnonzero(margins > floor)[:6]  # six decisive samples: swap their top two classes
    for row in flipped:
        first, second = ordered[row, :2]
        candidate[row, [first, second]] = candidate[row, [second, first]]
    parity = _judge("logits", "logits", reference, candidate, INT8)
    top1 = _checks(parity)["top1_agreement"]
    decisive = int((margins > floor).sum())
    assert not parity.passed and top1.judged and not top1.passed
    assert parity.metrics.top1_decisive == decisive and top1.value == pytest.approx(1 - 6 / decisive)
    assert f"on {decisive} decisive samples of 40; {40 - decisive} within the int8 noise floor" in top1.detail


def test_flips_inside_the_floor_are_counted_but_not_held_against_the_candidate():
    rng = np.random.default_rng(2)
    reference = 3.0 * rng.standard_normal((40, 10))
    ordered = np.argsort(-reference, axis=1)
    rows = np.arange(40)
    tied = rows[:9]  # nine samples whose top two are 1e-3 apart: inside any int8 floor
    reference[tied, ordered[tied, 1]] = reference[tied, ordered[tied, 0]] - 1e-3
    candidate = reference.copy()
    candidate[tied, ordered[tied, 1]] += 2e-3  # the candidate picks the runner-up on each of them
    parity = _judge("logits", "logits", reference, candidate, INT8)
    m, top1 = parity.metrics, _checks(parity)["top1_agreement"]
    assert m.top1_agreement_all == pytest.approx(31 / 40) and m.top1_indecisive >= 9
    assert parity.passed and top1.judged and m.top1_agreement == 1.0


def test_fp32_compare_defaults_count_only_exact_ties_as_indecisive():
    reference = np.array([[1.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    m = compare(reference, reference)
    assert (m.class_samples, m.top1_decisive, m.top1_agreement, m.margin_floor) == (2, 1, 1.0, 0.0)
    assert compare(np.ones((3, 1)), np.ones((3, 1))).class_samples is None  # not class scores


def test_tiny_outputs_get_their_real_cosine_and_snr():
    """Random-weight Keras models emit ~1e-9 scores: an absolute epsilon called such errors +inf dB."""
    rng = np.random.default_rng(3)
    reference = 1e-9 * rng.standard_normal((8, 10))
    candidate = reference + 1e-9 * rng.standard_normal(reference.shape)
    m = compare(reference, candidate)
    assert -5 < m.snr_db < 5 and 0.3 < m.cosine < 0.95


def test_metrics_and_reports_round_trip_and_old_reports_read(tmp_path):
    rng = np.random.default_rng(4)
    reference = 1.0 + 1e-4 * rng.standard_normal((30, 10))
    parity = _judge("scores", "scores", reference, reference * 1.01, INT8)
    metrics = parity.metrics
    assert OutputMetrics.from_dict(strict_json(jsonio.dumps(metrics.to_dict()))) == metrics
    report = ParityReport("a.onnx", "b.onnx", Profile.INT8, "seeded", 30, (), (parity,))
    again = ParityReport.from_dict(strict_json(jsonio.dumps(report.to_dict())))
    assert again == report and again.outputs[0].not_judged and again.passed
    old = report.to_dict()  # as written before margin-aware agreement: no counts, no `judged`
    for output in old["outputs"]:
        for name in ("class_samples", "top1_decisive", "top5_decisive", "margin_floor", "top1_agreement_all"):
            del output["metrics"][name]
        for check in output["checks"]:
            del check["judged"]
    read = ParityReport.from_dict(old)
    assert read.outputs[0].metrics.class_samples is None and all(c.judged for c in read.outputs[0].checks)
    assert Check.from_dict({"name": "cosine", "passed": True, "value": 1.0, "threshold": 0.99}).judged


def _flat_onnx(path, scale: float):
    """x (1, 8) → 10 nearly tied scores: 10 + x @ W with a tiny W, times ``scale``."""
    from onnx import TensorProto, helper, numpy_helper, save

    weight = np.random.default_rng(5).standard_normal((8, 10)).astype(np.float32) * 1e-5
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["raw"]), helper.make_node("Add", ["raw", "offset"], ["moved"]),
             helper.make_node("Mul", ["moved", "scale"], ["scores"])]
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.float32([10.0]), "offset"),
             numpy_helper.from_array(np.float32([scale]), "scale")]
    model = helper.make_model(helper.make_graph(nodes, "flat", [x], [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    save(model, str(path))
    return path


def test_validate_end_to_end_flat_model_passes_int8_with_top1_not_judged(tmp_path):
    report = validate(_flat_onnx(tmp_path / "ref.onnx", 1.0), _flat_onnx(tmp_path / "cand.onnx", 1.0158),
                      profile=Profile.INT8)
    (output,) = report.outputs
    assert report.passed and [c.name for c in output.not_judged] == ["top1_agreement"]
    assert output.metrics.top1_decisive == 0 and output.metrics.cosine > 0.9999
