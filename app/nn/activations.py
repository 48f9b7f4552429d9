"""Activation functions, each written next to its derivative.

An activation maps a layer's pre-activation z (shape (n, units)) to its output a = f(z).
`grad(z, a)` returns f'(z) elementwise; it receives a as well because several
derivatives are cheapest in terms of the output (tanh' = 1 − a², σ' = a(1 − a)).
The table ACTIVATIONS is the single source of names: config validation, the page's
menus and the engine all read it.

The training loop and the heatmap pass also use two in-place forms, so that a step
allocates nothing it does not have to:
  f_into(z, out)       out[...] = f(z); out may be z itself
  backprop(da, z, a)   da *= f'(z), in place: turns ∂loss/∂a into ∂loss/∂z
Both default to the plain f and grad; the common activations get faster versions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Activation:
    name: str
    f: Callable[[Array], Array]
    grad: Callable[[Array, Array], Array]  # (z, a) -> f'(z)
    formula: str  # shown in the neuron inspector
    # None means "derive from f and grad": __post_init__ fills both in, so they are never None after it.
    f_into: Callable[[Array, Array], object] = None  # type: ignore[assignment]  # (z, out): out[...] = f(z)
    backprop: Callable[[Array, Array, Array], object] = None  # type: ignore[assignment]  # (da, z, a): da *= f'(z)

    def __post_init__(self):
        if self.f_into is None:
            object.__setattr__(self, "f_into", lambda z, out: np.copyto(out, self.f(z)))
        if self.backprop is None:
            object.__setattr__(self, "backprop", lambda da, z, a: np.multiply(da, self.grad(z, a), out=da))


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


def _tanh_backprop(da: Array, z: Array, a: Array) -> None:
    da *= 1.0 - a * a


def _relu_backprop(da: Array, z: Array, a: Array) -> None:
    da *= z > 0  # the bool mask multiplies as 0.0 / 1.0


def _sigmoid_backprop(da: Array, z: Array, a: Array) -> None:
    da *= a * (1.0 - a)


def tanh_of_twice_(u: Array) -> Array:
    """In place: u = 2z becomes tanh z = 1 − 2/(e^u + 1) (and ±1 where e^u over- or underflows).

    For the heatmap grid pass: one exp and three cheap operations, which NumPy runs about
    1.5× faster than its float32 tanh, and the factor 2 folds exactly into the weights.
    """
    np.exp(u, out=u)
    u += 1.0
    np.divide(-2.0, u, out=u)
    u += 1.0
    return u


def _linear_into(z: Array, out: Array) -> None:
    if out is not z:
        np.copyto(out, z)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation(
            "relu",
            lambda z: np.maximum(z, 0.0),
            lambda z, a: (z > 0).astype(z.dtype),
            "max(0, z)",
            f_into=lambda z, out: np.maximum(z, 0.0, out=out),
            backprop=_relu_backprop,
        ),
        Activation(
            "tanh",
            np.tanh,
            lambda z, a: 1.0 - a * a,
            "tanh(z)",
            f_into=lambda z, out: np.tanh(z, out=out),
            backprop=_tanh_backprop,
        ),
        Activation("sigmoid", _sigmoid, lambda z, a: a * (1.0 - a), "1 / (1 + e^−z)", backprop=_sigmoid_backprop),
        Activation(
            "linear",
            lambda z: z,
            lambda z, a: np.ones_like(z),
            "z",
            f_into=_linear_into,
            backprop=lambda da, z, a: None,
        ),
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


def softmax_(z: Array, axis: int = 1) -> Array:
    """softmax along `axis`, computed in place (z is overwritten and returned)."""
    z -= z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z
