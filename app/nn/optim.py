"""Optimizers, regularizers, learning-rate schedules and one epoch of minibatch training.

Parameters and gradients are lists of arrays in MLP.params order [W0, b0, W1, b1, …];
optimizers update them in place. Conventions (fixed by the API contract):
  sgd       θ ← θ − η g
  momentum  v ← μ v + g,  θ ← θ − η v                      (μ = 0.9)
  adam      m ← β1 m + (1−β1) g,  v ← β2 v + (1−β2) g²,
            θ ← θ − η m̂ / (√v̂ + ε),  m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ)   (β = 0.9, 0.999; ε = 1e-8)
Regularization penalises weights only, never biases: L2 adds rate·½‖W‖², L1 rate·‖W‖₁.
"""
from __future__ import annotations

import math

import numpy as np

from app.nn.mlp import MLP

Array = np.ndarray

MOMENTUM = 0.9
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


class SGD:
    def __init__(self, params: list[Array]):
        pass

    def step(self, params: list[Array], grads: list[Array], lr: float) -> None:
        for p, g in zip(params, grads):
            p -= lr * g


class Momentum:
    def __init__(self, params: list[Array]):
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params: list[Array], grads: list[Array], lr: float) -> None:
        for p, g, v in zip(params, grads, self.v):
            v *= MOMENTUM
            v += g
            p -= lr * v


class Adam:
    def __init__(self, params: list[Array]):
        self.t = 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params: list[Array], grads: list[Array], lr: float) -> None:
        self.t += 1
        # The paper's formula as written (Kingma & Ba 2015, Algorithm 1), ε outside the root.
        c1 = 1.0 - ADAM_BETA1**self.t
        c2 = 1.0 - ADAM_BETA2**self.t
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


def train_epoch(model: MLP, optimizer, x: Array, y: Array, batch_size: int, lr: float,
                rng: np.random.Generator, reg: str = "none", reg_rate: float = 0.0) -> int:
    """One pass over (x, y) in shuffled minibatches; returns the number of updates made.

    The permutation comes from the session's generator, so a run is reproducible from its seed.
    No loss is computed here: the caller evaluates the whole sets once per frame instead.
    """
    n = x.shape[0]
    order = rng.permutation(n)
    params = model.params
    updates = 0
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        _, grads = model.loss_and_grads(x[idx], y[idx], need_loss=False)
        add_penalty_grads(model, grads, reg, reg_rate)
        optimizer.step(params, grads, lr)
        updates += 1
    return updates
