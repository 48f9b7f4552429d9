"""JSON-safe numbers: NaN and ∞ become null, floats are rounded to what a screen shows.

Starlette's JSON encoder refuses NaN (allow_nan=False), and browsers' JSON.parse
rejects NaN literals, so every float that leaves the server passes through here.
"""
from __future__ import annotations

import math

import numpy as np


def finite_or_none(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def rounded(a, digits: int = 4):
    """Nested lists (or a float) rounded to `digits` significant digits; non-finite → None."""
    a = np.asarray(a, dtype=float)
    finite = np.isfinite(a)
    if not finite.all():
        clean = np.where(finite, a, 0.0)
        return _none_where(np.round(clean, _decimals(clean, digits)).tolist(), finite.tolist())
    return np.round(a, _decimals(a, digits)).tolist()


def _decimals(a: np.ndarray, digits: int) -> int:
    top = float(np.max(np.abs(a))) if a.size else 0.0
    return digits - 1 - int(np.floor(np.log10(top))) if top > 0 else digits


def _none_where(values, keep):
    if isinstance(values, list):
        return [_none_where(v, k) for v, k in zip(values, keep)]
    return values if keep else None


def json_safe(obj):
    """Deep copy of dicts/lists with every non-finite float replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
