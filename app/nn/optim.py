"""Optimizers, regularizers, learning-rate schedules and one epoch of minibatch training.

Parameters and gradients are lists of arrays in MLP.params order [W0, b0, W1, b1, …];
optimizers update them in place. When both lists are FlatParams (views into one flat vector,
as MLP.params and MLP.grad_views are), the update runs on the whole vector in a handful of
NumPy calls; any other lists are updated array by array, with the same operations in the
same order, so both paths give bit-identical results. Conventions (fixed by the API contract):
  sgd       θ ← θ − η g
  momentum  v ← μ v + g,  θ ← θ − η v                      (μ = 0.9)
  adam      m ← β1 m + (1−β1) g,  v ← β2 v + (1−β2) g²,
            θ ← θ − η m̂ / (√v̂ + ε),  m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ)   (β = 0.9, 0.999; ε = 1e-8)
Regularization penalises weights only, never biases: L2 adds rate·½‖W‖², L1 rate·‖W‖₁.
"""

from __future__ import annotations

import math
import time

import numpy as np

from app.nn.losses import epoch_targets
from app.nn.mlp import MLP

Array = np.ndarray

MOMENTUM = 0.9
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)  # 2.2e-308; below it floats are subnormal


def _flat(params: list[Array], grads: list[Array]) -> tuple[Array, Array] | None:
    """The flat vectors behind params and grads when both are FlatParams of one size, else None."""
    theta, g = getattr(params, "flat", None), getattr(grads, "flat", None)
    if theta is not None and g is not None and theta.shape == g.shape:
        return theta, g
    return None


class _Optimizer:
    """Shared plumbing. State vectors (momentum, Adam's moments) are flat, laid out like
    the parameters; `views` gives them per parameter array, for the array-by-array path.
    Scratch vectors are made on first use and left out of copies and pickles (a timeline
    checkpoint deep-copies the optimizer: it should carry the state, not the scratch)."""

    def __init__(self, params: list[Array]):
        self._shapes = [p.shape for p in params]
        self._size = sum(p.size for p in params)

    def views(self, flat: Array) -> list[Array]:
        out, o = [], 0
        for shape in self._shapes:
            n = int(np.prod(shape))
            out.append(flat[o : o + n].reshape(shape))
            o += n
        return out

    def scratch(self) -> tuple[Array, Array]:
        buffers = self.__dict__.get("_scratch")
        if buffers is None:
            buffers = self._scratch = (np.empty(self._size), np.empty(self._size))
        return buffers

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_scratch"}

    def state_vectors(self) -> list[Array]:
        """The flat state vectors (momentum, Adam's moments); none for SGD."""
        return []

    def flush_subnormal(self) -> None:
        """Set state values below the smallest normal float to 0; called after every epoch.

        A moment that stops getting gradient (a dead unit, a pixel that is always 0 but
        in a few images) decays by 0.9 per update into the subnormal range, and there it stays
        for ever: 0.9 × a tiny subnormal rounds back to itself. x86 computes with subnormals
        many times slower: Adam's update of the seed figure ran 2.4× slower after a few
        hundred epochs. Such a value moves no weight (its update underflows), so zeroing it
        changes no weight. The compiled kernel flushes the same values at the same points."""
        for state in self.state_vectors():
            np.copyto(state, 0.0, where=np.abs(state) < SMALLEST_NORMAL)  # NaN stays: divergence shows


class SGD(_Optimizer):
    def step(self, params: list[Array], grads: list[Array], lr: float) -> None:
        flat = _flat(params, grads)
        if flat is not None:
            theta, g = flat
            tmp = self.scratch()[0]
            np.multiply(g, lr, out=tmp)
            theta -= tmp
            return
        for p, g in zip(params, grads):
            p -= lr * g


class Momentum(_Optimizer):
    def __init__(self, params: list[Array]):
        super().__init__(params)
        self._v = np.zeros(self._size)

    @property
    def v(self) -> list[Array]:
        return self.views(self._v)

    def state_vectors(self) -> list[Array]:
        return [self._v]

    def step(self, params: list[Array], grads: list[Array], lr: float) -> None:
        flat = _flat(params, grads)
        if flat is not None:
            theta, g = flat
            v, tmp = self._v, self.scratch()[0]
            v *= MOMENTUM
            v += g
            np.multiply(v, lr, out=tmp)
            theta -= tmp
            return
        for p, g, v in zip(params, grads, self.v):
            v *= MOMENTUM
            v += g
            p -= lr * v


class Adam(_Optimizer):
    def __init__(self, params: list[Array]):
        super().__init__(params)
        self.t = 0
        self._m = np.zeros(self._size)
        self._v = np.zeros(self._size)

    @property
    def m(self) -> list[Array]:
        return self.views(self._m)

    @property
    def v(self) -> list[Array]:
        return self.views(self._v)

    def state_vectors(self) -> list[Array]:
        return [self._m, self._v]

    def step(self, params: list[Array], grads: list[Array], lr: float) -> None:
        self.t += 1
        # The paper's formula as written (Kingma & Ba 2015, Algorithm 1), ε outside the root.
        c1 = 1.0 - ADAM_BETA1**self.t
        c2 = 1.0 - ADAM_BETA2**self.t
        flat = _flat(params, grads)
        if flat is not None:
            # Whole model at once, through two scratch vectors: the same operations in the
            # same order as the per-array loop below, so the results are bit for bit equal.
            theta, g = flat
            m, v = self._m, self._v
            tmp, step = self.scratch()
            m *= ADAM_BETA1
            np.multiply(g, 1.0 - ADAM_BETA1, out=tmp)
            m += tmp
            v *= ADAM_BETA2
            np.multiply(g, g, out=tmp)
            tmp *= 1.0 - ADAM_BETA2
            v += tmp
            np.divide(v, c2, out=tmp)
            np.sqrt(tmp, out=tmp)
            tmp += ADAM_EPS  # √v̂ + ε
            np.divide(m, c1, out=step)
            step *= lr
            step /= tmp  # η m̂ / (√v̂ + ε)
            theta -= step
            return
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= ADAM_BETA1
            m += (1.0 - ADAM_BETA1) * g
            v *= ADAM_BETA2
            v += (1.0 - ADAM_BETA2) * (g * g)
            p -= lr * (m / c1) / (np.sqrt(v / c2) + ADAM_EPS)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
REGULARIZATIONS = ("none", "l1", "l2")
SCHEDULES = ("constant", "step", "cosine")


def penalty(model: MLP, kind: str, rate: float) -> float:
    """The regularization term added to the data loss (weights only)."""
    if kind == "none" or rate == 0.0:
        return 0.0
    if kind == "l2":
        return rate * 0.5 * sum(float(np.sum(W * W)) for W in model.W)
    return rate * sum(float(np.sum(np.abs(W))) for W in model.W)


def add_penalty_grads(model: MLP, grads: list[Array], kind: str, rate: float) -> None:
    """Add ∂penalty/∂W to the weight gradients in place: rate·W (L2) or rate·sign(W) (L1)."""
    if kind == "none" or rate == 0.0:
        return
    if getattr(grads, "flat", None) is model.grad:
        # Training path: the whole gradient vector at once. The scratch vector is 0 on the
        # biases and `where` never writes there, so they get exactly nothing added.
        tmp = model.penalty_scratch
        if kind == "l2":
            np.multiply(model.theta, rate, out=tmp, where=model.weight_mask)
        else:
            np.sign(model.theta, out=tmp, where=model.weight_mask)
            tmp *= rate
        model.grad += tmp
        return
    for l, W in enumerate(model.W):
        grads[2 * l] += rate * (W if kind == "l2" else np.sign(W))


def scheduled_lr(lr: float, schedule: str, epoch: int, period: int) -> float:
    """Learning rate for an epoch. step: halve every `period` epochs;
    cosine: ½(1 + cos(π·t/period)) with warm restarts, never below 1 % of lr."""
    if schedule == "step":
        return lr * 0.5 ** (epoch // period)
    if schedule == "cosine":
        t = (epoch % period) / period
        return lr * max(0.01, 0.5 * (1.0 + math.cos(math.pi * t)))
    return lr


class EpochPass:
    """One epoch in progress: its shuffled data and how far the minibatches have got.

    `run` can stop at a deadline and carry on in a later call, so a long epoch (a wide
    network at batch size 1) is spread over several short calls; the updates are the same,
    in the same order, however the epoch is split.
    The permutation comes from the session's generator, so a run is reproducible from its seed.
    The shuffled inputs (with the column of ones MLP.fill_grads wants) and targets are built
    once per epoch, so each minibatch is a pair of contiguous slices.
    """

    def __init__(self, model: MLP, x: Array, y: Array, batch_size: int, rng: np.random.Generator):
        n, d0 = x.shape
        order = rng.permutation(n)
        self.xa = np.empty((n, d0 + 1))
        self.xa[:, :d0] = x[order]
        self.xa[:, d0] = 1.0
        self.t = epoch_targets(model.problem, y[order], model.sizes[-1], batch_size)
        self.n, self.batch_size, self.pos = n, batch_size, 0

    @property
    def done(self) -> bool:
        return self.pos >= self.n

    def run(
        self,
        model: MLP,
        optimizer,
        lr: float,
        reg: str = "none",
        reg_rate: float = 0.0,
        deadline: float | None = None,
        step=None,
        fill_grads=None,
    ) -> int:
        """Minibatches until the epoch ends, or until time.perf_counter() passes `deadline`
        (at least one is made); returns the number of updates. No loss is computed here:
        the caller evaluates the whole sets when it needs to. `step`, `fill_grads`: the
        optimizer's update and model.fill_grads computed another way with the same numbers
        (app/nn/compiled: fused_step, fused_fill), if given."""
        params, grads = model.params, model.grad_views
        fill_grads, step = fill_grads or model.fill_grads, step or optimizer.step
        regularize = reg != "none" and reg_rate != 0.0
        xa, t, n, b = self.xa, self.t, self.n, self.batch_size
        updates = 0
        while self.pos < n:
            start = self.pos
            self.pos = start + b
            fill_grads(xa[start : start + b], t[start : start + b])
            if regularize:
                add_penalty_grads(model, grads, reg, reg_rate)
            step(params, grads, lr)
            updates += 1
            if deadline is not None and time.perf_counter() > deadline:
                break
        if self.pos >= n:
            optimizer.flush_subnormal()
        return updates


def train_epoch(
    model: MLP,
    optimizer,
    x: Array,
    y: Array,
    batch_size: int,
    lr: float,
    rng: np.random.Generator,
    reg: str = "none",
    reg_rate: float = 0.0,
) -> int:
    """One whole pass over (x, y) in shuffled minibatches; returns the number of updates."""
    return EpochPass(model, x, y, batch_size, rng).run(model, optimizer, lr, reg, reg_rate)
