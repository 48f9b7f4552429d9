"""Polling: the one wait helper of the tests and the benchmarks."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """Call predicate() until it returns something truthy and return that value; after
    `timeout` seconds return its last (falsy) value, so the caller's assert shows it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
