"""A session's timeline: checkpoints of its full training state, bounded in memory.

A checkpoint holds everything the next epoch depends on — weights, optimizer state
(momentum, Adam's moments and step count), the minibatch-shuffle generator's state,
and the epoch and step counters — so resuming from it continues exactly as the
uninterrupted run would have. Checkpoints are taken every `every` epochs; when their
memory passes `max_bytes`, every other one is dropped (the first, at the start of the
timeline, stays while it fits) and `every` doubles, so a long run keeps an evenly spread,
bounded history instead of its most recent part only.

`max_bytes` is a hard bound: the checkpoints kept never count more. A network whose one
checkpoint is bigger than the budget keeps none; its summary says so (`off`), so the page
can tell the user the timeline is off for a network this size. A network with room for
only one keeps the first.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from app.state import TrainingState


@dataclass
class Checkpoint:
    state: TrainingState
    nbytes: int

    @property
    def epoch(self) -> int:
        return self.state.epoch


def _object_bytes(obj, seen: set | None = None) -> int:
    """Memory of an object graph: every object once (sys.getsizeof), arrays with their data."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, np.ndarray):
        return size if obj.base is None else size + _object_bytes(obj.base, seen)
    if isinstance(obj, dict):
        return size + sum(_object_bytes(k, seen) + _object_bytes(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set)):
        return size + sum(_object_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        return size + _object_bytes(vars(obj), seen)
    return size


class Timeline:
    def __init__(self, max_bytes: int = 8_000_000, every: int = 1):
        self.max_bytes = max_bytes
        self.base_every = every
        self.every = every
        self.points: list[Checkpoint] = []
        self._nbytes = 0  # kept up to date: summing every checkpoint on every epoch grew with the timeline
        self._unit: tuple | None = None  # (shape key, bytes of one checkpoint), measured once per network shape

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def clear(self) -> None:
        self.points = []
        self._nbytes = 0
        self.every = self.base_every

    @property
    def off(self) -> bool:
        """True when one checkpoint of this network is bigger than the whole budget."""
        return self._unit is not None and self._unit[1] > self.max_bytes

    def record(self, s, force: bool = False) -> None:
        """Checkpoint session `s` if its epoch is on the grid (or `force`), then enforce the cap."""
        if not force and (s.epoch % self.every or (self.points and self.points[-1].epoch == s.epoch)):
            return
        key = (tuple(s.model.sizes), type(s.optimizer).__name__)
        if self._unit is not None and self._unit[0] == key and not self._room_for_more():
            return  # no copy at all when it could not be kept
        state = TrainingState.capture(s)
        # What a checkpoint really holds: the arrays and the Python objects around them (for a
        # small network the objects are most of it). Measured once per network shape.
        if self._unit is None or self._unit[0] != key:
            self._unit = (key, _object_bytes((state.model, state.optimizer, state.rng_state)))
        nbytes = self._unit[1]
        if self.points and self.points[-1].epoch == s.epoch:
            self._nbytes -= self.points.pop().nbytes
        self.points.append(Checkpoint(state, nbytes))
        self._nbytes += nbytes
        while self._nbytes > self.max_bytes and len(self.points) > 2:
            # Keep the first, then every other one; later checkpoints come twice as far apart.
            first, rest = self.points[0], self.points[1:]
            self.points = [first] + rest[1::2]
            self._nbytes = sum(c.nbytes for c in self.points)
            self.every *= 2
        while self._nbytes > self.max_bytes and self.points:
            # Room for one at most: keep the first (the start); for none, keep nothing.
            self._nbytes -= self.points.pop().nbytes

    def _room_for_more(self) -> bool:
        """Whether a new checkpoint of the measured size could stay (besides the first)."""
        assert self._unit is not None
        unit = self._unit[1]
        return unit <= self.max_bytes and (not self.points or 2 * unit <= self.max_bytes)

    def at(self, epoch: int) -> Checkpoint | None:
        for c in self.points:
            if c.epoch == epoch:
                return c
        return None

    def truncate_after(self, epoch: int) -> None:
        self.points = [c for c in self.points if c.epoch <= epoch]
        self._nbytes = sum(c.nbytes for c in self.points)

    def summary(self) -> dict:
        return {
            "epochs": [c.epoch for c in self.points],
            "every": self.every,
            "bytes": self.nbytes,
            "max_bytes": self.max_bytes,
            "checkpoint_bytes": self._unit[1] if self._unit is not None else None,
            "off": self.off,  # one checkpoint of this network is bigger than max_bytes: none are kept
        }
