"""The compiled training kernel: whole epochs of minibatch training as numba loops, float64.

Only `app.nn.compiled` imports this module (numba is imported here and nowhere else). It
computes what app.nn.mlp.MLP.fill_grads, app.nn.optim's add_penalty_grads and optimizers
compute, element for element in the same order wherever NumPy's order is defined; only
the sums inside matrix products may be added up in another order than BLAS does, which
is why the two paths agree to about 1e-15, not bit for bit.

Layout (app/nn/mlp.py): theta holds, per layer l, the block [W; b] of shape
(d_l + 1, d_{l+1}) row-major; `grad` and the optimizer's state vectors have the same layout.

`train_epochs` runs epochs k = 0, 1, … of `orders` (one permutation of the training rows per
epoch, drawn by the caller from the session's generator), starting epoch 0 at row `pos`,
until `max_updates` updates are made or the epochs run out. It stops after the first epoch
that leaves a weight not finite (the caller reports the divergence). It writes
out = [epochs completed, row position in the epoch it stopped in, updates made, Adam's t].
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
from numba import njit

# Codes shared with app/nn/compiled/__init__.py (which checks them against the NumPy tables).
RELU, TANH, SIGMOID, LINEAR, LEAKY_RELU, ELU, GELU, SOFTPLUS, SWISH = range(9)
SGD, MOMENTUM, ADAM = range(3)
NO_REG, L1, L2 = range(3)
CLASSIFICATION, REGRESSION = range(2)
# Options vector: problem, optimizer, regularization, batch size, Adam's t, pos, max_updates.
OPT_PROBLEM, OPT_OPTIMIZER, OPT_REG, OPT_BATCH, OPT_ADAM_T, OPT_POS, OPT_MAX_UPDATES = range(7)

LEAKY_SLOPE = 0.01  # app/nn/activations.py
GELU_C = math.sqrt(2.0 / math.pi)
MOMENTUM_MU = 0.9  # app/nn/optim.py
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
SMALLEST_NORMAL = 2.2250738585072014e-308  # optim.SMALLEST_NORMAL


@njit(cache=True, error_model="numpy")
def _sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    ez = math.exp(z)
    return ez / (1.0 + ez)


@njit(cache=True, error_model="numpy")
def _activate(code, z, a):
    """a[i] = f(z[i]) for one layer's pre-activations (flat buffers of equal length)."""
    n = z.shape[0]
    if code == TANH:
        for i in range(n):  # tanh z = 1 − 2/(e^2z + 1): 3× faster than libm's tanh, within 4e-16 of it
            a[i] = 1.0 - 2.0 / (math.exp(2.0 * z[i]) + 1.0)
    elif code == RELU:
        for i in range(n):
            a[i] = 0.0 if z[i] <= 0.0 else z[i]  # NaN stays NaN, as np.maximum keeps it
    elif code == SIGMOID:
        for i in range(n):
            a[i] = _sigmoid(z[i])
    elif code == LINEAR:
        for i in range(n):
            a[i] = z[i]
    elif code == LEAKY_RELU:
        for i in range(n):
            a[i] = z[i] if z[i] > 0.0 else LEAKY_SLOPE * z[i]
    elif code == ELU:
        for i in range(n):
            a[i] = z[i] if z[i] > 0.0 else math.expm1(min(z[i], 0.0))
    elif code == GELU:
        for i in range(n):
            x = z[i]
            a[i] = 0.5 * x * (1.0 + math.tanh(GELU_C * (x + 0.044715 * x**3.0)))
    elif code == SOFTPLUS:
        for i in range(n):
            a[i] = max(z[i], 0.0) + math.log1p(math.exp(-abs(z[i])))
    else:  # SWISH
        for i in range(n):
            a[i] = z[i] * _sigmoid(z[i])


@njit(cache=True, error_model="numpy")
def _backprop(code, d, z, a):
    """d[i] *= f'(z[i]), with a = f(z): ∂loss/∂a becomes ∂loss/∂z."""
    n = d.shape[0]
    if code == TANH:
        for i in range(n):
            d[i] *= 1.0 - a[i] * a[i]
    elif code == RELU:
        for i in range(n):
            d[i] *= 1.0 if z[i] > 0.0 else 0.0
    elif code == SIGMOID:
        for i in range(n):
            d[i] *= a[i] * (1.0 - a[i])
    elif code == LEAKY_RELU:
        for i in range(n):
            d[i] *= 1.0 if z[i] > 0.0 else LEAKY_SLOPE
    elif code == ELU:
        for i in range(n):
            d[i] *= 1.0 if z[i] > 0.0 else a[i] + 1.0
    elif code == GELU:
        for i in range(n):
            x = z[i]
            t = math.tanh(GELU_C * (x + 0.044715 * x**3.0))
            du = GELU_C * (1.0 + 3 * 0.044715 * (x * x))
            d[i] *= 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
    elif code == SOFTPLUS:
        for i in range(n):
            d[i] *= _sigmoid(z[i])
    elif code == SWISH:
        for i in range(n):
            s = _sigmoid(z[i])
            d[i] *= s + a[i] * (1.0 - s)
    # LINEAR: f' = 1, nothing to do


# The matrix products may add their terms in any order (as BLAS does) and fuse multiply-adds:
# that lets LLVM vectorise the sums. Everything elementwise keeps NumPy's exact operations.
PRODUCT_MATH = {"reassoc", "contract"}


@njit(cache=True, fastmath=PRODUCT_MATH, error_model="numpy")
def _dense(a, n, din, dout, theta, o, z):
    """z (n, dout) = a (n, din) @ W + b, with [W; b] = theta[o:] (row-major)."""
    wb = o + din * dout
    for r in range(n):
        zr = r * dout
        for j in range(dout):
            z[zr + j] = 0.0
        for i in range(din):
            ai = a[r * din + i]
            wi = o + i * dout
            for j in range(dout):
                z[zr + j] += ai * theta[wi + j]
        for j in range(dout):
            z[zr + j] += theta[wb + j]


@njit(cache=True, fastmath=PRODUCT_MATH, error_model="numpy")
def _dense_back(a, dz, n, din, dout, theta, o, grad, d):
    """[∂L/∂W; ∂L/∂b] = [a, 1]ᵀ dz into grad[o:]; and, if d has room, d (n, din) = dz Wᵀ."""
    size = (din + 1) * dout
    for k in range(size):
        grad[o + k] = 0.0
    wb = o + din * dout
    for r in range(n):
        dr = r * dout
        for i in range(din):
            ai = a[r * din + i]
            gi = o + i * dout
            for j in range(dout):
                grad[gi + j] += ai * dz[dr + j]
        for j in range(dout):
            grad[wb + j] += dz[dr + j]
    if d.shape[0] == 0:
        return
    for r in range(n):
        dr = r * dout
        for i in range(din):
            wi = o + i * dout
            acc = 0.0
            for j in range(dout):
                acc += dz[dr + j] * theta[wi + j]
            d[r * din + i] = acc


@njit(cache=True, error_model="numpy")
def _loss_grad(problem, z, n, k, y_class, y_value, rows, inv_n):
    """In place: z (n, k) becomes ∂loss/∂z_out, as losses.LOSS_GRADS_INTO computes it."""
    if problem == CLASSIFICATION:
        for r in range(n):
            zr = r * k
            m = z[zr]
            for j in range(1, k):
                m = max(m, z[zr + j])
            s = 0.0
            for j in range(k):
                z[zr + j] = math.exp(z[zr + j] - m)
                s += z[zr + j]
            s *= n
            for j in range(k):
                z[zr + j] /= s
            z[zr + y_class[rows[r]]] -= inv_n
    else:
        for r in range(n):
            z[r] = (z[r] - y_value[rows[r]]) / n


@njit(cache=True, error_model="numpy")
def _penalty(kind, rate, theta, grad, sizes):
    """grad += rate·W (L2) or rate·sign(W) (L1), on the weights only (optim.add_penalty_grads)."""
    o = 0
    for l in range(sizes.shape[0] - 1):
        nw = sizes[l] * sizes[l + 1]
        for i in range(o, o + nw):
            w = theta[i]
            if kind == L2:
                grad[i] += w * rate
            else:
                s = 1.0 if w > 0.0 else (-1.0 if w < 0.0 else w)  # np.sign: ±0 stays, NaN stays
                grad[i] += s * rate
        o += nw + sizes[l + 1]


@njit(cache=True, error_model="numpy")
def optimizer_step(optimizer, theta, g, s1, s2, lr, t):
    """One optimizer update (app/nn/optim.py, the same operations in the same order, so the
    same numbers bit for bit), in one pass over the vectors where NumPy makes a dozen.
    error_model="numpy": a division never checks for zero (as NumPy's does not), which
    lets LLVM vectorise the loop; Adam's update runs twice as fast as NumPy's.
    Also called on its own, for networks that train on BLAS (`compiled.fused_step`)."""
    if optimizer == SGD:
        for i in range(theta.shape[0]):
            theta[i] -= g[i] * lr
    elif optimizer == MOMENTUM:
        for i in range(theta.shape[0]):
            s1[i] = s1[i] * MOMENTUM_MU + g[i]
            theta[i] -= s1[i] * lr
    else:
        c1 = 1.0 - math.pow(BETA1, float(t))  # C pow, as Python's float ** int
        c2 = 1.0 - math.pow(BETA2, float(t))
        for i in range(theta.shape[0]):
            s1[i] = s1[i] * BETA1 + g[i] * (1.0 - BETA1)
            s2[i] = s2[i] * BETA2 + (g[i] * g[i]) * (1.0 - BETA2)
            step = s1[i] / c1
            step *= lr
            step /= math.sqrt(s2[i] / c2) + EPS
            theta[i] -= step


@njit(cache=True, error_model="numpy")
def _minibatch(theta, grad, sizes, offsets, acts, x, rows, problem, y_class, y_value, inv_n, zs, as_, d1, d2):
    """∂loss/∂θ for the minibatch of training rows `rows` into grad (MLP.fill_grads);
    layer l's block starts at theta[offsets[l]]."""
    n = rows.shape[0]
    L = sizes.shape[0] - 1
    d0 = sizes[0]
    a0 = as_[0]
    for r in range(n):
        for i in range(d0):
            a0[r * d0 + i] = x[rows[r], i]
    for l in range(L):
        din, dout = sizes[l], sizes[l + 1]
        z = zs[l][: n * dout]
        _dense(as_[l], n, din, dout, theta, offsets[l], z)
        if l < L - 1:
            _activate(acts[l], z, as_[l + 1][: n * dout])
    dz = zs[L - 1][: n * sizes[L]]
    _loss_grad(problem, dz, n, sizes[L], y_class, y_value, rows, inv_n)
    for l in range(L - 1, -1, -1):
        din, dout = sizes[l], sizes[l + 1]
        d = (d1 if l % 2 == 0 else d2)[: n * din] if l > 0 else d1[:0]
        _dense_back(as_[l], dz, n, din, dout, theta, offsets[l], grad, d)
        if l > 0:
            _backprop(acts[l - 1], d, zs[l - 1][: n * din], as_[l][: n * din])
            dz = d


# --- the elementwise steps of a network that trains on BLAS (`compiled.fused_fill`) ----------
# MLP.fill_grads' matrix products stay NumPy's; these replace its activations, their
# derivatives and the loss gradient, a few NumPy calls each, with one pass per layer.


@njit(cache=True, error_model="numpy")
def activate_rows(code, z, out):
    """out[r] = f(z[r]) for every row of a layer's (n, d) pre-activations (out: the activations'
    columns of a buffer whose last column holds ones)."""
    for r in range(z.shape[0]):
        _activate(code, z[r], out[r])


@njit(cache=True, error_model="numpy")
def backprop_rows(code, d, z, a):
    """d[r] *= f'(z[r]) for every row: ∂loss/∂a becomes ∂loss/∂z."""
    for r in range(d.shape[0]):
        _backprop(code, d[r], z[r], a[r])


@njit(cache=True, error_model="numpy")
def loss_grad_rows(problem, z, t, n):
    """In place, as losses.LOSS_GRADS_INTO: z (n, k) becomes ∂loss/∂z_out, from the targets t
    (one-hot rows times 1/n, or the regression values as a column)."""
    for r in range(z.shape[0]):
        zr, tr = z[r], t[r]
        if problem == CLASSIFICATION:
            m = zr[0]
            for j in range(1, zr.shape[0]):
                m = max(m, zr[j])
            s = 0.0
            for j in range(zr.shape[0]):
                zr[j] = math.exp(zr[j] - m)
                s += zr[j]
            s *= n
            for j in range(zr.shape[0]):
                zr[j] /= s
                zr[j] -= tr[j]
        else:
            for j in range(zr.shape[0]):
                zr[j] -= tr[j]
                zr[j] /= n


@njit(cache=True, error_model="numpy")
def _flush_subnormal(v):
    """Optimizer state below the smallest normal float becomes 0 (optim._Optimizer.flush_subnormal)."""
    for i in range(v.shape[0]):
        if abs(v[i]) < SMALLEST_NORMAL:
            v[i] = 0.0


@njit(cache=True, error_model="numpy")
def _all_finite(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@njit(cache=True, error_model="numpy")
def train_epochs(theta, grad, s1, s2, sizes, acts, x, y_class, y_value, orders, lrs, options, reg_rate, out):
    """Minibatch epochs over the permutations `orders` (see the module docstring)."""
    problem, optimizer, reg = options[OPT_PROBLEM], options[OPT_OPTIMIZER], options[OPT_REG]
    batch, t, pos, max_updates = options[OPT_BATCH], options[OPT_ADAM_T], options[OPT_POS], options[OPT_MAX_UPDATES]
    L = sizes.shape[0] - 1
    n_rows = orders.shape[1]
    widest = 0
    for l in range(L + 1):
        widest = max(widest, sizes[l])
    zs = [np.empty(batch * sizes[l + 1]) for l in range(L)]
    as_ = [np.empty(batch * sizes[l]) for l in range(L)]  # as_[0]: the minibatch's inputs
    d1 = np.empty(batch * widest)
    d2 = np.empty(batch * widest)
    offsets = np.empty(L, np.int64)  # where each layer's block [W; b] starts in theta
    o = 0
    for l in range(L):
        offsets[l] = o
        o += (sizes[l] + 1) * sizes[l + 1]
    epochs = 0
    updates = 0
    for k in range(orders.shape[0]):
        order = orders[k]
        lr = lrs[k]
        while pos < n_rows and updates < max_updates:
            n = min(batch, n_rows - pos)
            inv_n = 1.0 / n  # losses.epoch_targets: 1/batch, or 1/size of the short last batch
            rows = order[pos : pos + n]
            _minibatch(theta, grad, sizes, offsets, acts, x, rows, problem, y_class, y_value, inv_n, zs, as_, d1, d2)
            if reg != NO_REG and reg_rate != 0.0:
                _penalty(reg, reg_rate, theta, grad, sizes)
            t += 1
            optimizer_step(optimizer, theta, grad, s1, s2, lr, t)
            pos += n
            updates += 1
        if pos < n_rows:
            break  # out of updates in the middle of epoch k
        epochs += 1
        pos = 0
        _flush_subnormal(s1)  # after every epoch, as optim.EpochPass does
        _flush_subnormal(s2)
        if not _all_finite(theta):
            break
    out[0], out[1], out[2], out[3] = epochs, pos, updates, t


def warm() -> None:
    """Compile train_epochs for the one signature the runner uses (or load it from the
    on-disk cache) by training a tiny network for one epoch with every argument's dtype."""
    sizes = np.array([2, 3, 2], np.int64)
    theta = np.zeros(2 * 3 + 3 + 3 * 2 + 2)
    train_epochs(
        theta,
        np.zeros_like(theta),
        np.zeros_like(theta),
        np.zeros_like(theta),
        sizes,
        np.array([TANH], np.int64),
        np.zeros((4, 2)),
        np.zeros(4, np.int64),
        np.zeros(4),
        np.arange(4, dtype=np.int64).reshape(1, 4),
        np.full(1, 0.1),
        np.array([CLASSIFICATION, ADAM, L2, 2, 0, 0, 1 << 62], np.int64),
        0.001,
        np.zeros(4, np.int64),
    )
    for code in (SGD, MOMENTUM, ADAM):  # the one signature `compiled.fused_step` calls it with
        optimizer_step(code, theta, np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta), 0.1, 1)
    # The layouts `compiled.fused_fill` passes: z, d, t C-contiguous; the activations a column
    # slice of a C-contiguous buffer.
    z, d, buffer = np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 4))
    activate_rows(TANH, z, buffer[:, :-1])
    backprop_rows(TANH, d, z, buffer[:, :-1])
    loss_grad_rows(CLASSIFICATION, z, np.zeros((2, 3)), 2)


def warm_locked() -> None:
    """warm(), one process at a time per cache directory: a second worker starting with an
    empty cache waits for the first one's compile, then loads its result."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, at worst two compiles
        warm()
        return
    path = os.path.join(os.environ.get("NUMBA_CACHE_DIR") or tempfile.gettempdir(), "compile.lock")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            warm()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
