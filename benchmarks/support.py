"""What the server benchmarks share: the server under test, SSE reading, process CPU and
memory, and Samples, which summarises measured values the same way in every script.

The server and SSE helpers are tests/support's (LiveServer, SseReader, the parser, polling):
tests/support is a plain package with no pytest in it, written for both, so the tests and
the benchmarks start, stop and read the server in one way. Nothing here imports a test module.
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import ROOT, row  # noqa: F401  (puts the repository root on sys.path; one BLAS thread per process)

from tests.support.live import LOOPBACK, LiveServer  # noqa: F401
from tests.support.sse import SseReader, aparse_sse, parse_sse  # noqa: F401
from tests.support.waiting import wait_until  # noqa: F401

TANH_6x8 = [{"units": 8, "activation": "tanh"}] * 6
SPIRAL_6x8 = dict(dataset="spiral", hidden_layers=TANH_6x8, optimizer="adam", learning_rate=0.003, batch_size=10)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- summarising samples ----------------------------------------------------------------------
def pct(values, q: float) -> float:
    """The q-th percentile (0…100), nearest-rank; NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


@dataclass
class Samples:
    """Measured values of one quantity (ms, frames/s, bytes …). Every script quotes them the
    same way: `median` is statistics.median, "p90"/"p99" are nearest-rank percentiles, and a
    quantity with no values reads NaN (printed "-")."""

    unit: str = "ms"
    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    def extend(self, values) -> None:
        self.values.extend(values)

    def __len__(self) -> int:
        return len(self.values)

    def stat(self, name: str) -> float:
        """ "median", "min", "max", or "pNN" (a percentile)."""
        if not self.values:
            return float("nan")
        if name == "median":
            return statistics.median(self.values)
        if name == "min":
            return min(self.values)
        if name == "max":
            return max(self.values)
        return pct(self.values, float(name.lstrip("p")))

    @property
    def median(self) -> float:
        return self.stat("median")

    def figures(self, *names: str, digits: int = 1) -> str:
        """e.g. "12.3 / 45.6 / 78.9 ms" for figures("median", "p99", "max")."""
        text = " / ".join("-" if v != v else f"{v:,.{digits}f}" for v in (self.stat(n) for n in names))
        return f"{text} {self.unit}".rstrip()

    def print(self, label: str, *names: str, digits: int = 1, note: str = "") -> None:
        """One table row: "label: median / p99 / max    12.3 / 45.6 / 78.9 ms  note"."""
        row(f"{label}: {' / '.join(names)}", self.figures(*names, digits=digits), note)


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def header(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


# --- the server: sessions, processes, memory ----------------------------------------------------
def create(client: httpx.Client, **config) -> tuple[str, dict]:
    """A new session: (id, headers with its control token)."""
    r = client.post("/api/sessions", json=config)
    r.raise_for_status()
    body = r.json()
    return body["id"], {"Authorization": f"Bearer {body['control_token']}"}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stats_line(st: dict) -> tuple[int, int, list[int]]:
    """(total, server, [workers]) resident bytes from GET /api/stats."""
    rss = st["rss_bytes"]
    workers = [w or 0 for w in rss["workers"]]
    return (rss["server"] or 0) + sum(workers), rss["server"] or 0, workers


def run_main(main) -> None:
    """Run a benchmark's main(): a first line saying when and on what, SIGTERM treated like
    Ctrl-C (so the `finally`s stop the server), and a plain message on Ctrl-C."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(
        f"MLP Playground load figures, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted; the server was stopped")
        sys.exit(130)
