"""The snapshot format: what a saved network is, how a session becomes one, and back.

A snapshot payload is JSON: {"config", "epoch", "step", "weights", "biases", "history",
"shape_version", "custom"}. `custom` holds the points of uploaded or hand-edited data
({"x", "y", "is_train"}), null otherwise. The same payload is stored in SQLite
(snapshots.py), exported as a file, imported again, and opened as a new session; every
payload from outside is checked by `validate_payload` before a session is built from it.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np

from app.data import DATASETS
from app.data.csv_upload import MAX_COORDINATE
from app.errors import FieldError
from app.schema import Limits, SessionConfig, check_limits
from app.training import Session, sizes_for

MAX_COUNTER = 2**53  # epochs and steps stay exact in a JSON (double) number


def payload_of(s: Session) -> dict:
    """Everything a snapshot keeps of a session: config, weights, counters, history, own data."""
    return {
        "config": s.cfg.model_dump(),
        "epoch": s.epoch,
        "step": s.step,
        "weights": [W.tolist() for W in s.model.W],
        "biases": [b.tolist() for b in s.model.b],
        "history": [list(h) for h in s.history],
        "shape_version": s.shape_version,
        "custom": None
        if s.custom is None
        else {"x": s.custom[0].tolist(), "y": s.custom[1].tolist(), "is_train": s.custom[2].tolist()},
    }


def custom_points(cfg: SessionConfig, custom: dict | None):
    """A payload's own data as the arrays Session takes: (x, y, is_train), or None."""
    if custom is None:
        return None
    dtype = np.int64 if cfg.problem == "classification" else np.float64
    return (np.asarray(custom["x"], float), np.asarray(custom["y"], dtype), np.asarray(custom["is_train"], bool))


def restore_payload(s: Session, payload: dict) -> None:
    """Load weights, counters and history from a payload into a fresh session of its config."""
    for layer, (W, b) in enumerate(zip(payload["weights"], payload["biases"])):
        s.model.W[layer][...] = np.asarray(W, dtype=float)
        s.model.b[layer][...] = np.asarray(b, dtype=float)
    s.epoch, s.step = int(payload["epoch"]), int(payload.get("step", 0))
    rows = [tuple(h) for h in payload.get("history", []) if isinstance(h, (list, tuple)) and len(h) == 3]
    s.history = rows[-s.history_len :]
    s.evaluate()


def parse_export(raw: bytes) -> Any:
    """The JSON document of an exported file, or FieldError naming the file. An integer
    longer than Python's int-string limit (4,300 digits) makes json.loads raise ValueError;
    that is the file's fault too, a 422, not a server error."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise FieldError("file", f"not a JSON file: {e}", code="snapshot_not_json") from None
    except ValueError:
        digits = sys.get_int_max_str_digits()
        raise FieldError(
            "file",
            f"the file has a number with more than {digits} digits",
            code="snapshot_number_too_long",
            max=digits,
        ) from None


def _bad(part: str, why: str) -> FieldError:
    return FieldError(f"snapshot.{part}", why, code="snapshot_invalid", part=part)


def validate_payload(payload: Any, limits: Limits) -> SessionConfig:
    """Check a payload (saved, or imported from a file) before a session is built from it: a
    valid config within `limits`, and weights and data of the right shapes. Raises FieldError
    naming the part that is wrong; returns the config."""
    if not isinstance(payload, dict):
        raise _bad("payload", "a snapshot is a JSON object")
    try:
        cfg = SessionConfig.model_validate(payload.get("config"))
    except Exception as e:
        raise _bad("config", f"the config is not valid: {e}") from None
    check_limits(cfg, limits)
    dims = _check_custom(cfg, payload.get("custom")) if cfg.dataset == "custom" else DATASETS[cfg.dataset].dims
    _check_layers(payload, sizes_for(cfg, dims))
    _check_counters(payload)
    return cfg


def _check_custom(cfg: SessionConfig, custom: Any) -> int:
    try:
        x = np.asarray(custom["x"], dtype=float)
        y = np.asarray(custom["y"], dtype=float)
        is_train = np.asarray(custom["is_train"], dtype=bool)
    except (TypeError, KeyError, ValueError, OverflowError):
        raise _bad("custom", "custom data needs x, y and is_train lists of numbers") from None
    if x.ndim != 2 or x.shape[1] != 2 or y.shape != (len(x),) or is_train.shape != (len(x),) or len(x) < 4:
        raise _bad("custom", "custom data must be at least 4 points (x1, x2) with one y and is_train each")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise _bad("custom", "custom data must be finite numbers")
    if np.abs(x).max(initial=0.0) > MAX_COORDINATE or np.abs(y).max(initial=0.0) > MAX_COORDINATE:
        raise _bad("custom", f"custom data must lie within ±{MAX_COORDINATE:,.0f}")
    if len(x) != cfg.n_points:
        raise _bad("custom", "the number of points must equal config.n_points")
    if not is_train.any() or is_train.all():
        raise _bad("custom", "custom data needs at least one training point and one test point")
    if cfg.problem == "classification" and not (np.all(y == np.round(y)) and y.min() >= 0 and y.max() < cfg.classes):
        raise _bad("custom", "class labels must be whole numbers from 0 to classes − 1")
    return 2


def _check_layers(payload: dict, sizes: list[int]) -> None:
    for part in ("weights", "biases"):
        arrays = payload.get(part)
        if not isinstance(arrays, list) or len(arrays) != len(sizes) - 1:
            raise _bad(part, f"expected {len(sizes) - 1} layers of {part}")
        for layer, values in enumerate(arrays):
            want = (sizes[layer], sizes[layer + 1]) if part == "weights" else (sizes[layer + 1],)
            try:
                a = np.asarray(values, dtype=float)
            except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past 1e308
                raise _bad(part, f"layer {layer} is not a list of numbers") from None
            if a.shape != want or not np.isfinite(a).all():
                raise _bad(part, f"layer {layer} must be {want} finite numbers")


def _check_counters(payload: dict) -> None:
    for key in ("epoch", "step"):
        value = payload.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_COUNTER:
            raise _bad(key, f"{key} must be a whole number from 0 to 2^53")
    history = payload.get("history", [])
    if not isinstance(history, list) or not all(
        isinstance(row, list)
        and len(row) == 3
        and isinstance(row[0], int)
        and 0 <= row[0] < MAX_COUNTER
        and all(v is None or _finite_number(v) for v in row[1:])
        for row in history
    ):
        raise _bad("history", "history rows are [epoch, train loss, test loss]")


def _finite_number(v: Any) -> bool:
    """A JSON number that is a finite float (an integer past 1e308 is not, nor is a bool)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False
