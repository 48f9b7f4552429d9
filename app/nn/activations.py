"""Activation functions, each written next to its derivative.

An activation maps a layer's pre-activation z (shape (n, units)) to its output a = f(z).
`grad(z, a)` returns f'(z) elementwise; it receives a as well because several
derivatives are cheapest in terms of the output (tanh' = 1 − a², σ' = a(1 − a)).
The table ACTIVATIONS is the single source of names: config validation, the page's
menus and the engine all read it.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Callable

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Activation:
    name: str
    f: Callable[[Array], Array]
    grad: Callable[[Array, Array], Array]  # (z, a) -> f'(z)
    formula: str  # shown in the neuron inspector


def _sigmoid(z: Array) -> Array:
    # Split by sign so exp never overflows: for z < 0 use e^z / (1 + e^z).
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _softplus(z: Array) -> Array:
    # log(1 + e^z) = max(z, 0) + log1p(e^−|z|), stable for large |z|.
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0
_GELU_C = math.sqrt(2.0 / math.pi)  # a Python float, so float32 inputs stay float32


def _gelu(z: Array) -> Array:
    return 0.5 * z * (1.0 + np.tanh(_GELU_C * (z + 0.044715 * z**3)))


def _gelu_grad(z: Array, a: Array) -> Array:
    u = _GELU_C * (z + 0.044715 * z**3)
    t = np.tanh(u)
    du = _GELU_C * (1.0 + 3 * 0.044715 * z**2)
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du


def _swish_grad(z: Array, a: Array) -> Array:
    s = _sigmoid(z)
    return s + a * (1.0 - s)  # d/dz z·σ(z) = σ + zσ(1−σ), and zσ = a


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("relu", lambda z: np.maximum(z, 0.0), lambda z, a: (z > 0).astype(z.dtype), "max(0, z)"),
        Activation("tanh", np.tanh, lambda z, a: 1.0 - a * a, "tanh(z)"),
        Activation("sigmoid", _sigmoid, lambda z, a: a * (1.0 - a), "1 / (1 + e^−z)"),
        Activation("linear", lambda z: z, lambda z, a: np.ones_like(z), "z"),
        Activation(
            "leaky_relu",
            lambda z: np.where(z > 0, z, LEAKY_SLOPE * z),
            lambda z, a: np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype),
            "max(0.01z, z)",
        ),
        Activation(
            "elu",
            lambda z: np.where(z > 0, z, ELU_ALPHA * np.expm1(np.minimum(z, 0.0))),
            lambda z, a: np.where(z > 0, 1.0, a + ELU_ALPHA),
            "z if z > 0 else e^z − 1",
        ),
        Activation("gelu", _gelu, _gelu_grad, "z·Φ(z) ≈ ½z(1 + tanh(√(2/π)(z + 0.044715z³)))"),
        Activation("softplus", _softplus, lambda z, a: _sigmoid(z), "log(1 + e^z)"),
        Activation("swish", lambda z: z * _sigmoid(z), _swish_grad, "z·σ(z)"),
    )
}

HIDDEN_ACTIVATIONS = tuple(ACTIVATIONS)


def softmax(z: Array) -> Array:
    """Row-wise softmax; subtracting the row max keeps exp from overflowing."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
