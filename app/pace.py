"""Is the server keeping up? The frame rate its live streams get, against what they asked for.

Every housekeeping round the store measures, for each running session somebody watches,
the frames it published since the last round against the rate its viewers asked for
(their highest fps, at most the worker's tick rate). When the median session gets less
than BUSY_RATIO of that, the server is busy: the workers' round-robin slows every stream
by the same amount, and the page says so ("server busy: N frames/s", static/js/busy.js)
instead of looking stalled.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from app.training import Status

BUSY_RATIO = 0.8  # below this share of the asked-for frame rate, the server is busy


class Watched(Protocol):
    id: str
    seq: int
    status: Status
    watchers: list


@dataclass
class Pace:
    tick_hz: float
    busy: bool = False
    fps: float | None = None  # median frames/s a watched running session got in the last round
    ratio: float | None = None  # the median of got / asked
    _seen: dict[str, int] = field(default_factory=dict)  # session id -> seq at the last round
    _at: float | None = None

    def measure(self, records: Iterable[Watched], now: float) -> None:
        seen, span = {}, None if self._at is None else now - self._at
        rates, ratios = [], []
        for r in records:
            seen[r.id] = r.seq
            before = self._seen.get(r.id)
            if r.status != Status.RUNNING or not r.watchers or before is None or not span:
                continue
            asked = min(max(w.fps for w in r.watchers), self.tick_hz)
            got = (r.seq - before) / span
            rates.append(got)
            ratios.append(got / asked if asked > 0 else 1.0)
        self._seen, self._at = seen, now
        self.fps = round(statistics.median(rates), 1) if rates else None
        self.ratio = round(statistics.median(ratios), 2) if ratios else None
        self.busy = self.ratio is not None and self.ratio < BUSY_RATIO

    def report(self) -> dict:
        return {"busy": self.busy, "fps": self.fps, "ratio": self.ratio}
