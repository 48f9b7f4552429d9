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


def test_every_reply_follows_a_report_of_the_same_status_and_ticks_report_too(monkeypatch):
    """The server answers GET status from these reports (worker_process.py): a client that got a
    reply must then read a status at least as new, and a running session's epoch moves on."""
    import app.worker as worker_module

    monkeypatch.setattr(worker_module, "REPORT_EVERY_S", 0.0)
    out = Recorder()
    w = Worker(replace(TINY_TICK, max_tick_ms=10_000), out, report=True)
    w.handle((1, cmd.Create("s", SessionConfig(seed=3))))
    w.handle((2, cmd.Change("s", ConfigFields(learning_rate=0.1))))
    w.handle((3, cmd.Play("s")))
    w.handle((4, cmd.Status("s")))
    for i, m in enumerate(out.sent):
        if m[0] == "reply":
            state = out.sent[i - 1]
            assert state[:2] == ("state", "s")
            assert state[2] == {k: v for k, v in m[3].items() if k in state[2]} and state[2]["epoch"] == m[3]["epoch"]
    configs = [m[3] for m in out.sent if m[0] == "state" and m[3] is not None]
    assert [c.learning_rate for c in configs] == [0.03, 0.1]  # sent first, then only when it changed
    w.safe_tick(w.slots["s"], now=0.0)  # nobody watches: a report of its own
    assert out.sent[-1][:2] == ("state", "s") and out.sent[-1][2]["epoch"] == 1 and out.sent[-1][3] is None
    w.handle((5, cmd.Watch("s", fps=30, gradients=False)))
    w.handle((6, cmd.Change("s", ConfigFields(learning_rate=0.2))))
    sent = len(out.sent)
    w.safe_tick(w.slots["s"], now=0.0)  # watched: the report rides in the frame, one message
    [frame] = out.sent[sent:]
    assert frame[0] == "frame" and frame[4]["epoch"] == 2 and frame[5] is None  # the change's reply carried it
    w.handle((7, cmd.Delete("s")))
    assert out.sent[-2] == ("state", "s", None, None)  # gone: the server forgets it


def test_an_unwatched_session_reports_at_most_every_interval_and_at_once_when_its_status_changes(monkeypatch):
    import app.worker as worker_module

    monkeypatch.setattr(worker_module, "REPORT_EVERY_S", 3600.0)
    out = Recorder()
    w = Worker(replace(TINY_TICK, max_tick_ms=10_000), out, report=True)
    w.handle((1, cmd.Create("s", SessionConfig(seed=3))))
    w.handle((2, cmd.Play("s")))
    sent = len(out.sent)
    for _ in range(3):
        w.safe_tick(w.slots["s"], now=0.0)
    assert out.sent[sent:] == []  # reported with the reply, and nothing is due yet
    w.slots["s"].session.halt("stopped")  # as a failing tick does: a new status is reported at once
    w.safe_tick(w.slots["s"], now=0.0)
    [(kind, sid, status, _)] = out.sent[sent:]
    assert (kind, sid, status["status"], status["epoch"]) == ("state", "s", "paused", 4)  # its tick trained on
    monkeypatch.setattr(worker_module, "REPORT_EVERY_S", 0.0)
    w.handle((3, cmd.Play("s")))
    sent = len(out.sent)
    w.safe_tick(w.slots["s"], now=0.0)
    assert [m[0] for m in out.sent[sent:]] == ["state"]  # the interval passed


def test_a_worker_without_reports_sends_its_frames_as_before():
    out = Recorder()
    w = Worker(TINY_TICK, out)
    w.handle((1, cmd.Create("s", LONG_EPOCH)))
    w.handle((2, cmd.Watch("s", fps=30, gradients=False)))
    assert [m[0] for m in out.sent] == ["reply", "frame", "reply"] and len(out.sent[1]) == 4


def test_the_server_keeps_the_newest_report_with_the_last_config_sent():
    from app.worker_process import WorkerProcess

    wp = WorkerProcess.__new__(WorkerProcess)  # no process: only the reader thread's bookkeeping
    wp.lost, wp._reported = False, {}
    first, second = SessionConfig(seed=1), SessionConfig(seed=2)
    assert wp.reported("s") is None  # nothing reported yet: the caller asks the worker
    wp._note_state("s", {"epoch": 0}, first)
    wp._note_state("s", {"epoch": 1}, None)  # config unchanged
    status, cfg = wp.reported("s")
    assert status == {"epoch": 1} and cfg is first
    status["epoch"] = 99  # a copy: the caller may change it
    wp._note_state("s", {"epoch": 2}, second)
    assert wp.reported("s") == ({"epoch": 2}, second)
    wp.lost = True
    assert wp.reported("s") is None  # abandoned: a call says worker_lost
    wp.lost = False
    wp._note_state("s", None, None)
    assert wp.reported("s") is None and wp._reported == {}
