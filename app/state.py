"""A session's training state: everything the next epoch depends on.

Weights, optimizer state (momentum, Adam's moments and step count), the minibatch-shuffle
generator's state and the epoch and step counters. Captured, it is a checkpoint the timeline
keeps and a preview shows; restored, training continues exactly as the uninterrupted run
would have. Snapshots (snapshot_format.py) keep only its portable part: weights and counters.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.nn import MLP


@dataclass
class TrainingState:
    epoch: int
    step: int
    model: MLP
    optimizer: Any  # an optimizer of app.nn.optim, with its state arrays
    rng_state: dict  # numpy bit-generator state of the shuffle stream

    @classmethod
    def capture(cls, s) -> TrainingState:
        """A copy of session `s`'s state: later training does not change it."""
        return cls(
            s.epoch,
            s.step,
            s.model.copy(),
            copy.deepcopy(s.optimizer),
            copy.deepcopy(s.shuffle_rng.bit_generator.state),
        )

    def restore(self, s) -> None:
        """Put session `s` back in this state (copies: this state stays reusable)."""
        s.model = self.model.copy()
        s.optimizer = copy.deepcopy(self.optimizer)
        s.shuffle_rng = np.random.default_rng()
        s.shuffle_rng.bit_generator.state = copy.deepcopy(self.rng_state)
        s.epoch, s.step = self.epoch, self.step
