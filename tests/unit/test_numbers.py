"""app/numbers.py: the rounding and JSON encoding every number leaving the server goes
through. Checked against Python's own references: round() and Decimal for the rounding,
json.dumps/json.loads for the encoding and the round trip."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import numpy as np
import pytest

from app.numbers import MAX_DECIMALS, compact_json, finite_or_none, json_safe, rounded, rounded_many

NAN, INF = float("nan"), float("inf")


def decimals_for(values, digits: int) -> int:
    """Decimal places that keep `digits` significant digits on the largest magnitude, from the
    exact decimal exponent of that float (Decimal.adjusted), not from a logarithm."""
    top = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    return digits - 1 - Decimal(top).adjusted() if top > 0 else digits


def near_half_way(x: float, d: int) -> bool:
    """x lies (almost) half-way between two multiples of 10^-d, where the multiply-rint-divide
    rounding NumPy uses may round the other way from an exact decimal rounding."""
    scaled = Decimal(x).scaleb(d)
    return abs(abs(scaled - scaled.to_integral_value(rounding="ROUND_FLOOR")) - Decimal("0.5")) < Decimal("1e-6")


def flat(nested):
    if isinstance(nested, list):
        return [v for item in nested for v in flat(item)]
    return [nested]


def random_arrays(seed: int):
    """Arrays of many magnitudes (1e-9 … 1e9) and shapes, signs mixed."""
    rng = np.random.default_rng(seed)
    for shape in [(), (1,), (7,), (3, 4), (2, 3, 2)]:
        for exponent in (-9, -4, -1, 0, 1, 3, 6, 9):
            yield rng.standard_normal(shape) * 10.0**exponent


# --- rounded ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("digits", [1, 2, 3, 4, 6])
def test_rounded_equals_python_round_to_the_decimals_of_the_largest_value(digits):
    checked = total = 0
    for a in random_arrays(seed=digits):
        out = rounded(a, digits)
        assert np.shape(out) == a.shape  # nested lists of the same shape (a float for a scalar)
        d = decimals_for(a.ravel().tolist(), digits)
        for x, r in zip(a.ravel().tolist(), flat(out)):
            total += 1
            assert isinstance(r, float)
            if near_half_way(x, d):  # either neighbour is a correct rounding there
                assert abs(r - x) <= 0.5 * 10.0**-d * (1 + 1e-9), (x, d, r)
            else:
                assert r == round(x, d), (x, d, r)
                checked += 1
    assert total > 250 and checked > 0.95 * total  # half-way cases are rare: nearly all compared exactly


@pytest.mark.parametrize("digits", [2, 3, 4])
def test_rounded_values_have_at_most_that_many_significant_digits_and_round_trip_through_json(digits):
    for a in random_arrays(seed=10 + digits):
        out = rounded(a, digits)
        d = decimals_for(a.ravel().tolist(), digits)
        for r in flat(out):
            # The shortest text of the float (what JSON carries) has no more decimals than kept:
            # rounding is what makes frames small.
            assert -Decimal(repr(r)).as_tuple().exponent <= max(d, 1), (r, d)
        assert json.loads(compact_json(out)) == out


def test_rounded_hand_worked_examples():
    assert rounded(123456.789, 4) == 123500.0  # 4 significant digits
    assert rounded(0.000123456, 3) == 0.000123
    assert rounded(3.14159, 3) == 3.14
    assert rounded([-987.654, 1.23456], 3) == [-988.0, 1.0]  # digits follow the largest magnitude, sign ignored
    assert rounded([1000.0, 0.123], 4) == [1000.0, 0.0]  # small neighbours lose what the largest does not show
    assert rounded([[1.23456, 2.5e-5], [0.5, -0.25]], 2) == [[1.2, 0.0], [0.5, -0.2]]  # -0.25 → -0.2: half to even


def test_rounded_zeros_and_empty():
    assert rounded([0.0, 0.0, 0.0], 4) == [0.0, 0.0, 0.0]
    assert rounded(0.0, 4) == 0.0
    assert rounded([], 4) == []
    assert rounded(np.zeros((2, 0)), 4) == [[], []]


def test_rounded_turns_nan_and_infinity_into_none_and_rounds_the_rest_by_the_largest_finite_value():
    assert rounded([1.0, NAN, INF, -INF], 4) == [1.0, None, None, None]
    assert rounded([[123.456, NAN], [INF, 7.891]], 3) == [[123.0, None], [None, 8.0]]
    assert rounded(NAN, 4) is None
    assert rounded(-INF, 4) is None
    assert rounded([NAN, NAN], 4) == [None, None]
    json.loads(compact_json(rounded([NAN, 2.0, INF], 3)))  # and the result is valid JSON


@pytest.mark.parametrize("tiny", [1e-310, 5e-324, 3e-301])
def test_rounded_subnormal_values_stay_finite(tiny):
    """Below 1e-300 a value rounds to 0 (at most MAX_DECIMALS places): the power of ten that
    would keep its digits is past 1e308, ∞, and gave NaN, which JSON refuses."""
    expected = round(tiny, min(3 - 1 - Decimal(tiny).adjusted(), MAX_DECIMALS))
    with np.errstate(over="raise", invalid="raise"):  # no ∞ or NaN on the way either (underflow to 0 is the point)
        out = rounded(np.array([tiny, -tiny]), 3)
        many = rounded_many([np.array([tiny]), np.ones(2)], [3, 3])
    assert out == [expected, -expected]
    assert many == [[expected], [1.0, 1.0]]
    compact_json(out)


# --- rounded_many ------------------------------------------------------------------------------
def test_rounded_many_is_rounded_bit_for_bit():
    rng = np.random.default_rng(7)
    arrays = list(random_arrays(seed=7))
    arrays += [np.array(-0.0), np.zeros(3), -np.zeros((2, 2)), np.array([1e-300, -1e150])]
    digits = [int(d) for d in rng.integers(1, 7, len(arrays))]
    together = rounded_many(arrays, digits)
    one_by_one = [rounded(a, d) for a, d in zip(arrays, digits)]
    assert len(together) == len(arrays)
    # repr tells -0.0 from 0.0 and shows every bit that matters for a float.
    assert repr(together) == repr(one_by_one)


def test_rounded_many_with_non_finite_or_empty_arrays_falls_back_to_rounded():
    arrays = [np.array([1.23456, NAN]), np.array([[2.5, 3.75]]), np.array([]), np.array(INF)]
    assert rounded_many(arrays, [3, 2, 4, 4]) == [[1.23, None], [[2.5, 3.8]], [], None]
    assert rounded_many([], []) == []


# --- finite_or_none, json_safe, compact_json ---------------------------------------------------------
def test_finite_or_none():
    assert finite_or_none(None) is None
    assert finite_or_none(NAN) is None and finite_or_none(INF) is None and finite_or_none(-INF) is None
    assert finite_or_none(np.float64(NAN)) is None
    value = finite_or_none(np.float32(1.5))
    assert value == 1.5 and type(value) is float  # a plain float, which json can encode
    assert finite_or_none(3) == 3.0 and type(finite_or_none(3)) is float


def test_json_safe_replaces_every_non_finite_float_and_leaves_the_rest():
    obj = {
        "loss": NAN,
        "acc": {"train": 0.5, "test": INF},
        "hist": [1.0, -INF, (2.0, NAN)],
        "name": "a",
        "n": 3,
        "flag": True,
        "none": None,
        "np": np.float64(NAN),
        "ok": np.float64(0.25),
    }
    safe = json_safe(obj)
    assert safe == {
        "loss": None,
        "acc": {"train": 0.5, "test": None},
        "hist": [1.0, None, [2.0, None]],
        "name": "a",
        "n": 3,
        "flag": True,
        "none": None,
        "np": None,
        "ok": 0.25,
    }
    assert (
        math.isnan(obj["loss"]) and isinstance(obj["hist"][2], tuple) and math.isnan(obj["hist"][2][1])
    )  # input unchanged
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe  # strict JSON accepts it


def test_compact_json_is_json_dumps_without_spaces_and_round_trips():
    rng = np.random.default_rng(3)
    floats = [float(x) for x in rng.standard_normal(200) * 10.0 ** rng.integers(-12, 12, 200)]
    obj = {"floats": floats, "nested": {"a": [1, 2, {"b": None}], "text": '日本語 "quoted"'}, "t": True}
    raw = compact_json(obj)
    assert isinstance(raw, bytes)
    assert raw == json.dumps(obj, separators=(",", ":")).encode()
    assert b", " not in raw and b": " not in raw
    assert json.loads(raw) == obj  # every float comes back as the same float


@pytest.mark.parametrize("bad", [NAN, INF, -INF, [1.0, NAN], {"x": INF}])
def test_compact_json_refuses_non_finite_numbers(bad):
    with pytest.raises(ValueError):
        compact_json(bad)
    assert json.loads(compact_json(json_safe(bad))) == json_safe(bad)  # after json_safe it encodes, as null


def test_rounding_huge_values_warns_of_nothing():
    """The branch np.where does not take may overflow; that must not surface as a warning
    (the suite turns warnings into errors) nor change the result."""
    with np.errstate(over="raise"):
        many = rounded_many([np.array([1e300, -2e300]), np.array([0.5])], [3, 3])
    assert many[1] == [0.5] and all(np.isfinite(many[0])) and many[0][0] > 9.9e299
