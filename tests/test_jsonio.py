"""Strict JSON writing and typed reading of non-finite floats (pure logic)."""

import json
import math
from dataclasses import dataclass

import pytest
from conftest import strict_json

from edgekit.toolkit import jsonio


@dataclass
class Record:
    name: str
    value: float
    bound: float | None
    spread: tuple[float, ...]


def test_non_finite_floats_become_strings_and_the_rest_is_untouched():
    text = jsonio.dumps({"a": math.inf, "b": [-math.inf, math.nan, 1.5], "c": {"d": (2, "x")}, "e": None})
    assert strict_json(text) == {"a": "Infinity", "b": ["-Infinity", "NaN", 1.5], "c": {"d": [2, "x"]}, "e": None}
    assert json.loads(jsonio.dumps({"x": 0.1})) == {"x": 0.1}


def test_revive_only_touches_float_fields():
    data = strict_json(jsonio.dumps({"name": "NaN", "value": math.inf, "bound": None,
                                     "spread": (0.0, math.inf)}))
    record = Record(**jsonio.revive(Record, data))
    assert record.name == "NaN" and record.value == math.inf and record.bound is None
    assert record.spread == [0.0, math.inf]
    assert math.isnan(jsonio.revive(Record, {"value": "NaN"})["value"])


def test_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError):
        jsonio.dumps({"x": object()})
