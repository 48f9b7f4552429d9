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
import json
import logging
import os
import secrets
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from app import lifecycle
from app import protocol as cmd
from app.budget import MB, Sizing, estimate_bytes
from app.errors import FieldError
from app.lifecycle import Life
from app.node import new_session_id, node_of
from app.numbers import json_safe
from app.pace import Pace
from app.relay import Missing, Relay, Relayed, Remote
from app.schema import SessionConfig
from app.settings import Settings
from app.training import Status
from app.worker import WorkerConfig
from app.worker_process import WorkerProcess, lost_error

log = logging.getLogger("mlp.sessions")

GONE_MEMORY = 1000  # how many ended session ids we remember, to answer 410 instead of 404


def _missing(reason: str | None, successor: str | None) -> FieldError:
    """410 naming why a session ended (and where it moved), or 404 for an id never seen."""
    if reason is not None:
        return FieldError(
            "id",
            f"this session has ended ({reason}); create a new one",
            code="session_gone",
            reason=reason,
            successor=successor,
        )
    return FieldError("id", "no such session", code="session_unknown")


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass(eq=False)
class Watcher:
    fps: float
    gradients: bool = False
    client: str = ""  # the client's address (max_streams_per_client)


@dataclass(eq=False)
class SessionRecord:
    """The server's record of a session that lives in a worker: its token, the worker, a
    read-only copy of its config (replaced from every reply), and the newest frame."""

    id: str
    token: str
    worker: WorkerProcess
    config: SessionConfig
    frame_event: bytes | None = None  # the newest frame as one SSE event, built once for all its viewers
    seq: int = 0  # bumped with every new frame
    estimate: int = 0  # the session's estimated memory in bytes (app/budget.py), from its config
    status: Status = Status.PAUSED
    closed: str | None = None  # why the session ended ("deleted", "expired", "shutdown", "moved", …)
    successor: str | None = None  # "moved": the session its viewers should follow
    watchers: list[Watcher] = field(default_factory=list)  # this node's streams
    remote: Remote = field(default_factory=Remote)  # viewers on other nodes (app/relay.py)
    last_active: float = field(default_factory=time.monotonic)
    life: Life = field(default_factory=Life)  # released, used, left alone …: app/lifecycle.py
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def viewers(self) -> int:
        """Everybody watching: this node's streams and other nodes' (REDIS_URL)."""
        return len(self.watchers) + self.remote.count

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(self.token.encode(), given.encode())  # constant time

    @property
    def frame(self) -> str | None:
        """The newest frame's JSON."""
        event = self.frame_event
        return None if event is None else event[event.index(b"data: ") + 6 : event.rindex(b"\nid: ")].decode()

    def publish(self, frame: bytes | None) -> None:
        if frame is not None:
            self.seq += 1
            # Its SSE bytes once, shared by every stream (compact JSON has no line breaks).
            self.frame_event = b"".join((b"event: frame\ndata: ", frame, b"\nid: %d\n\n" % self.seq))
        # Wake every waiting stream, then give later waiters a fresh event to wait on.
        self.changed.set()
        self.changed = asyncio.Event()


class SessionStore:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.sessions: dict[str, SessionRecord] = {}
        self.gone: OrderedDict[str, str] = OrderedDict()  # id -> reason, bounded
        self.successors: OrderedDict[str, str] = OrderedDict()  # moved id -> the id it moved to, bounded
        self.workers: list[WorkerProcess] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutting_down = False
        self._tasks: set[asyncio.Task] = set()  # fire-and-forget notifications, kept referenced
        self.silent: set[WorkerProcess] = set()  # no heartbeat for half the timeout: no new sessions
        self._watchdog: asyncio.Task | None = None
        self._conf = WorkerConfig.from_settings(settings)
        self.sizing = Sizing.of(settings)  # for the sessions' memory estimates
        self.streams_by_client: Counter[str] = Counter()  # open streams per client address
        self.pace = Pace(settings.tick_hz)  # are streams getting the frame rate they asked for (app/pace.py)
        self.frames_published = 0  # every session's frames together, never going down (GET /metrics)
        self.relay: Relay | None = None  # REDIS_URL with NODE_ID: watchers on any node (app/relay.py)

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.workers = [self._spawn(i) for i in range(self.settings.workers)]
        self._watchdog = self.loop.create_task(self._watch_heartbeats())
        s = self.settings
        if s.redis_url and s.node_id:
            self.relay = Relay(s.redis_url, s.node_id, self, s.max_fps)
            self.relay.start()
        elif s.redis_url:
            log.warning("REDIS_URL is set but NODE_ID is not: no other node can relay this node's sessions")

    def _spawn(self, index: int) -> WorkerProcess:
        assert self.loop is not None, "start() first"
        return WorkerProcess(index, self._conf, self.loop, self._on_frame, self._on_worker_exit)

    def close_streams(self, reason: str = "shutdown") -> None:
        """Tell every open stream to send its final event and end (server shutdown)."""
        self.shutting_down = True
        for record in self.sessions.values():
            record.closed = record.closed or reason
            record.publish(None)
        if self.relay is not None:
            self.relay.relayer.end_all(reason)  # other nodes' sessions watched from here

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self.close_streams()
        if self.relay is not None:
            closing = self.relay.stop()  # closes its connections; kept referenced until done
            self._tasks.add(closing)
            closing.add_done_callback(self._tasks.discard)
            self.relay = None
        workers, self.workers = self.workers, []
        for w in workers:
            w.stop()

    def _on_frame(self, msg) -> None:
        _, sid, frame, status = msg
        record = self.sessions.get(sid)
        if record is not None and record.closed is None:
            record.status = Status(status)
            record.publish(frame)
            if frame is not None:
                self.frames_published += 1
            if self.relay is not None and frame is not None:
                self.relay.publisher.frame(sid)

    def _on_worker_exit(self, worker: WorkerProcess) -> None:
        if worker not in self.workers:
            return  # stopped on purpose
        log.error("training worker %d exited; its %d sessions are lost", worker.index, len(worker.sessions))
        self._replace(worker)

    def _replace(self, worker: WorkerProcess, abandon: bool = False) -> None:
        """A new process in the place of one that exited or fell silent; its calls fail with
        worker_lost (503) and its sessions end as "lost" (410 for late clients)."""
        self.workers[self.workers.index(worker)] = self._spawn(worker.index)  # spawned before the kill below
        self.silent.discard(worker)
        if abandon:
            worker.abandon()
        else:
            worker.fail_pending(lost_error())
        for sid in list(worker.sessions):
            self._end(sid, "lost")

    async def _watch_heartbeats(self) -> None:
        """Every half second: workers silent for half the heartbeat timeout get no new
        sessions; a worker silent past it (stopped, hung, swapped out) is replaced."""
        limit = self.settings.worker_heartbeat_timeout_seconds
        while True:
            await asyncio.sleep(min(0.5, limit / 4))
            for worker in list(self.workers):
                silence = worker.silence()
                if silence > limit:
                    log.error(
                        "training worker %d sent no heartbeat for %.1f s; replacing it (%d sessions lost)",
                        worker.index,
                        silence,
                        len(worker.sessions),
                    )
                    self._replace(worker, abandon=True)
                elif silence > limit / 2:
                    self.silent.add(worker)
                else:
                    self.silent.discard(worker)

    def health(self) -> list[dict]:
        """Each worker for /healthz: running, its heartbeat's age, whether it is live (heard from
        within the heartbeat timeout) and whether it takes new sessions."""
        limit = self.settings.worker_heartbeat_timeout_seconds
        out = []
        for worker in self.workers:
            h = worker.health()
            h["live"] = h["alive"] and h["heartbeat_age_s"] is not None and h["heartbeat_age_s"] <= limit
            h["accepting"] = h["live"] and worker not in self.silent
            out.append(h)
        return out

    def stats(self) -> dict:
        """Counts for operators and for leak tests: sessions, streams, tasks, threads, memory."""
        procs = [os.getpid()] + [w.proc.pid for w in self.workers if w.proc.pid]
        return {
            "sessions": len(self.sessions),
            "running": sum(h.status == Status.RUNNING for h in self.sessions.values()),
            "watchers": sum(len(h.watchers) for h in self.sessions.values()),
            "streams": sum(self.streams_by_client.values()),  # including those of sessions that just ended
            "memory_estimate_bytes": self.memory_estimate(),
            "tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(),
            "workers": len(self.workers),
            "pending_calls": sum(len(w.pending) for w in self.workers),
            "rss_bytes": {"server": rss_bytes(procs[0]), "workers": [rss_bytes(p) for p in procs[1:]]},
        }

    # --- lookup --------------------------------------------------------------------------
    def get(self, sid: str) -> SessionRecord:
        record = self.sessions.get(sid)
        if record is None:
            reason = self.gone.get(sid)
            raise _missing(reason, self.successor_of(sid) if reason is not None else None)
        return record  # a read does not keep a session alive: control requests and open streams do

    def authorize(self, sid: str, token: str | None, control: bool = True) -> SessionRecord:
        """The session if `token` is its control token; `control`: the request uses it (app/lifecycle.py)."""
        record = self.get(sid)
        if not token:
            raise FieldError(
                "authorization",
                "send the session's control token as 'Authorization: Bearer <token>'",
                code="auth_missing",
            )
        if not record.token_ok(token):
            raise FieldError("authorization", "this control token does not control this session", code="auth_wrong")
        record.last_active = time.monotonic()
        if control:
            lifecycle.control(record.life)
        return record

    def release(self, sid: str, token: str | None, keep: bool = False) -> None:
        """Its page went away: the session ends after the grace (app/lifecycle.py); `keep`: the
        page came back (a reload) and takes the release back."""
        record = self.authorize(sid, token, control=False)
        record.life.released_at = None if keep else time.monotonic()

    # --- commands --------------------------------------------------------------------------
    async def create(self, cfg: SessionConfig, payload_json: bytes | None = None) -> SessionRecord:
        """A new session on the least-loaded worker that is heard from; from a snapshot when
        `payload_json` (its stored payload) is given."""
        if len(self.sessions) >= self.settings.max_sessions:
            self.evict_idle()
            self.make_room()
            if len(self.sessions) >= self.settings.max_sessions:
                raise FieldError(
                    "max_sessions",
                    f"the server already holds {self.settings.max_sessions} sessions, all of them watched "
                    "(limit max_sessions); try again later",
                    code="limit_sessions",
                    max=self.settings.max_sessions,
                )
        heard = [w for w in self.workers if w not in self.silent]
        if not heard:
            raise FieldError(
                "server", "no training process is answering right now; try again in a few seconds", code="server_busy"
            )
        worker = min(heard, key=lambda w: len(w.sessions))
        need = estimate_bytes(cfg, self.sizing)
        self.check_memory(need)
        sid = new_session_id(self.settings.node_id)  # 192 random bits, after the node's name
        record = SessionRecord(sid, secrets.token_urlsafe(32), worker, cfg, estimate=need)  # counted from now
        self.sessions[sid] = record
        worker.sessions.add(sid)
        if self.relay is not None:
            self.relay.publisher.sessions_changed()  # other nodes' watchers find it at once
        try:
            await self.call(record, cmd.Create(sid, cfg, payload_json))
        except BaseException:
            self._forget(sid)
            raise
        return record

    async def call(self, record: SessionRecord, command: cmd.Command, grows_to: SessionConfig | None = None):
        """Run a command on the session's worker. A status reply updates the record: the
        worker's config is the truth (changes are resolved there), the record keeps a copy.
        `grows_to`: the config the command will probably lead to; if its memory estimate is
        larger, it must fit in MAX_MEMORY_MB, and is reserved until the reply comes."""
        if grows_to is not None:
            need = estimate_bytes(grows_to, self.sizing)
            if need > record.estimate:
                self.check_memory(need - record.estimate)
                record.estimate = need
        try:
            result = await record.worker.call(command)
        finally:
            if grows_to is not None:
                record.estimate = estimate_bytes(record.config, self.sizing)  # the reservation ends
        if isinstance(result, dict) and "status" in result:
            record.status = Status(result["status"])
            record.config = result.pop("config")
            record.estimate = estimate_bytes(record.config, self.sizing)
        return result

    def memory_estimate(self) -> int:
        """The sessions' estimated memory together, in bytes."""
        return sum(r.estimate for r in self.sessions.values())

    def check_memory(self, more: int) -> None:
        """429 naming MAX_MEMORY_MB when `more` bytes would take the sessions past it (idle
        sessions are ended first to make room)."""
        limit = int(self.settings.max_memory_mb * MB)
        if self.memory_estimate() + more <= limit:
            return
        self.evict_idle()
        if self.memory_estimate() + more > limit:
            raise FieldError(
                "max_memory_mb",
                f"the server's sessions would need more than {self.settings.max_memory_mb:.0f} MB "
                "(limit max_memory_mb); try a smaller network, or again later",
                code="limit_memory",
                max=round(self.settings.max_memory_mb),
            )

    async def delete(self, record: SessionRecord, reason: str = "deleted") -> None:
        self._end(record.id, reason)
        try:
            await record.worker.call(cmd.Delete(record.id))
        except FieldError:
            pass  # already gone on the worker side (e.g. it restarted)

    async def hand_over(self, old: SessionRecord, new: SessionRecord) -> None:
        """The teacher moved on to a new session (a preset, a saved network): end the old one
        and tell its viewers where to go, so nobody watches a session nobody controls."""
        if new.id == old.id:
            raise FieldError("to", "a session cannot hand over to itself", code="handover_self")
        old.successor = new.id
        await self.delete(old, reason="moved")

    def successor_of(self, sid: str) -> str | None:
        """The live session an ended one moved to, following a chain of moves."""
        current: str | None = sid
        for _ in range(GONE_MEMORY):  # bounded: a chain cannot loop (ids are never reused), but be sure
            current = self.successors.get(current) if current is not None else None
            if current is None or current in self.sessions:
                return current
        return None

    def _end(self, sid: str, reason: str) -> None:
        record = self._forget(sid)
        if record is not None:
            record.closed = reason
            record.publish(None)
            if self.relay is not None:
                self.relay.publisher.closed(sid, reason, record.successor)
            self.gone[sid] = reason
            if record.successor is not None:
                self.successors[sid] = record.successor
            for memory in (self.gone, self.successors):
                while len(memory) > GONE_MEMORY:
                    memory.popitem(last=False)

    def _forget(self, sid: str) -> SessionRecord | None:
        record = self.sessions.pop(sid, None)
        if record is not None:
            record.worker.sessions.discard(sid)
        return record

    def pause_unwatched(self) -> int:
        """Pause running sessions that no stream watches and no request touched for a while
        (a closed tab): they would train for nobody. Their weights stay; play resumes them."""
        cutoff = time.monotonic() - self.settings.idle_pause_seconds
        idle = [
            h for h in self.sessions.values() if h.status == Status.RUNNING and not h.viewers and h.last_active < cutoff
        ]
        for h in idle:
            h.status = Status.PAUSED
            self._spawn_task(self._quietly(h, cmd.Pause(h.id)))
        return len(idle)

    async def _quietly(self, record: SessionRecord, command: cmd.Command) -> None:
        try:
            await record.worker.call(command)
        except FieldError:
            pass  # the session ended meanwhile

    def _spawn_task(self, coro) -> None:
        assert self.loop is not None, "start() first"
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def evict_idle(self) -> int:
        """End sessions that nobody watches, that are not running, and that were idle past the TTL."""
        cutoff = time.monotonic() - self.settings.session_ttl_seconds
        idle = [
            h for h in self.sessions.values() if not h.viewers and h.status != Status.RUNNING and h.last_active < cutoff
        ]
        for h in idle:
            self._end(h.id, "expired")
            self._spawn_task(self._quietly(h, cmd.Delete(h.id)))
        return len(idle)

    def make_room(self) -> None:
        """At MAX_SESSIONS: end the least recently active session nobody watches (app/lifecycle.py)."""
        order = lifecycle.eviction_order(self.sessions.values())
        for record in order[: len(self.sessions) - self.settings.max_sessions + 1]:
            self._retire(record, "evicted")

    def sweep(self) -> None:
        """The lifecycle rules, every housekeeping round: end released, unused and expired
        sessions; pause running ones nobody looks at (they play again when someone does)."""
        now = time.monotonic()
        self.pace.measure(self.sessions.values(), now)
        for record, reason in lifecycle.to_end(list(self.sessions.values()), now, self.settings):
            self._retire(record, reason)
        for record in lifecycle.to_pause(self.sessions.values(), now, self.settings):
            record.status, record.life.resume_on_watch = Status.PAUSED, True
            self._spawn_task(self._quietly(record, cmd.Pause(record.id)))

    def _retire(self, record: SessionRecord, reason: str) -> None:
        self._end(record.id, reason)
        self._spawn_task(self._quietly(record, cmd.Delete(record.id)))

    # --- viewers ---------------------------------------------------------------------------
    async def add_watcher(self, record: SessionRecord, watcher: Watcher) -> None:
        self._check_session_cap(len(record.watchers))
        self._check_stream_caps(watcher)
        record.watchers.append(watcher)
        self.streams_by_client[watcher.client] += 1
        record.publish(None)  # other streams report the new viewer count
        if self.relay is not None:
            self.relay.publisher.viewers(record.id)  # and other nodes' streams
        await self._tell_worker(record)
        if lifecycle.watched(record.life) and record.status == Status.PAUSED:  # paused while nobody looked
            await self._quietly(record, cmd.Play(record.id))

    def _check_session_cap(self, watching: int) -> None:
        """MAX_WATCHERS: streams of one session on this node."""
        s = self.settings
        if watching >= s.max_watchers:
            raise FieldError(
                "max_watchers",
                f"this session already has {s.max_watchers} viewers (limit max_watchers)",
                code="limit_watchers",
                max=s.max_watchers,
            )

    def _check_stream_caps(self, watcher: Watcher) -> None:
        """MAX_STREAMS and MAX_STREAMS_PER_CLIENT: streams of this node."""
        s = self.settings
        if sum(self.streams_by_client.values()) >= s.max_streams:
            raise FieldError(
                "max_streams",
                f"the server already sends {s.max_streams} streams (limit max_streams); try again later",
                code="limit_streams",
                max=s.max_streams,
            )
        if self.streams_by_client[watcher.client] >= s.max_streams_per_client:
            raise FieldError(
                "max_streams_per_client",
                f"your address already has {s.max_streams_per_client} streams open (limit max_streams_per_client)",
                code="limit_streams_per_client",
                max=s.max_streams_per_client,
            )

    def remove_watcher(self, record: SessionRecord, watcher: Watcher) -> None:
        """Synchronous so it also runs from a cancelled stream; the worker is told in a task."""
        if watcher in record.watchers:
            record.watchers.remove(watcher)
            self._uncount(watcher)
            record.last_active = time.monotonic()  # watched until now
            if not record.viewers:
                lifecycle.left(record.life, record.last_active)
            record.publish(None)
            if self.relay is not None:
                self.relay.publisher.viewers(record.id)
            if record.closed is None and self.loop is not None:
                self._spawn_task(self._tell_worker(record))

    def _uncount(self, watcher: Watcher) -> None:
        self.streams_by_client[watcher.client] -= 1
        if self.streams_by_client[watcher.client] <= 0:
            del self.streams_by_client[watcher.client]

    async def _tell_worker(self, record: SessionRecord) -> None:
        # Other nodes' viewers get their frames from here too (app/relay.py).
        fps = max([w.fps for w in record.watchers] + [record.remote.fps])
        gradients = record.remote.gradients or any(w.gradients for w in record.watchers)
        try:
            await record.worker.call(cmd.Watch(record.id, fps, gradients, fresh=fps > 0 and record.frame is None))
        except FieldError:
            pass  # the session ended meanwhile; the stream will see `closed`

    # --- other nodes' viewers (REDIS_URL with NODE_ID; app/relay.py) ------------------------------
    def relays(self, sid: str) -> bool:
        """Whether a read-only stream of `sid` is served from another node's session through Redis."""
        return self.relay is not None and self.relay.relays(node_of(sid))

    async def watch_relayed(self, sid: str, watcher: Watcher) -> Relayed:
        """Another node's session, watched from here: the same caps as a local stream, with
        MAX_WATCHERS per node (the owner counts its own streams only)."""
        assert self.relay is not None, "relays(sid) first"
        self._check_stream_caps(watcher)
        found = await self.relay.relayer.attach(sid, node_of(sid) or "")
        if isinstance(found, Missing):
            raise _missing(found.reason, found.successor)
        try:
            self._check_session_cap(len(found.watchers))
            self._check_stream_caps(watcher)  # again: other streams may have started while we looked it up
        except BaseException:
            self.relay.relayer.detach(found)  # a session nobody here watches is not kept
            raise
        found.watchers.append(watcher)
        self.streams_by_client[watcher.client] += 1
        found.publish()  # other streams here report the new viewer count
        return found

    def relayed_watchers(self) -> int:
        """Streams this node serves of other nodes' sessions (/metrics)."""
        if self.relay is None:
            return 0
        return sum(len(s.watchers) for s in self.relay.relayer.sessions.values())

    def unwatch_relayed(self, session: Relayed, watcher: Watcher) -> None:
        if watcher in session.watchers:
            session.watchers.remove(watcher)
            self._uncount(watcher)
            session.publish()
        if self.relay is not None:
            self.relay.relayer.detach(session)

    def set_remote(self, sid: str, remote: Remote) -> bool:
        """Other nodes' viewers of one of this node's sessions, as relay reports them (relay Host).
        They count as viewers for the lifecycle, and get frames at the rate they asked for."""
        record = self.sessions.get(sid)
        if record is None or record.closed is not None:
            return False
        old, before = record.remote, record.viewers
        record.remote = remote
        if remote.count and not old.count and not record.watchers:
            record.frame_event = None  # nobody watched, so frames were not built: they get a fresh one
            if lifecycle.watched(record.life) and record.status == Status.PAUSED:  # paused while nobody looked
                self._spawn_task(self._quietly(record, cmd.Play(record.id)))
        elif old.count and not remote.count:
            record.last_active = time.monotonic()  # watched until now
            if not record.watchers:
                lifecycle.left(record.life, record.last_active)
        if (old.fps, old.gradients) != (remote.fps, remote.gradients):
            self._spawn_task(self._tell_worker(record))
        if record.viewers != before:
            record.publish(None)  # this node's streams report the new total
        return True

    def live_ids(self) -> list[str]:
        return list(self.sessions)

    def frame_event_of(self, sid: str) -> bytes | None:
        record = self.sessions.get(sid)
        return None if record is None else record.frame_event

    def viewers_of(self, sid: str) -> int:
        record = self.sessions.get(sid)
        return 0 if record is None else record.viewers

    async def history_of(self, sid: str) -> str:
        return await self.history_json(self.get(sid))

    async def history_json(self, record: SessionRecord) -> str:
        """The session's loss history ([epoch, train, test] rows) as JSON; [] once it has ended."""
        try:
            history = await self.call(record, cmd.History(record.id))
        except FieldError:
            history = []
        return json.dumps(json_safe(history))
