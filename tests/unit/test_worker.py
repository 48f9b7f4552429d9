"""The worker's command handling, driven directly (no process, no pipe).

A /step whose epoch is longer than one tick's budget is answered later ("deferred"). Every
way that can end must send exactly one reply to the waiting request: the epoch ending, a
command that pauses (view a checkpoint, pause, a config change), or a tick that fails.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from app import protocol as cmd
from app.schema import ConfigFields, Limits, SessionConfig
from app.worker import Worker, WorkerConfig

# A budget so small that each call trains one minibatch: an epoch of 500 points at batch
# size 1 never fits in one tick.
TINY_TICK = WorkerConfig(
    tick_hz=30,
    idle_tick_hz=5,
    max_tick_ms=1e-6,
    grid=16,
    thumb_stride=4,
    history_len=100,
    timeline_bytes=1_000_000,
    limits=Limits(),
)
LONG_EPOCH = SessionConfig(dataset="circle", n_points=1000, batch_size=1, seed=1)
STEP_RID = 7


class Recorder:
    def __init__(self):
        self.sent = []

    def __call__(self, msg):
        self.sent.append(msg)

    def replies(self, rid):
        return [m for m in self.sent if m[0] == "reply" and m[1] == rid]


@pytest.fixture
def deferred():
    """A worker holding one session whose /step (request STEP_RID) is still waiting."""
    out = Recorder()
    w = Worker(TINY_TICK, out)
    w.handle((1, cmd.Create("s", LONG_EPOCH)))
    w.handle((STEP_RID, cmd.Step("s")))
    assert w.slots["s"].step_reply == STEP_RID and out.replies(STEP_RID) == []  # not answered yet
    return w, out


def test_a_long_step_is_answered_when_its_epoch_ends(deferred):
    w, out = deferred
    for _ in range(100_000):
        if out.replies(STEP_RID):
            break
        w.tick(w.slots["s"], now=0.0)
    [(_, _, ok, status)] = out.replies(STEP_RID)
    assert ok and status["epoch"] == 1 and status["status"] == "paused"
    assert w.slots["s"].step_reply is None


@pytest.mark.parametrize(
    "command", [cmd.View("s", None), cmd.Pause("s"), cmd.Change("s", ConfigFields(learning_rate=0.1))]
)
def test_a_command_during_a_long_step_answers_the_step_first(deferred, command):
    w, out = deferred
    w.handle((8, command))
    [(_, _, ok, status)] = out.replies(STEP_RID)
    assert ok and status["status"] == "paused" and status["epoch"] == 0  # cut short, before the epoch ended
    [(_, _, ok, _)] = out.replies(8)
    assert ok
    assert w.slots["s"].step_reply is None and w.slots["s"].session.status == "paused"


def test_a_failing_tick_answers_the_step_and_pauses_only_that_session(deferred, monkeypatch):
    w, out = deferred
    w.handle((2, cmd.Create("other", SessionConfig(seed=2))))
    s = w.slots["s"].session

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(s, "train", broken)
    w.safe_tick(w.slots["s"], now=0.0)
    [(_, _, ok, status)] = out.replies(STEP_RID)
    assert ok and status["status"] == "paused" and "internal error" in status["message"]
    w.handle((9, cmd.Play("other")))  # the worker and its other session go on
    w.tick(w.slots["other"], now=0.0)
    [(_, _, ok, status)] = out.replies(9)
    assert ok and status["status"] == "running" and w.slots["other"].session.step > 0


def test_an_unexpected_error_replies_server_error_without_internal_text():
    out = Recorder()
    w = Worker(TINY_TICK, out)
    w.handle((1, cmd.Create("s", LONG_EPOCH)))
    w.handle((2, cmd.Probe("s", (0, 0), label="a")))  # a TypeError inside: a bug if the API let it through
    [(_, _, ok, (field, message, code, _))] = out.replies(2)
    assert not ok and field == "server" and code == "server_error"
    assert "str" not in message and "Error" not in message


def test_step_answers_at_once_when_the_epoch_fits_in_a_tick():
    out = Recorder()
    w = Worker(replace(TINY_TICK, max_tick_ms=10_000), out)
    w.handle((1, cmd.Create("s", SessionConfig(seed=3))))
    w.handle((2, cmd.Step("s")))
    [(_, _, ok, status)] = out.replies(2)
    assert ok and status["epoch"] == 1 and status["status"] == "paused"


def test_deleting_a_session_gives_its_memory_back(monkeypatch):
    """glibc keeps freed pages; the worker trims after a delete, at most every TRIM_EVERY_S in a
    burst, and always when the last session goes (RSS figures: benchmarks/load.py soak)."""
    import app.frames as frames_module
    import app.worker as worker_module

    calls = []
    monkeypatch.setattr(worker_module, "MALLOC_TRIM", lambda pad: calls.append(pad))
    w = Worker(TINY_TICK, Recorder())
    for sid in ("a", "b", "c"):
        w.handle((1, cmd.Create(sid, LONG_EPOCH)))
        w.handle((2, cmd.Watch(sid, fps=30, gradients=False)))  # builds a frame: the grid buffers
    assert calls == [] and "pool" in frames_module._scratch.__dict__
    w.handle((3, cmd.Delete("a")))
    assert calls == [0] and "pool" in frames_module._scratch.__dict__  # "b" still uses the buffers
    w.handle((4, cmd.Delete("b")))
    assert calls == [0]  # the same burst: no second trim
    w.handle((5, cmd.Delete("c")))
    assert calls == [0, 0] and "pool" not in frames_module._scratch.__dict__ and w.slots == {}
