"""A training worker process, seen from the server: the process, its pipe, the thread that
writes commands to it, the thread that reads what it sends, and its heartbeat.

Replies resolve the futures of pending calls on the event loop; frames are coalesced
before they reach the loop (newest per session), so a busy loop never builds a backlog.

Commands are written by a writer thread, never on the event loop: a pipe holds 64 KB, so
a write to a worker that is busy in a long tick, or stopped (SIGSTOP, swapped out), would
block whoever writes until the worker reads, and on the loop that is the whole server. The
loop only queues the command; pickling and writing happen in the writer thread.

The worker reports each session's status after every tick (inside its frame, or as a
"state" message when nobody watches) and before every reply;
the reader thread keeps the newest per session (`reported`), so GET status is answered in
this process at once, however busy the worker is or however many frames the pipe holds.

The worker sends ("beat", time) about every second, also between training ticks; the
reader thread notes when each arrived. The session store replaces a worker that has been
silent past `worker_heartbeat_timeout_seconds` (`abandon`), and gives it no new sessions
once it has been silent half that long.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing as mp
import queue
import threading
import time

from app import protocol as cmd
from app.errors import FieldError
from app.schema import SessionConfig
from app.worker import WorkerConfig, serve

log = logging.getLogger("mlp.sessions")

RPC_TIMEOUT_S = 60.0  # one epoch of the largest allowed network fits well inside this
START_GRACE_S = 20.0  # a new worker imports NumPy and the app before its first beat
REAP_TIMEOUT_S = 5.0
_STOP = object()  # the writer's last item: tell the worker to exit, then end


def lost_error() -> FieldError:
    return FieldError(
        "server",
        "the training process holding this session stopped answering and was restarted; "
        "the session has ended, start a new one",
        code="worker_lost",
    )


class WorkerProcess:
    """One training process, the thread that writes to it and the thread that reads from it."""

    def __init__(self, index: int, conf: WorkerConfig, loop: asyncio.AbstractEventLoop, on_message, on_exit):
        self.index = index
        self.loop = loop
        ctx = mp.get_context("spawn")  # never fork a process that runs threads and an event loop
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve, args=(child, conf), name=f"mlp-worker-{index}", daemon=True)
        self.proc.start()
        child.close()
        self.started = time.monotonic()
        self.last_beat: float | None = None  # time.monotonic() of the newest heartbeat
        self.lost = False  # abandoned after falling silent: calls fail at once
        self.pending: dict[int, asyncio.Future] = {}
        self.sessions: set[str] = set()
        self._ids = itertools.count()
        self._on_message, self._on_exit = on_message, on_exit
        # Frames waiting for the event loop, newest per session: if the loop falls behind,
        # older frames are replaced instead of piling up in its queue.
        self._frames: dict[str, tuple] = {}
        self._frames_lock = threading.Lock()
        # sid -> (status, config): the newest the worker reported, one entry per live session
        # (a deleted session's last report is None and removes it).
        self._reported: dict[str, tuple[dict, SessionConfig]] = {}
        self._drain_scheduled = False
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.writer = threading.Thread(target=self._write, name=f"mlp-writer-{index}", daemon=True)
        self.writer.start()
        self.reader = threading.Thread(target=self._read, name=f"mlp-reader-{index}", daemon=True)
        self.reader.start()

    # --- the threads -----------------------------------------------------------------------
    def _read(self) -> None:
        try:
            while True:
                msg = self.conn.recv()
                kind = msg[0]
                if kind == "beat":
                    self.last_beat = time.monotonic()
                elif kind == "state":
                    self._note_state(*msg[1:])
                elif kind == "frame":
                    if len(msg) > 4:  # the status came along: keep it, pass the frame on
                        self._note_state(*msg[1:2], *msg[4:])
                        msg = msg[:4]
                    with self._frames_lock:
                        self._frames[msg[1]] = msg
                        schedule = not self._drain_scheduled
                        self._drain_scheduled = True
                    if schedule:
                        self.loop.call_soon_threadsafe(self._drain_frames)
                else:
                    self.loop.call_soon_threadsafe(self._dispatch, msg)
        except (EOFError, OSError, RuntimeError):  # RuntimeError: the loop closed at shutdown
            pass
        if self.lost:  # abandoned: nobody else waits for this process
            self.proc.join(REAP_TIMEOUT_S)
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._on_exit, self)

    def _note_state(self, sid: str, status: dict | None, cfg: SessionConfig | None) -> None:
        """In the reader thread: keep the newest report (a dict's item assignment is atomic, so the
        event loop reads either the old entry or the new one)."""
        if status is None:
            self._reported.pop(sid, None)
            return
        if cfg is None:  # unchanged since the previous report
            previous = self._reported.get(sid)
            if previous is None:
                return  # cannot happen: a session's first report carries its config
            cfg = previous[1]
        self._reported[sid] = (status, cfg)

    def reported(self, sid: str) -> tuple[dict, SessionConfig] | None:
        """The session's newest reported status (a copy) and config; None when the worker has not
        reported it, or has been abandoned (a call then says worker_lost)."""
        found = None if self.lost else self._reported.get(sid)
        return None if found is None else ({**found[0]}, found[1])

    def _write(self) -> None:
        while True:
            item = self._outbox.get()
            try:
                if item is _STOP:
                    self.conn.send(None)
                    return
                self.conn.send(item)
            except (OSError, EOFError, ValueError):  # the worker is gone (or the pipe closed)
                if item is _STOP:
                    return
                self._answer_threadsafe(item[0], ("server", "the training process did not answer", "server_busy", {}))
            except Exception:  # e.g. a command that cannot be pickled: a bug, not the worker's fault
                log.exception("could not send a command to training worker %d", self.index)
                self._answer_threadsafe(item[0], ("server", "something went wrong on the server", "server_error", {}))

    def _answer_threadsafe(self, rid: int, error: tuple) -> None:
        try:
            self.loop.call_soon_threadsafe(self._dispatch, ("reply", rid, False, error))
        except RuntimeError:  # the loop closed at shutdown
            pass

    # --- on the event loop -------------------------------------------------------------------
    def _drain_frames(self) -> None:
        with self._frames_lock:
            frames, self._frames = self._frames, {}
            self._drain_scheduled = False
        for msg in frames.values():
            self._on_message(msg)

    def _dispatch(self, msg) -> None:
        if msg[0] == "reply":
            _, rid, ok, payload = msg
            fut = self.pending.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result((ok, payload))
        else:
            self._on_message(msg)

    async def call(self, command: cmd.Command):
        """Send a command and wait for its reply; a refused command raises its FieldError."""
        if self.lost:
            raise lost_error()
        rid = next(self._ids)
        fut = self.loop.create_future()
        self.pending[rid] = fut
        try:
            self._outbox.put((rid, command))
            ok, payload = await asyncio.wait_for(fut, RPC_TIMEOUT_S)
        except TimeoutError:
            raise FieldError("server", "the training process did not answer; try again", code="server_busy") from None
        finally:
            self.pending.pop(rid, None)
        if not ok:
            field, message, code, params = payload
            raise FieldError(field, message, code=code, **params)
        return payload

    def fail_pending(self, error: FieldError | None = None) -> None:
        e = error or FieldError("server", "the training process stopped", code="server_busy")
        for fut in self.pending.values():
            if not fut.done():
                fut.set_result((False, (e.field, e.message, e.code, e.params)))
        self.pending.clear()

    # --- health --------------------------------------------------------------------------------
    def silence(self) -> float:
        """Seconds since the last heartbeat. A worker still starting (no beat yet) is given
        START_GRACE_S before its silence counts."""
        now = time.monotonic()
        if self.last_beat is None:
            return max(0.0, now - self.started - START_GRACE_S)
        return now - self.last_beat

    def health(self) -> dict:
        """For /healthz: live means running and heard from (it has sent a heartbeat)."""
        age = None if self.last_beat is None else round(time.monotonic() - self.last_beat, 3)
        return {"index": self.index, "alive": self.proc.is_alive(), "heartbeat_age_s": age}

    def abandon(self) -> None:
        """Give up on a worker that fell silent: its calls fail now with worker_lost (503), it
        is killed (SIGKILL also ends a stopped process) and reaped by its reader thread."""
        self.lost = True
        self.fail_pending(lost_error())
        self.proc.kill()
        self._outbox.put(_STOP)

    def stop(self) -> None:
        self._outbox.put(_STOP)
        self.proc.join(timeout=2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=2)
        self.conn.close()
