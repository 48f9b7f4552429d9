"""Teaching views through the API: probe numbers, backprop gradients, the timeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.sse import parse_sse


def forward(model, x):
    """Every layer's activation for raw inputs x (features x1, x2), recomputed from /model."""
    acts = [x]
    for layer in model["layers"]:
        z = acts[-1] @ np.array(layer["weights"]) + np.array(layer["biases"])
        if layer["activation"] == "tanh":
            a = np.tanh(z)
        elif layer["activation"] == "relu":
            a = np.maximum(z, 0)
        elif layer["activation"] == "softmax":
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            a = e / e.sum(axis=-1, keepdims=True)
        else:
            raise AssertionError(layer["activation"])
        acts.append(a)
    return acts


def frame_of(client, sid, **query) -> dict:
    """The first frame of a stream (max_frames=1 makes the server close it, so one GET reads it all)."""
    r = client.get(f"/api/sessions/{sid}/events", params={"max_frames": 1, **query})
    assert r.status_code == 200
    events = list(parse_sse(r.text.splitlines()))
    return next(json.loads(e["data"]) for e in events if e["event"] == "frame")


def test_frame_probe_numbers_match_a_numpy_recomputation(client, make_session):
    sid, auth = make_session(
        seed=21, hidden_layers=[{"units": 5, "activation": "relu"}, {"units": 3, "activation": "tanh"}]
    )
    client.post(f"/api/sessions/{sid}/step", headers=auth)
    status = client.get(f"/api/sessions/{sid}").json()
    probe = np.array(status["probe"]["x"])
    acts = forward(client.get(f"/api/sessions/{sid}/model").json(), probe[None, :])
    frame = frame_of(client, sid)
    for layer, a in zip(frame["layers"], acts):
        np.testing.assert_allclose(layer["activations"], a[0], rtol=1e-3, atol=1e-4)
    # The loss layer: −log p(true class) of the probe.
    p = acts[-1][0][status["probe"]["y"]]
    assert frame["loss_layer"]["target"] == status["probe"]["y"]
    assert frame["loss_layer"]["probe"] == pytest.approx(-np.log(p), rel=1e-3)


def test_free_probe_and_probe_label(client, make_session):
    sid, auth = make_session(seed=22)
    r = client.put(f"/api/sessions/{sid}/probe", json={"x": [0.5, -0.25], "snap": False, "label": 1}, headers=auth)
    assert r.status_code == 200
    assert r.json()["probe"] == {"x": [0.5, -0.25], "y": 1}
    r = client.put(f"/api/sessions/{sid}/probe", json={"x": [0.5, -0.25], "label": 7, "snap": False}, headers=auth)
    assert r.status_code == 422 and r.json()["field"] == "label"


def test_backprop_gradients_equal_finite_differences(client, make_session):
    sid, auth = make_session(seed=23, hidden_layers=[{"units": 3, "activation": "tanh"}], n_points=60)
    client.post(f"/api/sessions/{sid}/step", headers=auth)
    frame = frame_of(client, sid, gradients="true")
    model = client.get(f"/api/sessions/{sid}/model").json()
    train = client.get(f"/api/sessions/{sid}/data").json()["train"]
    x, y = np.array(train["x"]), np.array(train["y"])

    def loss(m):
        p = forward(m, x)[-1]
        return -np.mean(np.log(p[np.arange(len(y)), y]))

    h = 1e-6
    for l, layer in enumerate(model["layers"]):
        for part in ("weights", "biases"):
            values = np.array(layer[part], dtype=float)
            numeric = np.zeros_like(values)
            for idx in np.ndindex(values.shape):
                for sign in (1, -1):
                    shifted = json.loads(json.dumps(model))
                    v = values.copy()
                    v[idx] += sign * h
                    shifted["layers"][l][part] = v.tolist()
                    numeric[idx] += sign * loss(shifted) / (2 * h)
            shown = np.array(frame["gradients"]["layers"][l][part], dtype=float)
            # Frames round gradients to 3 significant digits.
            np.testing.assert_allclose(shown, numeric, rtol=2e-3, atol=1e-6 + 2e-3 * np.abs(numeric).max())
    assert "gradients" not in frame_of(client, sid)  # only while some viewer asks for them


def test_timeline_scrub_and_resume_equals_an_uninterrupted_run(client, make_session):
    config = dict(seed=24, optimizer="adam", learning_rate=0.01, hidden_layers=[{"units": 6, "activation": "tanh"}])
    sid, auth = make_session(**config)
    ref, ref_auth = make_session(**config)
    for _ in range(8):
        client.post(f"/api/sessions/{sid}/step", headers=auth)
    for _ in range(5):
        client.post(f"/api/sessions/{ref}/step", headers=ref_auth)
    epochs = client.get(f"/api/sessions/{sid}/timeline").json()["epochs"]
    assert epochs == list(range(9))
    # Viewing a checkpoint changes nothing: the frames show it, the session stays at epoch 8.
    view = client.post(f"/api/sessions/{sid}/timeline/view", json={"epoch": 3}, headers=auth)
    assert view.status_code == 200 and view.json()["epoch"] == 8
    shown = frame_of(client, sid)
    assert shown["epoch"] == 3 and shown["timeline"]["viewing"] == 3
    assert client.post(f"/api/sessions/{sid}/timeline/view", json={"epoch": 3}).status_code == 401
    # Resume from epoch 5, train 3 more: the same weights as the uninterrupted run at epoch 8.
    r = client.post(f"/api/sessions/{sid}/timeline/resume", json={"epoch": 5}, headers=auth)
    assert r.status_code == 200 and r.json()["epoch"] == 5
    assert client.get(f"/api/sessions/{sid}/model").json() == client.get(f"/api/sessions/{ref}/model").json()
    for _ in range(3):
        client.post(f"/api/sessions/{sid}/step", headers=auth)
        client.post(f"/api/sessions/{ref}/step", headers=ref_auth)
    assert client.get(f"/api/sessions/{sid}/model").json() == client.get(f"/api/sessions/{ref}/model").json()
    assert client.get(f"/api/sessions/{sid}/timeline").json()["epochs"] == list(range(9))
    bad = client.post(f"/api/sessions/{sid}/timeline/resume", json={"epoch": 99}, headers=auth)
    assert bad.status_code == 404 and bad.json()["field"] == "epoch"
