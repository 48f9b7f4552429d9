"""The timeline stays within its memory cap over a long run, and keeps the run's start."""

from __future__ import annotations

import numpy as np

from app.schema import ConfigFields, Limits, resolve
from app.training import Session


def session(timeline_bytes: int, **config) -> Session:
    return Session(resolve(None, ConfigFields(seed=5, **config), Limits()), timeline_bytes=timeline_bytes)


def test_memory_stays_bounded_and_checkpoints_thin_evenly():
    s = session(200_000, optimizer="adam")
    one = None
    for epoch in range(1, 3001):
        s.train(1)
        if epoch == 1:
            one = s.timeline.nbytes // len(s.timeline.points)
        assert s.timeline.nbytes <= 200_000
    epochs = [c.epoch for c in s.timeline.points]
    assert epochs[0] == 0  # the start is always kept
    assert len(epochs) >= 200_000 // one // 2 - 1  # thinning keeps at least half the room in use
    gaps = np.diff(epochs[1:])
    assert gaps.max() <= 2 * gaps.min()  # evenly spread over the run, not only its end
    assert epochs[-1] > 2500  # and it reaches the present


def test_a_checkpoint_is_counted_at_its_real_size():
    s = session(10_000_000)
    s.train(3)
    arrays = sum(p.nbytes for p in s.model.params)
    per_checkpoint = s.timeline.nbytes / len(s.timeline.points)
    assert per_checkpoint > arrays  # the Python objects around the arrays count too


def test_resume_after_thinning_still_reproduces_the_run():
    s = session(60_000)
    ref = session(60_000)
    s.train(400)
    kept = [c.epoch for c in s.timeline.points]
    back = kept[len(kept) // 2]
    s.resume_from(back)
    s.train(400 - back)
    ref.train(400)
    for a, b in zip(s.model.params, ref.model.params):
        np.testing.assert_array_equal(a, b)
