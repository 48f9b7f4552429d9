"""The compiled engine: whole training epochs as numba loops, for networks where that is faster.

The NumPy engine (app/nn/mlp.py, optim.py) stays the reference and the fallback; the kernel
(kernel.py, the only module that imports numba) computes the same updates in the same
order, and tests/unit/test_kernel.py holds the two to 1e-12 for every activation ×
optimizer × regularizer. This module imports no numba: a process that never calls `start`
never loads it.

Life cycle in a worker: `start()` at start-up loads the kernel in a background thread.
Compiling takes seconds, so the thread first has a child process compile it into the
on-disk cache (a per-user directory, `cache_dir()`), one process at a time through a lock
file; then it loads the compiled code from the cache, which takes a few hundred
milliseconds and never holds the GIL for long. Until then `ready()` is False and sessions
train on NumPy. If numba is missing or the compile fails, they simply stay on NumPy.

Which path a network takes is `use_compiled(sizes, batch)`: the crossover measured by
benchmarks/bench_kernel.py (the figures are quoted there).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.nn.optim import OPTIMIZERS, SGD, Adam, Momentum, scheduled_lr

Array = np.ndarray
log = logging.getLogger("mlp.kernel")

# The kernel's codes (kernel.py: RELU, TANH, …), by name; test_kernel.py checks both tables.
ACTIVATION_CODES = {
    name: i
    for i, name in enumerate(("relu", "tanh", "sigmoid", "linear", "leaky_relu", "elu", "gelu", "softplus", "swish"))
}
OPTIMIZER_CODES = {"sgd": 0, "momentum": 1, "adam": 2}
REGULARIZATION_CODES = {"none": 0, "l1": 1, "l2": 2}
PROBLEM_CODES = {"classification": 0, "regression": 1}

# The crossover, measured by benchmarks/bench_kernel.py (CPU ms of one epoch, 250 points,
# [2, w, w, 2] tanh, NumPy / compiled; work = batch size × parameters, the multiply-adds of
# one forward pass of a minibatch):
#   work  1,140 (w=8,  batch 10)   0.66 / 0.13 (5.1×)    work 23,104 (w=24, batch 32)  0.65 / 0.62 (1.05×)
#   work 12,180 (w=32, batch 10)   1.40 / 0.99 (1.4×)    work 25,940 (w=48, batch 10)  1.68 / 2.05 (0.82×)
#   work 11,400 (w=8,  batch 100)  0.22 / 0.17 (1.3×)    work 35,400 (w=16, batch 100) 0.27 / 0.32 (0.83×)
# Loops win below about 20,000 whatever the shape; BLAS wins above (the seed figure, work
# 551,232: 11 ms against 56 ms compiled).
MAX_WORK_PER_STEP = 20_000

_lock = threading.Lock()
_state: dict = {"kernel": None, "step": None, "rows": None, "thread": None, "error": None}


def use_compiled(sizes: list[int], batch_size: int) -> bool:
    """Whether a network of these layer sizes, at this minibatch size, trains faster compiled than on BLAS."""
    params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    return batch_size * params <= MAX_WORK_PER_STEP


def cache_dir() -> Path:
    """Where numba keeps the compiled kernel: $NUMBA_CACHE_DIR if set, else a per-user
    directory ($XDG_CACHE_HOME or ~/.cache, then mlp-playground/numba)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlp-playground" / "numba"


def _prepare_cache() -> Path:
    path = cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(path)  # numba reads it when it is first imported
    return path


def ready() -> bool:
    return _state["kernel"] is not None


def status() -> str:
    """'ready', 'loading', 'failed: …' or 'off' (for logs and benchmarks)."""
    if ready():
        return "ready"
    if _state["error"]:
        return f"failed: {_state['error']}"
    thread = _state["thread"]
    return "loading" if thread is not None and thread.is_alive() else "off"


def load() -> None:
    """Compile (or load from the cache) and enable the kernel in this thread; blocks.
    Tests and benchmarks call it; workers call `start` instead."""
    _prepare_cache()
    from app.nn.compiled.kernel import (  # numba is imported here
        activate_rows,
        backprop_rows,
        loss_grad_rows,
        optimizer_step,
        train_epochs,
        warm_locked,
    )

    warm_locked()
    rows = (activate_rows, backprop_rows, loss_grad_rows)
    for entry in (train_epochs, optimizer_step, *rows):
        entry.disable_compile()  # its signatures are loaded: never compile again, in a tick least of all
    _state["step"], _state["rows"] = optimizer_step, rows
    _state["kernel"] = train_epochs


def start() -> None:
    """Load the kernel in a background thread (once per process); sessions use NumPy meanwhile."""
    with _lock:
        if _state["thread"] is not None or ready():
            return
        thread = threading.Thread(target=_load_in_background, name="kernel-loader", daemon=True)
        _state["thread"] = thread
        thread.start()


def _load_in_background() -> None:
    t0 = time.monotonic()
    try:
        path = _prepare_cache()
        # Compiling holds the GIL for seconds at a time: a child process does it, so this
        # process only loads the finished code. Children inherit the worker's low priority.
        code = "from app.nn.compiled import kernel; kernel.warm_locked()"
        root = Path(__file__).resolve().parents[3]
        env = {**os.environ, "NUMBA_CACHE_DIR": str(path)}
        done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode(errors="replace").strip().splitlines()[-1:] or "compile failed")
        load()
        log.info("compiled kernel ready in %.1f s (cache %s)", time.monotonic() - t0, path)
    except Exception as e:  # no numba, no compiler, a read-only home: NumPy carries on alone
        _state["error"] = f"{type(e).__name__}: {e}"
        log.warning("compiled kernel unavailable, training stays on NumPy: %s", _state["error"])


class Runner:
    """The compiled path for one session's model, optimizer and training data.

    A session keeps its runner while nothing it depends on changes (`matches`), with an
    epoch stopped half-way (a tick's time ran out) in `pending`. `run` draws each epoch's
    permutation from the session's generator just before that epoch, exactly as
    EpochPass does, so both paths see the same minibatches.
    """

    def __init__(self, kernel, model, optimizer, x: Array, y: Array, cfg):
        self.kernel, self.model, self.optimizer, self.x_source, self.cfg = kernel, model, optimizer, x, cfg
        self.hidden = tuple(model.hidden)
        self.x = np.require(x, np.float64, ["C", "W"])  # the dtype and layout the kernel was compiled for
        n = len(y)
        classes = model.problem == "classification"
        self.y_class = np.require(y, np.int64, ["C", "W"]) if classes else np.zeros(n, np.int64)
        self.y_value = np.zeros(n) if classes else np.require(y, np.float64, ["C", "W"])
        self.sizes = np.array(model.sizes, np.int64)
        self.acts = np.array([ACTIVATION_CODES[a] for a in model.hidden], np.int64)
        if isinstance(optimizer, Adam):
            self.s1, self.s2 = optimizer._m, optimizer._v
        elif isinstance(optimizer, Momentum):
            self.s1, self.s2 = optimizer._v, np.zeros(0)
        else:
            self.s1 = self.s2 = np.zeros(0)
        self.options = np.array(
            [
                PROBLEM_CODES[model.problem],
                OPTIMIZER_CODES[cfg.optimizer],
                REGULARIZATION_CODES[cfg.regularization],
                cfg.batch_size,
                0,
                0,
                0,
            ],
            np.int64,
        )
        self.out = np.zeros(4, np.int64)
        self.per_epoch = -(-n // cfg.batch_size)  # updates in one epoch
        # a first guess of the seconds per update (on the high side), refined by every call
        self.update_s = (
            1e-6 + 1e-8 * sum((a + 1) * b for a, b in zip(model.sizes[:-1], model.sizes[1:])) * cfg.batch_size
        )
        self.pending: tuple[Array, int] | None = None  # (permutation, row) of an unfinished epoch

    def matches(self, model, optimizer, x: Array, cfg) -> bool:
        return (
            model is self.model
            and optimizer is self.optimizer
            and x is self.x_source
            and cfg is self.cfg
            and tuple(model.hidden) == self.hidden
        )

    def run(self, rng: np.random.Generator, epoch: int, epochs: int, deadline: float | None) -> tuple[int, int]:
        """Up to `epochs` whole epochs from epoch number `epoch` (the learning-rate schedule
        needs it), fewer if `deadline` (time.perf_counter) comes first: then possibly only a
        part of one epoch, which the next call finishes. Returns (epochs completed, updates)."""
        budget = None if deadline is None else max(1, int((deadline - time.perf_counter()) / self.update_s))
        if self.pending is not None:
            order, pos = self.pending
            orders, epochs = order[None, :], 1
            max_updates = -(-(len(order) - pos) // self.cfg.batch_size)
        else:
            pos = 0
            if budget is not None:
                epochs = max(1, min(epochs, budget // self.per_epoch))
            # One call for every epoch's permutation: the same rows, and the same generator
            # state after, as `epochs` calls of rng.permutation (test_kernel checks both).
            orders = rng.permuted(np.tile(np.arange(len(self.x)), (epochs, 1)), axis=1)
            max_updates = epochs * self.per_epoch
        if budget is not None:
            max_updates = min(max_updates, budget)
        return self._call(orders, pos, epoch, max_updates)

    def _call(self, orders: Array, pos: int, epoch: int, max_updates: int) -> tuple[int, int]:
        cfg, opt, options, out = self.cfg, self.optimizer, self.options, self.out
        lrs = np.array(
            [scheduled_lr(cfg.learning_rate, cfg.lr_schedule, epoch + k, cfg.lr_period) for k in range(len(orders))]
        )
        options[4], options[5], options[6] = getattr(opt, "t", 0), pos, max_updates
        model = self.model
        t0 = time.perf_counter()
        self.kernel(
            model.theta, model.grad, self.s1, self.s2, self.sizes, self.acts, self.x,
            self.y_class, self.y_value, orders, lrs, options, float(cfg.regularization_rate), out,
        )  # fmt: skip
        epochs, pos, updates = int(out[0]), int(out[1]), int(out[2])
        if isinstance(opt, Adam):
            opt.t = int(out[3])
        if updates:  # keep the time per update current, for the next call's budget
            self.update_s = 0.5 * self.update_s + 0.5 * (time.perf_counter() - t0) / updates
        self.pending = (orders[epochs], pos) if pos else None
        return epochs, updates


def runner(previous, model, optimizer, x: Array, y: Array, cfg) -> Runner | None:
    """The compiled path for this session's training, or None for NumPy: the kernel is not
    loaded yet, or the network is past the crossover. `previous` is the session's last
    runner (kept while it still matches, with its unfinished epoch)."""
    kernel = _state["kernel"]
    if kernel is None or not use_compiled(model.sizes, min(cfg.batch_size, len(y))):
        return None
    if isinstance(previous, Runner) and previous.matches(model, optimizer, x, cfg):
        return previous
    return Runner(kernel, model, optimizer, x, y, cfg)


def fused_step(optimizer) -> Callable[[list[Array], list[Array], float], None] | None:
    """For a network that trains on BLAS: `optimizer.step` as one compiled pass over the flat
    parameter vector (kernel.optimizer_step: the same numbers bit for bit, Adam's update in half
    the time), or None while the kernel is not loaded. Lists that are not FlatParams of one
    vector (optim._flat) go to the optimizer's own step."""
    step = _state["step"]
    if step is None or not isinstance(optimizer, (SGD, Momentum, Adam)):
        return None
    code = next(OPTIMIZER_CODES[name] for name, kind in OPTIMIZERS.items() if type(optimizer) is kind)
    if isinstance(optimizer, Adam):
        s1, s2 = optimizer._m, optimizer._v
    elif isinstance(optimizer, Momentum):
        s1, s2 = optimizer._v, np.zeros(0)
    else:
        s1 = s2 = np.zeros(0)

    def fused(params: list[Array], grads: list[Array], lr: float) -> None:
        theta, g = getattr(params, "flat", None), getattr(grads, "flat", None)
        if theta is None or g is None or theta.shape != g.shape or theta.shape != (optimizer._size,):
            optimizer.step(params, grads, lr)
            return
        t = 0
        if isinstance(optimizer, Adam):
            optimizer.t += 1
            t = optimizer.t
        step(code, theta, g, s1, s2, float(lr), t)

    return fused


def fused_fill(model) -> Callable[[Array, Array], None] | None:
    """For a network that trains on BLAS: MLP.fill_grads with the same matrix products and
    buffers, and its elementwise steps (activations, their derivatives, the loss gradient)
    compiled, one pass per layer instead of a few NumPy calls (kernel.activate_rows …); the
    same numbers within 1e-15 (libm's exp against NumPy's). None while the kernel is not loaded."""
    rows = _state["rows"]
    if rows is None:
        return None
    activate, backprop, loss_grad = rows
    codes = [ACTIVATION_CODES[name] for name in model.hidden]
    problem = PROBLEM_CODES[model.problem]
    last, first_grad = model.Wb[-1], model.grad_blocks[0]

    def fill(xa: Array, t: Array) -> None:
        n = xa.shape[0]
        ws = model.workspace(n)
        a = xa
        for (Wb, z, _, units, a_next), code in zip(ws.forward, codes):  # hidden layers
            np.matmul(a, Wb, out=z)
            activate(code, z, units)
            a = a_next
        dz = np.matmul(a, last, out=ws.z_out)
        loss_grad(problem, dz, t, n)
        for (aT, G, WT, d, _, z, units), code in zip(ws.backward, codes[::-1]):  # layers L−1 … 1
            np.matmul(aT, dz, out=G)
            np.matmul(dz, WT, out=d)
            backprop(code, d, z, units)
            dz = d
        np.matmul(xa.T, dz, out=first_grad)

    return fill
