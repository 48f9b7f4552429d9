"""A training worker: one OS process that owns some sessions and trains the running ones.

Why processes: training and heatmaps are Python-bound for small networks, so the GIL
would let one process use one core. The server starts one worker per core; each
session lives in exactly one worker (affinity), so its arrays never cross a process
boundary: only commands, replies and finished frames (JSON bytes) do.

Protocol over a multiprocessing Pipe (all tuples, pickled):
  main → worker  (rid, op, sid, args)         rid is echoed in the reply
  worker → main  ("reply", rid, ok, payload)  payload is a result or (status, field, message)
                 ("frame", sid, frame_bytes, status)   unsolicited, newest state of a session
Scheduling: each running session has a due time; the worker runs due sessions
round-robin, one tick each (epochs_per_frame epochs, capped at max_tick_ms), and
checks for commands between ticks so control stays responsive under load.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from app.config import FieldError, SessionConfig
from app.frames import FrameBuilder, drop_grid_scratch
from app.numbers import compact_json
from app.training import Session


DEFERRED = object()  # a handler's answer when the reply will be sent later


def _malloc_trim():
    """glibc's malloc_trim, or None elsewhere (macOS, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


MALLOC_TRIM = _malloc_trim()
TRIM_EVERY_S = 5.0  # a burst of deletes (idle eviction) trims once, not once per session


@dataclass
class Slot:
    """A session plus what the worker needs to schedule and stream it."""

    session: Session
    builder: FrameBuilder
    fps: float = 0.0  # highest frame rate any viewer asked for; 0 = nobody watching
    gradients: bool = False  # some viewer has the backprop view on
    due: float = 0.0  # next tick time while running
    viewing: int | None = None  # epoch of a timeline checkpoint shown instead of the live state
    step_target: int | None = None  # a /step longer than a tick: the epoch it ends at…
    step_reply: int | None = None  # …and the request id its reply goes to


@dataclass(frozen=True)
class WorkerConfig:
    """The settings a worker needs (app/config.py Settings holds their defaults and meaning)."""

    tick_hz: float
    idle_tick_hz: float
    max_tick_ms: float
    grid: int
    thumb_stride: int
    history_len: int
    timeline_bytes: int

    @classmethod
    def from_settings(cls, settings) -> "WorkerConfig":
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


class Worker:
    """The command handlers and the scheduler; `serve` drives them from a pipe."""

    def __init__(self, conf: WorkerConfig, send):
        self.conf = conf
        self.send = send
        self.slots: dict[str, Slot] = {}
        self.last_trim = float("-inf")

    # --- command handlers: each returns a JSON-able payload or raises FieldError ------------
    def op_create(self, sid, cfg: dict, custom: dict | None = None, state: dict | None = None):
        """A new session; from a snapshot when `state` (and for custom data `custom`) is given."""
        points = None
        if custom is not None:
            dtype = np.int64 if cfg["problem"] == "classification" else np.float64
            points = (np.asarray(custom["x"], float), np.asarray(custom["y"], dtype), np.asarray(custom["is_train"], bool))
        session = Session(SessionConfig.model_validate(cfg), history_len=self.conf.history_len,
                          timeline_bytes=self.conf.timeline_bytes, custom=points)
        if state is not None:
            restore_state(session, state)
        self.slots[sid] = Slot(session, FrameBuilder(self.conf.grid, self.conf.thumb_stride))
        return session.status_dict()

    def op_delete(self, sid):
        del self.slots[sid]
        if not self.slots:
            drop_grid_scratch()
        # glibc keeps freed heap pages mapped, so a worker would stay at the peak of its
        # busiest moment forever; a deleted session's arrays and timeline go back to the OS.
        now = time.monotonic()
        if MALLOC_TRIM is not None and (not self.slots or now - self.last_trim >= TRIM_EVERY_S):
            MALLOC_TRIM(0)
            self.last_trim = now
        return None

    def op_status(self, sid):
        return self.slots[sid].session.status_dict()

    def op_play(self, sid):
        slot = self.slots[sid]
        if slot.session.status == "diverged":
            raise FieldError("status", "the network has diverged; lower the learning rate and reset first", 409,
                             code="diverged_reset_first")
        if slot.session.status != "running":
            slot.session.status = "running"
            slot.due = time.monotonic()
        return self._changed(sid)

    def op_pause(self, sid):
        slot = self.slots[sid]
        if slot.session.status == "running":
            slot.session.status = "paused"
        return self._changed(sid)

    def op_step(self, sid):
        """Train until the next epoch ends, then pause. An epoch longer than one tick's budget
        (a wide network at batch size 1) goes on in the following ticks, between the other
        sessions' ticks, and the reply is sent when it ends."""
        slot = self.slots[sid]
        s = slot.session
        if s.status == "diverged":
            raise FieldError("status", "the network has diverged; lower the learning rate and reset first", 409,
                             code="diverged_reset_first")
        s.status = "paused"
        target = s.epoch + 1
        s.train(1, budget_s=self.conf.max_tick_ms / 1000)
        if s.epoch >= target or s.status == "diverged":
            return self._changed(sid)
        slot.step_target, slot.step_reply = target, self._rid
        s.status = "running"  # so the scheduler gives it ticks until the epoch ends
        slot.due = time.monotonic()
        return DEFERRED

    def _finish_step(self, sid: str, slot: Slot) -> None:
        """Answer a deferred /step: its epoch ended, or another command came first."""
        rid, slot.step_target, slot.step_reply = slot.step_reply, None, None
        if slot.session.status == "running":
            slot.session.status = "paused"
        self.send(("reply", rid, True, self._changed(sid)))

    def op_reset(self, sid):
        slot = self.slots[sid]
        slot.session.reset()
        return self._changed(sid)

    def op_configure(self, sid, cfg: dict):
        slot = self.slots[sid]
        result = slot.session.apply_config(SessionConfig.model_validate(cfg))
        return {**self._changed(sid), **result}

    def op_watch(self, sid, fps: float, gradients: bool, fresh: bool = False):
        """The main process reports the viewers' highest fps (0 = none) and gradient wish;
        `fresh` asks for a frame now (a stream is waiting for its first one)."""
        slot = self.slots[sid]
        newly = slot.fps == 0 and fps > 0 or gradients and not slot.gradients
        slot.fps, slot.gradients = fps, gradients
        if newly or fresh:
            self._emit(slot, sid)
        return None

    def op_model(self, sid, as_json: bool = False):
        model = self.slots[sid].session.model_dict()
        return compact_json(model) if as_json else model

    def op_data(self, sid, as_json: bool = False):
        data = self.slots[sid].session.data_dict()
        return compact_json(data) if as_json else data

    def op_history(self, sid):
        return [list(h) for h in self.slots[sid].session.history]

    def op_probe(self, sid, x, snap: bool = True, label: int | None = None):
        slot = self.slots[sid]
        s = slot.session
        if len(x) != s.dims:
            raise FieldError("x", f"the probe needs {s.dims} numbers", code="probe_size", n=s.dims)
        if label is not None and (s.cfg.problem != "classification" or label >= s.cfg.classes):
            raise FieldError("label", "not a class of this problem", code="point_label", max=max(0, s.cfg.classes - 1))
        s.set_probe(np.asarray(x, dtype=float), snap=snap, label=label)
        return self._changed(sid)

    def op_set_param(self, sid, layer: int, i: int | None, j: int, value: float):
        """Set one weight W[layer][i, j] (or bias b[layer][j] when i is None)."""
        slot = self.slots[sid]
        m = slot.session.model
        if not 0 <= layer < len(m.W):
            raise FieldError("layer", f"layer must be 0 … {len(m.W) - 1}")
        rows, cols = m.W[layer].shape
        if not 0 <= j < cols:
            raise FieldError("j", f"j must be 0 … {cols - 1}")
        if i is None:
            m.b[layer][j] = value
        else:
            if not 0 <= i < rows:
                raise FieldError("i", f"i must be 0 … {rows - 1}")
            m.W[layer][i, j] = value
        slot.session.evaluate()
        return self._changed(sid)

    def op_points(self, sid, add: list[float] | None = None, label: float | None = None,
                  remove: list[float] | None = None):
        """Add a point (x, label) or remove the point nearest to `remove`."""
        s = self.slots[sid].session
        if add is not None:
            result = s.add_point(np.asarray(add, dtype=float), float(label if label is not None else 0))
        else:
            result = s.remove_nearest(np.asarray(remove, dtype=float))
        return {**self._changed(sid), **result}

    def op_upload(self, sid, x: list, y: list, problem: str, classes: int):
        s = self.slots[sid].session
        dtype = np.int64 if problem == "classification" else np.float64
        result = s.load_points(np.asarray(x, dtype=float), np.asarray(y, dtype=dtype), problem, classes)
        return {**self._changed(sid), **result}

    def op_timeline(self, sid):
        return self.slots[sid].session.timeline.summary()

    def op_view(self, sid, epoch: int | None):
        """Show a checkpoint (paused) without changing the session; None goes back to live."""
        slot = self.slots[sid]
        if epoch is not None and slot.session.timeline.at(epoch) is None:
            raise FieldError("epoch", "there is no checkpoint at that epoch", 404, code="no_checkpoint")
        if slot.step_reply is not None:  # viewing pauses: a long step ends here
            self._finish_step(sid, slot)
        if slot.session.status == "running":
            slot.session.status = "paused"
        slot.viewing = epoch
        return self._changed(sid)

    def op_resume(self, sid, epoch: int):
        """Continue from a checkpoint: the live session goes back to it."""
        slot = self.slots[sid]
        slot.session.resume_from(epoch)
        slot.viewing = None
        return self._changed(sid)

    def op_export(self, sid):
        """Everything a snapshot needs: config, weights, counters and loss history."""
        return export_state(self.slots[sid].session)

    # --- frames and scheduling ------------------------------------------------------------
    def _changed(self, sid: str) -> dict:
        """After a command: push a fresh frame to viewers, return the status for the reply."""
        slot = self.slots[sid]
        self._emit(slot, sid)
        return slot.session.status_dict()

    def _emit(self, slot: Slot, sid: str) -> None:
        if slot.fps <= 0:
            return
        s = slot.session
        if slot.viewing is not None:
            frame = self._preview(slot)
        else:
            frame = slot.builder.build(s, gradients=slot.gradients)
        frame["timeline"] = {"count": len(s.timeline.points), "last": s.timeline.points[-1].epoch if s.timeline.points else 0,
                             "viewing": slot.viewing}
        data = compact_json(frame)
        self.send(("frame", sid, data, slot.session.status))

    def _preview(self, slot: Slot) -> dict:
        """A frame of a checkpoint: the session's model and counters are swapped in for the
        build and put back afterwards (the worker is single-threaded, nothing sees the swap)."""
        s = slot.session
        c = s.timeline.at(slot.viewing)
        names = ("model", "epoch", "step", "loss_train", "loss_test", "acc_train", "acc_test", "_test_z_out")
        saved = {name: getattr(s, name) for name in names}
        try:
            s.model, s.epoch, s.step = c.model, c.epoch, c.step
            s.evaluate_only()
            return slot.builder.build(s, gradients=slot.gradients)
        finally:
            for name, value in saved.items():
                setattr(s, name, value)

    def tick(self, sid: str, slot: Slot, now: float) -> None:
        """One training tick of a running session, then a frame if anyone is watching.
        A tick never trains longer than max_tick_ms: a long epoch carries on next tick."""
        s = slot.session
        if slot.step_target is not None:
            s.train(slot.step_target - s.epoch, budget_s=self.conf.max_tick_ms / 1000)
            if s.epoch >= slot.step_target or s.status == "diverged":
                self._finish_step(sid, slot)
                return
        else:
            s.train(s.cfg.epochs_per_frame, budget_s=self.conf.max_tick_ms / 1000)
        hz = slot.fps if slot.fps > 0 else self.conf.idle_tick_hz
        hz = min(hz, self.conf.tick_hz)
        # Schedule from the previous due time (steady rate), but never try to catch up a backlog.
        slot.due = max(slot.due + 1.0 / hz, now)
        self._emit(slot, sid)

    def safe_tick(self, sid: str, slot: Slot, now: float) -> None:
        """A tick whose failure pauses that one session instead of killing the worker
        (and with it every other session it holds)."""
        try:
            self.tick(sid, slot, now)
        except Exception as e:
            traceback.print_exc()
            slot.session.status = "paused"
            slot.session.message = f"Training stopped because of an internal error ({type(e).__name__})."
            try:
                if slot.step_reply is not None:
                    self._finish_step(sid, slot)  # answers the step and sends the frame
                else:
                    self._emit(slot, sid)
            except Exception:
                pass

    def due_sessions(self, now: float) -> list[tuple[str, Slot]]:
        return [(sid, slot) for sid, slot in self.slots.items()
                if slot.session.status == "running" and slot.due <= now]

    def next_due(self) -> float | None:
        dues = [slot.due for slot in self.slots.values() if slot.session.status == "running"]
        return min(dues) if dues else None

    # Commands that leave a timeline preview showing; any other command returns to live.
    READ_ONLY = frozenset({"status", "model", "data", "history", "watch", "export", "timeline", "view"})

    def handle(self, msg) -> None:
        rid, op, sid, args = msg
        self._rid = rid
        try:
            if op != "create" and sid not in self.slots:
                raise FieldError("id", "no such session", 404, code="session_unknown")
            if op not in self.READ_ONLY and op != "create":
                slot = self.slots[sid]
                slot.viewing = None
                if slot.step_reply is not None:  # a command cuts a long step short
                    self._finish_step(sid, slot)
            payload = getattr(self, "op_" + op)(sid, **args)
            if payload is not DEFERRED:
                self.send(("reply", rid, True, payload))
        except Exception as e:  # a bug must not kill the worker and every session on it
            if not isinstance(e, FieldError):
                traceback.print_exc()  # the details go to the log, not to the client
                e = FieldError("server", "something went wrong on the server", 500, code="server_error")
            self.send(("reply", rid, False, (e.status, e.field, e.message, e.code, e.params)))


def export_state(s: Session) -> dict:
    return {"config": s.cfg.model_dump(), "epoch": s.epoch, "step": s.step,
            "weights": [W.tolist() for W in s.model.W], "biases": [b.tolist() for b in s.model.b],
            "history": [list(h) for h in s.history], "structure": s.structure,
            "custom": None if s.custom is None else
            {"x": s.custom[0].tolist(), "y": s.custom[1].tolist(), "is_train": s.custom[2].tolist()}}


def restore_state(s: Session, state: dict) -> None:
    """Load weights, counters and history from an exported state into a fresh session."""
    for l, (W, b) in enumerate(zip(state["weights"], state["biases"])):
        s.model.W[l][...] = np.asarray(W, dtype=float)
        s.model.b[l][...] = np.asarray(b, dtype=float)
    s.epoch, s.step = int(state["epoch"]), int(state.get("step", 0))
    s.history = [tuple(h) for h in state.get("history", []) if isinstance(h, (list, tuple)) and len(h) == 3]
    s.history = s.history[-s.history_len:]
    s.evaluate()


def serve(conn, conf: WorkerConfig) -> None:
    """Process entry point: read commands, run ticks, until the pipe closes."""
    try:  # training yields the CPU to the server process (HTTP, streams) when both want it
        os.nice(10)
    except OSError:
        pass
    worker = Worker(conf, conn.send)
    rr = 0  # round-robin offset so no session always goes first
    while True:
        due = worker.next_due()
        timeout = None if due is None else max(0.0, due - time.monotonic())
        try:
            if conn.poll(timeout):
                while conn.poll():
                    msg = conn.recv()
                    if msg is None:
                        return
                    worker.handle(msg)
            now = time.monotonic()
            ready = worker.due_sessions(now)
            if ready:
                rr = (rr + 1) % len(ready)
                for sid, slot in ready[rr:] + ready[:rr]:
                    if sid in worker.slots and slot.session.status == "running":
                        worker.safe_tick(sid, slot, now)
                    while conn.poll():  # control stays responsive between ticks
                        msg = conn.recv()
                        if msg is None:
                            return
                        worker.handle(msg)
        except (EOFError, BrokenPipeError, KeyboardInterrupt):
            return
