"""The compiled engine (app/nn/compiled) against the NumPy engine, its reference.

Both paths train from the same weights with the same generator seed, so they see the same
minibatches; the weights must then agree within 1e-12 (the kernel adds the terms of a
matrix product in its own order, BLAS in another, so bit-for-bit equality is not expected).

The kernel is compiled once for the whole file (every test uses the one signature the
runner uses); with an empty cache that takes about ten seconds, later runs load it.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.nn import ACTIVATIONS, MLP, OPTIMIZERS, REGULARIZATIONS, SCHEDULES, EpochPass, compiled, scheduled_lr
from app.nn.compiled import kernel as K
from app.schema import ConfigFields, Limits, resolve
from app.training import Session, Status

TOL = 1e-12


@pytest.fixture(scope="module", autouse=True)
def kernel():
    compiled.load()
    yield compiled._state["kernel"]
    compiled._state["kernel"] = compiled._state["step"] = None  # the other test files train on NumPy, as written


class Cfg:
    """The config attributes the runner reads."""

    def __init__(self, optimizer="sgd", regularization="none", rate=0.0, batch=7, lr=0.05, schedule="constant"):
        self.optimizer, self.regularization, self.regularization_rate = optimizer, regularization, rate
        self.batch_size, self.learning_rate, self.lr_schedule, self.lr_period = batch, lr, schedule, 2


def setup(sizes, hidden, problem, optimizer, seed=0, n=30):
    rng = np.random.default_rng(seed)
    model = MLP(sizes, hidden, problem, "xavier", rng)
    model.theta += rng.normal(0, 0.3, model.theta.shape)  # biases too, so every term matters
    x = rng.normal(0, 1, (n, sizes[0]))
    y = rng.integers(0, sizes[-1], n) if problem == "classification" else rng.normal(0, 1, n)
    return model, OPTIMIZERS[optimizer](model.params), x, y


def numpy_epochs(model, opt, x, y, cfg, epochs, seed=5):
    rng = np.random.default_rng(seed)
    for e in range(epochs):
        lr = scheduled_lr(cfg.learning_rate, cfg.lr_schedule, e, cfg.lr_period)
        EpochPass(model, x, y, cfg.batch_size, rng).run(model, opt, lr, cfg.regularization, cfg.regularization_rate)
    return rng


def compiled_epochs(kernel, model, opt, x, y, cfg, epochs, seed=5):
    rng = np.random.default_rng(seed)
    runner = compiled.Runner(kernel, model, opt, x, y, cfg)
    assert runner.run(rng, 0, epochs, None) == (epochs, epochs * -(-len(y) // cfg.batch_size))
    return rng


def assert_same_training(kernel, sizes, hidden, problem, cfg, epochs=4):
    ref, ref_opt, x, y = setup(sizes, hidden, problem, cfg.optimizer)
    got = ref.copy()
    got_opt = OPTIMIZERS[cfg.optimizer](got.params)
    ref_rng = numpy_epochs(ref, ref_opt, x, y, cfg, epochs)
    got_rng = compiled_epochs(kernel, got, got_opt, x, y, cfg, epochs)
    assert np.max(np.abs(ref.theta - got.theta)) <= TOL, (hidden, cfg.optimizer, cfg.regularization)
    assert not np.array_equal(ref.theta, setup(sizes, hidden, problem, cfg.optimizer)[0].theta)  # it learned
    for name in ("_m", "_v"):
        if hasattr(ref_opt, name):
            assert np.max(np.abs(getattr(ref_opt, name) - getattr(got_opt, name))) <= TOL
    assert getattr(ref_opt, "t", 0) == getattr(got_opt, "t", 0)
    assert ref_rng.bit_generator.state == got_rng.bit_generator.state  # as many permutations drawn


def test_the_code_tables_match_the_numpy_engine():
    assert list(compiled.ACTIVATION_CODES) == list(ACTIVATIONS)
    assert [compiled.ACTIVATION_CODES[n] for n in ("relu", "tanh", "gelu", "swish")] == [
        K.RELU,
        K.TANH,
        K.GELU,
        K.SWISH,
    ]
    assert list(compiled.OPTIMIZER_CODES) == list(OPTIMIZERS) and compiled.OPTIMIZER_CODES["adam"] == K.ADAM
    assert list(compiled.REGULARIZATION_CODES) == list(REGULARIZATIONS) and compiled.REGULARIZATION_CODES["l2"] == K.L2


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("reg", REGULARIZATIONS)
def test_every_activation_trains_as_numpy_does(kernel, optimizer, reg):
    """Every activation × optimizer × regularizer, 4 epochs with a short last minibatch."""
    cfg = Cfg(optimizer, reg, rate=0.0 if reg == "none" else 0.01, lr=0.01 if optimizer == "adam" else 0.05)
    for act in ACTIVATIONS:
        assert_same_training(kernel, [3, 5, 4, 3], [act, "tanh" if act != "tanh" else "relu"], "classification", cfg)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_regression_and_schedules_train_as_numpy_does(kernel, schedule):
    for act in ("tanh", "swish"):
        assert_same_training(kernel, [2, 6, 1], [act], "regression", Cfg("momentum", "l1", 0.003, schedule=schedule))
        assert_same_training(kernel, [4, 3, 5], [act], "classification", Cfg("adam", batch=4, schedule=schedule))
    assert_same_training(kernel, [4, 5], [], "classification", Cfg("sgd", "l2", 0.01, batch=30))  # no hidden layer


def test_an_epoch_split_by_budgets_is_the_same_epoch(kernel):
    """A tick's time running out mid-epoch: the rest of the epoch continues from the same row."""
    cfg = Cfg("adam", batch=1)
    ref, ref_opt, x, y = setup([2, 8, 2], ["tanh"], "classification", "adam", n=40)
    got = ref.copy()
    got_opt = OPTIMIZERS["adam"](got.params)
    numpy_epochs(ref, ref_opt, x, y, cfg, 2)
    runner, rng = compiled.Runner(kernel, got, got_opt, x, y, cfg), np.random.default_rng(5)
    runner.update_s = 1.0  # every call gets a budget of a single update
    ran, updates, calls = 0, 0, 0
    while ran < 2:
        r, u = runner.run(rng, ran, 2 - ran, deadline=0.0)
        ran, updates, calls = ran + r, updates + u, calls + 1
    assert (updates, calls) == (80, 80)
    assert np.max(np.abs(ref.theta - got.theta)) <= TOL and ref_opt.t == got_opt.t == 80


def session(**fields):
    return Session(resolve(None, ConfigFields(**fields), Limits()))


def test_session_training_is_the_same_on_both_paths(kernel, monkeypatch):
    """Session.train on the compiled path: the same weights, counters and checkpoints as on
    NumPy, with epochs grouped into calls that stop on the timeline's checkpoint epochs."""
    fields = dict(seed=3, dataset="spiral", hidden_layers=[{"units": 6, "activation": "tanh"}] * 2, optimizer="adam")
    runs = {}
    for path in ("numpy", "compiled"):
        if path == "numpy":
            monkeypatch.setitem(compiled._state, "kernel", None)
        else:
            monkeypatch.setitem(compiled._state, "kernel", kernel)
        s = session(**fields)
        s.timeline.every = 3  # checkpoints at 0, 3, 6, …: calls must stop there
        assert s.train(7) == 7
        assert isinstance(s._fast, compiled.Runner) == (path == "compiled")
        runs[path] = s
    a, b = runs["numpy"], runs["compiled"]
    assert (a.epoch, a.step, a.optimizer.t) == (b.epoch, b.step, b.optimizer.t) == (7, 7 * 25, 7 * 25)
    assert np.max(np.abs(a.model.theta - b.model.theta)) <= TOL
    assert [c.epoch for c in a.timeline.points] == [c.epoch for c in b.timeline.points] == [0, 3, 6]
    assert a.timeline.at(6).state.rng_state == b.timeline.at(6).state.rng_state
    assert a.loss_train == pytest.approx(b.loss_train, rel=1e-12)


def test_divergence_stops_at_the_same_epoch(kernel, monkeypatch):
    """The kernel, asked for 200 epochs in one call, stops after the epoch that overflowed."""
    epochs = {}
    for path in ("numpy", "compiled"):
        monkeypatch.setitem(compiled._state, "kernel", None if path == "numpy" else kernel)
        s = session(
            seed=1, learning_rate=1.0, dataset="spiral", hidden_layers=[{"units": 8, "activation": "linear"}] * 3
        )
        s.timeline.every = 1000
        s.train(200)
        epochs[path] = (s.status, s.epoch, s.step)
    assert epochs["numpy"] == epochs["compiled"]
    assert epochs["numpy"] == (Status.DIVERGED, 1, 25)


def test_the_crossover_keeps_wide_layers_on_numpy():
    assert compiled.use_compiled([2, 4, 2, 2], 10)
    assert compiled.use_compiled([2, 8, 8, 8, 8, 8, 8, 2], 10)
    assert compiled.use_compiled([2, 48, 48, 2], 1)  # one point per step: loops win even here
    assert not compiled.use_compiled([2, 48, 48, 2], 10)
    assert not compiled.use_compiled([64, 128, 64, 10], 32)  # the seed figure stays on BLAS


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("reg", REGULARIZATIONS)
def test_the_fused_update_on_blas_is_numpys_bit_for_bit(kernel, optimizer, reg):
    """Networks past the crossover train on BLAS with the kernel's one-pass optimizer update
    (compiled.fused_step): the same operations in the same order, so exactly the same numbers."""
    cfg = Cfg(optimizer, reg, rate=0.0 if reg == "none" else 0.01, batch=16, lr=0.01 if optimizer == "adam" else 0.05)
    ref, ref_opt, x, y = setup([6, 40, 30, 3], ["relu", "tanh"], "classification", optimizer, n=70)
    got = ref.copy()
    got_opt = OPTIMIZERS[optimizer](got.params)
    fused = compiled.fused_step(got_opt)
    assert fused is not None
    for model, opt, step in ((ref, ref_opt, None), (got, got_opt, fused)):
        rng = np.random.default_rng(5)
        for _ in range(3):
            EpochPass(model, x, y, cfg.batch_size, rng).run(
                model, opt, cfg.learning_rate, reg, cfg.regularization_rate, None, step
            )
    assert np.array_equal(ref.theta, got.theta)
    for name in ("_m", "_v"):
        if hasattr(ref_opt, name):
            assert np.array_equal(getattr(ref_opt, name), getattr(got_opt, name))
    assert getattr(ref_opt, "t", 0) == getattr(got_opt, "t", 0)


@pytest.mark.parametrize("problem", ["classification", "regression"])
def test_the_compiled_elementwise_steps_on_blas_give_numpys_gradient(kernel, problem):
    """compiled.fused_fill: MLP.fill_grads' products, its activations, derivatives and loss
    gradient compiled; every activation, a short last minibatch included."""
    for act in ACTIVATIONS:
        sizes = [5, 30, 20, 3 if problem == "classification" else 1]
        model, _, x, y = setup(sizes, [act, "relu" if act != "relu" else "tanh"], problem, "sgd", n=40)
        fill = compiled.fused_fill(model)
        assert fill is not None
        epoch = EpochPass(model, x, y, 16, np.random.default_rng(1))
        for start in (0, 16, 32):  # 16, 16 and 8 points
            xa, t = epoch.xa[start : start + 16], epoch.t[start : start + 16]
            model.fill_grads(xa, t)
            want = model.grad.copy()
            model.grad[:] = np.nan  # every entry must be written again
            fill(xa, t)
            assert np.max(np.abs(model.grad - want)) <= 1e-14, (act, start)


def test_a_session_past_the_crossover_trains_the_same_with_the_compiled_steps(kernel, monkeypatch):
    """Session.train on BLAS: NumPy alone, or with the compiled update and elementwise steps."""
    fields = dict(seed=2, dataset="spiral", hidden_layers=[{"units": 64, "activation": "relu"}] * 2, optimizer="adam")
    runs, loaded = {}, {name: compiled._state[name] for name in ("step", "rows")}
    for path in ("numpy", "fused"):
        for name, value in loaded.items():
            monkeypatch.setitem(compiled._state, name, None if path == "numpy" else value)
        s = session(**fields)
        assert (compiled.fused_step(s.optimizer) is None) == (compiled.fused_fill(s.model) is None) == (path == "numpy")
        assert s.train(3) == 3 and s._fast is None  # BLAS
        runs[path] = s
    assert np.max(np.abs(runs["numpy"].model.theta - runs["fused"].model.theta)) <= TOL
    assert runs["numpy"].optimizer.t == runs["fused"].optimizer.t == 75
    assert runs["numpy"].loss_train == pytest.approx(runs["fused"].loss_train, rel=1e-12)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_subnormal_optimizer_state_becomes_zero_after_each_epoch_on_both_paths(kernel, optimizer):
    """A moment that gets no more gradient sinks into the subnormal range and would stay there
    (x86 computes with it many times slower): both paths zero it after every epoch."""
    cfg = Cfg(optimizer, batch=10)
    ref, ref_opt, x, y = setup([3, 5, 3], ["relu"], "classification", optimizer)
    x[:, 0] = 0.0  # the first input's weights (theta[0:5]) get no gradient
    states = ref_opt.state_vectors()
    for sign, state in zip((-1.0, 1.0), states):  # Adam's second moment is never negative
        state[:5] = [1e-310, sign * 4e-320, 1e-300, 0.0, 5e-324]  # subnormal, subnormal, normal, zero, subnormal
    got = ref.copy()
    got_opt = OPTIMIZERS[optimizer](got.params)
    for mine, theirs in zip(got_opt.state_vectors(), states):
        mine[:] = theirs
    numpy_epochs(ref, ref_opt, x, y, cfg, 1)
    compiled_epochs(kernel, got, got_opt, x, y, cfg, 1)
    for mine, theirs in zip(got_opt.state_vectors(), ref_opt.state_vectors()):
        assert np.array_equal(mine[:5], theirs[:5]) and list(mine[[0, 1, 3, 4]]) == [0.0] * 4
        assert mine[2] != 0.0  # a normal value stays (decayed)
        assert not np.any((np.abs(mine) < 2.3e-308) & (mine != 0))
