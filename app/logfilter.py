"""Rate-limited logging: the same warning or error at most N times a minute, then one
summary line ("… 4,212 more like this in the last minute") instead of a flood.

Why: when the server ran out of file descriptors, asyncio's accept loop logged one
traceback per queued connection (442,000 "Too many open files" tracebacks, 179 MB in
35 s), and the disk write itself slowed the recovery. Anyone who can reach the server can
also provoke repeatable warnings ("Invalid HTTP request received."). Records below
WARNING (the access log) are never limited.

A record's key is its logger, the first line of its message template (asyncio formats its
message before logging, so only the first line is stable) and its exception type. The
window of a key is one minute from its first record. Summaries are written when a window
ends (checked whenever anything is logged, at most once a second) and by flush() at exit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

SUMMARY = "rate_limit_summary"  # the `extra` flag of our own summary lines (never limited)
WINDOW_SECONDS = 60.0
MAX_KEYS = 500  # distinct messages tracked; past this, the rest share one key
_OTHER = ("", "(other messages)", "")


@dataclass
class _Window:
    logger: str
    level: int
    sample: str  # the first line of the first message, for the summary
    start: float
    passed: int = 0
    suppressed: int = 0


class RateLimitFilter(logging.Filter):
    """At most `per_minute` records a minute per key (<= 0: no limit)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.per_minute = per_minute
        self.clock = clock
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._lock = threading.Lock()  # uvicorn logs from the loop; workers' reader threads too
        self._next_sweep = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.per_minute <= 0 or record.levelno < logging.WARNING or getattr(record, SUMMARY, False):
            return True
        # One record can meet this filter twice (on its logger and on a handler): decide once.
        decided = getattr(record, "_rate_limit_passed", None)
        if decided is not None:
            return bool(decided)
        now = self.clock()
        with self._lock:
            due = self._sweep(now) if now >= self._next_sweep else []
            window = self._window_for(record, now)
            passed = window.passed < self.per_minute
            if passed:
                window.passed += 1
            else:
                window.suppressed += 1
        record._rate_limit_passed = passed
        self._write(due, "in the last minute")
        return passed

    def flush(self) -> None:
        """Write the summaries of every window still open (at shutdown)."""
        with self._lock:
            due = [w for w in self._windows.values() if w.suppressed]
            self._windows.clear()
        self._write(due, "before shutdown")

    def _window_for(self, record: logging.LogRecord, now: float) -> _Window:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        key = (record.name, template.split("\n", 1)[0][:200], exc)
        if key not in self._windows and len(self._windows) >= MAX_KEYS:
            key = _OTHER
        window = self._windows.get(key)
        if window is None:
            sample = record.getMessage().split("\n", 1)[0][:200]
            window = self._windows[key] = _Window(record.name, record.levelno, sample, now)
        return window

    def _sweep(self, now: float) -> list[_Window]:
        """Close the windows that have ended; return those with something to summarise."""
        self._next_sweep = now + 1.0
        ended = [k for k, w in self._windows.items() if now - w.start >= WINDOW_SECONDS]
        return [w for w in (self._windows.pop(k) for k in ended) if w.suppressed]

    @staticmethod
    def _write(windows: list[_Window], when: str) -> None:
        for w in windows:
            logging.getLogger(w.logger).log(
                w.level,
                "… %d more like this %s (the same message is logged at most %d times a minute): %s",
                w.suppressed,
                when,
                w.passed,
                w.sample,
                extra={SUMMARY: True},
            )


def install(per_minute: int, logger_names: tuple[str, ...]) -> RateLimitFilter:
    """One filter on the named loggers (records logged to them) and on their handlers
    (records that reach a handler from a child logger, e.g. `asyncio` → root). The root
    logger gets a stderr handler when it has none, so every library's warnings pass the
    filter (Python's last-resort handler would print them unfiltered)."""
    limiter = RateLimitFilter(per_minute)
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler()
        stderr.setLevel(logging.WARNING)
        stderr.setFormatter(logging.Formatter("%(levelname)s:  %(name)s: %(message)s"))
        root.addHandler(stderr)
    for name in ("", *logger_names):
        logger = logging.getLogger(name)
        logger.addFilter(limiter)
        for handler in logger.handlers:
            handler.addFilter(limiter)
    return limiter
