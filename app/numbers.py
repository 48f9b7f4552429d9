"""JSON-safe numbers: NaN and ∞ become null, floats are rounded to what a screen shows.

Starlette's JSON encoder refuses NaN (allow_nan=False), and browsers' JSON.parse
rejects NaN literals, so every float that leaves the server passes through here.
"""

from __future__ import annotations

import json
import math

import numpy as np


def finite_or_none(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def rounded(a, digits: int = 4):
    """Nested lists (or a float) rounded to `digits` significant digits of the largest
    magnitude; non-finite → None."""
    a = np.asarray(a, dtype=float)
    if a.size:
        hi, lo = float(a.max()), float(a.min())  # NaN in a makes both NaN
        if math.isfinite(hi) and math.isfinite(lo):  # the common case: two reductions, no masks
            top = max(hi, -lo)
            return a.round(_decimals_of(top, digits)).tolist()
    finite = np.isfinite(a)
    if not finite.all():
        clean = np.where(finite, a, 0.0)
        return _none_where(np.round(clean, _decimals(clean, digits)).tolist(), finite.tolist())
    return np.round(a, _decimals(a, digits)).tolist()


def rounded_many(arrays: list, digits: list[int]) -> list:
    """[rounded(a, d) for a, d in zip(arrays, digits)], bit for bit, for many small arrays
    at once: a frame rounds some thirty of them, and one pass of NumPy calls over their
    concatenation costs less than several calls per array. Falls back to `rounded` one by
    one when anything is non-finite or empty (rare, and then NaN needs its None)."""
    flat = [np.asarray(a, dtype=float) for a in arrays]
    sizes = [a.size for a in flat]
    if not flat or 0 in sizes:
        return [rounded(a, d) for a, d in zip(flat, digits)]
    v = np.concatenate([a.ravel() for a in flat])
    if not np.isfinite(v).all():
        return [rounded(a, d) for a, d in zip(flat, digits)]
    starts = np.cumsum(sizes) - np.asarray(sizes)
    tops = np.maximum.reduceat(np.abs(v), starts).tolist()
    decimals = [_decimals_of(top, d) for top, d in zip(tops, digits)]
    # What np.round(a, d) computes: a·10^d, rint, ÷10^d (for d < 0: ÷10^−d, rint, ·10^−d),
    # with numpy's own powers of ten, so the results are the same floats.
    dec = np.repeat(decimals, sizes)
    factor = _power_of_ten(np.abs(dec))
    up = dec >= 0
    # np.where evaluates both branches; the one not taken may overflow (1e300 · 1e297), harmlessly.
    with np.errstate(over="ignore"):
        np.copyto(v, np.rint(np.where(up, v * factor, v / factor)))
        v = np.where(up, v / factor, v * factor).tolist()
    out, o = [], 0
    for a, n in zip(flat, sizes):
        if a.ndim == 0:
            out.append(v[o])
        elif a.ndim == 1:
            out.append(v[o : o + n])
        elif a.ndim == 2:
            c = a.shape[1]
            out.append([v[i : i + c] for i in range(o, o + n, c)])
        else:
            out.append(np.asarray(v[o : o + n]).reshape(a.shape).tolist())
        o += n
    return out


def _powers_of_ten(n: int) -> np.ndarray:
    p = [1.0]
    for _ in range(n):
        p.append(p[-1] * 10.0)  # as numpy's power_of_ten: exact to 1e22, then rounded products
    return np.array(p)


_P10 = _powers_of_ten(400)


def _power_of_ten(n: np.ndarray) -> np.ndarray:
    return _P10[np.minimum(n, len(_P10) - 1)]


def _decimals(a: np.ndarray, digits: int) -> int:
    return _decimals_of(float(np.max(np.abs(a))) if a.size else 0.0, digits)


MAX_DECIMALS = 300  # 10^300 is finite; anything smaller than 1e-300 is 0 on any screen


def _decimals_of(top: float, digits: int) -> int:
    """Decimal places that leave `digits` significant digits on a number of magnitude top
    (at most MAX_DECIMALS: a power of ten past 1e308 is ∞, and ∞ · 0 would be NaN)."""
    return min(digits - 1 - math.floor(math.log10(top)), MAX_DECIMALS) if top > 0 else digits


def _none_where(values, keep):
    if isinstance(values, list):
        return [_none_where(v, k) for v, k in zip(values, keep)]
    return values if keep else None


def compact_json(obj) -> bytes:
    """JSON bytes without spaces; refuses NaN (callers pass json_safe data)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def json_safe(obj):
    """Deep copy of dicts/lists with every non-finite float replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
