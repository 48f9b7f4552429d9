"""Property test of config validation, through the API served in-process (`app_client`).

Hypothesis builds config dicts that mix valid and invalid values for every ConfigFields
field (wrong types, NaN/±Infinity written as raw JSON tokens, huge ints, unknown fields,
bad nested layers) and POSTs them as raw JSON text. The property:

  * 201, and then one /step answers 200 at epoch 1 (the session is deleted afterwards), or
  * a 4xx whose JSON names the offending field: `field` is non-empty and its first part
    is a key of the request or the name of a server limit;
  * never a 5xx, never anything else.

Valid sizes are kept modest (≤ 3 layers of ≤ 16 units, ≤ 800 points) so one /step stays
quick; oversized values are generated as the invalid side of each limit.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.data import DATASETS
from app.data.features import FEATURES
from app.nn import HIDDEN_ACTIVATIONS, INITS, OPTIMIZERS, REGULARIZATIONS, SCHEDULES
from app.schema import ConfigFields

LIMIT_FIELDS = {"max_sessions", "max_points", "max_units", "max_hidden_layers", "body"}

junk = st.one_of(
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
huge_int = st.sampled_from([2**31, 2**32, 2**53 + 1, 2**64, -(2**63), 10**30])


def bad_int(bad: list[int]):
    return st.one_of(st.sampled_from(bad), huge_int, st.sampled_from([2.5, 3.0, 1e-3, 1.5e10]), non_finite, junk)


def bad_float(bad: list[float]):
    return st.one_of(st.sampled_from(bad), non_finite, huge_int, junk)


def bad_choice():
    return st.one_of(st.text(max_size=10), st.integers(-2, 2), junk)


valid_layer = st.fixed_dictionaries(
    {"units": st.integers(1, 16)}, optional={"activation": st.sampled_from(HIDDEN_ACTIVATIONS)}
)
bad_layer = st.one_of(
    st.fixed_dictionaries({"units": bad_int([0, -1, 257, 100_000])}),
    st.fixed_dictionaries({"units": st.integers(1, 4), "activation": bad_choice()}),
    st.fixed_dictionaries({"units": st.integers(1, 4), "bias": st.just(1)}),
    st.integers(1, 4),
    junk,
)

# field: (valid values, invalid values); valid sizes stay small so one /step is quick.
FIELDS = {
    "dataset": (st.sampled_from(list(DATASETS)), st.one_of(st.just("custom"), bad_choice())),
    "problem": (st.sampled_from(["classification", "regression"]), bad_choice()),
    "classes": (st.integers(2, 10), bad_int([0, 1, 11])),
    "n_points": (st.integers(4, 800), bad_int([0, 3, 5001, 100_000])),
    "noise": (st.floats(0.0, 0.5), bad_float([-0.1, 0.51])),
    "train_fraction": (st.floats(0.1, 0.9), bad_float([0.0, 0.05, 0.95, 1.0])),
    "batch_size": (st.integers(1, 800), bad_int([0, -5])),
    "hidden_layers": (
        st.lists(valid_layer, max_size=3),
        st.one_of(
            st.lists(bad_layer, min_size=1, max_size=2), st.lists(st.just({"units": 2}), min_size=9, max_size=10), junk
        ),
    ),
    "learning_rate": (st.floats(1e-4, 3.0), bad_float([0.0, -0.1, 100.5, 1e300])),
    "seed": (st.integers(0, 2**32 - 1), bad_int([-1, 2**32])),
    "data_seed": (st.integers(0, 2**32 - 1), bad_int([-1, 2**32])),
    "features": (
        st.lists(st.sampled_from(list(FEATURES)), min_size=1, max_size=4, unique=True),
        st.one_of(st.just([]), st.just(["x1", "x1"]), st.lists(st.text(max_size=5), min_size=1, max_size=2), junk),
    ),
    "optimizer": (st.sampled_from(list(OPTIMIZERS)), bad_choice()),
    "regularization": (st.sampled_from(REGULARIZATIONS), bad_choice()),
    "regularization_rate": (st.floats(0.0, 10.0), bad_float([-1.0, 10.5])),
    "init": (st.sampled_from(INITS), bad_choice()),
    "epochs_per_frame": (st.integers(1, 1000), bad_int([0, 1001])),
    "lr_schedule": (st.sampled_from(SCHEDULES), bad_choice()),
    "lr_period": (st.integers(1, 100_000), bad_int([0, 100_001])),
}
assert set(FIELDS) == set(ConfigFields.model_fields), "a config field has no generator"

unknown_key = st.one_of(
    st.sampled_from(["hidden", "learningRate", "lr", "snapshot_id", "__proto__", "units"]),
    st.text(min_size=1, max_size=12),
).filter(lambda k: k not in FIELDS and k != "snapshot")


@st.composite
def configs(draw) -> dict:
    """Some fields with valid values, then 0–2 of them (or of the others) made invalid, an
    explicit null here and there, and sometimes an unknown field."""
    names = sorted(FIELDS)
    given_fields = draw(st.lists(st.sampled_from(names), max_size=8, unique=True))
    config = {name: draw(FIELDS[name][0]) for name in given_fields}
    broken = draw(st.sampled_from([0, 0, 0, 1, 1, 2]))
    for name in draw(st.lists(st.sampled_from(names), min_size=broken, max_size=broken, unique=True)):
        config[name] = draw(st.one_of(FIELDS[name][1], st.none()))
    if draw(st.integers(0, 7)) == 0:
        config[draw(unknown_key)] = draw(st.one_of(st.none(), junk))
    return config


def field_is_named(field: str, config: dict) -> bool:
    head = field.split(".")[0]
    return bool(field) and (head in config or field in LIMIT_FIELDS)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(config=configs())
def test_config_is_accepted_and_trains_or_refused_naming_the_field(app_client, config):
    client = app_client
    raw = json.dumps(config, allow_nan=True)  # NaN and Infinity go out as bare tokens
    r = client.post("/api/sessions", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code < 500, (raw, r.status_code, r.text)
    event(f"status {r.status_code}" + ("" if r.status_code == 201 else f" field {r.json().get('field')}"))
    if r.status_code == 201:
        made = r.json()
        auth = {"Authorization": f"Bearer {made['control_token']}"}
        try:
            step = client.post(f"/api/sessions/{made['id']}/step", headers=auth)
            assert step.status_code == 200, (raw, step.text)
            assert step.json()["epoch"] == 1, (raw, step.json())
        finally:
            assert client.delete(f"/api/sessions/{made['id']}", headers=auth).status_code == 204
    else:
        assert 400 <= r.status_code < 500, (raw, r.status_code, r.text)
        body = r.json()
        assert isinstance(body.get("field"), str) and isinstance(body.get("message"), str), (raw, body)
        assert field_is_named(body["field"], config), (raw, body)


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"learning_rate": NaN}', "learning_rate"),
        ('{"noise": Infinity}', "noise"),
        ('{"regularization_rate": -Infinity}', "regularization_rate"),
        ('{"seed": 100000000000000000000000000000}', "seed"),
        ('{"hidden_layers": [{"units": 1e400}]}', "hidden_layers"),
        ('{"n_points": 5001}', "n_points"),
        ('{"hidden_layers": [{"units": 257}]}', "hidden_layers"),
    ],
)
def test_fixed_nasty_configs_name_their_field(app_client, raw, field):
    """Explicit regression cases for what the property above may or may not have drawn."""
    client = app_client
    r = client.post("/api/sessions", content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, (raw, r.status_code, r.text)
    assert r.json()["field"].split(".")[0] == field, r.json()
