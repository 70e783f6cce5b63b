"""Input value domains: parsing, defaults, graph tracing, stated ranges, feeds, dtype narrowing, .npz data."""

import numpy as np
import pytest

from edgekit.toolkit.contract.domains import (
    ASSUMED,
    BOOLEAN,
    INTEGER,
    REAL,
    STATED,
    Domain,
    default_domain,
    index_domains,
    parse_input_ranges,
    stated_domain,
)
from edgekit.toolkit.contract.errors import InvalidInputError, UsageError
from edgekit.toolkit.contract.iospec import (
    IOSpec,
    TensorSpec,
    cast_checked,
    dtype_adaptations,
    example_feeds,
    tensor,
    with_domains,
)
from edgekit.toolkit.data.feeds import named_feeds

IDS = tensor("input_ids", (1, 16), "int64")
MASK = tensor("attention_mask", (1, 16), "int64")


def test_describe_and_round_trip():
    table = Domain(INTEGER, 0, 120, source="indexes 'emb' (120 rows)")
    assert table.describe() == "int [0, 120)"
    assert Domain(BOOLEAN).describe() == "bool {0, 1}"
    assert Domain(REAL, 0.0, 1.0).describe() == "real [0, 1]"
    assert Domain.from_dict(table.to_dict()) == table
    spec = TensorSpec("input_ids", (1, 16), "int64", domain=table)
    assert TensorSpec.from_dict(spec.to_dict()) == spec
    assert "domain" not in IDS.to_dict()  # contracts without one stay as they were


@pytest.mark.parametrize("bad", [{"kind": "integer", "low": 5, "high": 5}, {"kind": "weird"},
                                 {"kind": "integer", "low": 0, "high": float("inf")}, {"kind": "real", "low": "0"},
                                 {"kind": "integer", "low": True, "high": 3}, ["integer"]])
def test_from_dict_refuses_malformed(bad):
    with pytest.raises((ValueError, TypeError)):
        Domain.from_dict(bad)


def test_defaults_by_dtype_and_name():
    assert default_domain("input_ids", "int64") == Domain(INTEGER, 0, 2, source=ASSUMED)
    assert default_domain("attention_mask", "int64").source.startswith("a mask")
    assert not default_domain("attention_mask", "int32").assumed
    assert default_domain("flags", "bool").kind == BOOLEAN
    assert default_domain("x", "float32").kind == REAL


def test_index_domains_walks_back_through_value_preserving_ops():
    # ids → cast → reshape → gather(table of 120) ; ids → gather(table of 50): the smaller table wins
    producers = {"cast": ("Cast", ["ids"]), "flat": ("Reshape", ["cast"]), "sum": ("Add", ["ids"])}
    found = index_domains([("flat", 120, "'words'"), ("ids", 50, "'types'"), ("sum", 10, "'other'")],
                          inputs={"ids": "input_ids"}, producers=producers, pass_through={"Cast", "Reshape"})
    assert found == {"input_ids": Domain(INTEGER, 0, 50, source="indexes 'types' (50 rows)")}


def test_index_domains_ignores_arithmetic_and_constants():
    producers = {"pos": ("Add", ["ids"])}  # ids + offset indexes the table: not the input's own domain
    assert index_domains([("pos", 30, "'t'"), ("const", 8, "'c'")], inputs={"ids": "input_ids"},
                         producers=producers, pass_through={"Cast"}) == {}


def test_parse_input_ranges():
    assert parse_input_ranges(["input_ids=0:120", "x=-1.5:2"]) == {"input_ids": (0.0, 120.0), "x": (-1.5, 2.0)}
    assert parse_input_ranges(["0:10"]) == {"*": (0.0, 10.0)}
    for bad in (["ids=5:5"], ["ids=a:3"], ["ids"], ["ids=0:1", "ids=0:2"], ["0:1", "x=0:2"], ["ids=0:inf"]):
        with pytest.raises(UsageError):
            parse_input_ranges(bad)


def test_stated_range_inside_the_table_narrows_it():
    table = Domain(INTEGER, 0, 120, source="indexes 'emb' (120 rows)")
    assert stated_domain("input_ids", "int64", 5, 100, table, "m.pt2") == Domain(INTEGER, 5, 100, source=STATED)


def test_stated_range_past_the_table_names_both():
    table = Domain(INTEGER, 0, 120, source="indexes 'emb' (120 rows)")
    with pytest.raises(UsageError) as caught:
        stated_domain("input_ids", "int64", 0, 30522, table, "m.pt2")
    message = caught.value.one_line()
    assert "0:30522" in message and "int [0, 120)" in message and "'emb' (120 rows)" in message


def test_a_guessed_domain_gives_way_to_a_stated_one():
    mask = default_domain("attention_mask", "int64")  # 0/1 by its name: a guess, not the model's table
    assert stated_domain("attention_mask", "int64", 0, 3, mask, "m.pt2").high == 3


def test_stated_range_checks_dtype():
    with pytest.raises(UsageError, match="integer bounds"):
        stated_domain("ids", "int32", 0.5, 3, None, "m")
    with pytest.raises(UsageError, match="does not fit"):
        stated_domain("ids", "int8", 0, 1000, None, "m")
    assert stated_domain("x", "float32", -1, 1, None, "m") == Domain(REAL, -1.0, 1.0, source=STATED)


def test_with_domains_precedence_and_unknown_names():
    found = {"input_ids": Domain(INTEGER, 0, 120, source="indexes 'emb' (120 rows)")}
    hint = IOSpec((TensorSpec("input_ids", (1, 16), "int64", domain=Domain(INTEGER, 0, 7, source="sidecar")),))
    spec = with_domains(IOSpec((IDS, MASK)), found, hint=hint)
    assert spec.inputs[0].domain.high == 120  # the graph wins over the sidecar
    assert spec.inputs[1].domain.high == 2 and "mask" in spec.inputs[1].domain.source
    assert with_domains(IOSpec((IDS,)), {}, hint=hint).inputs[0].domain.high == 7
    with pytest.raises(UsageError, match="unknown input"):
        with_domains(IOSpec((IDS,)), {}, ranges={"ids": (0, 3)}, origin="m")
    with pytest.raises(UsageError, match="needs a name"):
        with_domains(IOSpec((IDS, MASK)), {}, ranges={"*": (0, 3)}, origin="m")


def test_example_feeds_respect_domains():
    spec = with_domains(IOSpec((IDS, MASK, tensor("x", (1, 4), "float32"))),
                        {"input_ids": Domain(INTEGER, 0, 120, source="t")})
    for seed in range(5):
        feeds = example_feeds(spec, seed=seed)
        assert feeds["input_ids"].dtype == np.int64
        assert 0 <= feeds["input_ids"].min() and feeds["input_ids"].max() < 120
        assert set(np.unique(feeds["attention_mask"])) <= {0, 1}
    unknown = example_feeds(IOSpec((tensor("n", (1, 64), "int32"),)))["n"]
    assert set(np.unique(unknown)) <= {0, 1}  # nothing shown: the range every table and mask accepts
    bounded = with_domains(IOSpec((tensor("x", (1, 100), "float32"),)), {}, ranges={"x": (2.0, 3.0)})
    values = example_feeds(bounded)["x"]
    assert values.min() >= 2.0 and values.max() <= 3.0


def test_cast_checked_narrows_and_refuses_wrapping():
    ids = np.array([[0, 5, 2**31 - 1]], dtype=np.int64)
    assert cast_checked(ids, "int32", name="ids", origin="f").dtype == np.int32
    with pytest.raises(InvalidInputError, match="do not fit"):
        cast_checked(np.array([2**31], dtype=np.int64), "int32", name="ids", origin="f")
    with pytest.raises(InvalidInputError, match="never casts across kinds"):
        cast_checked(np.array([0.5]), "int32", name="ids", origin="f")
    assert cast_checked(np.array([0, 1]), "bool", name="m", origin="f").dtype == np.bool_


def test_dtype_adaptations_by_position():
    source = IOSpec((IDS, MASK), (tensor("logits", (1, 3), "float32"),))
    target = IOSpec((tensor("args_0", (1, 16), "int32"), tensor("args_1", (1, 16), "int32")),
                    (tensor("output_0", (1, 3), "float32"),))
    assert dtype_adaptations(source, target) == ["input args_0: int64 → int32 (range-checked)",
                                                 "input args_1: int64 → int32 (range-checked)"]


def _two_inputs() -> IOSpec:
    ids = TensorSpec("input_ids", (1, 16), "int32", domain=Domain(INTEGER, 0, 120, source="indexes 'e' (120 rows)"))
    return IOSpec((ids, tensor("features", ("batch", 4), "float32")))


def test_named_feeds_reads_one_array_per_input(tmp_path):
    path = tmp_path / "inputs.npz"
    np.savez(path, input_ids=np.arange(5 * 16, dtype=np.int64).reshape(5, 16) % 120,
             features=np.ones((5, 4), np.float64), labels=np.arange(5))
    found = named_feeds(path, _two_inputs(), limit=3)
    assert len(found.feeds) == 3 and found.labels.tolist() == [0, 1, 2]
    assert found.feeds[0]["input_ids"].shape == (1, 16) and found.feeds[0]["input_ids"].dtype == np.int32
    assert found.feeds[0]["features"].dtype == np.float32
    assert "input_ids: int64 → int32 (range-checked)" in found.adaptations


@pytest.mark.parametrize(("arrays", "message"), [
    ({"input_ids": np.zeros((4, 16), np.int64)}, "no array for input(s) features"),
    ({"input_ids": np.zeros((4, 16)), "features": np.zeros((4, 4))}, "is float64; input 'input_ids' takes int32"),
    ({"input_ids": np.zeros((4, 8), np.int64), "features": np.zeros((4, 4))}, "samples of shape [8]"),
    ({"input_ids": np.zeros((4, 16), np.int64), "features": np.zeros((3, 4))}, "different sample counts"),
    ({"input_ids": np.full((4, 16), 130), "features": np.zeros((4, 4))}, "outside its domain int [0, 120)"),
    ({"input_ids": np.zeros((4, 16), np.int64), "features": np.zeros((4, 4)), "labels": np.zeros(3, int)},
     "labels has shape [3]"),
])
def test_named_feeds_errors_name_the_array(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InvalidInputError) as caught:
        named_feeds(path, _two_inputs(), limit=10)
    assert message in caught.value.one_line() and "bad.npz" in caught.value.one_line()
    assert caught.value.exit_code == 3


def test_named_feeds_too_few_samples(tmp_path):
    path = tmp_path / "few.npz"
    np.savez(path, input_ids=np.zeros((2, 16), np.int64), features=np.zeros((2, 4)))
    with pytest.raises(InvalidInputError, match="2 samples; calibration needs at least 5"):
        named_feeds(path, _two_inputs(), limit=10, minimum=5, purpose="calibration")
