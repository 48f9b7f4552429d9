"""A training worker: one OS process that owns some sessions and trains the running ones.

Why processes: training and heatmaps are Python-bound for small networks, so the GIL
would let one process use one core. The server starts one worker per core; each
session lives in exactly one worker (affinity), so its arrays never cross a process
boundary: only commands, replies and finished frames (JSON bytes) do.

The protocol is in protocol.py: one command class per action, one handler each here.
Scheduling: each running session has a due time; the worker runs due sessions
round-robin, one tick each (epochs_per_frame epochs, capped at max_tick_ms), and
checks for commands between ticks so control stays responsive under load.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app import protocol as cmd
from app.budget import check_session_memory
from app.errors import FieldError
from app.frames import FrameBuilder, drop_grid_scratch
from app.nn import compiled
from app.numbers import compact_json
from app.schema import ConfigFields, Limits, SessionConfig, check_point_count, resolve
from app.snapshot_format import custom_points, payload_of, restore_payload, validate_payload
from app.structure import edit_structure
from app.training import Session, Status

DEFERRED = object()  # a handler's answer when the reply will be sent later


def _malloc_trim():
    """glibc's malloc_trim, or None elsewhere (macOS, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


MALLOC_TRIM = _malloc_trim()
TRIM_EVERY_S = 5.0  # a burst of deletes (idle eviction) trims once, not once per session
MIN_RECOVER_LR = 1e-5  # the lowest learning rate the page offers
BEAT_EVERY_S = 1.0  # heartbeats to the server (worker_process.py), also between ticks while training
# A running session nobody watches sends no frames; its status goes to the server this often
# (and at once when the status changes), not after each of its ticks: a GET sees its epoch
# at most this late, and many unwatched sessions do not keep the server's reader thread busy.
REPORT_EVERY_S = 0.1


@dataclass
class Slot:
    """A session plus what the worker needs to schedule and stream it."""

    sid: str
    session: Session
    builder: FrameBuilder
    fps: float = 0.0  # highest frame rate any viewer asked for; 0 = nobody watching
    gradients: bool = False  # some viewer has the backprop view on
    due: float = 0.0  # next tick time while running
    viewing: int | None = None  # epoch of a timeline checkpoint shown instead of the live state
    step_target: int | None = None  # a /step longer than a tick: the epoch it ends at…
    step_reply: int | None = None  # …and the request id its reply goes to
    reported_config: SessionConfig | None = None  # the config last sent with a report (sent again when it changes)
    reported_at: float = float("-inf")  # time.monotonic() of the last report…
    reported_status: str = ""  # …and the status it gave


@dataclass(frozen=True)
class WorkerConfig:
    """The settings a worker needs (app/settings.py Settings holds their defaults and meaning)."""

    tick_hz: float
    idle_tick_hz: float
    max_tick_ms: float
    grid: int
    thumb_stride: int
    history_len: int
    timeline_bytes: int
    limits: Limits
    compiled_engine: bool = False  # load app/nn/compiled at start-up (in the background)

    @classmethod
    def from_settings(cls, settings) -> WorkerConfig:
        names = [name for name in cls.__dataclass_fields__ if name != "limits"]
        return cls(**{name: getattr(settings, name) for name in names}, limits=Limits.of(settings))


Handler = Callable[["Worker", "Slot", Any], Any]
HANDLERS: dict[type, Handler] = {}


def handles(command: type):
    """Register the decorated method as the one handler of `command`."""

    def register(fn: Handler) -> Handler:
        HANDLERS[command] = fn
        return fn

    return register


class Worker:
    """The command handlers and the scheduler; `serve` drives them from a pipe."""

    def __init__(self, conf: WorkerConfig, send, report: bool = False):
        self.conf = conf
        self.send = send
        # report: send each session's status after every tick (inside its frame, if any) and
        # before every reply, with its config when that changed (protocol.py); the server
        # answers GET status from it without waiting for this process (worker_process.py).
        self.report = report
        self.slots: dict[str, Slot] = {}
        self.last_trim = float("-inf")
        self._rid: int | None = None

    # --- dispatch -------------------------------------------------------------------------
    def handle(self, msg: tuple[int, cmd.Command]) -> None:
        rid, command = msg
        self._rid = rid
        try:
            payload = self.run(command)
            if payload is not DEFERRED:
                self._report(command.sid)
                self.send(("reply", rid, True, payload))
        except Exception as e:  # a bug must not kill the worker and every session on it
            if not isinstance(e, FieldError):
                traceback.print_exc()  # the details go to the log, not to the client
                e = FieldError("server", "something went wrong on the server", code="server_error")
            self._report(command.sid)
            self.send(("reply", rid, False, (e.field, e.message, e.code, e.params)))

    def _report(self, sid: str) -> None:
        """Tell the server the session's status (before a reply, so that whoever got the reply
        then reads a status at least as new); (None, None) once the session is gone."""
        if self.report:
            slot = self.slots.get(sid)
            self.send(("state", sid, *(self._state(slot) if slot is not None else (None, None))))

    @staticmethod
    def _state(slot: Slot) -> tuple[dict, SessionConfig | None]:
        """The session's status, and its config if it changed since the last report (a change
        replaces the config object: Session.apply_config), else None."""
        cfg = slot.session.cfg
        changed = cfg is not slot.reported_config
        status = slot.session.status_dict()
        status["status"] = str(status["status"])  # a plain string pickles in half the time of the enum
        slot.reported_config, slot.reported_at, slot.reported_status = cfg, time.monotonic(), status["status"]
        return status, cfg if changed else None

    @staticmethod
    def _report_due(slot: Slot) -> bool:
        """After a tick without a frame: REPORT_EVERY_S since the last report, or a new status."""
        due = time.monotonic() - slot.reported_at >= REPORT_EVERY_S
        return due or str(slot.session.status) != slot.reported_status

    def run(self, command: cmd.Command):
        if isinstance(command, cmd.Create):
            return self.create(command)
        slot = self.slots.get(command.sid)
        if slot is None:
            raise FieldError("id", "no such session", code="session_unknown")
        if not command.read_only:
            slot.viewing = None
            if slot.step_reply is not None:  # a command cuts a long step short
                self._finish_step(command.sid, slot)
        return HANDLERS[type(command)](self, slot, command)

    def create(self, c: cmd.Create) -> dict:
        payload = self._snapshot_payload(c)
        custom = custom_points(c.cfg, payload.get("custom")) if payload else None
        session = Session(
            c.cfg, history_len=self.conf.history_len, timeline_bytes=self.conf.timeline_bytes, custom=custom
        )
        if payload is not None:
            restore_payload(session, payload)
        self.slots[c.sid] = Slot(c.sid, session, FrameBuilder(self.conf.grid, self.conf.thumb_stride))
        return self._status(self.slots[c.sid])

    def _snapshot_payload(self, c: cmd.Create) -> dict | None:
        """A snapshot's payload, parsed and checked here (the server sent its stored JSON)."""
        if c.payload_json is None:
            return None
        try:
            payload = json.loads(c.payload_json)
        except (ValueError, RecursionError) as e:
            raise FieldError(
                "snapshot.payload", f"the snapshot is not valid JSON: {e}", code="snapshot_invalid", part="payload"
            ) from None
        if validate_payload(payload, self.conf.limits) != c.cfg:
            raise FieldError("snapshot.config", "the snapshot's config changed", code="snapshot_invalid", part="config")
        return payload

    # --- command handlers: each returns a picklable payload or raises FieldError --------------
    @handles(cmd.Delete)
    def delete(self, slot: Slot, c: cmd.Delete) -> None:
        del self.slots[c.sid]
        if not self.slots:
            drop_grid_scratch()
        # glibc keeps freed heap pages mapped, so a worker would stay at the peak of its
        # busiest moment forever; a deleted session's arrays and timeline go back to the OS.
        now = time.monotonic()
        if MALLOC_TRIM is not None and (not self.slots or now - self.last_trim >= TRIM_EVERY_S):
            MALLOC_TRIM(0)
            self.last_trim = now

    @handles(cmd.Status)
    def status(self, slot: Slot, c: cmd.Status) -> dict:
        return self._status(slot)

    @handles(cmd.Play)
    def play(self, slot: Slot, c: cmd.Play) -> dict:
        if slot.session.status != Status.RUNNING:
            slot.session.play()
            slot.due = time.monotonic()
        return self._changed(slot)

    @handles(cmd.Pause)
    def pause(self, slot: Slot, c: cmd.Pause) -> dict:
        slot.session.pause()
        return self._changed(slot)

    @handles(cmd.Step)
    def step(self, slot: Slot, c: cmd.Step):
        """An epoch longer than one tick's budget (a wide network at batch size 1) goes on in
        the following ticks, between the other sessions' ticks; the reply waits for its end."""
        s = slot.session
        s.require_trainable()
        s.pause()
        target = s.epoch + 1
        s.train(1, budget_s=self.conf.max_tick_ms / 1000)
        if s.epoch >= target or s.status == Status.DIVERGED:
            return self._changed(slot)
        slot.step_target, slot.step_reply = target, self._rid
        s.play()  # so the scheduler gives it ticks until the epoch ends
        slot.due = time.monotonic()
        return DEFERRED

    def _finish_step(self, sid: str, slot: Slot) -> None:
        """Answer a deferred /step: its epoch ended, or another command came first."""
        rid, slot.step_target, slot.step_reply = slot.step_reply, None, None
        slot.session.pause()
        status = self._changed(slot)
        self._report(sid)
        self.send(("reply", rid, True, status))

    @handles(cmd.Reset)
    def reset(self, slot: Slot, c: cmd.Reset) -> dict:
        slot.session.reset()
        return self._changed(slot)

    def _reconfigure(self, slot: Slot, new: SessionConfig) -> dict:
        result = slot.session.apply_config(new)
        return {**self._changed(slot), **result}

    @handles(cmd.Change)
    def change(self, slot: Slot, c: cmd.Change) -> dict:
        """Applied to the worker's current config in one step, so two changes of different
        fields sent at once both take effect."""
        return self._reconfigure(slot, resolve(slot.session.cfg, c.fields, self.conf.limits))

    @handles(cmd.EditStructure)
    def edit_structure(self, slot: Slot, c: cmd.EditStructure) -> dict:
        return self._reconfigure(slot, edit_structure(slot.session.cfg, c.edit, self.conf.limits))

    @handles(cmd.Regenerate)
    def regenerate(self, slot: Slot, c: cmd.Regenerate) -> dict:
        if slot.session.cfg.dataset == "custom":
            raise FieldError(
                "dataset",
                "uploaded or edited data cannot be regenerated; choose a dataset first",
                code="custom_no_regenerate",
            )
        return self._reconfigure(slot, resolve(slot.session.cfg, ConfigFields(data_seed=c.data_seed), self.conf.limits))

    @handles(cmd.Recover)
    def recover(self, slot: Slot, c: cmd.Recover) -> dict:
        lower = max(slot.session.cfg.learning_rate / 10, MIN_RECOVER_LR)
        result = slot.session.apply_config(slot.session.cfg.model_copy(update={"learning_rate": lower}))
        slot.session.reset()
        return {**self._changed(slot), **result}

    @handles(cmd.Watch)
    def watch(self, slot: Slot, c: cmd.Watch) -> None:
        newly = slot.fps == 0 and c.fps > 0 or c.gradients and not slot.gradients
        slot.fps, slot.gradients = c.fps, c.gradients
        if newly or c.fresh:
            self._emit(slot)

    @handles(cmd.Model)
    def model(self, slot: Slot, c: cmd.Model) -> bytes | dict:
        model = slot.session.model_dict()
        return compact_json(model) if c.as_json else model

    @handles(cmd.Data)
    def data(self, slot: Slot, c: cmd.Data) -> bytes | dict:
        data = slot.session.data_dict()
        return compact_json(data) if c.as_json else data

    @handles(cmd.History)
    def history(self, slot: Slot, c: cmd.History) -> list:
        return [list(h) for h in slot.session.history]

    @handles(cmd.Probe)
    def probe(self, slot: Slot, c: cmd.Probe) -> dict:
        s = slot.session
        if len(c.x) != s.dims:
            raise FieldError("x", f"the probe needs {s.dims} numbers", code="probe_size", n=s.dims)
        if c.label is not None and (s.cfg.problem != "classification" or c.label >= s.cfg.classes):
            raise FieldError("label", "not a class of this problem", code="point_label", max=max(0, s.cfg.classes - 1))
        s.set_probe(np.asarray(c.x, dtype=float), snap=c.snap, label=c.label)
        return self._changed(slot)

    @handles(cmd.SetParam)
    def set_param(self, slot: Slot, c: cmd.SetParam) -> dict:
        m = slot.session.model
        if not 0 <= c.layer < len(m.W):
            raise FieldError("layer", f"layer must be 0 … {len(m.W) - 1}")
        rows, cols = m.W[c.layer].shape
        if not 0 <= c.j < cols:
            raise FieldError("j", f"j must be 0 … {cols - 1}")
        if c.i is None:
            m.b[c.layer][c.j] = c.value
        elif 0 <= c.i < rows:
            m.W[c.layer][c.i, c.j] = c.value
        else:
            raise FieldError("i", f"i must be 0 … {rows - 1}")
        slot.session.evaluate()
        return self._changed(slot)

    @handles(cmd.AddPoint)
    def add_point(self, slot: Slot, c: cmd.AddPoint) -> dict:
        # One more point must stay within max_points, or every later change would be refused.
        check_point_count(slot.session.cfg.n_points + 1, self.conf.limits)
        self._check_memory(slot, n_points=slot.session.cfg.n_points + 1, dataset="custom")
        result = slot.session.add_point(np.asarray(c.x, dtype=float), float(c.label))
        return {**self._changed(slot), **result}

    @handles(cmd.RemovePoint)
    def remove_point(self, slot: Slot, c: cmd.RemovePoint) -> dict:
        result = slot.session.remove_nearest(np.asarray(c.x, dtype=float))
        return {**self._changed(slot), **result}

    def _check_memory(self, slot: Slot, **update) -> None:
        """MAX_SESSION_MB for a change of the data that does not go through `resolve`."""
        limits = self.conf.limits
        check_session_memory(slot.session.cfg.model_copy(update=update), limits.max_session_bytes, limits.sizing)

    @handles(cmd.Upload)
    def upload(self, slot: Slot, c: cmd.Upload) -> dict:
        self._check_memory(slot, dataset="custom", n_points=len(c.y), problem=c.problem, classes=c.classes)
        dtype = np.int64 if c.problem == "classification" else np.float64
        result = slot.session.load_points(
            np.asarray(c.x, dtype=float), np.asarray(c.y, dtype=dtype), c.problem, c.classes
        )
        return {**self._changed(slot), **result}

    @handles(cmd.Timeline)
    def timeline(self, slot: Slot, c: cmd.Timeline) -> dict:
        return slot.session.timeline.summary()

    @handles(cmd.View)
    def view(self, slot: Slot, c: cmd.View) -> dict:
        if c.epoch is not None and slot.session.timeline.at(c.epoch) is None:
            raise FieldError("epoch", "there is no checkpoint at that epoch", code="no_checkpoint")
        if slot.step_reply is not None:  # viewing pauses: a long step ends here
            self._finish_step(c.sid, slot)
        slot.session.pause()
        slot.viewing = c.epoch
        return self._changed(slot)

    @handles(cmd.Resume)
    def resume(self, slot: Slot, c: cmd.Resume) -> dict:
        slot.session.resume_from(c.epoch)
        slot.viewing = None
        return self._changed(slot)

    @handles(cmd.Export)
    def export(self, slot: Slot, c: cmd.Export) -> dict:
        return payload_of(slot.session)

    # --- frames and scheduling ------------------------------------------------------------
    @staticmethod
    def _status(slot: Slot) -> dict:
        """The reply to a command: the session's status, and its config as the object itself
        (the server keeps it as its read-only copy without validating it again)."""
        return {**slot.session.status_dict(), "config": slot.session.cfg}

    def _changed(self, slot: Slot) -> dict:
        """After a command: push a fresh frame to viewers, return the status for the reply."""
        self._emit(slot)
        return self._status(slot)

    def _emit(self, slot: Slot) -> bool:
        """Send a frame to the session's viewers, if it has any (with its status, when
        reporting: one message, not two, for the server's reader thread to wake up for)."""
        if slot.fps <= 0:
            return False
        s = slot.session
        checkpoint = s.timeline.at(slot.viewing) if slot.viewing is not None else None
        if checkpoint is not None:
            with s.showing(checkpoint.state):
                frame = slot.builder.build(s, gradients=slot.gradients)
        else:
            frame = slot.builder.build(s, gradients=slot.gradients)
        points = s.timeline.points
        frame["timeline"] = {"count": len(points), "last": points[-1].epoch if points else 0, "viewing": slot.viewing}
        message = ("frame", slot.sid, compact_json(frame), str(s.status))
        self.send(message + self._state(slot) if self.report else message)
        return True

    def tick(self, slot: Slot, now: float) -> bool:
        """One training tick of a running session, then a frame if anyone is watching.
        A tick never trains longer than max_tick_ms: a long epoch carries on next tick.
        True when the session's status went out with a frame or a reply."""
        s = slot.session
        budget_s = self.conf.max_tick_ms / 1000
        if slot.step_target is not None:
            s.train(slot.step_target - s.epoch, budget_s=budget_s)
            if s.epoch >= slot.step_target or s.status == Status.DIVERGED:
                self._finish_step(slot.sid, slot)
                return True
        else:
            s.train(s.cfg.epochs_per_frame, budget_s=budget_s)
        hz = min(slot.fps if slot.fps > 0 else self.conf.idle_tick_hz, self.conf.tick_hz)
        # Schedule from the previous due time (steady rate), but never try to catch up a backlog.
        slot.due = max(slot.due + 1.0 / hz, now)
        return self._emit(slot)

    def safe_tick(self, slot: Slot, now: float) -> None:
        """A tick whose failure pauses that one session instead of killing the worker
        (and with it every other session it holds). Its status is reported either way."""
        try:
            if self.tick(slot, now) or not (self.report and self._report_due(slot)):
                return
        except Exception as e:
            traceback.print_exc()
            slot.session.halt(f"Training stopped because of an internal error ({type(e).__name__}).")
            try:
                if slot.step_reply is not None:
                    self._finish_step(slot.sid, slot)  # answers the step and sends the frame
                else:
                    self._emit(slot)
            except Exception:
                traceback.print_exc()
        self._report(slot.sid)

    def due_slots(self, now: float) -> list[Slot]:
        return [slot for slot in self.slots.values() if slot.session.status == Status.RUNNING and slot.due <= now]

    def next_due(self) -> float | None:
        dues = [slot.due for slot in self.slots.values() if slot.session.status == Status.RUNNING]
        return min(dues) if dues else None


class Heartbeat:
    """Sends ("beat", time) when BEAT_EVERY_S has passed since the last one: the server
    replaces a worker that falls silent (stopped, hung in a loop, swapped out)."""

    def __init__(self, send):
        self.send, self.next = send, 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if now >= self.next:
            self.send(("beat", time.time()))
            self.next = now + BEAT_EVERY_S


def serve(conn, conf: WorkerConfig) -> None:
    """Process entry point: read commands, run ticks, until the pipe closes."""
    try:  # training yields the CPU to the server process (HTTP, streams) when both want it
        os.nice(10)
    except OSError:
        pass
    if conf.compiled_engine:
        compiled.start()  # sessions train on NumPy until it is ready; its compiling never blocks a tick
    worker = Worker(conf, conn.send, report=True)
    beat = Heartbeat(conn.send)
    rr = 0  # round-robin offset so no session always goes first
    while True:
        beat()
        due = worker.next_due()
        timeout = BEAT_EVERY_S if due is None else min(BEAT_EVERY_S, max(0.0, due - time.monotonic()))
        try:
            if conn.poll(timeout):
                while conn.poll():
                    msg = conn.recv()
                    if msg is None:
                        return
                    worker.handle(msg)
            now = time.monotonic()
            ready = worker.due_slots(now)
            if ready:
                rr = (rr + 1) % len(ready)
                for slot in ready[rr:] + ready[:rr]:
                    if slot.sid in worker.slots and slot.session.status == Status.RUNNING:
                        worker.safe_tick(slot, now)
                    beat()
                    while conn.poll():  # control stays responsive between ticks
                        msg = conn.recv()
                        if msg is None:
                            return
                        worker.handle(msg)
        except (EOFError, BrokenPipeError, KeyboardInterrupt):
            return
