"""A training worker process, seen from the server: the process, its pipe, and the thread
that reads what it sends.

Replies resolve the futures of pending calls on the event loop; frames are coalesced
before they reach the loop (newest per session), so a busy loop never builds a backlog.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing as mp
import threading

from app import protocol as cmd
from app.errors import FieldError
from app.worker import WorkerConfig, serve

RPC_TIMEOUT_S = 60.0  # one epoch of the largest allowed network fits well inside this


class WorkerProcess:
    """One training process and the thread that reads what it sends."""

    def __init__(self, index: int, conf: WorkerConfig, loop: asyncio.AbstractEventLoop, on_message, on_exit):
        self.index = index
        self.loop = loop
        ctx = mp.get_context("spawn")  # never fork a process that runs threads and an event loop
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve, args=(child, conf), name=f"mlp-worker-{index}", daemon=True)
        self.proc.start()
        child.close()
        self.pending: dict[int, asyncio.Future] = {}
        self.sessions: set[str] = set()
        self._ids = itertools.count()
        self._on_message, self._on_exit = on_message, on_exit
        # Frames waiting for the event loop, newest per session: if the loop falls behind,
        # older frames are replaced instead of piling up in its queue.
        self._frames: dict[str, tuple] = {}
        self._frames_lock = threading.Lock()
        self._drain_scheduled = False
        self.reader = threading.Thread(target=self._read, name=f"mlp-reader-{index}", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while True:
                msg = self.conn.recv()
                if msg[0] == "frame":
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
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._on_exit, self)

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
        rid = next(self._ids)
        fut = self.loop.create_future()
        self.pending[rid] = fut
        try:
            self.conn.send((rid, command))
            ok, payload = await asyncio.wait_for(fut, RPC_TIMEOUT_S)
        except (TimeoutError, OSError, EOFError):
            raise FieldError("server", "the training process did not answer; try again", code="server_busy") from None
        finally:
            self.pending.pop(rid, None)
        if not ok:
            field, message, code, params = payload
            raise FieldError(field, message, code=code, **params)
        return payload

    def fail_pending(self) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_result((False, ("server", "the training process stopped", "server_busy", {})))
        self.pending.clear()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, EOFError):
            pass
        self.proc.join(timeout=2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=2)
        self.conn.close()
