"""Engine figures: one training epoch (app.nn.train_epoch) against a minimal hand-written
NumPy loop doing the same maths, for the default network and the seed figure; and the
epoch time of the 6 × 8 tanh spiral network.

The reference loops below are what a competent person writes for a minimal NumPy MLP,
unrolled for the one network they train: slice the minibatch, forward, softmax +
cross-entropy gradient, backward, update each array in place. Ours and the reference run
in alternation (same machine state), from the same weights and the same shuffling seed,
and the script prints how far apart their parameters end up, as a check that both did the
same work.

Run: .venv/bin/python benchmarks/bench_engine.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from common import preset_config, row, session_for

from app.nn import OPTIMIZERS, train_epoch

ROUNDS = 300


# --- the references ---------------------------------------------------------------------------
def reference_default_epoch(W1, b1, W2, b2, W3, b3, x, y, batch, lr, rng):
    """2 → 4 tanh → 2 tanh → 2 softmax, cross-entropy, plain SGD."""
    n = len(x)
    order = rng.permutation(n)
    for start in range(0, n, batch):
        idx = order[start : start + batch]
        xb, yb = x[idx], y[idx]
        m = len(idx)
        # forward
        h1 = np.tanh(xb @ W1 + b1)
        h2 = np.tanh(h1 @ W2 + b2)
        z3 = h2 @ W3 + b3
        # softmax + cross-entropy gradient: (p − onehot) / m
        e = np.exp(z3 - z3.max(axis=1, keepdims=True))
        d3 = e / e.sum(axis=1, keepdims=True)
        d3[np.arange(m), yb] -= 1.0
        d3 /= m
        # backward
        gW3, gb3 = h2.T @ d3, d3.sum(axis=0)
        d2 = (d3 @ W3.T) * (1.0 - h2 * h2)
        gW2, gb2 = h1.T @ d2, d2.sum(axis=0)
        d1 = (d2 @ W2.T) * (1.0 - h1 * h1)
        gW1, gb1 = xb.T @ d1, d1.sum(axis=0)
        # update in place
        W1 -= lr * gW1
        b1 -= lr * gb1
        W2 -= lr * gW2
        b2 -= lr * gb2
        W3 -= lr * gW3
        b3 -= lr * gb3


class ReferenceAdam:
    def __init__(self, params):
        self.t = 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.t += 1
        c1, c2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            p -= lr * (m / c1) / (np.sqrt(v / c2) + eps)


def reference_digits_epoch(params, adam, x, y, batch, lr, rng):
    """64 → 128 ReLU → 64 ReLU → 10 softmax, cross-entropy, Adam."""
    W1, b1, W2, b2, W3, b3 = params
    n = len(x)
    order = rng.permutation(n)
    for start in range(0, n, batch):
        idx = order[start : start + batch]
        xb, yb = x[idx], y[idx]
        m = len(idx)
        z1 = xb @ W1 + b1
        h1 = np.maximum(z1, 0.0)
        z2 = h1 @ W2 + b2
        h2 = np.maximum(z2, 0.0)
        z3 = h2 @ W3 + b3
        e = np.exp(z3 - z3.max(axis=1, keepdims=True))
        d3 = e / e.sum(axis=1, keepdims=True)
        d3[np.arange(m), yb] -= 1.0
        d3 /= m
        gW3, gb3 = h2.T @ d3, d3.sum(axis=0)
        d2 = (d3 @ W3.T) * (z2 > 0)
        gW2, gb2 = h1.T @ d2, d2.sum(axis=0)
        d1 = (d2 @ W2.T) * (z1 > 0)
        gW1, gb1 = xb.T @ d1, d1.sum(axis=0)
        adam.step(params, [gW1, gb1, gW2, gb2, gW3, gb3], lr)


# --- measuring ----------------------------------------------------------------------------------
def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def compare(name: str, config: dict, make_reference) -> None:
    s = session_for(seed=1, **config)
    cfg, x, y = s.cfg, s.data.f_train, s.data.train.y
    model = s.model.copy()
    opt = OPTIMIZERS[cfg.optimizer](model.params)
    ref_params = [p.copy() for p in model.params]
    ref_epoch = make_reference(ref_params)
    lr, batch = cfg.learning_rate, cfg.batch_size

    # Same work check: one epoch each from the same weights and the same shuffling seed.
    train_epoch(model, opt, x, y, batch, lr, np.random.default_rng(0))
    ref_epoch(x, y, batch, lr, np.random.default_rng(0))
    diff = max(float(np.max(np.abs(p - q))) for p, q in zip(model.params, ref_params))

    rng_ours, rng_ref = np.random.default_rng(1), np.random.default_rng(1)
    ours, ref = [], []
    for _ in range(ROUNDS):  # alternate, so both see the same machine load
        ours.append(timed(lambda: train_epoch(model, opt, x, y, batch, lr, rng_ours)))
        ref.append(timed(lambda: ref_epoch(x, y, batch, lr, rng_ref)))
    o, r = statistics.median(ours), statistics.median(ref)
    steps = -(-len(y) // batch)
    print(f"{name} ({len(y)} training points, batch {batch}, {steps} steps, {cfg.optimizer})")
    row("ours: train_epoch (median)", f"{o:.3f} ms", f"{o * 1000 / steps:.1f} µs/step")
    row("reference hand-written loop (median)", f"{r:.3f} ms", f"{r * 1000 / steps:.1f} µs/step")
    row("ratio ours / reference", f"{o / r:.2f}×", "(target ≤ 1.3×)")
    row("same work: max |Δθ| after one epoch", f"{diff:.1e}")


def default_reference(params):
    W1, b1, W2, b2, W3, b3 = params
    return lambda x, y, batch, lr, rng: reference_default_epoch(W1, b1, W2, b2, W3, b3, x, y, batch, lr, rng)


def digits_reference(params):
    adam = ReferenceAdam(params)
    return lambda x, y, batch, lr, rng: reference_digits_epoch(params, adam, x, y, batch, lr, rng)


SEED_FIGURE = preset_config("seed")  # the seed article's figure, as the page's preset
SPIRAL = dict(
    dataset="spiral",
    hidden_layers=[{"units": 8, "activation": "tanh"}] * 6,
    optimizer="adam",
    learning_rate=0.003,
    batch_size=10,
    noise=0,
)


def main() -> None:
    compare("Default network: circle, 2-4-2-2 tanh/softmax", {}, default_reference)
    compare("Seed figure: digits 64-128-64-10 ReLU/softmax", SEED_FIGURE, digits_reference)

    s = session_for(seed=1, **SPIRAL)
    cfg, x, y = s.cfg, s.data.f_train, s.data.train.y
    model, rng = s.model, np.random.default_rng(1)
    opt = OPTIMIZERS[cfg.optimizer](model.params)
    times = [
        timed(lambda: train_epoch(model, opt, x, y, cfg.batch_size, cfg.learning_rate, rng)) for _ in range(ROUNDS)
    ]
    print(f"Spiral: 6 × 8 tanh, Adam, batch {cfg.batch_size} ({len(y)} training points)")
    row("ours: train_epoch (median)", f"{statistics.median(times):.3f} ms")
    s = session_for(seed=1)
    times = [timed(lambda: s.train(1)) for _ in range(ROUNDS)]
    print("Default network, Session.train(1): epoch + evaluation of both sets")
    row("ours: Session.train(1) (median)", f"{statistics.median(times):.3f} ms")


if __name__ == "__main__":
    main()
