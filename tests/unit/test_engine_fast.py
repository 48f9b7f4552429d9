"""Unit tests for the engine's fast paths: the flat parameter vector and its views, the
in-place training step (MLP.fill_grads), the whole-vector optimizer and penalty updates,
copies of models and optimizers, the float32 unit-major grid pass and the heatmap blob.

Each fast path is checked against the plain path it replaces (loss_and_grads, the
array-by-array optimizer loop, layer_outputs in float64), which test_nn.py checks
against finite differences and closed forms.
"""

from __future__ import annotations

import base64
import copy
import pickle
import types
import zlib

import numpy as np
import pytest

from app import frames
from app.frames import FrameBuilder, med_residuals
from app.nn import ACTIVATIONS, MLP, OPTIMIZERS, train_epoch
from app.nn.activations import tanh_of_twice_
from app.nn.losses import epoch_targets
from app.nn.optim import add_penalty_grads


def make_mlp(sizes, hidden, problem="classification", seed=0, init="xavier"):
    rng = np.random.default_rng(seed)
    m = MLP(sizes, hidden, problem, init, rng)
    for b in m.b:
        b[:] = rng.normal(0, 0.5, b.shape)
    return m


def make_xy(sizes, problem, n, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, sizes[0]))
    y = rng.integers(0, sizes[-1], n) if problem == "classification" else rng.normal(0, 1, n)
    return x, y


def with_ones(x):
    return np.column_stack([x, np.ones(len(x))])


# ============================================================================ flat storage


def test_params_are_views_into_theta():
    m = make_mlp([3, 5, 4, 2], ["tanh", "relu"])
    assert m.theta.shape == (sum((a + 1) * b for a, b in zip(m.sizes[:-1], m.sizes[1:])),)
    params = m.params
    assert params.flat is m.theta
    for p in params:
        assert np.shares_memory(p, m.theta)
    # Layout: layer blocks [W; b] one after the other.
    o = 0
    for W, b in zip(m.W, m.b):
        np.testing.assert_array_equal(m.theta[o : o + W.size], W.ravel())
        o += W.size
        np.testing.assert_array_equal(m.theta[o : o + b.size], b)
        o += b.size
    assert o == m.theta.size
    # The weight mask marks exactly the weights.
    assert m.weight_mask.sum() == sum(W.size for W in m.W)
    np.testing.assert_array_equal(m.theta[m.weight_mask], np.concatenate([W.ravel() for W in m.W]))


def test_edits_through_W_and_b_reach_theta_and_the_forward_pass():
    m = make_mlp([2, 3, 2], ["tanh"])
    x = np.random.default_rng(0).normal(0, 1, (4, 2))
    m.W[0][1, 2] = 0.75
    m.b[1][0] = -0.25
    assert 0.75 in m.theta and -0.25 in m.theta
    h = np.tanh(x @ m.W[0] + m.b[0])
    np.testing.assert_allclose(m.forward(x)[0][-1], h @ m.W[1] + m.b[1], rtol=1e-15)
    # Whole-array writes, as the worker's restore does, and list-item assignment, copy in place.
    new_W0 = np.arange(6.0).reshape(2, 3)
    m.W[0][...] = new_W0
    np.testing.assert_array_equal(m.theta[:6], new_W0.ravel())
    m.W[1] = np.ones((3, 2))
    assert np.shares_memory(m.W[1], m.theta)
    np.testing.assert_array_equal(m.params[2], np.ones((3, 2)))
    with pytest.raises(ValueError):
        m.W[1] = np.ones((2, 2))  # the shape is the network's


def test_weight_edit_is_seen_by_training():
    x, y = make_xy([2, 4, 2], "classification", 8)
    m = make_mlp([2, 4, 2], ["tanh"])
    m.W[0][0, 0] = 3.0
    ref = m.copy()
    train_epoch(m, OPTIMIZERS["sgd"](m.params), x, y, 8, 0.1, np.random.default_rng(0))
    _, g = ref.loss_and_grads(x, y)
    np.testing.assert_allclose(m.W[0], ref.W[0] - 0.1 * g[0], rtol=1e-12, atol=1e-15)


def test_loss_and_grads_returns_fresh_arrays():
    m = make_mlp([2, 3, 2], ["tanh"])
    x, y = make_xy([2, 3, 2], "classification", 5)
    _, g1 = m.loss_and_grads(x, y)
    kept = [g.copy() for g in g1]
    m.W[0] += 0.5
    _, g2 = m.loss_and_grads(x, y)
    for a, b in zip(g1, kept):
        np.testing.assert_array_equal(a, b)
    assert not np.shares_memory(g1.flat, g2.flat) and not np.shares_memory(g1.flat, m.grad)


# ============================================================================ fill_grads

FAST_SHAPES = [
    ([2, 4, 2, 2], ["tanh", "tanh"], "classification"),
    ([3, 5, 1], ["relu"], "regression"),
    ([2, 3], [], "classification"),
    ([4, 1], [], "regression"),
    ([5, 6, 4, 3], ["sigmoid", "linear"], "classification"),
] + [([3, 4, 3, 3], [name, name], "classification") for name in ACTIVATIONS]


@pytest.mark.parametrize(
    "sizes,hidden,problem", FAST_SHAPES, ids=[f"{s}-{'/'.join(h) or 'none'}-{p[:3]}" for s, h, p in FAST_SHAPES]
)
def test_fill_grads_matches_loss_and_grads(sizes, hidden, problem):
    m = make_mlp(sizes, hidden, problem, seed=2)
    x, y = make_xy(sizes, problem, 13, seed=3)
    batch = 5  # 5 + 5 + 3: the last, short minibatch has its own 1/n
    t = epoch_targets(problem, y, sizes[-1], batch)
    xa = with_ones(x)
    for start in range(0, 13, batch):
        sl = slice(start, start + batch)
        m.fill_grads(xa[sl], t[sl])
        _, ref = m.loss_and_grads(x[sl], y[sl], need_loss=False)
        for g, r in zip(m.grad_views, ref):
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-15)


def test_fill_grads_follows_set_activation():
    m = make_mlp([2, 4, 2], ["tanh"], seed=4)
    x, y = make_xy([2, 4, 2], "classification", 6)
    t = epoch_targets("classification", y, 2, 6)
    m.fill_grads(with_ones(x), t)  # builds the workspace for n = 6 with tanh
    m.set_activation(0, "relu")
    m.fill_grads(with_ones(x), t)
    _, ref = m.loss_and_grads(x, y)
    for g, r in zip(m.grad_views, ref):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-15)


def test_epoch_targets():
    y = np.array([1, 0, 2, 2, 1, 0, 1])
    t = epoch_targets("classification", y, 3, 3)  # minibatches of 3, 3, 1
    expected = np.eye(3)[y] / np.array([3, 3, 3, 3, 3, 3, 1])[:, None]
    np.testing.assert_array_equal(t, expected)
    yr = np.array([0.5, -1.0])
    np.testing.assert_array_equal(epoch_targets("regression", yr, 1, 10), [[0.5], [-1.0]])


# ============================================================================ optimizers


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_flat_optimizer_step_equals_array_by_array_step(kind):
    m = make_mlp([3, 4, 2], ["tanh"], seed=5)
    plain = [p.copy() for p in m.params]
    fast_opt, plain_opt = OPTIMIZERS[kind](m.params), OPTIMIZERS[kind](plain)
    rng = np.random.default_rng(6)
    for _ in range(4):
        g = rng.normal(0, 1, m.grad.shape)
        m.grad[...] = g
        fast_opt.step(m.params, m.grad_views, 0.05)  # FlatParams on both sides: whole vector
        plain_opt.step(plain, [v.copy() for v in m.grad_views], 0.05)  # plain lists: per array
        for p, q in zip(m.params, plain):
            np.testing.assert_array_equal(p, q)  # same operations in the same order: bit for bit
    if kind == "adam":
        assert fast_opt.t == plain_opt.t == 4
        for a, b in zip(fast_opt.m + fast_opt.v, plain_opt.m + plain_opt.v):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_optimizer_deepcopy_carries_state_not_scratch(kind):
    x, y = make_xy([2, 4, 2], "classification", 20)
    m = make_mlp([2, 4, 2], ["tanh"], seed=7)
    opt = OPTIMIZERS[kind](m.params)
    train_epoch(m, opt, x, y, 5, 0.05, np.random.default_rng(0))
    snap_m, snap_opt = copy.deepcopy(m), copy.deepcopy(opt)
    assert "_scratch" not in vars(snap_opt)
    assert "_scratch" not in pickle.loads(pickle.dumps(opt)).__dict__
    # Both continue identically from the same state.
    train_epoch(m, opt, x, y, 5, 0.05, np.random.default_rng(1))
    train_epoch(snap_m, snap_opt, x, y, 5, 0.05, np.random.default_rng(1))
    for p, q in zip(m.params, snap_m.params):
        np.testing.assert_array_equal(p, q)
    if kind == "adam":
        assert snap_opt.t == opt.t == 8


def test_optimizer_after_resized_and_copy():
    x, y = make_xy([2, 5, 2], "classification", 20)
    old = make_mlp([2, 3, 2], ["tanh"], seed=8)
    new = old.resized([2, 5, 2], ["tanh"], "xavier", np.random.default_rng(9))
    opt = OPTIMIZERS["adam"](new.params)
    before = [p.copy() for p in old.params]
    train_epoch(new, opt, x, y, 7, 0.05, np.random.default_rng(0))
    for p, q in zip(old.params, before):  # training the resized model leaves the old one alone
        np.testing.assert_array_equal(p, q)
    clone = new.copy()
    for p, q in zip(clone.params, new.params):
        assert np.shares_memory(p, clone.theta) and not np.shares_memory(p, new.theta)
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize(
    "clone",
    [lambda m: m.copy(), copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_model_copies_keep_their_views_tied_to_their_own_theta(clone):
    m = make_mlp([2, 3, 2], ["relu"], seed=9)
    c = clone(m)
    assert c.hidden == ["relu"] and c.sizes == [2, 3, 2]
    for p in c.params:
        assert np.shares_memory(p, c.theta)
    c.W[0][0, 0] = 123.0
    assert c.theta[0] == 123.0 and m.W[0][0, 0] != 123.0
    x, y = make_xy([2, 3, 2], "classification", 6)
    train_epoch(c, OPTIMIZERS["sgd"](c.params), x, y, 3, 0.1, np.random.default_rng(0))
    assert c.W[0][0, 0] != 123.0 or not np.array_equal(c.theta, m.theta)


# ============================================================================ regularization


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_flat_penalty_grads_equal_per_array_ones(kind):
    m = make_mlp([3, 4, 2], ["tanh"], seed=10)
    x, y = make_xy([3, 4, 2], "classification", 6)
    m.fill_grads(with_ones(x), epoch_targets("classification", y, 2, 6))
    plain = [g.copy() for g in m.grad_views]
    add_penalty_grads(m, m.grad_views, kind, 0.3)  # flat path
    add_penalty_grads(m, plain, kind, 0.3)  # array by array
    for a, b in zip(m.grad_views, plain):
        np.testing.assert_array_equal(a, b)
    # Biases got nothing, even when theta has a non-finite bias.
    m.b[0][0] = np.inf
    m.fill_grads(with_ones(x), epoch_targets("classification", y, 2, 6))
    before = m.grad_views[1].copy()
    add_penalty_grads(m, m.grad_views, kind, 0.3)
    np.testing.assert_array_equal(m.grad_views[1], before)


# ============================================================================ heatmap grid pass


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-6), (np.float64, 1e-15)])
def test_tanh_of_twice_matches_tanh(dtype, tol):
    z = np.concatenate([np.linspace(-50, 50, 20001), [0.0, 1e-30, -1e-30, 1e4, -1e4, np.inf, -np.inf]]).astype(dtype)
    with np.errstate(over="ignore"):
        got = tanh_of_twice_(2 * z)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, np.tanh(z.astype(np.float64)), rtol=0, atol=tol)
    assert (np.abs(got) <= 1).all()


@pytest.mark.parametrize(
    "sizes,hidden,problem",
    [
        ([2] + [8] * 6 + [2], ["tanh"] * 6, "classification"),
        ([3, 16, 8, 3], ["relu", "sigmoid"], "classification"),
        ([2, 6, 6, 1], ["gelu", "swish"], "regression"),
        ([2, 2], [], "classification"),
    ],
)
def test_float32_grid_pass_matches_float64(sizes, hidden, problem):
    m = make_mlp(sizes, hidden, problem, seed=11)
    x = np.random.default_rng(12).uniform(-6, 6, (500, sizes[0]))
    ref = m.layer_outputs(x)  # float64
    xa = np.ones((sizes[0] + 1, 500), np.float32)
    xa[:-1] = x.T
    hidden_bufs = [np.ones((d + 1, 500), np.float32) for d in sizes[1:-1]]
    out = np.empty((sizes[-1], 500), np.float32)
    m.forward_by_unit(xa, hidden_bufs, out)
    for got, want in zip([*(h[:-1] for h in hidden_bufs), out], ref[1:]):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got.T, want, rtol=0, atol=1e-4)
    for h in hidden_bufs:
        np.testing.assert_array_equal(h[-1], 1.0)  # the ones row survives


# ============================================================================ heatmap blob


def undo_med(res: np.ndarray) -> np.ndarray:
    """The page's decoder (static/js/heatmap.js undoMedian), in plain Python."""
    out = np.zeros(res.shape, np.int64)
    *lead, H, W = res.shape
    for idx in np.ndindex(*lead):
        v, r = out[idx], res[idx]
        for i in range(H):
            for j in range(W):
                a = v[i, j - 1] if j else 0
                b = v[i - 1, j] if i else 0
                c = v[i - 1, j - 1] if i and j else 0
                pred = min(max(a + b - c, min(a, b)), max(a, b))
                v[i, j] = (int(r[i, j]) + pred) & 255
    return out


def test_median_residuals_round_trip():
    rng = np.random.default_rng(13)
    maps = rng.integers(0, 256, (3, 7, 9)).astype(np.uint8)
    maps[1] = np.add.outer(np.zeros(7, int), np.arange(9) * 20)  # a ramp, as the x1 input's map
    maps[2] = np.add.outer(np.arange(7) * 10, np.arange(9) * 3)  # a tilted plane
    res = med_residuals(maps)
    assert res.dtype == np.uint8
    np.testing.assert_array_equal(undo_med(res), maps)
    assert not res[1, 1:, :].any()  # the ramp is predicted exactly below its first row
    assert (res[2, 1:, 1:] == 3).all()  # the plane leaves one constant residual


def fake_session(m: MLP, problem: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(model=m, cfg=types.SimpleNamespace(problem=problem, features=["x1", "x2"]))


@pytest.mark.parametrize(
    "sizes,hidden,problem,names",
    [
        ([2, 8, 8, 2], ["tanh", "tanh"], "classification", ["p1"]),
        ([2, 5, 3], ["relu"], "classification", ["top", "conf"]),
        ([2, 5, 1], ["tanh"], "regression", ["value"]),
    ],
)
def test_heatmap_blob_decodes_to_the_network_outputs(sizes, hidden, problem, names):
    m = make_mlp(sizes, hidden, problem, seed=14)
    fb = FrameBuilder(grid=40, thumb_stride=5)
    h = fb._heatmaps(fake_session(m, problem))
    assert h["maps"] == names and h["encoding"] == "med+zlib+base64"
    T, G = h["thumb"], h["res"]
    assert T == 8 and G == 40
    raw = np.frombuffer(zlib.decompress(base64.b64decode(h["data"])), np.uint8)
    n_thumbs = sum(sizes)
    assert raw.size == n_thumbs * T * T + len(names) * G * G
    thumbs = undo_med(raw[: n_thumbs * T * T].reshape(n_thumbs, T, T))
    maps = undo_med(raw[n_thumbs * T * T :].reshape(len(names), G, G))

    outs = m.layer_outputs(fb.grid_features(["x1", "x2"]).astype(np.float64))
    off, st = fb.offset, fb.stride
    assert off == 2  # (39 − 5·7) // 2: equal margins
    expected = np.concatenate([a.T.reshape(-1, G, G)[:, off::st, off::st] for a in outs])
    scales = np.array([s for layer in h["scales"] for s in layer])
    assert (scales >= 1).all() and len(h["scales"]) == len(sizes)
    assert (thumbs % 2 == 0).all()  # 7 bits in even bytes
    decoded = (thumbs / 127.5 - 1.0) * scales[:, None, None]  # as the page reads a byte
    np.testing.assert_allclose(
        decoded, np.clip(expected, -scales[:, None, None], scales[:, None, None]), atol=1.01 / 127.5 * scales.max()
    )
    p = outs[-1]
    if problem == "regression":
        np.testing.assert_allclose(
            (maps[0].ravel() / 127.5 - 1) * h["output_scale"], p[:, 0], atol=0.51 / 127.5 * h["output_scale"]
        )
    elif names == ["p1"]:
        np.testing.assert_allclose(maps[0].ravel() / 255, p[:, 1], atol=0.51 / 255)
    else:
        clear = np.sort(p, axis=1)[:, -1] - np.sort(p, axis=1)[:, -2] > 1e-4
        np.testing.assert_array_equal(maps[0].ravel()[clear], p.argmax(axis=1)[clear])


def test_grid_buffers_follow_the_network_shape_and_stay_bounded(monkeypatch):
    fb = FrameBuilder(grid=20, thumb_stride=5)
    a = fb.grid_buffers([2, 4, 2])
    assert FrameBuilder(grid=20, thumb_stride=5).grid_buffers([2, 4, 2]) is a  # shared between builders
    hidden, out = fb.grid_buffers([2, 6, 3, 2])
    assert [h.shape for h in hidden] == [(7, 400), (4, 400)] and out.shape == (2, 400)
    assert fb.grid_buffers([2, 4, 2]) is a  # both shapes fit in the pool
    monkeypatch.setattr(frames, "SCRATCH_BYTES", 1)
    fb.grid_buffers([2, 5, 2])
    assert list(frames._scratch.pool) == [(400, (2, 5, 2))]  # only the newest shape is kept
