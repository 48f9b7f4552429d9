"""A session's memory, estimated from its config alone, before it is created or changed.

`estimate(cfg, sizing)` adds up what a session of that config holds in its worker (and the
server's copy of its newest frame), term by term: each term below says which arrays it
counts. It is an estimate, not a measurement: tests/reliability/test_streams_memory.py
checks it against tracemalloc's peak for a session built, trained, evaluated and drawn
in-process, within a stated factor. Limits.max_session_bytes (MAX_SESSION_MB) bounds one
session; the store sums the estimates of its sessions against MAX_MEMORY_MB.

Also here, because the estimate needs them and frames.py uses them: the grid side a
network's heatmaps are drawn at (`grid_side`) and the size from which a layer's weights
travel quantised (`INLINE_WEIGHTS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.data import DATASETS
from app.errors import FieldError

SessionConfig = Any  # app.schema.SessionConfig (schema imports this module, so not imported here)

F64, F32 = 8, 4  # bytes per number
MB = 1_000_000  # MAX_SESSION_MB and MAX_MEMORY_MB count in 10⁶ bytes
INLINE_WEIGHTS = 4096  # larger weight matrices travel quantised to int8 in frames
GRID_MACS = 40_000_000  # multiply-adds allowed for one frame's heatmaps (about 10 ms here)
MIN_GRID = 16
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adam": 2}  # state vectors as long as the parameters
OPTIMIZER_SCRATCH = {"sgd": 1, "momentum": 1, "adam": 2}  # scratch vectors (never checkpointed)
SESSION_OVERHEAD = 300_000  # Python objects of a session, its builder and dataset (measured: ~0.2 MB)
CHECKPOINT_OVERHEAD = 4_000  # the Python objects around a checkpoint's arrays
HISTORY_ROW = 160  # one loss-history row: a tuple of an int and two floats, and its list slot
INLINE_NUMBER = 48  # a weight sent as text: its Python float, list slot and JSON digits
QUANTISED_NUMBER = 5  # a weight sent quantised: int8, base64 text, and that text in the JSON


def grid_side(sizes: list[int], full_res: int) -> int:
    """The side of the grid a network's heatmaps are computed on: the full grid, unless its
    forward pass would cost more than GRID_MACS multiply-adds (very wide layers), then a
    coarser grid that fits, so one frame of a huge network cannot hold up its worker."""
    per_point = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if per_point * full_res**2 <= GRID_MACS:
        return full_res
    return max(MIN_GRID, int((GRID_MACS / per_point) ** 0.5))


@dataclass(frozen=True)
class Sizing:
    """What besides the config decides a session's memory (Settings holds their defaults)."""

    grid: int = 100
    history_len: int = 2000
    timeline_bytes: int = 4_000_000

    @classmethod
    def of(cls, settings) -> Sizing:
        return cls(settings.grid, settings.history_len, settings.timeline_bytes)


def network_sizes(cfg: SessionConfig) -> list[int]:
    """Units per layer, inputs first (as training.sizes_for, from the config alone)."""
    spec = DATASETS.get(cfg.dataset)
    inputs = len(cfg.features) if spec is None or spec.dims == 2 else spec.dims
    outputs = cfg.classes if cfg.problem == "classification" else 1
    return [inputs, *(h.units for h in cfg.hidden_layers), outputs]


def n_params(sizes: list[int]) -> int:
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def checkpoint_bytes(sizes: list[int], optimizer: str) -> int:
    """One timeline checkpoint: a copy of the model (parameters, gradient and penalty buffers,
    weight mask) and of the optimizer's state, as timeline.py counts it."""
    p = n_params(sizes)
    return (3 * F64 + 1) * p + OPTIMIZER_STATE[optimizer] * F64 * p + CHECKPOINT_OVERHEAD


def estimate(cfg: SessionConfig, sizing: Sizing = Sizing()) -> dict[str, int]:
    """Bytes per term, and their sum under "total"."""
    sizes = network_sizes(cfg)
    d0, hidden, k = sizes[0], sizes[1:-1], sizes[-1]
    p = n_params(sizes)
    spec = DATASETS.get(cfg.dataset)
    dims = 2 if spec is None else spec.dims
    n = cfg.n_points
    n_train = max(1, min(n - 1, round(n * cfg.train_fraction)))
    n_test = max(1, n - n_train)
    batch = min(cfg.batch_size, n_train)
    last = n_train % batch
    res = grid_side(sizes, sizing.grid)
    ckpt = checkpoint_bytes(sizes, cfg.optimizer)
    terms = {
        # MLP: parameters θ, the gradient buffer and the penalty scratch (each P float64s),
        # and the weight mask (P bools).
        "parameters": (3 * F64 + 1) * p,
        # Optimizer: its state (adam: m and v; momentum: v) and its scratch vectors.
        "optimizer": (OPTIMIZER_STATE[cfg.optimizer] + OPTIMIZER_SCRATCH[cfg.optimizer]) * F64 * p,
        # Data: raw points and labels, their feature expansion, and an epoch's shuffled
        # copy (inputs with a column of ones, one-hot targets).
        "data": n * (dims + d0 + 1) * F64 + n_train * (d0 + 1 + k) * F64,
        # Minibatch workspaces (one per batch size: a short last batch has its own): per row,
        # each hidden layer's activations (+ a ones column), pre-activations and δ, and the output.
        "batches": (batch + last) * (sum(2 * h + 1 + h for h in hidden) + k) * F64,
        # Evaluation and the gradient view (the larger runs at a time): a forward pass over the
        # larger set keeps every layer's z and activation; backprop adds δ temporaries and
        # a fresh gradient vector.
        "evaluation": max(n_train, n_test) * (2 * sum(hidden) + 2 * k + 2 * max(sizes)) * F64 + F64 * p,
        # Heatmaps: the grid's features (twice: as points and transposed), one float32 row per
        # unit and point, and a float32 copy of θ.
        "grid": res * res * (2 * (d0 + 1) + sum(h + 1 for h in hidden) + k) * F32 + F32 * p,
        # The newest frame, built in the worker and kept in the server: weights as text
        # (small layers) or quantised (large ones).
        "frame": 2
        * sum(
            (a * b) * (INLINE_NUMBER if a * b <= INLINE_WEIGHTS else QUANTISED_NUMBER)
            for a, b in zip(sizes[:-1], sizes[1:])
        ),
        # Timeline: as many whole checkpoints as fit in TIMELINE_BYTES (a hard bound).
        "timeline": (sizing.timeline_bytes // ckpt) * ckpt,
        # Loss history: at most history_len rows.
        "history": sizing.history_len * HISTORY_ROW,
        "overhead": SESSION_OVERHEAD,
    }
    terms["total"] = sum(terms.values())
    return terms


def estimate_bytes(cfg: SessionConfig, sizing: Sizing = Sizing()) -> int:
    return estimate(cfg, sizing)["total"]


def check_session_memory(cfg: SessionConfig, max_bytes: int, sizing: Sizing = Sizing()) -> int:
    """The estimate, or a FieldError naming MAX_SESSION_MB when it is over the budget."""
    need = estimate_bytes(cfg, sizing)
    if need > max_bytes:
        raise FieldError(
            "max_session_mb",
            f"this network and its data need about {need / MB:.0f} MB, more than the "
            f"{max_bytes / MB:.0f} MB one session may use (limit max_session_mb); "
            "use fewer or narrower layers, or fewer points",
            code="limit_session_memory",
            max=round(max_bytes / MB),
            need=round(need / MB),
        )
    return need
