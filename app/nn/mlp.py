"""The multi-layer perceptron: dense layers a = f(x @ W + b), forward and backward.

Shapes, for a batch of n points and layer sizes [d0, d1, …, dL]:
  W[l]: (d_l, d_{l+1})   b[l]: (d_{l+1},)   z[l], a[l+1]: (n, d_{l+1})   a[0] = x: (n, d0)
Hidden layers use the activations named in `hidden`; the output layer's
pre-activation z_out goes to the loss layer (softmax + cross-entropy, or linear + MSE).

Storage. All parameters live in ONE float64 vector `theta`; W[l] and b[l] are views into
it, so an optimizer updates the whole model with a handful of NumPy calls and anyone
holding W[l] sees every update. Layer l occupies one contiguous block
  Wb[l] = theta[o_l : o_l + (d_l + 1)·d_{l+1}].reshape(d_l + 1, d_{l+1}) = [W[l]; b[l]]
(the weights' rows, then the biases as one more row). `grad` has the same layout.

Training path (`fill_grads`). With a column of ones appended to a layer's input,
[a, 1] @ [W; b] = a @ W + b, and [a, 1]ᵀ δ = [aᵀδ; Σ_n δ] = [∂L/∂W; ∂L/∂b]: one matrix
product per layer gives both the forward pre-activation and both gradients, written
straight into `grad`. Its buffers are allocated once per batch size (`_Workspace`).
The public forward/backward below compute the same maths in the plain form.

Heatmap path (`forward_by_unit`): the same augmented product, transposed, so that each
neuron's values over the grid form one contiguous row, in caller-owned float32 buffers.
"""

from __future__ import annotations

import numpy as np

from app.nn.activations import ACTIVATIONS, softmax_, tanh_of_twice_
from app.nn.losses import LOSS_GRADS_INTO, LOSSES, output

Array = np.ndarray

INITS = ("he", "xavier", "uniform", "zeros")


class FlatParams(list):
    """A list of arrays [W0, b0, W1, b1, …] that are all views into one flat vector `flat`.

    Optimizers check for `flat` and then update the vector in one go; to everything else
    this is an ordinary list of arrays.
    """

    def __init__(self, views, flat: Array):
        super().__init__(views)
        self.flat = flat


class _ViewList(list):
    """W or b: a list of views into theta. Assigning `W[l] = array` copies the values into
    the view (it must have the same shape), so theta and the views can never drift apart."""

    def __setitem__(self, index, value):
        np.copyto(self[index], value)


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


def layer_blocks(sizes: list[int], flat: Array) -> list[Array]:
    """The per-layer blocks [W; b] (d_l + 1, d_{l+1}) of a flat parameter-layout vector."""
    blocks, o = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        n = (fan_in + 1) * fan_out
        blocks.append(flat[o : o + n].reshape(fan_in + 1, fan_out))
        o += n
    return blocks


def n_params(sizes: list[int]) -> int:
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))


class MLP:
    """Weights, biases and activation names; no training state (that is the optimizer's)."""

    def __init__(self, sizes: list[int], hidden: list[str], problem: str, init: str, rng: np.random.Generator):
        assert len(hidden) == len(sizes) - 2, "one activation per hidden layer"
        self.sizes = list(sizes)
        self.hidden = list(hidden)
        self.problem = problem
        self._allocate(np.empty(n_params(self.sizes)))
        for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.W[l], self.b[l] = init_layer(fan_in, fan_out, init, rng)  # copied into theta
        self._bind()

    def _allocate(self, theta: Array) -> None:
        """Adopt `theta` as the parameter vector; make the views and the gradient buffer."""
        self.theta = theta
        self.Wb = layer_blocks(self.sizes, theta)
        self.W = _ViewList(Wb[:-1] for Wb in self.Wb)
        self.b = _ViewList(Wb[-1] for Wb in self.Wb)
        self.grad = np.zeros_like(theta)
        self.grad_blocks = layer_blocks(self.sizes, self.grad)
        self.grad_views = FlatParams([p for G in self.grad_blocks for p in (G[:-1], G[-1])], self.grad)
        mask = np.zeros_like(theta, dtype=bool)  # True on weights, False on biases
        for M in layer_blocks(self.sizes, mask):
            M[:-1] = True
        self.weight_mask = mask
        self.penalty_scratch = np.zeros_like(theta)  # for optim.add_penalty_grads; 0 on the biases
        self._WT = [W.T for W in self.W]  # views, for backprop's δ Wᵀ
        self._work: dict[int, _Workspace] = {}

    def _bind(self) -> None:
        # Look the functions up once: the training loop calls them thousands of times a second.
        self._acts = [ACTIVATIONS[name] for name in self.hidden]
        self._loss = LOSSES[self.problem]
        self._loss_grad_into = LOSS_GRADS_INTO[self.problem]
        self._work = {}  # the training plans hold the activation functions

    @property
    def params(self) -> FlatParams:
        """W and b of every layer, interleaved: the order optimizers and gradients use."""
        return FlatParams([p for Wb in zip(self.W, self.b) for p in Wb], self.theta)

    def set_activation(self, layer: int, name: str) -> None:
        self.hidden[layer] = name
        self._bind()

    def cast(self, dtype) -> tuple[list[Array], list[Array]]:
        """(W, b) lists in another dtype, from one conversion of theta (for float32 grids)."""
        if dtype == self.theta.dtype:
            return list(self.W), list(self.b)
        blocks = layer_blocks(self.sizes, self.theta.astype(dtype))
        return [B[:-1] for B in blocks], [B[-1] for B in blocks]

    # --- forward -----------------------------------------------------------------
    def forward(self, x: Array) -> tuple[list[Array], list[Array]]:
        """Pre-activations zs (hidden layers then output) and activations acts (x first).

        Runs in x's dtype: training uses float64; heatmaps pass float32 grids, which are
        several times faster and far finer than the 8-bit colours they become.
        """
        Ws, bs = self.cast(x.dtype)
        zs, acts = [], [x]
        a = x
        for W, b, act in zip(Ws, bs, self._acts):
            z = a @ W
            z += b  # in place: one fresh array per layer, not two (large ones cost page faults)
            a = act.f(z)
            zs.append(z)
            acts.append(a)
        z = a @ Ws[-1]
        z += bs[-1]
        zs.append(z)
        return zs, acts

    def predict(self, x: Array) -> Array:
        """Output layer activations: class probabilities (n, k) or regression values (n, 1)."""
        return output(self.problem, self.forward(x)[0][-1])

    def layer_outputs(self, x: Array) -> list[Array]:
        """Every layer's activation for x: [x, hidden…, output], output after softmax."""
        zs, acts = self.forward(x)
        return acts + [output(self.problem, zs[-1])]

    def forward_by_unit(self, xa: Array, hidden: list[Array], out: Array) -> None:
        """The forward pass in the transposed, unit-major layout the heatmaps want: one row
        per neuron, one column per point, so each neuron's map is one contiguous row.

        xa (d0 + 1, n): the inputs with a last row of ones; hidden[l] (d_{l+1} + 1, n)
        receives hidden layer l's activations (its last row must hold ones, for the next
        layer's bias); out (k, n) the output layer's activation (softmax over the units for
        classification). Nothing is allocated but one cast of theta to xa's dtype: on a
        10⁴-point float32 grid, fresh arrays every frame cost more in page faults than the
        arithmetic does. z = [W; b]ᵀ [a; 1] = Wᵀa + b, as in `fill_grads`; tanh layers use
        activations.tanh_of_twice_ (within 1e-6 of np.tanh in float32, and faster).
        """
        blocks = layer_blocks(self.sizes, self.theta.astype(xa.dtype))  # a copy, even in float64
        a = xa
        for l, act in enumerate(self._acts):
            z = hidden[l][:-1]  # the first d rows: contiguous
            if act.name == "tanh":  # via the exp form: 2z comes straight from doubled weights
                blocks[l] *= 2.0
                np.matmul(blocks[l].T, a, out=z)
                tanh_of_twice_(z)
            else:
                np.matmul(blocks[l].T, a, out=z)
                act.f_into(z, z)
            a = hidden[l]
        np.matmul(blocks[-1].T, a, out=out)
        if self.problem == "classification":
            softmax_(out, axis=0)

    # --- backward ----------------------------------------------------------------
    def loss_and_grads(self, x: Array, y: Array, need_loss: bool = True) -> tuple[float, FlatParams]:
        """Mean data loss on (x, y) and its gradient for every parameter, in `params` order.
        need_loss=False skips the loss value (NaN is returned) for speed.
        The gradients are fresh arrays (views into one new flat vector), the caller's to keep."""
        zs, acts = self.forward(x)
        loss, dz = self._loss(zs[-1], y, need_loss)
        grads = self.backward(zs, acts, dz)
        return loss, grads

    def backward(self, zs: list[Array], acts: list[Array], dz: Array) -> FlatParams:
        """Backpropagate dz = ∂loss/∂z_out; returns [dW0, db0, dW1, db1, …] (views into a new flat vector)."""
        L = len(self.W)
        flat = np.empty_like(self.theta)
        blocks = layer_blocks(self.sizes, flat)
        for l in range(L - 1, -1, -1):
            np.matmul(acts[l].T, dz, out=blocks[l][:-1])  # ∂loss/∂W[l] = a[l]ᵀ δ
            np.sum(dz, axis=0, out=blocks[l][-1])  # ∂loss/∂b[l] = Σ_n δ
            if l > 0:
                # δ for the layer below: (δ Wᵀ) ⊙ f'(z)
                dz = (dz @ self.W[l].T) * self._acts[l - 1].grad(zs[l - 1], acts[l])
        return FlatParams([p for G in blocks for p in (G[:-1], G[-1])], flat)

    # --- the training path -----------------------------------------------------------
    def fill_grads(self, xa: Array, t: Array) -> None:
        """Write ∂loss/∂θ for one minibatch into `self.grad` (and so into `grad_views`).

        xa: (n, d0 + 1) inputs with a last column of ones; t: the minibatch's rows of
        losses.epoch_targets. Same maths as loss_and_grads(need_loss=False), in the
        augmented form described in the module docstring, with no allocation but a few
        elementwise temporaries.
        """
        n = xa.shape[0]
        ws = self.workspace(n)
        a = xa
        for Wb, z, f_into, a_units, a_next in ws.forward:  # hidden layers
            np.matmul(a, Wb, out=z)
            f_into(z, a_units)
            a = a_next
        dz = np.matmul(a, self.Wb[-1], out=ws.z_out)
        self._loss_grad_into(dz, t, n)  # dz = ∂loss/∂z_out
        for aT, G, WT, d, backprop, z, a_units in ws.backward:  # layers L−1 … 1
            np.matmul(aT, dz, out=G)  # [∂L/∂W; ∂L/∂b] = [a, 1]ᵀ δ
            np.matmul(dz, WT, out=d)  # ∂L/∂a of the layer below = δ Wᵀ
            backprop(d, z, a_units)  # ⊙ f'(z): δ of the layer below
            dz = d
        np.matmul(xa.T, dz, out=self.grad_blocks[0])

    def workspace(self, n: int) -> _Workspace:
        """fill_grads' buffers and per-layer plans for minibatches of n points, made once per n."""
        ws = self._work.get(n)
        if ws is None:
            ws = self._work[n] = _Workspace(self, n)
        return ws

    # --- structure changes that keep what was learned ------------------------------
    def resized(self, sizes: list[int], hidden: list[str], init: str, rng: np.random.Generator) -> MLP:
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

    def copy(self) -> MLP:
        return _rebuild(self.sizes, self.hidden, self.problem, self.theta)

    def is_finite(self) -> bool:
        return bool(np.isfinite(self.theta).all())

    def __reduce__(self):
        # Pickle and deepcopy through theta, so the copy's W and b are views into its own
        # theta again (copying the views one by one would cut them loose).
        return _rebuild, (self.sizes, self.hidden, self.problem, self.theta)


def _rebuild(sizes: list[int], hidden: list[str], problem: str, theta: Array) -> MLP:
    m = object.__new__(MLP)
    m.sizes, m.hidden, m.problem = list(sizes), list(hidden), problem
    m._allocate(np.array(theta, dtype=np.float64))
    m._bind()
    return m


class _Workspace:
    """fill_grads' buffers for one batch size n, and its per-layer plans as tuples.

    a[l] (n, d_l + 1) holds hidden layer l's output with a last column of ones (set once);
    z[l] (n, d_{l+1}) the pre-activations; d[l] (n, d_l) the δ of hidden layer l.
    """

    def __init__(self, m: MLP, n: int):
        hidden = m.sizes[1:-1]
        a = [np.ones((n, d + 1)) for d in hidden]
        z = [np.empty((n, d)) for d in m.sizes[1:]]
        d = [np.empty((n, k)) for k in hidden]
        units = [A[:, :-1] for A in a]  # the activations themselves, without the ones
        self.z_out = z[-1]
        self.forward = [(m.Wb[l], z[l], m._acts[l].f_into, units[l], a[l]) for l in range(len(hidden))]
        self.backward = [
            (a[l - 1].T, m.grad_blocks[l], m._WT[l], d[l - 1], m._acts[l - 1].backprop, z[l - 1], units[l - 1])
            for l in range(len(hidden), 0, -1)
        ]
