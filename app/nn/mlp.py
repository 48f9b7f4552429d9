"""The multi-layer perceptron: dense layers a = f(x @ W + b), forward and backward.

Shapes, for a batch of n points and layer sizes [d0, d1, …, dL]:
  W[l]: (d_l, d_{l+1})   b[l]: (d_{l+1},)   z[l], a[l+1]: (n, d_{l+1})   a[0] = x: (n, d0)
Hidden layers use the activations named in `hidden`; the output layer's
pre-activation z_out goes to the loss layer (softmax + cross-entropy, or linear + MSE).
"""
from __future__ import annotations

import numpy as np

from app.nn.activations import ACTIVATIONS
from app.nn.losses import LOSSES, output

Array = np.ndarray

INITS = ("he", "xavier", "uniform", "zeros")


def init_layer(fan_in: int, fan_out: int, init: str, rng: np.random.Generator) -> tuple[Array, Array]:
    """Initial (W, b) for one layer.

    he: N(0, 2/fan_in), for ReLU-like units; xavier: N(0, 2/(fan_in + fan_out)), for tanh;
    uniform: U[−0.5, 0.5) with biases 0.1, as TensorFlow Playground does;
    zeros: every weight 0, to show that identical neurons stay identical (symmetry).
    """
    shape = (fan_in, fan_out)
    if init == "he":
        W = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    elif init == "xavier":
        W = rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), shape)
    elif init == "uniform":
        return rng.uniform(-0.5, 0.5, shape), np.full(fan_out, 0.1)
    elif init == "zeros":
        W = np.zeros(shape)
    else:
        raise ValueError(f"unknown init {init!r}")
    return W, np.zeros(fan_out)


class MLP:
    """Weights, biases and activation names; no training state (that is the optimizer's)."""

    def __init__(self, sizes: list[int], hidden: list[str], problem: str, init: str, rng: np.random.Generator):
        assert len(hidden) == len(sizes) - 2, "one activation per hidden layer"
        self.sizes = list(sizes)
        self.hidden = list(hidden)
        self.problem = problem
        self.W: list[Array] = []
        self.b: list[Array] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            W, b = init_layer(fan_in, fan_out, init, rng)
            self.W.append(W)
            self.b.append(b)
        self._bind()

    def _bind(self) -> None:
        # Look the functions up once: the training loop calls them thousands of times a second.
        self._acts = [ACTIVATIONS[name] for name in self.hidden]
        self._loss = LOSSES[self.problem]

    @property
    def params(self) -> list[Array]:
        """W and b of every layer, interleaved: the order optimizers and gradients use."""
        return [p for Wb in zip(self.W, self.b) for p in Wb]

    def set_activation(self, layer: int, name: str) -> None:
        self.hidden[layer] = name
        self._bind()

    # --- forward -----------------------------------------------------------------
    def forward(self, x: Array) -> tuple[list[Array], list[Array]]:
        """Pre-activations zs (hidden layers then output) and activations acts (x first).

        Runs in x's dtype: training uses float64; heatmaps pass float32 grids, which are
        several times faster and far finer than the 8-bit colours they become.
        """
        Ws, bs = self.W, self.b
        if x.dtype != Ws[0].dtype:
            Ws = [W.astype(x.dtype) for W in Ws]
            bs = [b.astype(x.dtype) for b in bs]
        zs, acts = [], [x]
        a = x
        for W, b, act in zip(Ws, bs, self._acts):
            z = a @ W + b
            a = act.f(z)
            zs.append(z)
            acts.append(a)
        zs.append(a @ Ws[-1] + bs[-1])
        return zs, acts

    def predict(self, x: Array) -> Array:
        """Output layer activations: class probabilities (n, k) or regression values (n, 1)."""
        return output(self.problem, self.forward(x)[0][-1])

    def layer_outputs(self, x: Array) -> list[Array]:
        """Every layer's activation for x: [x, hidden…, output], output after softmax."""
        zs, acts = self.forward(x)
        return acts + [output(self.problem, zs[-1])]

    # --- backward ----------------------------------------------------------------
    def loss_and_grads(self, x: Array, y: Array, need_loss: bool = True) -> tuple[float, list[Array]]:
        """Mean data loss on (x, y) and its gradient for every parameter, in `params` order.
        need_loss=False skips the loss value (NaN is returned) for speed."""
        zs, acts = self.forward(x)
        loss, dz = self._loss(zs[-1], y, need_loss)
        grads = self.backward(zs, acts, dz)
        return loss, grads

    def backward(self, zs: list[Array], acts: list[Array], dz: Array) -> list[Array]:
        """Backpropagate dz = ∂loss/∂z_out; returns [dW0, db0, dW1, db1, …]."""
        L = len(self.W)
        grads: list[Array] = [None] * (2 * L)  # type: ignore[list-item]
        for l in range(L - 1, -1, -1):
            grads[2 * l] = acts[l].T @ dz  # ∂loss/∂W[l] = a[l]ᵀ δ
            grads[2 * l + 1] = dz.sum(axis=0)  # ∂loss/∂b[l] = Σ_n δ
            if l > 0:
                # δ for the layer below: (δ Wᵀ) ⊙ f'(z)
                dz = (dz @ self.W[l].T) * self._acts[l - 1].grad(zs[l - 1], acts[l])
        return grads

    # --- structure changes that keep what was learned ------------------------------
    def resized(self, sizes: list[int], hidden: list[str], init: str, rng: np.random.Generator) -> "MLP":
        """A new MLP of the given shape that keeps every weight whose (row, column) still exists.

        Hidden layer l of the new network inherits the overlapping block of hidden layer l of
        the old one and the output layer inherits the old output layer, so adding a neuron or
        a layer keeps the rest of the network trained; new entries are initialised.
        """
        new = MLP(sizes, hidden, self.problem, init, rng)
        shared_hidden = min(len(self.W), len(new.W)) - 1
        pairs = [(l, l) for l in range(shared_hidden)] + [(len(new.W) - 1, len(self.W) - 1)]
        for new_l, old_l in pairs:
            r = min(self.W[old_l].shape[0], new.W[new_l].shape[0])
            c = min(self.W[old_l].shape[1], new.W[new_l].shape[1])
            new.W[new_l][:r, :c] = self.W[old_l][:r, :c]
            new.b[new_l][:c] = self.b[old_l][:c]
        return new

    def copy(self) -> "MLP":
        clone = object.__new__(MLP)
        clone.sizes, clone.hidden, clone.problem = list(self.sizes), list(self.hidden), self.problem
        clone.W = [W.copy() for W in self.W]
        clone.b = [b.copy() for b in self.b]
        clone._bind()
        return clone

    def is_finite(self) -> bool:
        return all(np.isfinite(p).all() for p in self.params)
