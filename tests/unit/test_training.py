"""Unit tests for app.training.Session: determinism, reset, exact full-batch steps, learning
on every dataset, divergence, live config changes, probe, history, metrics and model export."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from app.schema import ConfigFields, Limits, resolve
from app.training import Session

SETTINGS = Limits()


def config(base=None, **fields):
    return resolve(base, ConfigFields(**fields), SETTINGS)


def session(**fields) -> Session:
    fields.setdefault("seed", 1)
    return Session(config(**fields))


def weights(s: Session) -> list[np.ndarray]:
    return [p.copy() for p in s.model.params]


def assert_same(a: list[np.ndarray], b: list[np.ndarray]):
    assert len(a) == len(b)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)


def H(*layers):
    """H((4, "tanh"), (2, "relu")) → hidden_layers."""
    return [{"units": u, "activation": a} for u, a in layers]


# --- determinism and reset -------------------------------------------------------------


def test_same_seed_same_data_and_weights_different_seed_differs():
    a, b, c = session(seed=7), session(seed=7), session(seed=8)
    for part in ("train", "test"):
        np.testing.assert_array_equal(getattr(a.data, part).X, getattr(b.data, part).X)
        np.testing.assert_array_equal(getattr(a.data, part).y, getattr(b.data, part).y)
    np.testing.assert_array_equal(a.data.f_train, b.data.f_train)
    assert_same(weights(a), weights(b))
    assert not np.array_equal(a.data.train.X, c.data.train.X)
    assert not np.array_equal(a.model.W[0], c.model.W[0])
    # data_seed pins the data while the seed still changes the weights.
    d, e = session(seed=7, data_seed=3), session(seed=8, data_seed=3)
    np.testing.assert_array_equal(d.data.train.X, e.data.train.X)
    assert not np.array_equal(d.model.W[0], e.model.W[0])


def test_reset_returns_exactly_to_the_start_and_replays_identically():
    s = session(batch_size=7, optimizer="adam", learning_rate=0.02)
    w0 = weights(s)
    loss0 = s.loss_train
    s.train(5)
    w5 = weights(s)
    assert s.epoch == 5 and s.step > 0
    assert not np.array_equal(w5[0], w0[0])
    s.reset()
    assert_same(weights(s), w0)
    assert (s.epoch, s.step, s.status, s.message) == (0, 0, "paused", None)
    assert s.history == [(0, loss0, s.loss_test)] and s.loss_train == loss0
    s.train(5)
    assert_same(weights(s), w5)  # same shuffle stream, same optimizer state from scratch


def test_full_batch_sgd_epoch_is_exactly_one_gradient_step():
    s = session(
        dataset="circle",
        n_points=120,
        batch_size=1000,
        optimizer="sgd",
        learning_rate=0.3,
        features=["x1", "x2", "x1sq"],
        hidden_layers=H((4, "tanh"), (3, "relu")),
    )
    assert len(s.data.train.y) == 60 and s.data.f_train.shape == (60, 3)
    before = weights(s)
    _, grads = s.model.loss_and_grads(s.data.f_train, s.data.train.y)
    assert s.train(1) == 1
    assert (s.epoch, s.step) == (1, 1)
    for p, p0, g in zip(s.model.params, before, grads):
        np.testing.assert_allclose(p, p0 - 0.3 * g, rtol=1e-10, atol=1e-14)


def test_full_batch_sgd_epoch_with_l2_adds_rate_times_w():
    s = session(n_points=80, batch_size=80, learning_rate=0.1, regularization="l2", regularization_rate=0.5)
    before = weights(s)
    _, grads = s.model.loss_and_grads(s.data.f_train, s.data.train.y)
    s.train(1)
    for k, (p, p0, g) in enumerate(zip(s.model.params, before, grads)):
        extra = 0.5 * p0 if k % 2 == 0 else 0.0  # weights only
        np.testing.assert_allclose(p, p0 - 0.1 * (g + extra), rtol=1e-10, atol=1e-14)
    assert s.regularization_loss() == pytest.approx(0.25 * sum(float(np.sum(W * W)) for W in s.model.W), rel=1e-13)


@pytest.mark.parametrize("batch", [1, 30, 249, 250, 251])
def test_epoch_and_step_counters(batch):
    s = session(n_points=500, train_fraction=0.5, batch_size=batch, learning_rate=0.001)
    n_train = len(s.data.train.y)
    assert n_train == 250
    assert s.train(3) == 3
    assert s.epoch == 3
    assert s.step == 3 * math.ceil(n_train / batch)


def test_scheduled_lr_follows_the_epoch():
    s = session(learning_rate=0.4, lr_schedule="step", lr_period=2, n_points=40)
    assert s.lr == 0.4
    s.train(2)
    assert s.lr == 0.2
    s.train(2)
    assert s.lr == 0.1


# --- it learns ---------------------------------------------------------------------------

LEARNS = {
    "circle": dict(
        features=["x1", "x2", "x1sq", "x2sq"],
        hidden_layers=H((4, "tanh")),
        optimizer="adam",
        learning_rate=0.03,
        batch_size=32,
        noise=0.1,
    ),
    "xor": dict(
        features=["x1", "x2", "x1x2"],
        hidden_layers=H((4, "tanh")),
        optimizer="adam",
        learning_rate=0.03,
        batch_size=32,
        noise=0.1,
    ),
    "gauss": dict(classes=3, hidden_layers=H((6, "tanh")), optimizer="adam", learning_rate=0.03, batch_size=32),
    "spiral": dict(
        features=["x1", "x2", "sin_x1", "sin_x2"],
        hidden_layers=H((16, "tanh"), (16, "tanh")),
        optimizer="adam",
        learning_rate=0.01,
        batch_size=32,
    ),
    "moons": dict(hidden_layers=H((8, "tanh")), optimizer="adam", learning_rate=0.03, batch_size=32, noise=0.1),
    "reg-plane": dict(hidden_layers=H((4, "tanh")), optimizer="adam", learning_rate=0.01, batch_size=32),
    "reg-gauss": dict(hidden_layers=H((8, "tanh"), (8, "tanh")), optimizer="adam", learning_rate=0.01, batch_size=32),
}
EPOCHS = {"circle": 150, "xor": 150, "gauss": 60, "spiral": 250, "moons": 150, "reg-plane": 60, "reg-gauss": 150}


@pytest.mark.parametrize("dataset", list(LEARNS))
def test_loss_falls_on_every_plane_dataset(dataset):
    s = session(dataset=dataset, **LEARNS[dataset])
    first_train, first_test = s.loss_train, s.loss_test
    s.train(EPOCHS[dataset])
    assert s.status == "paused" and s.epoch == EPOCHS[dataset]
    assert s.loss_train < 0.25 * first_train
    assert s.loss_test < 0.25 * first_test
    if s.cfg.problem == "classification":
        assert s.acc_test >= 0.9
    else:
        r2 = s.metrics()["r2"]
        assert r2 > 0.9


def test_digits_small_net_reaches_90_percent():
    s = session(
        dataset="digits", hidden_layers=H((32, "relu")), optimizer="adam", learning_rate=0.01, batch_size=32, init="he"
    )
    assert s.dims == 64 and s.model.sizes == [64, 32, 10]
    first = s.loss_train
    s.train(20)
    assert s.loss_train < 0.1 * first
    assert s.acc_test >= 0.9


# --- divergence --------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["circle", "reg-plane"])
def test_huge_learning_rate_diverges_cleanly(dataset):
    s = session(dataset=dataset, learning_rate=100.0, optimizer="sgd", hidden_layers=H((8, "relu")), batch_size=10)
    ran = s.train(50)
    assert s.status == "diverged"
    assert ran < 50  # stopped at the first non-finite epoch
    assert "learning rate" in s.message.lower()
    assert s.train(5) == 0 and s.epoch == ran  # a diverged session does not train on
    status = s.status_dict()
    assert status["status"] == "diverged" and status["message"] == s.message
    json.dumps(status, allow_nan=False)
    json.dumps(s.model_dict(), allow_nan=False)
    s.reset()
    assert s.status == "paused" and s.message is None and s.model.is_finite()


@pytest.mark.parametrize("dataset", ["circle", "reg-plane"])
def test_metrics_of_diverged_session_are_json_safe(dataset):
    s = session(dataset=dataset, learning_rate=100.0, optimizer="sgd", hidden_layers=H((8, "relu")), batch_size=10)
    s.train(50)
    assert s.status == "diverged"
    json.dumps(s.metrics(), allow_nan=False)


# --- live config changes -----------------------------------------------------------------


def test_adding_a_unit_keeps_existing_weights():
    s = session(hidden_layers=H((4, "tanh"), (2, "tanh")))
    s.train(3)
    old, shape_version = s.model.copy(), s.shape_version
    r = s.apply_config(config(s.cfg, hidden_layers=H((5, "tanh"), (2, "tanh"))))
    assert r["rebuilt"] == ["network"] and r["reset"] is False and r["changed"] == ["hidden_layers"]
    assert s.model.sizes == [2, 5, 2, 2] and s.shape_version == shape_version + 1 and s.epoch == 3
    np.testing.assert_array_equal(s.model.W[0][:, :4], old.W[0])
    np.testing.assert_array_equal(s.model.b[0][:4], old.b[0])
    np.testing.assert_array_equal(s.model.W[1][:4, :], old.W[1])
    np.testing.assert_array_equal(s.model.W[2], old.W[2])
    np.testing.assert_array_equal(s.model.b[2], old.b[2])
    s.train(1)  # the optimizer was rebuilt for the new shapes
    assert s.model.is_finite()


def test_activation_change_keeps_weights_and_bumps_structure():
    s = session(hidden_layers=H((4, "tanh"), (2, "tanh")))
    s.train(2)
    before, shape_version = weights(s), s.shape_version
    r = s.apply_config(config(s.cfg, hidden_layers=H((4, "relu"), (2, "tanh"))))
    assert r["rebuilt"] == [] and r["reset"] is False
    assert s.shape_version == shape_version + 1
    assert s.model.hidden == ["relu", "tanh"]
    assert_same(weights(s), before)
    f = s.data.f_train
    np.testing.assert_allclose(s.model.forward(f)[1][1], np.maximum(f @ s.model.W[0] + s.model.b[0], 0), rtol=1e-15)


def test_toggling_a_feature_keeps_other_features_rows():
    s = session(features=["x1", "x2"], hidden_layers=H((3, "tanh")))
    s.train(2)
    W0 = s.model.W[0].copy()
    r = s.apply_config(config(s.cfg, features=["x1", "x2", "x1sq"]))
    assert r["rebuilt"] == ["network"] and r["reset"] is False
    assert s.input_names() == ["x1", "x2", "x1sq"] and s.data.f_train.shape[1] == 3
    np.testing.assert_array_equal(s.model.W[0][:2], W0)
    np.testing.assert_array_equal(s.data.f_train[:, 2], s.data.train.X[:, 0] ** 2)
    # Drop x1: x2's row moves up to row 0, x1sq's row stays with it.
    W0 = s.model.W[0].copy()
    s.apply_config(config(s.cfg, features=["x2", "x1sq"]))
    np.testing.assert_array_equal(s.model.W[0][0], W0[1])
    np.testing.assert_array_equal(s.model.W[0][1], W0[2])
    np.testing.assert_array_equal(s.data.f_train[:, 0], s.data.train.X[:, 1])


def test_noise_change_rebuilds_data_only():
    s = session(noise=0.0)
    s.train(1)
    before, X = weights(s), s.data.train.X.copy()
    r = s.apply_config(config(s.cfg, noise=0.3))
    assert r == {"changed": ["noise"], "rebuilt": ["data"], "reset": False, "applies_on_reset": []}
    assert not np.array_equal(s.data.train.X, X)
    assert_same(weights(s), before)
    assert s.epoch == 1


def test_switching_to_digits_resets():
    s = session()
    s.train(2)
    r = s.apply_config(config(s.cfg, dataset="digits"))
    assert r["reset"] is True and "data" in r["rebuilt"] and "network" in r["rebuilt"]
    assert s.dims == 64 and s.model.sizes[0] == 64 and s.model.sizes[-1] == 10
    assert (s.epoch, s.step) == (0, 0)
    assert s.input_names() == [f"p{i}" for i in range(64)]


def test_learning_rate_change_rebuilds_nothing():
    s = session()
    s.train(1)
    before, shape_version = weights(s), s.shape_version
    r = s.apply_config(config(s.cfg, learning_rate=0.5))
    assert r == {"changed": ["learning_rate"], "rebuilt": [], "reset": False, "applies_on_reset": []}
    assert_same(weights(s), before)
    assert s.shape_version == shape_version and s.lr == 0.5
    assert s.apply_config(config(s.cfg, learning_rate=0.5))["changed"] == []


def test_optimizer_change_takes_effect_without_touching_weights():
    s = session(n_points=80, batch_size=1000, optimizer="sgd", learning_rate=0.05)
    s.train(1)
    before = weights(s)
    r = s.apply_config(config(s.cfg, optimizer="adam"))
    assert r["rebuilt"] == [] and r["reset"] is False and r["changed"] == ["optimizer"]
    assert_same(weights(s), before)
    _, grads = s.model.loss_and_grads(s.data.f_train, s.data.train.y)
    s.train(1)  # a fresh Adam's first full-batch step moves every parameter by ≈ lr·sign(g)
    for p, p0, g in zip(s.model.params, before, grads):
        assert (np.abs(g) > 1e-4).all()
        np.testing.assert_allclose(p - p0, -0.05 * np.sign(g), rtol=1e-4, atol=0)


def test_init_change_applies_on_reset():
    s = session(init="xavier")
    before = weights(s)
    r = s.apply_config(config(s.cfg, init="zeros"))
    assert r["applies_on_reset"] == ["init"] and r["rebuilt"] == [] and r["reset"] is False
    assert_same(weights(s), before)
    s.reset()
    assert not any(W.any() for W in s.model.W)


# --- probe, history, metrics, export -------------------------------------------------------


def test_set_probe_snaps_to_nearest_point():
    s = session(n_points=100)
    for ds in (s.data.train, s.data.test):
        for i in (0, 7):
            target = ds.X[i] + np.array([1e-4, -1e-4])
            s.set_probe(target)
            allX = np.vstack([s.data.train.X, s.data.test.X])
            ally = np.concatenate([s.data.train.y, s.data.test.y])
            j = int(np.argmin(((allX - target) ** 2).sum(axis=1)))
            np.testing.assert_array_equal(s.probe, allX[j])
            np.testing.assert_array_equal(s.probe, ds.X[i])
            assert s.probe_y == ally[j] == ds.y[i]
            assert isinstance(s.probe_y, int)


def test_regression_probe_target_is_float():
    s = session(dataset="reg-plane", n_points=50)
    s.set_probe(s.data.test.X[3])
    assert isinstance(s.probe_y, float) and s.probe_y == s.data.test.y[3]


def test_history_stays_bounded():
    s = Session(config(seed=1, n_points=40, batch_size=40), history_len=50)
    for _ in range(400):
        s.train(1)
        s.evaluate()
        s.evaluate()
        assert len(s.history) <= 50
    epochs = [h[0] for h in s.history]
    assert epochs[0] == 0 and epochs[-1] == 400
    assert all(a < b for a, b in zip(epochs, epochs[1:]))
    assert s.history[-1] == (400, s.loss_train, s.loss_test)
    assert len(s.history) >= 25  # thinning keeps a usable curve


def test_classification_metrics():
    s = session(dataset="gauss", classes=3, hidden_layers=H((4, "tanh")), n_points=150, noise=0.5)
    s.train(3)
    conf = np.array(s.metrics()["confusion"])
    assert conf.shape == (3, 3)
    assert conf.sum() == len(s.data.test.y)
    assert np.trace(conf) / conf.sum() == pytest.approx(s.acc_test, rel=1e-15)
    pred = s.predict(s.data.test.X).argmax(axis=1)
    for t in range(3):
        for p in range(3):
            assert conf[t, p] == int(np.sum((s.data.test.y == t) & (pred == p)))


def test_regression_metrics():
    s = session(dataset="reg-gauss", hidden_layers=H((4, "tanh")), n_points=200)
    s.train(3)
    m = s.metrics()
    pred = s.predict(s.data.test.X)[:, 0]
    y = s.data.test.y
    rmse = math.sqrt(sum((p - t) ** 2 for p, t in zip(pred, y)) / len(y))
    ybar = sum(y) / len(y)
    r2 = 1 - sum((p - t) ** 2 for p, t in zip(pred, y)) / sum((t - ybar) ** 2 for t in y)
    assert m["rmse"] == pytest.approx(rmse, rel=1e-12)
    assert m["r2"] == pytest.approx(r2, rel=1e-12)
    assert s.loss_test == pytest.approx(0.5 * rmse**2, rel=1e-12)


def manual_forward(md: dict, x_raw: np.ndarray) -> np.ndarray:
    feats = {
        "x1": lambda x: x[:, 0],
        "x2": lambda x: x[:, 1],
        "x1sq": lambda x: x[:, 0] ** 2,
        "x2sq": lambda x: x[:, 1] ** 2,
        "x1x2": lambda x: x[:, 0] * x[:, 1],
        "sin_x1": lambda x: np.sin(x[:, 0]),
        "sin_x2": lambda x: np.sin(x[:, 1]),
    }
    acts = {
        "tanh": np.tanh,
        "relu": lambda z: np.maximum(z, 0),
        "linear": lambda z: z,
        "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    }
    a = np.stack([feats[n](x_raw) for n in md["inputs"]], axis=1)
    for layer in md["layers"]:
        z = a @ np.array(layer["weights"]) + np.array(layer["biases"])
        if layer["activation"] == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
        else:
            a = acts[layer["activation"]](z)
    return a


@pytest.mark.parametrize("dataset,last", [("circle", "softmax"), ("reg-plane", "linear")])
def test_model_dict_shapes_and_predict(dataset, last):
    s = session(
        dataset=dataset,
        features=["x1", "x2", "x1x2", "sin_x2"],
        hidden_layers=H((5, "tanh"), (3, "relu")),
        n_points=100,
    )
    s.train(2)
    md = s.model_dict()
    json.dumps(md, allow_nan=False)
    assert md["inputs"] == ["x1", "x2", "x1x2", "sin_x2"]
    units = [5, 3, 2 if dataset == "circle" else 1]
    fan_in = [4, 5, 3]
    assert [l["activation"] for l in md["layers"]] == ["tanh", "relu", last]
    for layer, rows, cols in zip(md["layers"], fan_in, units):
        W = np.array(layer["weights"])
        assert W.shape == (rows, cols) and len(layer["biases"]) == cols
    x = np.random.default_rng(0).uniform(-6, 6, (30, 2))
    np.testing.assert_allclose(s.predict(x), manual_forward(md, x), rtol=1e-12, atol=1e-15)


def test_digits_model_dict_inputs():
    s = session(dataset="digits", hidden_layers=H((8, "tanh")), n_points=200)
    md = s.model_dict()
    assert len(md["inputs"]) == 64 and np.array(md["layers"][0]["weights"]).shape == (64, 8)
    assert md["layers"][-1]["activation"] == "softmax" and np.array(md["layers"][-1]["weights"]).shape == (8, 10)


def test_status_dict_is_json_and_consistent():
    s = session()
    s.train(2)
    st = s.status_dict()
    json.dumps(st, allow_nan=False)
    assert st["epoch"] == 2 and st["step"] == s.step and st["status"] == "paused"
    assert st["loss"] == {"train": s.loss_train, "test": s.loss_test}
    assert st["accuracy"] == {"train": s.acc_train, "test": s.acc_test}
    assert "config" not in st and st["dims"] == 2  # the worker sends the config object beside it
