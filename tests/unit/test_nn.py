"""Unit tests for the NumPy engine (app.nn): activations, losses, backprop, init,
optimizers, regularization, learning-rate schedules, one epoch of training, resizing.

Every derivative is checked against a central finite difference in float64; every update
rule against the closed-form formula re-implemented here in plain Python.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.nn import ACTIVATIONS, MLP, init_layer, penalty, scheduled_lr, softmax, train_epoch
from app.nn.losses import cross_entropy, mean_squared_error
from app.nn.optim import OPTIMIZERS, SGD, Adam, Momentum, add_penalty_grads

KINKED = {"relu", "leaky_relu", "elu"}  # not differentiable at z = 0
H = 1e-6  # central-difference step


def central_diff(f, x: np.ndarray, h: float = H) -> np.ndarray:
    """∂f/∂x for scalar f of array x, one entry at a time (x is perturbed in place and restored)."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


# ============================================================================ activations


def z_grid(name: str) -> np.ndarray:
    z = np.linspace(-6.0, 6.0, 241)
    if name in KINKED:
        z = z[np.abs(z) >= 1e-3]
    return z.reshape(-1, 1) * np.ones((1, 2))  # (n, units), as layers use it


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_grad_matches_finite_difference(name):
    act = ACTIVATIONS[name]
    z = z_grid(name)
    analytic = act.grad(z, act.f(z))
    numeric = (act.f(z + H) - act.f(z - H)) / (2 * H)  # elementwise f, so this is the derivative
    assert analytic.shape == z.shape
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_activation_table_is_complete():
    assert set(ACTIVATIONS) == {"relu", "tanh", "sigmoid", "linear", "leaky_relu", "elu", "gelu", "softplus", "swish"}
    for name, act in ACTIVATIONS.items():
        assert act.name == name and act.formula


def test_activation_known_values():
    A = {k: v.f for k, v in ACTIVATIONS.items()}
    z = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(A["relu"](z), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(A["leaky_relu"](z), [[-0.01, 0.0, 2.0]])
    np.testing.assert_array_equal(A["linear"](z), z)
    np.testing.assert_allclose(A["elu"](z), [[math.exp(-1) - 1, 0.0, 2.0]], rtol=1e-15)
    np.testing.assert_array_equal(A["tanh"](np.zeros((1, 1))), [[0.0]])
    np.testing.assert_array_equal(A["sigmoid"](np.zeros((1, 1))), [[0.5]])
    np.testing.assert_allclose(A["sigmoid"](np.array([[2.0]])), [[1 / (1 + math.exp(-2))]], rtol=1e-15)
    np.testing.assert_allclose(A["softplus"](np.array([[0.0, 1.0]])), [[math.log(2), math.log(1 + math.e)]], rtol=1e-15)
    np.testing.assert_array_equal(A["gelu"](np.zeros((1, 1))), [[0.0]])
    np.testing.assert_array_equal(A["swish"](np.zeros((1, 1))), [[0.0]])
    np.testing.assert_allclose(A["swish"](np.array([[1.0]])), [[1 / (1 + math.exp(-1))]], rtol=1e-15)
    # GELU (tanh form, Hendrycks & Gimpel): ½z(1 + tanh(√(2/π)(z + 0.044715z³))) ...
    for v in (-2.0, -0.5, 1.0, 3.0):
        ref = 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))
        np.testing.assert_allclose(A["gelu"](np.array([[v]])), [[ref]], rtol=1e-14)
        # ... which approximates the exact z·Φ(z) to within about 1e-3.
        exact = v * 0.5 * (1 + math.erf(v / math.sqrt(2)))
        assert abs(A["gelu"](np.array([[v]]))[0, 0] - exact) < 1e-3


def test_activations_are_stable_at_extreme_inputs():
    z = np.array([[-800.0, 800.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = {name: act.f(z) for name, act in ACTIVATIONS.items()}
        grads = {name: act.grad(z, out[name]) for name, act in ACTIVATIONS.items()}
    for name in ACTIVATIONS:
        assert np.isfinite(out[name]).all() and np.isfinite(grads[name]).all(), name
    np.testing.assert_array_equal(out["sigmoid"], [[0.0, 1.0]])
    np.testing.assert_array_equal(out["softplus"], [[0.0, 800.0]])
    np.testing.assert_array_equal(out["tanh"], [[-1.0, 1.0]])
    np.testing.assert_array_equal(out["swish"], [[-0.0, 800.0]])
    np.testing.assert_array_equal(out["elu"], [[-1.0, 800.0]])
    np.testing.assert_array_equal(grads["sigmoid"], [[0.0, 0.0]])
    np.testing.assert_array_equal(grads["softplus"], [[0.0, 1.0]])


def test_softmax_rows_sum_to_one_and_shift_invariant():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (20, 5))
    p = softmax(z)
    naive = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, naive, rtol=1e-13)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(softmax(z + 123.0), p, rtol=1e-12)
    np.testing.assert_allclose(softmax(z + rng.normal(0, 5, (20, 1))), p, rtol=1e-12)  # per-row constants


def test_softmax_is_stable_for_large_inputs():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = softmax(np.array([[1000.0, 1000.0], [1000.0, 0.0], [-1000.0, -1000.0]]))
    np.testing.assert_array_equal(p[0], [0.5, 0.5])
    np.testing.assert_array_equal(p[1], [1.0, 0.0])
    np.testing.assert_array_equal(p[2], [0.5, 0.5])


# ============================================================================ losses


def test_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (7, 4))
    y = np.array([0, 3, 1, 1, 2, 0, 3])
    loss, dz = cross_entropy(z, y)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    naive = -np.mean(np.log(p[np.arange(7), y]))
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, naive, rtol=1e-13)
    numeric = central_diff(lambda: cross_entropy(z, y)[0], z)
    assert dz.shape == z.shape
    np.testing.assert_allclose(dz, numeric, rtol=1e-6, atol=1e-9)
    # Closed form: (softmax − onehot) / n.
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(dz, (p - onehot) / 7, rtol=1e-12, atol=1e-16)

    fast_loss, fast_dz = cross_entropy(z, y, need_loss=False)
    assert math.isnan(fast_loss)
    np.testing.assert_allclose(fast_dz, dz, rtol=1e-12, atol=1e-16)


def test_cross_entropy_is_stable_at_extreme_logits():
    z = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dz = cross_entropy(z, np.array([1, 0]))
    np.testing.assert_allclose(loss, 500.0, rtol=1e-15)  # (1000 + 0) / 2
    np.testing.assert_allclose(dz, [[0.5, -0.5], [0.0, 0.0]], atol=1e-15)


def test_mean_squared_error_value_and_gradient():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 1, (9, 1))
    y = rng.normal(0, 1, 9)
    loss, dz = mean_squared_error(z, y)
    naive = sum(0.5 * (z[i, 0] - y[i]) ** 2 for i in range(9)) / 9
    np.testing.assert_allclose(loss, naive, rtol=1e-13)
    numeric = central_diff(lambda: mean_squared_error(z, y)[0], z)
    assert dz.shape == (9, 1)
    np.testing.assert_allclose(dz, numeric, rtol=1e-6, atol=1e-9)
    fast_loss, fast_dz = mean_squared_error(z, y, need_loss=False)
    assert math.isnan(fast_loss)
    np.testing.assert_array_equal(fast_dz, dz)


# ============================================================================ backprop


def make_mlp(sizes, hidden, problem, seed=0, init="xavier"):
    rng = np.random.default_rng(seed)
    m = MLP(sizes, hidden, problem, init, rng)
    for b in m.b:  # non-zero biases, so their gradients are exercised in general position
        b[:] = rng.normal(0, 0.5, b.shape)
    return m


def make_xy(sizes, problem, n=6, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, sizes[0]))
    y = rng.integers(0, sizes[-1], n) if problem == "classification" else rng.normal(0, 1, n)
    return x, y


def check_all_gradients(m: MLP, x, y):
    zs, _ = m.forward(x)
    if any(name in KINKED for name in m.hidden):
        # Precondition of the check: no pre-activation sits within reach of a kink.
        assert min(np.abs(z).min() for z in zs[:-1]) > 1e-4
    loss, grads = m.loss_and_grads(x, y)
    assert len(grads) == len(m.params) == 2 * (len(m.sizes) - 1)
    for p, g in zip(m.params, grads):
        assert g.shape == p.shape
        numeric = central_diff(lambda: m.loss_and_grads(x, y)[0], p)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)
    return loss


SHAPES = [
    ([2, 4, 2, 2], ["tanh", "tanh"], "classification"),
    ([3, 5, 1], ["relu"], "regression"),
    ([2, 3, 3, 3, 4], ["sigmoid", "elu", "swish"], "classification"),
    ([2, 3], [], "classification"),
    ([4, 1], [], "regression"),
    ([3, 4, 4, 1], ["gelu", "leaky_relu"], "regression"),
]


@pytest.mark.parametrize("sizes,hidden,problem", SHAPES, ids=[f"{s}-{'/'.join(h) or 'none'}" for s, h, _ in SHAPES])
def test_gradients_match_finite_differences(sizes, hidden, problem):
    m = make_mlp(sizes, hidden, problem)
    x, y = make_xy(sizes, problem)
    check_all_gradients(m, x, y)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("problem", ["classification", "regression"])
def test_gradients_match_finite_differences_for_every_activation(name, problem):
    sizes = [3, 4, 3, 3] if problem == "classification" else [3, 4, 3, 1]
    m = make_mlp(sizes, [name, name], problem, seed=5)
    x, y = make_xy(sizes, problem, n=5, seed=6)
    check_all_gradients(m, x, y)


def test_loss_and_grads_value_equals_loss_of_forward():
    m = make_mlp([2, 4, 3], ["tanh"], "classification")
    x, y = make_xy([2, 4, 3], "classification")
    loss, _ = m.loss_and_grads(x, y)
    p = m.predict(x)
    np.testing.assert_allclose(loss, -np.mean(np.log(p[np.arange(len(y)), y])), rtol=1e-13)
    nan_loss, fast = m.loss_and_grads(x, y, need_loss=False)
    assert math.isnan(nan_loss)
    for a, b in zip(fast, m.loss_and_grads(x, y)[1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-16)


# ============================================================================ forward


def test_forward_shapes_and_one_layer_by_hand():
    m = make_mlp([2, 3, 4, 2], ["tanh", "relu"], "classification")
    x = np.random.default_rng(3).normal(0, 1, (5, 2))
    zs, acts = m.forward(x)
    assert [z.shape for z in zs] == [(5, 3), (5, 4), (5, 2)]
    assert [a.shape for a in acts] == [(5, 2), (5, 3), (5, 4)]
    assert acts[0] is x
    W, b = m.W[0], m.b[0]
    assert W.shape == (2, 3) and b.shape == (3,)  # inputs × units
    for n in range(5):
        for j in range(3):
            z = sum(x[n, i] * W[i, j] for i in range(2)) + b[j]
            assert zs[0][n, j] == pytest.approx(z, rel=1e-14, abs=1e-15)
            assert acts[1][n, j] == pytest.approx(math.tanh(z), rel=1e-14, abs=1e-15)
    h2 = np.maximum(acts[1] @ m.W[1] + m.b[1], 0)
    np.testing.assert_allclose(acts[2], h2, rtol=1e-14)
    out = h2 @ m.W[2] + m.b[2]
    np.testing.assert_allclose(zs[2], out, rtol=1e-14)
    p = m.predict(x)
    np.testing.assert_allclose(p, np.exp(out) / np.exp(out).sum(axis=1, keepdims=True), rtol=1e-13)
    lo = m.layer_outputs(x)
    assert len(lo) == 4 and lo[0] is x
    np.testing.assert_array_equal(lo[-1], p)


def test_regression_predict_is_linear_output():
    m = make_mlp([2, 3, 1], ["sigmoid"], "regression")
    x = np.random.default_rng(4).normal(0, 1, (6, 2))
    zs, _ = m.forward(x)
    np.testing.assert_array_equal(m.predict(x), zs[-1])
    assert m.predict(x).shape == (6, 1)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_float32_forward_stays_float32_and_close_to_float64(name):
    m = make_mlp([2, 6, 5, 3], [name, name], "classification", seed=7)
    x = np.random.default_rng(8).uniform(-6, 6, (50, 2))
    z64, a64 = m.forward(x)
    z32, a32 = m.forward(x.astype(np.float32))
    for lo, hi in zip(z32 + a32, z64 + a64):
        assert lo.dtype == np.float32
        np.testing.assert_allclose(lo, hi, rtol=1e-4, atol=1e-4)
    p32 = m.predict(x.astype(np.float32))
    assert p32.dtype == np.float32
    np.testing.assert_allclose(p32, m.predict(x), atol=1e-5)
    assert all(W.dtype == np.float64 for W in m.W)  # the model's own weights are untouched


# ============================================================================ init


@pytest.mark.parametrize(
    "init,fan_in,fan_out,std",
    [
        ("he", 400, 400, math.sqrt(2 / 400)),
        ("he", 400, 100, math.sqrt(2 / 400)),  # fan_in is the row count
        ("xavier", 400, 400, math.sqrt(2 / 800)),
        ("xavier", 400, 200, math.sqrt(2 / 600)),
    ],
)
def test_init_normal_std(init, fan_in, fan_out, std):
    W, b = init_layer(fan_in, fan_out, init, np.random.default_rng(0))
    assert W.shape == (fan_in, fan_out) and b.shape == (fan_out,)
    # With ≥ 40 000 samples the std estimate is within ~0.4 % (1σ); 2 % is > 5σ.
    assert abs(W.std() / std - 1) < 0.02
    assert abs(W.mean()) < 0.02 * std
    np.testing.assert_array_equal(b, 0.0)


def test_init_uniform_and_zeros():
    W, b = init_layer(300, 200, "uniform", np.random.default_rng(0))
    assert W.min() >= -0.5 and W.max() < 0.5
    assert W.min() < -0.49 and W.max() > 0.49  # fills the range
    assert abs(W.std() - 1 / math.sqrt(12)) < 0.01 * (1 / math.sqrt(12))
    np.testing.assert_array_equal(b, np.full(200, 0.1))
    W, b = init_layer(5, 3, "zeros", np.random.default_rng(0))
    assert W.shape == (5, 3) and not W.any() and not b.any()
    with pytest.raises(ValueError):
        init_layer(2, 2, "bogus", np.random.default_rng(0))


@pytest.mark.parametrize("init", ["he", "xavier", "uniform"])
def test_init_is_reproducible_from_seed(init):
    a = MLP([3, 5, 4, 2], ["tanh", "relu"], "classification", init, np.random.default_rng(42))
    b = MLP([3, 5, 4, 2], ["tanh", "relu"], "classification", init, np.random.default_rng(42))
    c = MLP([3, 5, 4, 2], ["tanh", "relu"], "classification", init, np.random.default_rng(43))
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(a.W[0], c.W[0])


# ============================================================================ optimizers


def fixed_grads(step: int) -> list[np.ndarray]:
    """Different, non-trivial gradients at every step."""
    rng = np.random.default_rng(100 + step)
    return [rng.normal(0, 1, (3, 2)), rng.normal(0, 0.1, 2)]


def start_params():
    rng = np.random.default_rng(99)
    return [rng.normal(0, 1, (3, 2)), rng.normal(0, 1, 2)]


def reference_run(kind: str, lr: float, steps: int) -> list[list[list[float]]]:
    """The contract's update rules, scalar by scalar in plain Python floats."""
    theta = [p.ravel().tolist() for p in start_params()]
    m = [[0.0] * len(t) for t in theta]
    v = [[0.0] * len(t) for t in theta]
    history = []
    for t in range(1, steps + 1):
        grads = [g.ravel().tolist() for g in fixed_grads(t)]
        for k, (th, gs) in enumerate(zip(theta, grads)):
            for i, g in enumerate(gs):
                if kind == "sgd":
                    th[i] -= lr * g
                elif kind == "momentum":
                    v[k][i] = 0.9 * v[k][i] + g
                    th[i] -= lr * v[k][i]
                else:  # adam, Kingma & Ba Algorithm 1
                    m[k][i] = 0.9 * m[k][i] + 0.1 * g
                    v[k][i] = 0.999 * v[k][i] + 0.001 * g * g
                    m_hat = m[k][i] / (1 - 0.9**t)
                    v_hat = v[k][i] / (1 - 0.999**t)
                    th[i] -= lr * m_hat / (math.sqrt(v_hat) + 1e-8)
        history.append([list(th) for th in theta])
    return history


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_optimizer_first_three_steps_match_closed_form(kind):
    assert OPTIMIZERS[kind] is {"sgd": SGD, "momentum": Momentum, "adam": Adam}[kind]
    lr = 0.05
    params = start_params()
    originals = [id(p) for p in params]
    opt = OPTIMIZERS[kind](params)
    expected = reference_run(kind, lr, 3)
    for t in range(1, 4):
        opt.step(params, fixed_grads(t), lr)
        assert [id(p) for p in params] == originals  # updated in place
        for p, ref in zip(params, expected[t - 1]):
            np.testing.assert_allclose(p.ravel(), ref, rtol=1e-12, atol=0)


def test_momentum_differs_from_sgd_after_first_step():
    # Same first step (v = g), then momentum accumulates: a check that μ actually enters.
    sgd, mom = reference_run("sgd", 0.1, 2), reference_run("momentum", 0.1, 2)
    np.testing.assert_allclose(sgd[0][0], mom[0][0], rtol=1e-15)
    assert not np.allclose(sgd[1][0], mom[1][0])


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_adam_first_step_moves_each_parameter_by_lr(scale):
    lr = 0.01
    params = start_params()
    before = [p.copy() for p in params]
    grads = [g * scale for g in fixed_grads(1)]
    Adam(params).step(params, grads, lr)
    for p, p0, g in zip(params, before, grads):
        delta = p - p0
        assert (np.abs(g) > 1e-4).all()
        # |Δ| = lr·|g|/(|g| + ε): within ε/|g| ≤ 1e-4 of lr, whatever the gradient's scale.
        np.testing.assert_allclose(delta, -lr * np.sign(g), rtol=1e-4, atol=0)


# ============================================================================ regularization


def test_penalty_values():
    m = make_mlp([2, 3, 2], ["tanh"], "classification")
    W0, W1 = m.W
    l2 = 0.5 * sum(w * w for W in (W0, W1) for w in W.ravel().tolist())
    l1 = sum(abs(w) for W in (W0, W1) for w in W.ravel().tolist())
    assert any(b.any() for b in m.b)  # biases are non-zero but must not count
    np.testing.assert_allclose(penalty(m, "l2", 0.3), 0.3 * l2, rtol=1e-13)
    np.testing.assert_allclose(penalty(m, "l1", 0.3), 0.3 * l1, rtol=1e-13)
    assert penalty(m, "none", 0.3) == 0.0
    assert penalty(m, "l2", 0.0) == 0.0


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_penalty_grads_touch_weights_only(kind):
    m = make_mlp([2, 3, 2], ["tanh"], "classification")
    x, y = make_xy([2, 3, 2], "classification")
    _, grads = m.loss_and_grads(x, y)
    before = [g.copy() for g in grads]
    add_penalty_grads(m, grads, kind, 0.2)
    for l in range(2):
        extra = 0.2 * (m.W[l] if kind == "l2" else np.sign(m.W[l]))
        np.testing.assert_allclose(grads[2 * l], before[2 * l] + extra, rtol=1e-14, atol=1e-16)
        np.testing.assert_array_equal(grads[2 * l + 1], before[2 * l + 1])
    again = [g.copy() for g in before]
    add_penalty_grads(m, again, "none", 0.2)
    add_penalty_grads(m, again, kind, 0.0)
    for g, g0 in zip(again, before):
        np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_total_gradient_matches_finite_difference_of_regularized_loss(kind):
    m = make_mlp([2, 4, 3], ["tanh"], "classification", seed=11)
    x, y = make_xy([2, 4, 3], "classification", n=8, seed=12)
    assert min(np.abs(W).min() for W in m.W) > 1e-4  # L1 is kinked at 0
    rate = 0.15
    _, grads = m.loss_and_grads(x, y)
    add_penalty_grads(m, grads, kind, rate)

    def total():
        return m.loss_and_grads(x, y)[0] + penalty(m, kind, rate)

    for p, g in zip(m.params, grads):
        np.testing.assert_allclose(g, central_diff(total, p), rtol=1e-6, atol=1e-8)


# ============================================================================ schedules


def test_constant_schedule():
    for epoch in (0, 1, 99, 100, 12345):
        assert scheduled_lr(0.3, "constant", epoch, 100) == 0.3


def test_step_schedule_halves_every_period():
    lr, period = 0.4, 10
    assert scheduled_lr(lr, "step", 0, period) == lr
    assert scheduled_lr(lr, "step", period - 1, period) == lr
    assert scheduled_lr(lr, "step", period, period) == lr / 2
    assert scheduled_lr(lr, "step", 2 * period - 1, period) == lr / 2
    assert scheduled_lr(lr, "step", 2 * period, period) == lr / 4
    assert scheduled_lr(lr, "step", 5 * period + 3, period) == lr / 32


def test_cosine_schedule():
    lr, period = 0.2, 100
    assert scheduled_lr(lr, "cosine", 0, period) == pytest.approx(lr, rel=1e-15)
    assert scheduled_lr(lr, "cosine", 50, period) == pytest.approx(lr / 2, rel=1e-12)
    assert scheduled_lr(lr, "cosine", 25, period) == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-12)
    # Near the end of a cycle ½(1 + cos πt) < 0.01, so the 1 % floor applies.
    assert scheduled_lr(lr, "cosine", 99, period) == pytest.approx(0.01 * lr, rel=1e-12)
    assert scheduled_lr(lr, "cosine", 95, period) == pytest.approx(0.01 * lr, rel=1e-12)
    assert scheduled_lr(lr, "cosine", 90, period) > 0.01 * lr  # ½(1+cos 0.9π) ≈ 0.0245
    # Warm restart.
    assert scheduled_lr(lr, "cosine", period, period) == pytest.approx(lr, rel=1e-15)
    assert scheduled_lr(lr, "cosine", period + 50, period) == pytest.approx(lr / 2, rel=1e-12)
    values = [scheduled_lr(lr, "cosine", e, period) for e in range(period)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # non-increasing within a cycle
    assert min(values) == pytest.approx(0.01 * lr, rel=1e-12)


# ============================================================================ train_epoch


def blobs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0, 0.5, (n, 2)) + np.where(y[:, None] == 1, 1.5, -1.5)
    return x, y


@pytest.mark.parametrize("batch", [40, 1000])
@pytest.mark.parametrize("reg", ["none", "l2", "l1"])
def test_full_batch_epoch_is_one_gradient_step(batch, reg):
    x, y = blobs()
    m = make_mlp([2, 5, 2], ["tanh"], "classification", seed=3)
    lr, rate = 0.3, (0.0 if reg == "none" else 0.05)
    before = [p.copy() for p in m.params]
    _, grads = m.loss_and_grads(x, y)
    # ∂penalty/∂W: rate·W (L2), rate·sign(W) (L1); biases carry no penalty.
    reg_grads = {"none": [0 * W for W in m.W], "l2": [rate * W for W in m.W], "l1": [rate * np.sign(W) for W in m.W]}[
        reg
    ]
    updates = train_epoch(m, SGD(m.params), x, y, batch, lr, np.random.default_rng(0), reg, rate)
    assert updates == 1
    for k, (p, p0, g) in enumerate(zip(m.params, before, grads)):
        expected = p0 - lr * (g + (reg_grads[k // 2] if k % 2 == 0 else 0))
        np.testing.assert_allclose(p, expected, rtol=1e-10, atol=1e-14)
    assert any(not np.array_equal(p, p0) for p, p0 in zip(m.params, before))


@pytest.mark.parametrize("n,batch", [(10, 1), (10, 3), (10, 5), (10, 10), (10, 11), (37, 8)])
def test_train_epoch_counts_updates(n, batch):
    x, y = blobs(n)
    m = make_mlp([2, 3, 2], ["tanh"], "classification")
    assert train_epoch(m, SGD(m.params), x, y, batch, 0.1, np.random.default_rng(0)) == math.ceil(n / batch)


def test_minibatch_epoch_follows_the_rng_permutation():
    """One epoch = SGD over consecutive slices of rng.permutation(n), in order."""
    x, y = blobs(23)
    m = make_mlp([2, 4, 2], ["tanh"], "classification", seed=4)
    ref = m.copy()
    train_epoch(m, SGD(m.params), x, y, 5, 0.2, np.random.default_rng(7))
    order = np.random.default_rng(7).permutation(23)
    for s in range(0, 23, 5):
        idx = order[s : s + 5]
        _, g = ref.loss_and_grads(x[idx], y[idx])
        for p, gp in zip(ref.params, g):
            p -= 0.2 * gp
    for p, q in zip(m.params, ref.params):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-15)


def test_train_epoch_is_deterministic_given_the_seed():
    x, y = blobs()

    def run(seed):
        m = make_mlp([2, 4, 2], ["tanh"], "classification", seed=0)
        opt = Adam(m.params)
        rng = np.random.default_rng(seed)
        for _ in range(3):
            train_epoch(m, opt, x, y, 7, 0.05, rng)
        return m.params

    a, b, c = run(1), run(1), run(2)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)
    assert any(not np.array_equal(p, q) for p, q in zip(a, c))


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_loss_decreases_on_separable_problem(kind):
    x, y = blobs(60, seed=5)
    m = make_mlp([2, 4, 2], ["tanh"], "classification", seed=6)
    opt = OPTIMIZERS[kind](m.params)
    rng = np.random.default_rng(0)
    losses = [m.loss_and_grads(x, y)[0]]
    for _ in range(30):
        train_epoch(m, opt, x, y, 10, 0.05, rng)
        losses.append(m.loss_and_grads(x, y)[0])
    assert losses[-1] < 0.2 * losses[0]
    assert losses[10] < losses[0] and losses[20] < losses[10] and losses[30] < losses[20]
    assert np.mean(m.predict(x).argmax(axis=1) == y) == 1.0


# ============================================================================ resized / copy


def test_resized_adding_a_unit_keeps_old_weights():
    old = make_mlp([2, 3, 2], ["tanh"], "classification", seed=1)
    snapshot = old.copy()
    new = old.resized([2, 4, 2], ["tanh"], "xavier", np.random.default_rng(9))
    assert new.sizes == [2, 4, 2] and new.hidden == ["tanh"] and new.problem == "classification"
    np.testing.assert_array_equal(new.W[0][:, :3], old.W[0])
    np.testing.assert_array_equal(new.b[0][:3], old.b[0])
    np.testing.assert_array_equal(new.W[1][:3, :], old.W[1])
    np.testing.assert_array_equal(new.b[1], old.b[1])
    assert new.W[0][:, 3].any() and new.W[1][3, :].any()  # the new unit is initialised, not zero
    for p, q in zip(old.params, snapshot.params):  # the old model is untouched
        np.testing.assert_array_equal(p, q)


def test_resized_removing_a_unit_keeps_the_rest():
    old = make_mlp([2, 4, 2], ["relu"], "classification", seed=1)
    new = old.resized([2, 3, 2], ["relu"], "he", np.random.default_rng(9))
    np.testing.assert_array_equal(new.W[0], old.W[0][:, :3])
    np.testing.assert_array_equal(new.b[0], old.b[0][:3])
    np.testing.assert_array_equal(new.W[1], old.W[1][:3, :])
    np.testing.assert_array_equal(new.b[1], old.b[1])


def test_resized_removing_last_hidden_layer_maps_output_layer():
    old = make_mlp([2, 4, 3, 2], ["tanh", "tanh"], "classification", seed=2)
    new = old.resized([2, 4, 2], ["tanh"], "xavier", np.random.default_rng(9))
    assert [W.shape for W in new.W] == [(2, 4), (4, 2)]
    np.testing.assert_array_equal(new.W[0], old.W[0])
    np.testing.assert_array_equal(new.b[0], old.b[0])
    # The new output layer inherits the old output layer's overlapping block (3 of 4 rows).
    np.testing.assert_array_equal(new.W[1][:3, :], old.W[2])
    np.testing.assert_array_equal(new.b[1], old.b[2])


def test_resized_adding_a_layer_keeps_first_and_output_layers():
    old = make_mlp([2, 4, 2], ["tanh"], "classification", seed=3)
    new = old.resized([2, 4, 3, 2], ["tanh", "relu"], "xavier", np.random.default_rng(9))
    assert new.hidden == ["tanh", "relu"]
    np.testing.assert_array_equal(new.W[0], old.W[0])
    np.testing.assert_array_equal(new.b[0], old.b[0])
    np.testing.assert_array_equal(new.W[2], old.W[1][:3, :])
    np.testing.assert_array_equal(new.b[2], old.b[1])


def test_copy_is_deep():
    m = make_mlp([2, 3, 2], ["tanh"], "classification")
    c = m.copy()
    for p, q in zip(m.params, c.params):
        np.testing.assert_array_equal(p, q)
        assert not np.shares_memory(p, q)
    x = np.random.default_rng(0).normal(0, 1, (4, 2))
    np.testing.assert_array_equal(c.predict(x), m.predict(x))
    before = [p.copy() for p in m.params]
    for p in c.params:
        p += 1.0
    c.set_activation(0, "relu")
    c.sizes.append(99)
    for p, q in zip(m.params, before):
        np.testing.assert_array_equal(p, q)
    assert m.hidden == ["tanh"] and m.sizes == [2, 3, 2]
    h = np.tanh(x @ m.W[0] + m.b[0])  # the original still computes with tanh and its own weights
    np.testing.assert_allclose(m.forward(x)[0][-1], h @ m.W[1] + m.b[1], rtol=1e-14)


def test_set_activation_changes_the_function_used():
    m = make_mlp([2, 3, 2], ["tanh"], "classification")
    x = np.random.default_rng(0).normal(0, 1, (4, 2))
    m.set_activation(0, "relu")
    np.testing.assert_allclose(m.forward(x)[1][1], np.maximum(x @ m.W[0] + m.b[0], 0), rtol=1e-15)


def test_is_finite():
    m = make_mlp([2, 3, 2], ["tanh"], "classification")
    assert m.is_finite()
    m.b[1][0] = np.nan
    assert not m.is_finite()
    m.b[1][0] = 0.0
    m.W[0][0, 0] = np.inf
    assert not m.is_finite()
