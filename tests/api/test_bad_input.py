"""Bad input of every kind gets a 4xx (never a 5xx) whose JSON names the field and the reason.

One table of bodies is sent both to POST /api/sessions and to PATCH /api/sessions/{id}
(with the right token); a refused PATCH must leave the session's config as it was.
"""

from __future__ import annotations

import json

import pytest

JSON = {"content-type": "application/json"}


def layers(n: int, units=4, activation="tanh") -> list[dict]:
    return [{"units": units, "activation": activation} for _ in range(n)]


# (id, raw body bytes, content-type, expected status, expected field substring)
def _j(obj) -> bytes:
    return json.dumps(obj).encode()


BODIES = [
    ("units-0", _j({"hidden_layers": [{"units": 0}]}), JSON, 422, "hidden_layers.0.units"),
    ("units-negative", _j({"hidden_layers": [{"units": -1}]}), JSON, 422, "hidden_layers.0.units"),
    ("units-million", _j({"hidden_layers": [{"units": 10**6}]}), JSON, 422, "hidden_layers.0.units"),
    (
        "units-257-second-layer",
        _j({"hidden_layers": [{"units": 2}, {"units": 257}]}),
        JSON,
        422,
        "hidden_layers.1.units",
    ),
    ("nine-layers", _j({"hidden_layers": layers(9)}), JSON, 422, "hidden_layers"),
    (
        "unknown-activation",
        _j({"hidden_layers": [{"units": 4, "activation": "wobble"}]}),
        JSON,
        422,
        "hidden_layers.0.activation",
    ),
    ("units-string", _j({"hidden_layers": [{"units": "4"}]}), JSON, 422, "hidden_layers.0.units"),
    ("units-float", _j({"hidden_layers": [{"units": 4.5}]}), JSON, 422, "hidden_layers.0.units"),
    ("units-bool", _j({"hidden_layers": [{"units": True}]}), JSON, 422, "hidden_layers.0.units"),
    ("layer-extra-key", _j({"hidden_layers": [{"units": 4, "dropout": 0.5}]}), JSON, 422, "hidden_layers.0.dropout"),
    ("hidden-not-list", _j({"hidden_layers": 4}), JSON, 422, "hidden_layers"),
    ("lr-0", _j({"learning_rate": 0}), JSON, 422, "learning_rate"),
    ("lr-negative", _j({"learning_rate": -1}), JSON, 422, "learning_rate"),
    ("lr-NaN", b'{"learning_rate": NaN}', JSON, 422, "learning_rate"),
    ("lr-Infinity", b'{"learning_rate": Infinity}', JSON, 422, "learning_rate"),
    ("lr-1e999", b'{"learning_rate": 1e999}', JSON, 422, "learning_rate"),
    ("lr-string", _j({"learning_rate": "abc"}), JSON, 422, "learning_rate"),
    ("noise-0.6", _j({"noise": 0.6}), JSON, 422, "noise"),
    ("train-fraction-0.05", _j({"train_fraction": 0.05}), JSON, 422, "train_fraction"),
    ("train-fraction-0.95", _j({"train_fraction": 0.95}), JSON, 422, "train_fraction"),
    ("batch-size-0", _j({"batch_size": 0}), JSON, 422, "batch_size"),
    ("unknown-dataset", _j({"dataset": "mnist-but-bigger"}), JSON, 422, "dataset"),
    ("extra-field", _j({"colour": "blue"}), JSON, 422, "colour"),
    ("xor-7-classes", _j({"dataset": "xor", "classes": 7}), JSON, 422, "classes"),
    ("features-unknown", _j({"features": ["x9"]}), JSON, 422, "features"),
    ("features-empty", _j({"features": []}), JSON, 422, "features"),
    ("epochs-per-frame-0", _j({"epochs_per_frame": 0}), JSON, 422, "epochs_per_frame"),
    ("epochs-per-frame-1001", _j({"epochs_per_frame": 1001}), JSON, 422, "epochs_per_frame"),
    ("seed-negative", _j({"seed": -1}), JSON, 422, "seed"),
    ("n-points-over-limit", _j({"n_points": 10**6}), JSON, 422, "n_points"),
    ("fewer-points-than-classes", _j({"dataset": "gauss", "classes": 5, "n_points": 4}), JSON, 422, "n_points"),
    ("digits-4-points", _j({"dataset": "digits", "n_points": 4}), JSON, 422, "n_points"),
    ("optimizer-unknown", _j({"optimizer": "rmsprop-ish"}), JSON, 422, "optimizer"),
    ("malformed-json", b"{bad", JSON, 422, "body"),
    ("json-array", b"[1, 2, 3]", JSON, 422, "body"),
    ("json-string", b'"circle"', JSON, 422, "body"),
    ("garbage-text-plain", b"\x00\xffnot json at all", {"content-type": "text/plain"}, 422, "body"),
    ("three-megabytes", b'{"dataset": "' + b"x" * 3_000_000 + b'"}', JSON, 413, "body"),
]
IDS = [b[0] for b in BODIES]


@pytest.fixture(scope="module")
def shared(in_process_app):
    """One session for the tables below: every request in them is refused, so none changes it."""
    c = in_process_app.client
    r = c.post("/api/sessions", json={"seed": 99})
    assert r.status_code == 201
    body = r.json()
    auth = {"Authorization": f"Bearer {body['control_token']}"}
    yield body["id"], auth
    c.delete(f"/api/sessions/{body['id']}", headers=auth)


def assert_error(r, status: int, field: str):
    assert r.status_code == status, f"{r.status_code}: {r.text[:300]}"
    assert 400 <= r.status_code < 500
    body = r.json()
    assert field in body["field"], body
    assert isinstance(body["message"], str) and body["message"].strip(), body
    assert isinstance(body["detail"], list) and body["detail"]


@pytest.mark.parametrize("name,raw,headers,status,field", BODIES, ids=IDS)
def test_create_refuses(client, name, raw, headers, status, field):
    r = client.post("/api/sessions", content=raw, headers=headers)
    if r.status_code == 201:  # refused or not, leave no session behind
        made = r.json()
        client.delete(f"/api/sessions/{made['id']}", headers={"Authorization": f"Bearer {made['control_token']}"})
    assert_error(r, status, field)
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("name,raw,headers,status,field", BODIES, ids=IDS)
def test_patch_refuses_and_changes_nothing(client, shared, name, raw, headers, status, field):
    sid, auth = shared
    before = client.get(f"/api/sessions/{sid}").json()
    r = client.patch(f"/api/sessions/{sid}", content=raw, headers={**headers, **auth})
    assert_error(r, status, field)
    after = client.get(f"/api/sessions/{sid}").json()
    assert after["config"] == before["config"]
    assert after["loss"] == before["loss"]


def test_patch_classes_for_current_dataset(client, make_session):
    """classes 7 is refused against the session's own dataset, not only one in the same body."""
    sid, auth = make_session(dataset="xor")
    assert_error(client.patch(f"/api/sessions/{sid}", json={"classes": 7}, headers=auth), 422, "classes")


def test_patch_classes_above_points_is_refused_and_harmless(client, make_session):
    """A PATCH the worker cannot apply leaves config and data exactly as they were."""
    sid, auth = make_session(dataset="gauss", classes=3, n_points=4)
    data = client.get(f"/api/sessions/{sid}/data").json()
    assert_error(client.patch(f"/api/sessions/{sid}", json={"classes": 5}, headers=auth), 422, "n_points")
    assert client.get(f"/api/sessions/{sid}").json()["config"]["classes"] == 3
    assert client.get(f"/api/sessions/{sid}/data").json() == data


def test_patch_without_body(client, make_session):
    sid, auth = make_session()
    r = client.patch(f"/api/sessions/{sid}", headers={**JSON, **auth})
    assert_error(r, 422, "body")


# --- query parameters ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params,field",
    [
        ({"fps": 0}, "fps"),
        ({"fps": 61}, "fps"),
        ({"fps": "abc"}, "fps"),
        ({"fps": 2.5}, "fps"),
        ({"max_frames": 0}, "max_frames"),
        ({"max_frames": -3}, "max_frames"),
        ({"max_frames": "many"}, "max_frames"),
    ],
)
def test_events_bad_query(client, shared, params, field):
    sid, _ = shared
    r = client.get(f"/api/sessions/{sid}/events", params=params)
    assert_error(r, 422, field)
    assert r.headers["content-type"].startswith("application/json")
    assert client.get(f"/api/sessions/{sid}").json()["watchers"] == 0


@pytest.mark.parametrize(
    "params,field",
    [
        ({"learning_rate": "abc"}, "learning_rate"),
        ({"learning_rate": "0"}, "learning_rate"),
        ({"batch_size": "ten"}, "batch_size"),
        ({"dataset": "nope"}, "dataset"),
        ({"hidden": "4:tanh,x:relu"}, "hidden"),
        ({"hidden": "4:wobble"}, "hidden_layers.0.activation"),
        ({"hidden": "1000:tanh"}, "hidden_layers.0.units"),
    ],
)
def test_page_bad_query(client, params, field):
    r = client.get("/", params=params)
    assert_error(r, 422, field)


# --- probe and params ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body,field",
    [
        ({"x": [1.0, 2.0, 3.0]}, "x"),
        ({"x": [1.0]}, "x"),
        ({"x": []}, "x"),
        ({"x": ["a", "b"]}, "x"),
        ({"x": [1.0, 2.0], "y": 1}, "y"),
        ({}, "x"),
    ],
)
def test_probe_bad_input(client, shared, body, field):
    sid, auth = shared
    assert_error(client.put(f"/api/sessions/{sid}/probe", json=body, headers=auth), 422, field)


def test_probe_nan(client, shared):
    sid, auth = shared
    r = client.put(f"/api/sessions/{sid}/probe", content=b'{"x": [NaN, 0]}', headers={**JSON, **auth})
    assert_error(r, 422, "x")


@pytest.mark.parametrize(
    "body,field",
    [
        ({"layer": 3, "i": 0, "j": 0, "value": 1.0}, "layer"),  # default net has weight layers 0, 1, 2
        ({"layer": -1, "i": 0, "j": 0, "value": 1.0}, "layer"),
        ({"layer": 0, "i": 2, "j": 0, "value": 1.0}, "i"),  # layer 0 has 2 inputs
        ({"layer": 0, "i": -1, "j": 0, "value": 1.0}, "i"),
        ({"layer": 0, "i": 0, "j": 4, "value": 1.0}, "j"),  # layer 0 has 4 units
        ({"layer": 2, "j": 2, "value": 1.0}, "j"),  # output layer has 2 units (bias)
        ({"layer": 0, "i": 0, "j": 0, "value": 1e6}, "value"),
        ({"layer": 0, "i": 0, "j": 0}, "value"),
        ({"layer": "0", "i": 0, "j": 0, "value": 1.0}, "layer"),
        ({"layer": 0, "i": 0, "j": 0, "value": 1.0, "k": 1}, "k"),
    ],
)
def test_params_bad_input(client, shared, body, field):
    sid, auth = shared
    before = client.get(f"/api/sessions/{sid}/model").json()
    assert_error(client.post(f"/api/sessions/{sid}/params", json=body, headers=auth), 422, field)
    assert client.get(f"/api/sessions/{sid}/model").json() == before


def test_unknown_path_is_json_404(client):
    r = client.get("/api/nothing-here")
    assert_error(r, 404, "path")


def test_wrong_method_is_4xx(client, shared):
    sid, _ = shared
    r = client.put(f"/api/sessions/{sid}/play")
    assert r.status_code == 405
    assert r.json()["message"]


# --- fewer points than classes: refused by name, and a refused PATCH changes nothing -----------------
@pytest.mark.parametrize(
    "body",
    [{"dataset": "gauss", "classes": 5, "n_points": 4}, {"dataset": "digits", "n_points": 4}],
    ids=["gauss-5-classes", "digits"],
)
def test_create_with_fewer_points_than_classes(client, body):
    r = client.post("/api/sessions", json=body)
    if r.status_code == 201:
        made = r.json()
        client.delete(f"/api/sessions/{made['id']}", headers={"Authorization": f"Bearer {made['control_token']}"})
    assert r.status_code == 422, f"{r.status_code}: {r.text[:300]}"
    assert r.json()["field"] in ("n_points", "classes")
    assert r.json()["message"]
