"""A session's timeline: checkpoints of its full training state, bounded in memory.

A checkpoint holds everything the next epoch depends on — weights, optimizer state
(momentum, Adam's moments and step count), the minibatch-shuffle generator's state,
and the epoch and step counters — so resuming from it continues exactly as the
uninterrupted run would have. Checkpoints are taken every `every` epochs; when their
memory passes `max_bytes`, every other one is dropped (the first, at the start of the
timeline, always stays) and `every` doubles, so a long run keeps an evenly spread,
bounded history instead of its most recent part only.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np


@dataclass
class Checkpoint:
    epoch: int
    step: int
    model: object  # an MLP copy
    optimizer: object  # a deep copy of the optimizer (its state arrays)
    rng_state: dict  # numpy bit-generator state of the shuffle stream
    nbytes: int


def _state_bytes(obj) -> int:
    """Bytes of the NumPy arrays an object holds directly or in lists (optimizer state)."""
    total = 0
    for value in vars(obj).values() if hasattr(obj, "__dict__") else ():
        items = value if isinstance(value, (list, tuple)) else [value]
        total += sum(v.nbytes for v in items if isinstance(v, np.ndarray))
    return total


class Timeline:
    def __init__(self, max_bytes: int = 8_000_000, every: int = 1):
        self.max_bytes = max_bytes
        self.base_every = every
        self.every = every
        self.points: list[Checkpoint] = []

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.points)

    def clear(self) -> None:
        self.points = []
        self.every = self.base_every

    def record(self, s, force: bool = False) -> None:
        """Checkpoint session `s` if its epoch is on the grid (or `force`), then enforce the cap."""
        if not force and (s.epoch % self.every or (self.points and self.points[-1].epoch == s.epoch)):
            return
        model = s.model.copy()
        optimizer = copy.deepcopy(s.optimizer)
        nbytes = sum(p.nbytes for p in model.params) + _state_bytes(optimizer)
        if self.points and self.points[-1].epoch == s.epoch:
            self.points.pop()
        self.points.append(Checkpoint(s.epoch, s.step, model, optimizer,
                                      copy.deepcopy(s.shuffle_rng.bit_generator.state), nbytes))
        while self.nbytes > self.max_bytes and len(self.points) > 2:
            # Keep the first, then every other one; later checkpoints come twice as far apart.
            first, rest = self.points[0], self.points[1:]
            self.points = [first] + rest[1::2] if len(rest) > 1 else [first] + rest
            self.every *= 2

    def at(self, epoch: int) -> Checkpoint | None:
        for c in self.points:
            if c.epoch == epoch:
                return c
        return None

    def truncate_after(self, epoch: int) -> None:
        self.points = [c for c in self.points if c.epoch <= epoch]

    def summary(self) -> dict:
        return {"epochs": [c.epoch for c in self.points], "every": self.every, "bytes": self.nbytes,
                "max_bytes": self.max_bytes}


def restore(s, c: Checkpoint) -> None:
    """Put session `s` back in the state of checkpoint `c` (copies: `c` stays reusable)."""
    s.model = c.model.copy()
    s.optimizer = copy.deepcopy(c.optimizer)
    s.shuffle_rng = np.random.default_rng()
    s.shuffle_rng.bit_generator.state = copy.deepcopy(c.rng_state)
    s.epoch, s.step = c.epoch, c.step
    s.history = [h for h in s.history if h[0] <= c.epoch]
