"""The HTTP API, in-process (tests/api/conftest.py): every endpoint, its status codes and its values.

The exactness test recomputes the gradient of the mean cross-entropy with NumPy from what
/model and /data return, so it checks the contract's key promise end to end.
"""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pytest

from tests.support.sse import parse_sse
from tests.support.waiting import wait_until

URLSAFE = re.compile(r"^[A-Za-z0-9_-]+$")
CONTROL_OPS = ["play", "pause", "step", "reset"]


# --- helpers ---------------------------------------------------------------------------------
def status(client, sid) -> dict:
    r = client.get(f"/api/sessions/{sid}")
    assert r.status_code == 200, r.text
    return r.json()


def model(client, sid) -> dict:
    r = client.get(f"/api/sessions/{sid}/model")
    assert r.status_code == 200, r.text
    return r.json()


def data(client, sid) -> dict:
    r = client.get(f"/api/sessions/{sid}/data")
    assert r.status_code == 200, r.text
    return r.json()


def first_frame(client, sid) -> dict:
    """One frame from the stream (max_frames=1 closes it, so a plain GET reads it all)."""
    r = client.get(f"/api/sessions/{sid}/events", params={"max_frames": 1}, timeout=10)
    assert r.status_code == 200
    frames = [
        json.loads(e["data"], parse_constant=lambda c: pytest.fail(f"{c} in a frame"))
        for e in parse_sse(r.text.splitlines())
        if e.get("event") == "frame"
    ]
    assert len(frames) == 1, r.text[:500]
    return frames[0]


def control(client, sid, op, auth, **kw):
    if op == "patch":
        return client.patch(f"/api/sessions/{sid}", json={"learning_rate": 0.1}, headers=auth, **kw)
    if op == "delete":
        return client.delete(f"/api/sessions/{sid}", headers=auth, **kw)
    return client.post(f"/api/sessions/{sid}/{op}", headers=auth, **kw)


def assert_error(r, status_code: int, field: str):
    assert r.status_code == status_code, r.text
    body = r.json()
    assert field in body["field"], body
    assert isinstance(body["message"], str) and body["message"].strip()
    assert isinstance(body["detail"], list) and body["detail"]


# --- meta ---------------------------------------------------------------------------------------
def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["database"] == {"ok": True}
    assert body["workers"] and all(w["alive"] and w["live"] for w in body["workers"])


def test_openapi_and_docs(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/api/sessions" in paths and "/api/sessions/{sid}/events" in paths
    r = client.get("/docs")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]


@pytest.mark.parametrize("path", ["/", "/api/sessions/nope", "/healthz"])
def test_security_headers(client, path):
    r = client.get(path)
    csp = r.headers.get("content-security-policy", "")
    assert "frame-ancestors 'self'" in csp
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert r.headers.get("referrer-policy")


def test_security_headers_on_created_session(client):
    r = client.post("/api/sessions", json={})
    assert r.status_code == 201
    body = r.json()
    client.delete(f"/api/sessions/{body['id']}", headers={"Authorization": f"Bearer {body['control_token']}"})
    assert "frame-ancestors 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


# --- pages ------------------------------------------------------------------------------------------
def test_index_page(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<svg" in r.text


def test_index_page_with_hidden_query(client):
    r = client.get("/", params={"hidden": "4:tanh,2:tanh"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<svg" in r.text


def test_watch_page_has_no_token(client):
    r = client.post("/api/sessions", json={})
    body = r.json()
    sid, token = body["id"], body["control_token"]
    try:
        page = client.get(f"/s/{sid}")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert sid in page.text
        assert token not in page.text
        assert "<svg" in page.text
    finally:
        client.delete(f"/api/sessions/{sid}", headers={"Authorization": f"Bearer {token}"})


def test_watch_page_unknown_session(client):
    r = client.get("/s/does-not-exist")
    assert_error(r, 404, "id")


# --- create -------------------------------------------------------------------------------------------
def _create(client, **kw):
    r = client.post("/api/sessions", **kw)
    assert r.status_code == 201, r.text
    body = r.json()
    client.delete(f"/api/sessions/{body['id']}", headers={"Authorization": f"Bearer {body['control_token']}"})
    return body


def test_create_defaults(client):
    body = _create(client, json={})
    cfg = body["config"]
    assert cfg["dataset"] == "circle"
    assert cfg["problem"] == "classification"
    assert cfg["classes"] == 2
    assert cfg["n_points"] == 500
    assert cfg["hidden_layers"] == [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "tanh"}]
    assert cfg["learning_rate"] == 0.03
    assert cfg["batch_size"] == 10
    assert cfg["train_fraction"] == 0.5
    assert cfg["features"] == ["x1", "x2"]
    assert cfg["optimizer"] == "sgd"
    assert cfg["regularization"] == "none"
    assert cfg["epochs_per_frame"] == 1
    assert isinstance(cfg["seed"], int) and cfg["seed"] >= 0
    assert body["watch_url"].endswith(f"/s/{body['id']}")
    assert body["watch_url"].startswith("http")


@pytest.mark.parametrize("kw", [{"content": b""}, {"json": {}}], ids=["empty-body", "empty-object"])
def test_create_with_empty_body(client, kw):
    body = _create(client, **kw)
    assert body["config"]["dataset"] == "circle"
    assert body["id"] and body["control_token"]


def test_ids_and_tokens_are_random_and_distinct(client):
    bodies = [_create(client, json={}) for _ in range(5)]
    ids = [b["id"] for b in bodies]
    tokens = [b["control_token"] for b in bodies]
    for value in ids + tokens:
        assert URLSAFE.match(value), value
        assert len(value) >= 22  # 22 url-safe base64 characters carry 132 bits
    assert len(set(ids)) == len(ids)
    assert len(set(tokens)) == len(tokens)
    assert not set(ids) & set(tokens)


def test_seed_is_kept_or_chosen(client):
    assert _create(client, json={"seed": 4242})["config"]["seed"] == 4242
    chosen = [_create(client, json={})["config"]["seed"] for _ in range(3)]
    assert all(isinstance(s, int) for s in chosen)
    assert len(set(chosen)) > 1  # chosen at random, not a constant


def test_same_seed_same_data_and_weights(client, make_session):
    cfg = {"seed": 777, "dataset": "spiral", "noise": 0.2, "hidden_layers": [{"units": 5, "activation": "relu"}]}
    a, _ = make_session(**cfg)
    b, _ = make_session(**cfg)
    c, _ = make_session(**{**cfg, "seed": 778})
    assert data(client, a) == data(client, b)
    assert model(client, a) == model(client, b)
    assert data(client, a) != data(client, c)
    assert model(client, a)["layers"][0]["weights"] != model(client, c)["layers"][0]["weights"]


# --- read ---------------------------------------------------------------------------------------------------
def test_read_session(client, make_session):
    sid, _ = make_session(seed=3)
    s = status(client, sid)
    assert s["id"] == sid
    assert s["status"] == "paused"
    assert s["epoch"] == 0 and s["step"] == 0
    for part in ("train", "test"):
        assert isinstance(s["loss"][part], float) and math.isfinite(s["loss"][part]) and s["loss"][part] > 0
        assert 0.0 <= s["accuracy"][part] <= 1.0
    assert s["config"]["seed"] == 3
    assert s["watchers"] == 0


def test_read_unknown_session(client):
    assert_error(client.get("/api/sessions/no-such-session"), 404, "id")
    assert_error(client.get("/api/sessions/no-such-session/model"), 404, "id")
    assert_error(client.get("/api/sessions/no-such-session/data"), 404, "id")


def test_model_shape(client, make_session):
    sid, _ = make_session(hidden_layers=[{"units": 3, "activation": "relu"}, {"units": 5, "activation": "sigmoid"}])
    m = model(client, sid)
    assert m["inputs"] == ["x1", "x2"]
    shapes = [np.asarray(layer["weights"]).shape for layer in m["layers"]]
    assert shapes == [(2, 3), (3, 5), (5, 2)]
    assert [len(layer["biases"]) for layer in m["layers"]] == [3, 5, 2]
    assert [layer["activation"] for layer in m["layers"]] == ["relu", "sigmoid", "softmax"]


def test_data_sizes(client, make_session):
    sid, _ = make_session()
    d = data(client, sid)
    assert len(d["train"]["x"]) == len(d["train"]["y"]) == 250
    assert len(d["test"]["x"]) == len(d["test"]["y"]) == 250
    for part in ("train", "test"):
        assert all(len(p) == 2 for p in d[part]["x"])
        assert set(d[part]["y"]) == {0, 1}
        assert all(isinstance(y, int) for y in d[part]["y"])


def test_data_sizes_follow_fraction_and_points(client, make_session):
    sid, _ = make_session(n_points=200, train_fraction=0.3)
    d = data(client, sid)
    assert len(d["train"]["y"]) == 60
    assert len(d["test"]["y"]) == 140


# --- auth ---------------------------------------------------------------------------------------------------
AUTH_OPS = CONTROL_OPS + ["patch", "delete"]


@pytest.mark.parametrize("op", AUTH_OPS)
def test_control_needs_token(client, make_session, op):
    sid, auth = make_session()
    other, other_auth = make_session()
    assert_error(control(client, sid, op, {}), 401, "authorization")
    assert_error(control(client, sid, op, {"Authorization": "Bearer wrong-token"}), 403, "authorization")
    assert_error(control(client, sid, op, other_auth), 403, "authorization")
    assert_error(control(client, sid, op, {"Authorization": "Basic xyz"}), 401, "authorization")
    assert_error(control(client, sid, op, {"Authorization": "Bearer"}), 401, "authorization")
    # None of the refused requests changed anything.
    s = status(client, sid)
    assert s["status"] == "paused" and s["epoch"] == 0
    assert s["config"]["learning_rate"] == 0.03
    # The right token works.
    r = control(client, sid, op, auth)
    assert r.status_code == (204 if op == "delete" else 200), r.text


@pytest.mark.parametrize(
    "path,method,body",
    [
        ("probe", "PUT", {"x": [0.0, 0.0]}),
        ("params", "POST", {"layer": 0, "i": 0, "j": 0, "value": 1.0}),
        ("regenerate", "POST", None),
    ],
)
def test_other_writes_need_token(client, make_session, path, method, body):
    sid, _ = make_session()
    _, other_auth = make_session()
    before = model(client, sid), data(client, sid)
    url = f"/api/sessions/{sid}/{path}"
    assert_error(client.request(method, url, json=body), 401, "authorization")
    assert_error(client.request(method, url, json=body, headers=other_auth), 403, "authorization")
    assert (model(client, sid), data(client, sid)) == before


# --- control ------------------------------------------------------------------------------------------------------
def test_step_is_one_epoch(client, make_session):
    sid, auth = make_session(batch_size=7)
    r = client.post(f"/api/sessions/{sid}/step", headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert body["epoch"] == 1
    assert body["step"] == math.ceil(250 / 7) == 36
    assert body["status"] == "paused"
    s = status(client, sid)
    assert (s["epoch"], s["step"], s["status"]) == (1, 36, "paused")
    r = client.post(f"/api/sessions/{sid}/step", headers=auth)
    assert (r.json()["epoch"], r.json()["step"]) == (2, 72)


def test_step_while_running_pauses(client, make_session):
    sid, auth = make_session()
    client.post(f"/api/sessions/{sid}/play", headers=auth)
    assert wait_until(lambda: status(client, sid)["epoch"] >= 2, 10)
    r = client.post(f"/api/sessions/{sid}/step", headers=auth)
    assert r.status_code == 200
    assert r.json()["status"] == "paused"
    epoch = r.json()["epoch"]
    time.sleep(0.5)
    s = status(client, sid)
    assert (s["status"], s["epoch"]) == ("paused", epoch)


def _softmax_ce_grads(m: dict, x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """∇ of mean cross-entropy(softmax(a_L), y) for a = tanh(x @ W + b) hidden layers."""
    Ws = [np.asarray(layer["weights"], dtype=float) for layer in m["layers"]]
    bs = [np.asarray(layer["biases"], dtype=float) for layer in m["layers"]]
    acts = [x]
    for W, b in zip(Ws[:-1], bs[:-1]):
        acts.append(np.tanh(acts[-1] @ W + b))
    z = acts[-1] @ Ws[-1] + bs[-1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    delta = p.copy()
    delta[np.arange(n), y] -= 1.0
    delta /= n
    grads = []
    for l in range(len(Ws) - 1, -1, -1):
        grads.append((acts[l].T @ delta, delta.sum(axis=0)))
        if l > 0:
            delta = (delta @ Ws[l].T) * (1.0 - acts[l] ** 2)
    return grads[::-1]


@pytest.mark.parametrize(
    "lr,hidden",
    [
        (0.03, [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "tanh"}]),
        (0.5, [{"units": 3, "activation": "tanh"}]),
    ],
)
def test_full_batch_step_is_exact_gradient_descent(client, make_session, lr, hidden):
    sid, auth = make_session(
        seed=11,
        batch_size=10000,
        optimizer="sgd",
        regularization="none",
        learning_rate=lr,
        hidden_layers=hidden,
        noise=0.1,
    )
    before = model(client, sid)
    d = data(client, sid)
    r = client.post(f"/api/sessions/{sid}/step", headers=auth)
    assert r.status_code == 200
    assert r.json()["step"] == 1  # one full-batch update
    after = model(client, sid)

    x = np.asarray(d["train"]["x"], dtype=float)
    y = np.asarray(d["train"]["y"], dtype=int)
    grads = _softmax_ce_grads(before, x, y)
    moved = 0.0
    for lb, la, (gW, gb) in zip(before["layers"], after["layers"], grads):
        W0, W1 = np.asarray(lb["weights"]), np.asarray(la["weights"])
        b0, b1 = np.asarray(lb["biases"]), np.asarray(la["biases"])
        np.testing.assert_allclose(W1 - W0, -lr * gW, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(b1 - b0, -lr * gb, rtol=1e-9, atol=1e-15)
        moved += float(np.abs(W1 - W0).sum())
    assert moved > 1e-4  # the step really moved the weights

    # The reported training loss is the mean cross-entropy of the new weights.
    Ws = [np.asarray(layer["weights"]) for layer in after["layers"]]
    bs = [np.asarray(layer["biases"]) for layer in after["layers"]]
    a = x
    for W, b in zip(Ws[:-1], bs[:-1]):
        a = np.tanh(a @ W + b)
    z = a @ Ws[-1] + bs[-1]
    z -= z.max(axis=1, keepdims=True)
    loss = float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))
    assert status(client, sid)["loss"]["train"] == pytest.approx(loss, rel=1e-9)


def test_play_pause_reset(client, make_session):
    sid, auth = make_session(seed=5)
    initial = model(client, sid)
    r = client.post(f"/api/sessions/{sid}/play", headers=auth)
    assert r.status_code == 200
    assert r.json()["status"] == "running"
    s = wait_until(lambda: (lambda s: s if s["epoch"] >= 3 else None)(status(client, sid)), 10)
    assert s and s["epoch"] >= 3 and s["status"] == "running"

    r = client.post(f"/api/sessions/{sid}/pause", headers=auth)
    assert r.status_code == 200
    assert r.json()["status"] == "paused"
    e1 = status(client, sid)["epoch"]
    time.sleep(0.5)
    s = status(client, sid)
    assert s["epoch"] == e1 and s["status"] == "paused"
    assert model(client, sid) != initial

    r = client.post(f"/api/sessions/{sid}/reset", headers=auth)
    assert r.status_code == 200
    assert (r.json()["epoch"], r.json()["step"], r.json()["status"]) == (0, 0, "paused")
    assert model(client, sid) == initial


def test_reset_keeps_data(client, make_session):
    sid, auth = make_session(seed=8)
    d = data(client, sid)
    client.post(f"/api/sessions/{sid}/step", headers=auth)
    client.post(f"/api/sessions/{sid}/reset", headers=auth)
    assert data(client, sid) == d


def test_divergence_is_reported_and_recoverable(client, make_session):
    # Full-batch regression with a huge learning rate: the weights grow ~10⁴× per epoch and overflow.
    # Diverges within a few epochs: the weights overflow to inf, then the loss turns NaN.
    sid, auth = make_session(dataset="reg-plane", learning_rate=100, batch_size=10000, seed=3)
    client.post(f"/api/sessions/{sid}/play", headers=auth)
    s = wait_until(lambda: (lambda s: s if s["status"] == "diverged" else None)(status(client, sid)), 20)
    assert s, "the network did not diverge"
    assert s["message"]
    assert s["loss"]["train"] is None or math.isfinite(s["loss"]["train"])
    r = client.get(f"/api/sessions/{sid}/model")
    json.loads(r.text, parse_constant=lambda c: pytest.fail(f"{c} in /model"))
    frame = first_frame(client, sid)  # parsed strictly: NaN/Infinity would fail
    assert frame["status"] == "diverged"
    assert_error(client.post(f"/api/sessions/{sid}/step", headers=auth), 409, "status")
    assert_error(client.post(f"/api/sessions/{sid}/play", headers=auth), 409, "status")
    r = client.post(f"/api/sessions/{sid}/reset", headers=auth)
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["epoch"]) == ("paused", 0)
    assert client.post(f"/api/sessions/{sid}/step", headers=auth).status_code == 200


# --- PATCH -----------------------------------------------------------------------------------------------------------
def test_patch_hidden_layers_rebuilds_network(client, make_session):
    sid, auth = make_session()
    d = data(client, sid)
    layers = [
        {"units": 3, "activation": "relu"},
        {"units": 6, "activation": "tanh"},
        {"units": 2, "activation": "tanh"},
    ]
    r = client.patch(f"/api/sessions/{sid}", json={"hidden_layers": layers}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "network" in body["rebuilt"]
    assert "data" not in body["rebuilt"]
    assert body["config"]["hidden_layers"] == layers
    assert status(client, sid)["config"]["hidden_layers"] == layers
    m = model(client, sid)
    assert [np.asarray(layer["weights"]).shape for layer in m["layers"]] == [(2, 3), (3, 6), (6, 2), (2, 2)]
    assert [layer["activation"] for layer in m["layers"]] == ["relu", "tanh", "tanh", "softmax"]
    assert data(client, sid) == d


def test_patch_learning_rate_rebuilds_nothing(client, make_session):
    sid, auth = make_session()
    m, d = model(client, sid), data(client, sid)
    r = client.patch(f"/api/sessions/{sid}", json={"learning_rate": 0.3}, headers=auth)
    assert r.status_code == 200
    assert r.json()["rebuilt"] == []
    assert r.json()["config"]["learning_rate"] == 0.3
    assert status(client, sid)["config"]["learning_rate"] == 0.3
    assert model(client, sid) == m and data(client, sid) == d


def test_patch_noise_rebuilds_data(client, make_session):
    sid, auth = make_session()
    d = data(client, sid)
    r = client.patch(f"/api/sessions/{sid}", json={"noise": 0.3}, headers=auth)
    assert r.status_code == 200
    assert "data" in r.json()["rebuilt"]
    assert r.json()["config"]["noise"] == 0.3
    assert data(client, sid) != d


def test_patch_dataset(client, make_session):
    sid, auth = make_session()
    d = data(client, sid)
    r = client.patch(f"/api/sessions/{sid}", json={"dataset": "xor"}, headers=auth)
    assert r.status_code == 200
    assert "data" in r.json()["rebuilt"]
    assert status(client, sid)["config"]["dataset"] == "xor"
    d2 = data(client, sid)
    assert d2 != d
    # XOR: the class is the sign of x1·x2 (same signs → one class, different → the other).
    x = np.asarray(d2["train"]["x"])
    y = np.asarray(d2["train"]["y"])
    sign = (x[:, 0] * x[:, 1] > 0).astype(int)
    agreement = np.mean(sign == y)
    assert agreement > 0.95 or agreement < 0.05


def test_patch_while_running_keeps_running(client, make_session):
    sid, auth = make_session()
    client.post(f"/api/sessions/{sid}/play", headers=auth)
    r = client.patch(f"/api/sessions/{sid}", json={"learning_rate": 0.1, "hidden_layers": [{"units": 5}]}, headers=auth)
    assert r.status_code == 200
    assert r.json()["status"] == "running"
    e1 = r.json()["epoch"]
    s = wait_until(lambda: (lambda s: s if s["epoch"] >= e1 + 3 else None)(status(client, sid)), 10)
    assert s and s["status"] == "running" and s["epoch"] >= e1 + 3
    client.post(f"/api/sessions/{sid}/pause", headers=auth)


def test_patch_empty_object_changes_nothing(client, make_session):
    sid, auth = make_session()
    before = status(client, sid)
    r = client.patch(f"/api/sessions/{sid}", json={}, headers=auth)
    assert r.status_code == 200
    assert r.json()["rebuilt"] == []
    assert r.json()["config"] == before["config"]


# --- DELETE ----------------------------------------------------------------------------------------------------------
def test_delete(client):
    r = client.post("/api/sessions", json={})
    sid = r.json()["id"]
    auth = {"Authorization": f"Bearer {r.json()['control_token']}"}
    r = client.delete(f"/api/sessions/{sid}", headers=auth)
    assert r.status_code == 204
    assert r.content == b""
    assert_error(client.get(f"/api/sessions/{sid}"), 410, "id")
    assert_error(client.get(f"/api/sessions/{sid}/model"), 410, "id")
    for op in CONTROL_OPS:
        assert_error(client.post(f"/api/sessions/{sid}/{op}", headers=auth), 410, "id")
    assert_error(client.delete(f"/api/sessions/{sid}", headers=auth), 410, "id")
    assert_error(client.get(f"/api/sessions/{sid}/events"), 410, "id")


# --- history, probe, params, regenerate ---------------------------------------------------------------------------------
def test_history(client, make_session):
    sid, auth = make_session()
    r = client.get(f"/api/sessions/{sid}/history")
    assert r.status_code == 200
    h = r.json()["history"]
    s = status(client, sid)
    assert h == [[0, s["loss"]["train"], s["loss"]["test"]]]
    client.post(f"/api/sessions/{sid}/step", headers=auth)
    client.post(f"/api/sessions/{sid}/step", headers=auth)
    h = client.get(f"/api/sessions/{sid}/history").json()["history"]
    s = status(client, sid)
    assert [row[0] for row in h] == [0, 1, 2]
    assert h[-1] == [2, s["loss"]["train"], s["loss"]["test"]]


def test_probe_snaps_to_nearest_point(client, make_session):
    sid, auth = make_session(seed=21, noise=0.2)
    d = data(client, sid)
    points = np.asarray(d["train"]["x"] + d["test"]["x"])
    target = np.array([1.234, -2.5])
    nearest = points[np.argmin(((points - target) ** 2).sum(axis=1))]
    assert not np.allclose(nearest, target)
    r = client.put(f"/api/sessions/{sid}/probe", json={"x": target.tolist()}, headers=auth)
    assert r.status_code == 200, r.text
    frame = first_frame(client, sid)
    np.testing.assert_allclose(frame["probe"]["x"], nearest, rtol=1e-3)
    np.testing.assert_allclose(frame["layers"][0]["activations"], nearest, rtol=1e-3)


def test_params_edit_weight_and_bias(client, make_session):
    sid, auth = make_session()
    before = model(client, sid)
    r = client.post(
        f"/api/sessions/{sid}/params", json={"layer": 0, "i": 1, "j": 2, "value": 0.123456789}, headers=auth
    )
    assert r.status_code == 200, r.text
    r = client.post(f"/api/sessions/{sid}/params", json={"layer": 1, "j": 1, "value": -0.5}, headers=auth)
    assert r.status_code == 200, r.text
    after = model(client, sid)
    assert after["layers"][0]["weights"][1][2] == 0.123456789
    assert after["layers"][1]["biases"][1] == -0.5
    # Everything else is as it was.
    expected = json.loads(json.dumps(before))
    expected["layers"][0]["weights"][1][2] = 0.123456789
    expected["layers"][1]["biases"][1] = -0.5
    assert after == expected
    # The loss is re-evaluated with the edited weights.
    big = client.post(f"/api/sessions/{sid}/params", json={"layer": 2, "i": 0, "j": 0, "value": 500.0}, headers=auth)
    assert big.status_code == 200
    assert big.json()["loss"]["train"] != r.json()["loss"]["train"]
    assert status(client, sid)["loss"]["train"] == big.json()["loss"]["train"]


def test_regenerate_new_data_same_weights(client, make_session):
    sid, auth = make_session(noise=0.2)
    m, d = model(client, sid), data(client, sid)
    r = client.post(f"/api/sessions/{sid}/regenerate", headers=auth)
    assert r.status_code == 200, r.text
    assert "data" in r.json()["rebuilt"]
    assert "network" not in r.json()["rebuilt"]
    d2 = data(client, sid)
    assert d2 != d
    assert len(d2["train"]["y"]) == len(d["train"]["y"])
    assert model(client, sid) == m
