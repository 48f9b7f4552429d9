"""The session store of the server process: ids, tokens, workers and the newest frames.

The store never trains. It assigns each new session to the least-loaded worker process,
forwards commands to it (`call`), and keeps for every session only what HTTP needs at
once: the control token, the config, and the newest frame. A frame arriving from a
worker replaces the previous one (coalescing), so a slow viewer always gets the newest
frame and memory stays bounded whatever the viewers do.
"""
from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import multiprocessing as mp
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from app.config import FieldError, SessionConfig, Settings
from app.worker import WorkerConfig, serve

log = logging.getLogger("mlp.sessions")

RPC_TIMEOUT_S = 60.0  # one epoch of the largest allowed network fits well inside this
GONE_MEMORY = 1000  # how many ended session ids we remember, to answer 410 instead of 404


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


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

    async def call(self, op: str, sid: str, **args):
        rid = next(self._ids)
        fut = self.loop.create_future()
        self.pending[rid] = fut
        try:
            self.conn.send((rid, op, sid, args))
            ok, payload = await asyncio.wait_for(fut, RPC_TIMEOUT_S)
        except (asyncio.TimeoutError, OSError, EOFError):
            raise FieldError("server", "the training process did not answer; try again", 503, code="server_busy")
        finally:
            self.pending.pop(rid, None)
        if not ok:
            status, fld, message, code, params = payload
            raise FieldError(fld, message, status, code=code, **params)
        return payload

    def fail_pending(self) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_result((False, (503, "server", "the training process stopped", "server_busy", {})))
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


@dataclass(eq=False)
class Watcher:
    fps: float
    gradients: bool = False


@dataclass(eq=False)
class SessionHandle:
    id: str
    token: str
    worker: WorkerProcess
    config: SessionConfig
    frame: str | None = None  # the newest frame's JSON, decoded once for all its viewers
    seq: int = 0  # bumped with every new frame
    status: str = "paused"
    closed: str | None = None  # why the session ended ("deleted", "expired", "shutdown", "moved", …)
    successor: str | None = None  # "moved": the session its viewers should follow
    watchers: list[Watcher] = field(default_factory=list)
    last_active: float = field(default_factory=time.monotonic)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(self.token.encode(), given.encode())  # constant time

    def publish(self, frame: bytes | None) -> None:
        if frame is not None:
            self.frame = frame.decode()
            self.seq += 1
        # Wake every waiting stream, then give later waiters a fresh event to wait on.
        self.changed.set()
        self.changed = asyncio.Event()


class SessionStore:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.sessions: dict[str, SessionHandle] = {}
        self.gone: OrderedDict[str, str] = OrderedDict()  # id -> reason, bounded
        self.successors: OrderedDict[str, str] = OrderedDict()  # moved id -> the id it moved to, bounded
        self.workers: list[WorkerProcess] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutting_down = False
        self._tasks: set[asyncio.Task] = set()  # fire-and-forget notifications, kept referenced
        self._conf = WorkerConfig.from_settings(settings)

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.workers = [self._spawn(i) for i in range(self.settings.workers)]

    def _spawn(self, index: int) -> WorkerProcess:
        return WorkerProcess(index, self._conf, self.loop, self._on_frame, self._on_worker_exit)

    def close_streams(self, reason: str = "shutdown") -> None:
        """Tell every open stream to send its final event and end (server shutdown)."""
        self.shutting_down = True
        for handle in self.sessions.values():
            handle.closed = handle.closed or reason
            handle.publish(None)

    def stop(self) -> None:
        self.close_streams()
        workers, self.workers = self.workers, []
        for w in workers:
            w.stop()

    def _on_frame(self, msg) -> None:
        _, sid, frame, status = msg
        handle = self.sessions.get(sid)
        if handle is not None and handle.closed is None:
            handle.status = status
            handle.publish(frame)

    def _on_worker_exit(self, worker: WorkerProcess) -> None:
        if worker not in self.workers:
            return  # stopped on purpose
        log.error("training worker %d exited; its %d sessions are lost", worker.index, len(worker.sessions))
        worker.fail_pending()
        for sid in list(worker.sessions):
            self._end(sid, "lost")
        self.workers[self.workers.index(worker)] = self._spawn(worker.index)

    def stats(self) -> dict:
        """Counts for operators and for leak tests: sessions, streams, tasks, threads, memory."""
        procs = [os.getpid()] + [w.proc.pid for w in self.workers if w.proc.pid]
        return {"sessions": len(self.sessions), "running": sum(h.status == "running" for h in self.sessions.values()),
                "watchers": sum(len(h.watchers) for h in self.sessions.values()),
                "tasks": len(asyncio.all_tasks()), "threads": threading.active_count(),
                "workers": len(self.workers), "pending_calls": sum(len(w.pending) for w in self.workers),
                "rss_bytes": {"server": rss_bytes(procs[0]), "workers": [rss_bytes(p) for p in procs[1:]]}}

    # --- lookup --------------------------------------------------------------------------
    def get(self, sid: str) -> SessionHandle:
        handle = self.sessions.get(sid)
        if handle is None:
            reason = self.gone.get(sid)
            if reason is not None:
                raise FieldError("id", f"this session has ended ({reason}); create a new one", 410,
                                 code="session_gone", reason=reason, successor=self.successor_of(sid))
            raise FieldError("id", "no such session", 404, code="session_unknown")
        handle.last_active = time.monotonic()
        return handle

    def authorize(self, sid: str, token: str | None) -> SessionHandle:
        handle = self.get(sid)
        if not token:
            raise FieldError("authorization", "send the session's control token as 'Authorization: Bearer <token>'", 401,
                             code="auth_missing")
        if not handle.token_ok(token):
            raise FieldError("authorization", "this control token does not control this session", 403,
                             code="auth_wrong")
        return handle

    # --- commands --------------------------------------------------------------------------
    async def create(self, cfg: SessionConfig, custom=None, state=None) -> SessionHandle:
        if len(self.sessions) >= self.settings.max_sessions:
            self.evict_idle()
            if len(self.sessions) >= self.settings.max_sessions:
                raise FieldError("max_sessions", f"the server already holds {self.settings.max_sessions} sessions "
                                 "(limit max_sessions); try again later", 429,
                                 code="limit_sessions", max=self.settings.max_sessions)
        worker = min(self.workers, key=lambda w: len(w.sessions))
        sid = secrets.token_urlsafe(24)  # 192 bits
        handle = SessionHandle(sid, secrets.token_urlsafe(32), worker, cfg)
        self.sessions[sid] = handle
        worker.sessions.add(sid)
        try:
            status = await worker.call("create", sid, cfg=cfg.model_dump(), custom=custom, state=state)
        except BaseException:
            self._forget(sid)
            raise
        handle.status = status["status"]
        return handle

    async def call(self, handle: SessionHandle, op: str, **args):
        result = await handle.worker.call(op, handle.id, **args)
        if isinstance(result, dict) and "status" in result:
            handle.status = result["status"]
            if "config" in result:  # the worker's config is the truth (edits can change it)
                handle.config = SessionConfig.model_validate(result["config"])
        return result

    async def configure(self, handle: SessionHandle, cfg: SessionConfig) -> dict:
        return await self.call(handle, "configure", cfg=cfg.model_dump())  # call() keeps handle.config

    async def delete(self, handle: SessionHandle, reason: str = "deleted") -> None:
        self._end(handle.id, reason)
        try:
            await handle.worker.call("delete", handle.id)
        except FieldError:
            pass  # already gone on the worker side (e.g. it restarted)

    async def hand_over(self, old: SessionHandle, new: SessionHandle) -> None:
        """The teacher moved on to a new session (a preset, a saved network): end the old one
        and tell its viewers where to go, so nobody watches a session nobody controls."""
        if new.id == old.id:
            raise FieldError("to", "a session cannot hand over to itself", code="handover_self")
        old.successor = new.id
        await self.delete(old, reason="moved")

    def successor_of(self, sid: str) -> str | None:
        """The live session an ended one moved to, following a chain of moves."""
        for _ in range(GONE_MEMORY):  # bounded: a chain cannot loop (ids are never reused), but be sure
            sid = self.successors.get(sid)
            if sid is None or sid in self.sessions:
                return sid
        return None

    def _end(self, sid: str, reason: str) -> None:
        handle = self._forget(sid)
        if handle is not None:
            handle.closed = reason
            handle.publish(None)
            self.gone[sid] = reason
            if handle.successor is not None:
                self.successors[sid] = handle.successor
            for memory in (self.gone, self.successors):
                while len(memory) > GONE_MEMORY:
                    memory.popitem(last=False)

    def _forget(self, sid: str) -> SessionHandle | None:
        handle = self.sessions.pop(sid, None)
        if handle is not None:
            handle.worker.sessions.discard(sid)
        return handle

    def pause_unwatched(self) -> int:
        """Pause running sessions that no stream watches and no request touched for a while
        (a closed tab): they would train for nobody. Their weights stay; play resumes them."""
        cutoff = time.monotonic() - self.settings.idle_pause_seconds
        idle = [h for h in self.sessions.values()
                if h.status == "running" and not h.watchers and h.last_active < cutoff]
        for h in idle:
            h.status = "paused"
            self._spawn_task(self._quietly(h, "pause"))
        return len(idle)

    async def _quietly(self, handle: SessionHandle, op: str) -> None:
        try:
            await handle.worker.call(op, handle.id)
        except FieldError:
            pass  # the session ended meanwhile

    def _spawn_task(self, coro) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def evict_idle(self) -> int:
        """End sessions that nobody watches, that are not running, and that were idle past the TTL."""
        cutoff = time.monotonic() - self.settings.session_ttl_seconds
        idle = [h for h in self.sessions.values()
                if not h.watchers and h.status != "running" and h.last_active < cutoff]
        for h in idle:
            self._end(h.id, "expired")
            self._spawn_task(self._quietly(h, "delete"))
        return len(idle)

    # --- viewers ---------------------------------------------------------------------------
    async def add_watcher(self, handle: SessionHandle, watcher: Watcher) -> None:
        if len(handle.watchers) >= self.settings.max_watchers:
            raise FieldError("max_watchers", f"this session already has {self.settings.max_watchers} viewers "
                             "(limit max_watchers)", 429,
                             code="limit_watchers", max=self.settings.max_watchers)
        handle.watchers.append(watcher)
        handle.publish(None)  # other streams report the new viewer count
        await self._tell_worker(handle)

    def remove_watcher(self, handle: SessionHandle, watcher: Watcher) -> None:
        """Synchronous so it also runs from a cancelled stream; the worker is told in a task."""
        if watcher in handle.watchers:
            handle.watchers.remove(watcher)
            handle.last_active = time.monotonic()
            handle.publish(None)
            if handle.closed is None and self.loop is not None:
                self._spawn_task(self._tell_worker(handle))

    async def _tell_worker(self, handle: SessionHandle) -> None:
        fps = max((w.fps for w in handle.watchers), default=0.0)
        gradients = any(w.gradients for w in handle.watchers)
        try:
            await handle.worker.call("watch", handle.id, fps=fps, gradients=gradients,
                                     fresh=fps > 0 and handle.frame is None)
        except FieldError:
            pass  # the session ended meanwhile; the stream will see `closed`
