"""Helpers for benchmark scripts: medians of repeated timings, and a fixed table format.

Benchmarks print figures; they never assert. Quote medians: these machines are shared.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # as the server runs: one BLAS thread per process


def median_ms(fn, repeats: int = 30, warmup: int = 3) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def session_for(**config):
    from app.schema import ConfigFields, Limits, resolve
    from app.training import Session

    cfg = resolve(None, ConfigFields(**config), Limits())
    return Session(cfg)


def preset_config(name: str) -> dict:
    """A preset of the page (app/presets.py) as config fields, so a benchmark measures what the page runs."""
    from app.presets import PRESETS
    from app.querycodec import fields_from_strings

    return fields_from_strings(PRESETS[name], ignore_unknown=False).model_dump(exclude_none=True)


def row(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<52} {value:>14}  {note}")
