"""Loss layers: the last column of the drawn network.

Each loss takes the output layer's pre-activation z_out (n, k) and the targets y, and
returns (loss, dz) where loss is the mean over the n points and dz = ∂loss/∂z_out.
Softmax and cross-entropy are fused because their joint gradient is simply
(p − onehot(y)) / n, which is both cheaper and more stable than chaining them.

The training loop uses a faster, in-place form of the same gradients. Once per epoch
`epoch_targets` turns the shuffled labels into a target array t (N, k) whose rows already
carry their minibatch's 1/n; then per minibatch `LOSS_GRADS_INTO[problem](z_out, t, n)`
overwrites z_out with dz = ∂loss/∂z_out, bit for bit what cross_entropy(need_loss=False)
and mean_squared_error below return:
  cross-entropy  t = onehot(y)/n   dz = softmax(z_out)/n − t
  squared error  t = y (N, 1)      dz = (z_out − t)/n
"""

from __future__ import annotations

import numpy as np

from app.nn.activations import softmax

Array = np.ndarray


def cross_entropy(z_out: Array, y: Array, need_loss: bool = True) -> tuple[float, Array]:
    """Mean cross-entropy of softmax(z_out) against class indices y (n,).

    With need_loss=False only the gradient is computed (the loss comes back as NaN):
    the training loop takes that path, since it needs no per-batch loss value.
    """
    n = z_out.shape[0]
    if not need_loss:
        e = np.exp(z_out - z_out.max(axis=1, keepdims=True))
        e /= e.sum(axis=1, keepdims=True) * n  # softmax / n
        e[np.arange(n), y] -= 1.0 / n
        return float("nan"), e
    shifted = z_out - z_out.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1))
    rows = np.arange(n)
    loss = float(np.mean(log_sum - shifted[rows, y]))  # −log p_y, computed in log space
    dz = np.exp(shifted - log_sum[:, None])  # = softmax(z_out)
    dz[rows, y] -= 1.0
    dz /= n
    return loss, dz


def mean_squared_error(z_out: Array, y: Array, need_loss: bool = True) -> tuple[float, Array]:
    """Mean of ½(ŷ − y)² with a linear output ŷ = z_out (n, 1) and targets y (n,)."""
    err = z_out[:, 0] - y
    n = err.shape[0]
    loss = float(0.5 * np.dot(err, err) / n) if need_loss else float("nan")
    return loss, (err / n)[:, None]


def cross_entropy_grad_into(z_out: Array, t: Array, n: int) -> None:
    """In place: z_out (n, k) becomes softmax(z_out)/n − onehot(y)/n, given t = onehot(y)/n."""
    z_out -= z_out.max(axis=1, keepdims=True)  # the row max keeps exp from overflowing
    np.exp(z_out, out=z_out)
    s = z_out.sum(axis=1, keepdims=True)
    s *= n
    z_out /= s
    z_out -= t


def squared_error_grad_into(z_out: Array, t: Array, n: int) -> None:
    """In place: z_out (n, 1) becomes (z_out − y)/n, given t = y as a column (n, 1)."""
    z_out -= t
    z_out /= n


def epoch_targets(problem: str, y: Array, k: int, batch_size: int) -> Array:
    """Targets for one epoch of minibatches of `batch_size` over the (shuffled) labels y (N,).

    Classification: one-hot rows scaled by 1/n of the minibatch each row falls in (the
    last minibatch may be short), shape (N, k). Regression: y as a column (N, 1).
    """
    N = y.shape[0]
    if problem != "classification":
        return y.astype(np.float64).reshape(N, 1)
    inv_n = np.full(N, 1.0 / batch_size)
    last = N % batch_size
    if last:
        inv_n[N - last :] = 1.0 / last
    t = np.zeros((N, k))
    t[np.arange(N), y] = inv_n
    return t


LOSS_GRADS_INTO = {"classification": cross_entropy_grad_into, "regression": squared_error_grad_into}
LOSSES = {"classification": cross_entropy, "regression": mean_squared_error}
OUTPUT_ACTIVATION = {"classification": "softmax", "regression": "linear"}
LOSS_NAME = {"classification": "cross_entropy", "regression": "mse"}


def output(problem: str, z_out: Array) -> Array:
    """The output layer's activation: class probabilities or the regression value."""
    return softmax(z_out) if problem == "classification" else z_out
