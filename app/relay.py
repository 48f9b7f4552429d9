"""Watchers on any node (REDIS_URL with NODE_ID): the node that owns a session publishes its
frames, viewer counts and end to Redis, and any other node serves read-only streams of it
(`?watch=1`) from there. This is what lets a lecture hall exceed one node's MAX_WATCHERS.

Two sides, one connection pool per node:
  - Publisher (the owner). Keeps the list of its live sessions and the reasons of ended ones
    in Redis, reads the viewer counts other nodes report, and publishes frames only for
    sessions some other node relays: a single node with Redis publishes nothing.
  - Relayer (any other node). Checks a session exists, subscribes once per session (one
    SUBSCRIBE shared by all its local streams), keeps only the newest frame, and reports its
    local viewer count every REFRESH_S.

Keys and channels (node names are [a-z0-9-], ids "{node}.{token}"):
  mlp:node:{node}             the node is up; refreshed every REFRESH_S, expires after LIVE_TTL_S
  mlp:sessions:{node}         hash: the node's live session ids (rewritten whole after a reconnect)
  mlp:gone:{id}               {"reason", "successor"} of an ended session, kept GONE_TTL_S (410 elsewhere)
  mlp:history:{id}            a relayed session's loss history, copied by the owner every
                              HISTORY_EVERY_S (in its own task: a busy worker never delays the
                              liveness key); a relaying node reads it for every new stream of the
                              session and for all its relayed sessions every HISTORY_EVERY_S
  mlp:relays:{owner}          set: nodes that relay some of owner's sessions
  mlp:viewers:{owner}:{node}  {id: [count, fps, gradients]}: node's streams of owner's sessions,
                              expires after LIVE_TTL_S, so a dead node's viewers vanish in seconds
  channel mlp:ch:{id}         SSE events, byte for byte what the owner's streams send:
                              frame (SessionRecord.frame_event), watchers (the total), closed

At most once, newest only: a frame lost while Redis is away is never resent, and a relaying
node keeps one frame per session. Redis away: the owner's own streams never wait for it (every
Redis call runs in this module's tasks; the store's hooks only mark work), it logs once and
retries with backoff; relayed streams end with closed "relay_lost", new ones get a 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from app.errors import FieldError

log = logging.getLogger("mlp.relay")

REFRESH_S = 1.0  # how often liveness and viewer counts are written and read
LIVE_TTL_S = 5  # a node's liveness and viewer reports outlive it by at most this
GONE_TTL_S = 600  # how long other nodes can answer 410 (with its reason) for an ended session
HISTORY_EVERY_S = 3.0  # a relayed session's loss history is copied to Redis this often
HISTORY_TTL_S = 30
HISTORY_CALLS = 4  # worker History calls in flight at once while copying (one worker is not flooded)
RELAYS_TTL_S = 60  # the set of relaying nodes; refreshed with every report
TIMEOUT_S = 2.0  # connect, read, and wait for a pooled connection: never a hang
BACKOFF_S = (0.5, 5.0)  # retry after a failure: first, and at most
POOL_SIZE = 8  # connections per node: the loops, one subscription, attaching streams
MESSAGES_MAX = 1000  # watcher-count and closed events waiting to be published (oldest dropped)
GONE_MAX = 1000  # ended sessions whose reason is not yet written
DOWN = (RedisError, OSError, TimeoutError)  # Redis unreachable, refused, or too slow
RELAY_LOST = "relay_lost"  # the closed reason of a relayed stream whose relay failed


def node_key(node: str) -> str:
    return f"mlp:node:{node}"


def sessions_key(node: str) -> str:
    return f"mlp:sessions:{node}"


def gone_key(sid: str) -> str:
    return f"mlp:gone:{sid}"


def history_key(sid: str) -> str:
    return f"mlp:history:{sid}"


def relays_key(owner: str) -> str:
    return f"mlp:relays:{owner}"


def viewers_key(owner: str, node: str) -> str:
    return f"mlp:viewers:{owner}:{node}"


CHANNEL = "mlp:ch:"


def sse(event: str, data: str) -> bytes:
    """One event in the text/event-stream format, byte for byte as app/routes/events.py's
    `sse` writes it (data without line breaks: compact JSON); every event this module sends."""
    return f"event: {event}\ndata: {data}\n\n".encode()


def unavailable() -> FieldError:
    return FieldError(
        "server",
        "this server cannot reach the session's server right now; try again in a few seconds",
        code="relay_unavailable",
    )


@dataclass
class Remote:
    """A session's viewers on other nodes, as their reports say."""

    count: int = 0
    fps: float = 0.0  # the highest frame rate one of them asked for
    gradients: bool = False  # one of them shows the backprop view


@dataclass(frozen=True)
class Missing:
    """A session another node does not hold (any more): reason None means it never existed."""

    reason: str | None = None
    successor: str | None = None


class Host(Protocol):
    """What the owner side reads from the session store (app/store.py)."""

    def live_ids(self) -> Iterable[str]: ...
    def frame_event_of(self, sid: str) -> bytes | None: ...
    def viewers_of(self, sid: str) -> int: ...
    def set_remote(self, sid: str, remote: Remote) -> bool: ...  # False: no such session here
    async def history_of(self, sid: str) -> str: ...  # the loss history as JSON


class Link:
    """A node's Redis connections, and whether Redis answered last time (an outage is logged
    once when it starts and once when it ends, not on every retry)."""

    def __init__(self, url: str):
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=TIMEOUT_S,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # we retry in our loops, with backoff
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        kw = pool.connection_kwargs
        self.where = f"{kw.get('host', '?')}:{kw.get('port', '?')}"  # never the password
        self.up = True

    def down(self, error: BaseException) -> None:
        if self.up:
            self.up = False
            log.warning(
                "Redis at %s unreachable (%s); retrying with backoff", self.where, str(error) or type(error).__name__
            )

    def ok(self) -> None:
        if not self.up:
            self.up = True
            log.warning("Redis at %s reachable again", self.where)

    async def aclose(self) -> None:
        try:
            await self.redis.aclose()
            await self.redis.connection_pool.disconnect()
        except DOWN:
            pass


async def _backoff_loop(link: Link, step, wake: asyncio.Event, on_failure) -> None:
    """Run `step` every REFRESH_S or when `wake` is set; after a failure, `on_failure` and a
    growing pause (BACKOFF_S) before the next try. `step` returns whether it used Redis."""
    pause = BACKOFF_S[0]
    while True:
        try:
            async with asyncio.timeout(TIMEOUT_S * 3):
                used = await step()
        except Exception as e:  # DOWN, or a bug: either way the loop must go on
            if isinstance(e, DOWN):
                link.down(e)
            else:
                log.exception("relay step failed")
            on_failure()
            await asyncio.sleep(pause)
            pause = min(pause * 2, BACKOFF_S[1])
            continue
        if used:
            link.ok()
        pause = BACKOFF_S[0]
        try:
            async with asyncio.timeout(REFRESH_S):
                await wake.wait()
        except TimeoutError:
            pass
        wake.clear()


class Publisher:
    """The owner's side: its sessions' liveness in Redis, other nodes' viewer counts in, and
    frames, counts and ends out for the sessions other nodes relay."""

    def __init__(self, link: Link, node: str, host: Host, max_fps: float):
        self.link, self.node, self.host = link, node, host
        self.min_interval = 1.0 / max_fps  # frames published per session: at most MAX_FPS a second
        self.remote: dict[str, Remote] = {}  # this node's sessions that other nodes relay
        self.frames: dict[str, None] = {}  # relayed sessions with an unpublished frame (the newest is read when sent)
        self.counts: set[str] = set()  # relayed sessions whose viewer total may have changed
        self.sent_count: dict[str, int] = {}
        self.next_at: dict[str, float] = {}  # when a session's next frame may be published
        self.messages: deque[tuple[str, bytes]] = deque(maxlen=MESSAGES_MAX)
        self.gone: OrderedDict[str, bytes] = OrderedDict()  # ended sessions' reasons, not yet written
        self.synced: set[str] | None = None  # the ids in mlp:sessions:{node}; None: rewrite it whole
        self.history_at: dict[str, float] = {}
        self.wake = asyncio.Event()  # the publishing task: something to send
        self.dirty = asyncio.Event()  # the sync task: sessions came or went

    # --- hooks: the store calls these; they never wait --------------------------------------
    def frame(self, sid: str) -> None:
        if sid in self.remote:
            self.frames[sid] = None
            self.wake.set()

    def viewers(self, sid: str) -> None:
        if sid in self.remote:
            self.counts.add(sid)
            self.wake.set()

    def sessions_changed(self) -> None:
        self.dirty.set()

    def closed(self, sid: str, reason: str, successor: str | None) -> None:
        body = json.dumps({"reason": reason, "successor": successor})
        self.gone[sid] = body.encode()
        while len(self.gone) > GONE_MAX:
            self.gone.popitem(last=False)
        self.dirty.set()
        relayed = self.remote.pop(sid, None) is not None
        self._forget(sid)
        if relayed:
            self.messages.append((sid, sse("closed", body)))
            self.wake.set()

    def _forget(self, sid: str) -> None:
        """Drop a session's per-session memos (it ended, or no other node relays it any more)."""
        self.frames.pop(sid, None)
        self.counts.discard(sid)
        for memo in (self.next_at, self.sent_count, self.history_at):
            memo.pop(sid, None)

    # --- the liveness and viewer-count task -------------------------------------------------
    async def run(self) -> None:
        await _backoff_loop(self.link, self._step, self.dirty, self._lost)

    async def _step(self) -> bool:
        if not await self._sync():
            await self._sync()  # Redis lost our keys (it restarted): written whole again at once
        await self._read_remote()
        return True

    def _lost(self) -> None:
        """Redis failed: rewrite the session list on reconnect; remote viewers are unknown (their
        streams end when their node loses Redis too), so they no longer count."""
        self.synced = None
        self._apply({})

    async def _sync(self) -> bool:
        """Write what changed; False when the node's own key had gone (Redis restarted empty, or
        this node stalled past LIVE_TTL_S), so the diff went onto a list that was not there."""
        ids = set(self.host.live_ids())
        key = sessions_key(self.node)
        pipe = self.link.redis.pipeline(transaction=True)  # the list and the reasons change together
        pipe.set(node_key(self.node), b"1", ex=LIVE_TTL_S, get=True)
        if self.synced is None:
            pipe.delete(key)
            added, removed = ids, set()
        else:
            added, removed = ids - self.synced, self.synced - ids
        if added:
            pipe.hset(key, mapping=dict.fromkeys(added, b"1"))
        if removed:
            pipe.hdel(key, *removed)
        gone = list(self.gone.items())
        for sid, body in gone:
            pipe.set(gone_key(sid), body, ex=GONE_TTL_S)
        had_key = (await pipe.execute())[0] is not None
        for sid, body in gone:
            if self.gone.get(sid) is body:
                del self.gone[sid]
        whole = self.synced is None
        self.synced = ids if had_key or whole else None
        return had_key or whole

    async def _read_remote(self) -> None:
        redis, key = self.link.redis, relays_key(self.node)
        nodes = sorted(_text(n) for n in await redis.smembers(key))
        totals: dict[str, Remote] = {}
        if nodes:
            reports = await redis.mget([viewers_key(self.node, n) for n in nodes])
            stale = [n for n, report in zip(nodes, reports) if report is None]
            if stale:
                await redis.srem(key, *stale)
            for report in reports:
                _add_report(totals, report)
        self._apply(totals)

    def _apply(self, totals: dict[str, Remote]) -> None:
        """New remote counts: the store updates its records (viewer totals, lifecycle, the
        worker's frame rate); sessions newly relayed get their current frame at once."""
        for sid in set(self.remote) | set(totals):
            new = totals.get(sid, Remote())
            if new == self.remote.get(sid, Remote()):
                continue
            known = self.host.set_remote(sid, new)
            if known and new.count > 0:
                if new.count > self.remote.get(sid, Remote()).count:
                    # New viewers elsewhere, maybe on a node that has no frame of it yet, and a
                    # paused session sends no new frame: send the one it has.
                    self.frames[sid] = None
                self.remote[sid] = new
                self.counts.add(sid)
            else:
                self.remote.pop(sid, None)
                self._forget(sid)
        if self.frames or self.counts:
            self.wake.set()

    # --- the history task: its own loop, so a busy worker never delays the liveness key ----
    async def history_loop(self) -> None:
        while True:
            try:
                await self._copy_history()
            except DOWN as e:  # only the Redis write: worker timeouts are caught per session
                self.link.down(e)
            except Exception:
                log.exception("relay history copy failed")
            await asyncio.sleep(REFRESH_S)  # newly relayed sessions are copied within a second

    async def _copy_history(self) -> None:
        """A relaying node's new streams start with the loss history the owner copied here."""
        now = time.monotonic()
        due = [sid for sid in self.remote if now - self.history_at.get(sid, -HISTORY_EVERY_S) >= HISTORY_EVERY_S]
        if not due:
            return
        calls = asyncio.Semaphore(HISTORY_CALLS)
        copies = await asyncio.gather(*(self._history_of(sid, calls) for sid in due))
        copied = [(sid, rows) for sid, rows in zip(due, copies) if rows is not None and sid in self.remote]
        if not copied:  # (not in self.remote: closed() or _apply() forgot it meanwhile)
            return
        pipe = self.link.redis.pipeline(transaction=False)
        for sid, rows in copied:
            pipe.set(history_key(sid), rows, ex=HISTORY_TTL_S)
        await pipe.execute()
        for sid, _ in copied:
            if sid in self.remote:
                self.history_at[sid] = now

    async def _history_of(self, sid: str, calls: asyncio.Semaphore) -> str | None:
        async with calls:
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    return await self.host.history_of(sid)
            except (FieldError, TimeoutError):
                return None  # ended meanwhile, or its worker is busy: next time

    # --- the publishing task ----------------------------------------------------------------
    async def publish_loop(self) -> None:
        while True:
            delay = await self._publish_due()
            try:
                async with asyncio.timeout(delay):
                    await self.wake.wait()
            except TimeoutError:
                pass
            self.wake.clear()

    async def _publish_due(self) -> float | None:
        """Publish what is due in one round trip; returns the seconds until the next frame may go."""
        pipe = self.link.redis.pipeline(transaction=False)
        while self.messages:
            sid, message = self.messages.popleft()
            pipe.publish(CHANNEL + sid, message)
        for sid in self.counts:
            total = self.host.viewers_of(sid)
            if sid in self.remote and total != self.sent_count.get(sid):
                self.sent_count[sid] = total
                pipe.publish(CHANNEL + sid, sse("watchers", json.dumps({"count": total})))
        self.counts.clear()
        delay = self._due_frames(pipe, time.monotonic())
        if len(pipe):
            try:
                await pipe.execute()  # at most once: what fails here is not sent again
            except DOWN as e:
                self.link.down(e)
        return delay

    def _due_frames(self, pipe, now: float) -> float | None:
        delay: float | None = None
        for sid in list(self.frames):
            if sid not in self.remote:
                del self.frames[sid]
                continue
            due = self.next_at.get(sid, 0.0)
            if due > now:
                delay = due - now if delay is None else min(delay, due - now)
                continue
            del self.frames[sid]
            event = self.host.frame_event_of(sid)  # the newest, whatever came since it was marked
            if event is not None:
                pipe.publish(CHANNEL + sid, event)
                # The worker already sends frames at the rate viewers asked for; this cap only
                # bounds Redis traffic (a cap at their rate would drop frames that come a little early).
                self.next_at[sid] = now + self.min_interval
        return delay


def _add_report(totals: dict[str, Remote], report: bytes | str | None) -> None:
    """Add one node's report ({id: [count, fps, gradients]}) to the totals; a malformed one is ignored."""
    if report is None:
        return
    try:
        entries = json.loads(report)
        for sid, (count, fps, gradients) in entries.items():
            r = totals.setdefault(str(sid), Remote())
            r.count += max(0, int(count))
            r.fps = max(r.fps, float(fps))
            r.gradients = r.gradients or bool(gradients)
    except (ValueError, TypeError, AttributeError):
        log.warning("ignored a malformed viewer report in Redis")


@dataclass(eq=False)
class Relayed:
    """Another node's session as this node relays it: what its local streams read (the same
    fields events.py reads from a SessionRecord) and its local watchers."""

    id: str
    owner: str
    history: str = "[]"  # the loss history as JSON, as the owner last copied it (re-read for each new stream)
    frame_event: bytes | None = None  # the newest frame's SSE event, byte for byte the owner's
    seq: int = 0
    closed: str | None = None
    successor: str | None = None
    count: int = 0  # viewers on all nodes, as the owner last said (0: not heard yet)
    watchers: list = field(default_factory=list)  # this node's streams (app.store.Watcher)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def viewers(self) -> int:
        # Until the owner has counted this node's newest viewers (≤ 2 s), at least those.
        return max(self.count, len(self.watchers))

    def publish(self, frame_event: bytes | None = None) -> None:
        if frame_event is not None:
            self.seq += 1
            self.frame_event = frame_event
        self.changed.set()
        self.changed = asyncio.Event()

    def end(self, reason: str, successor: str | None = None) -> None:
        if self.closed is None:
            self.closed, self.successor = reason, successor
            self.publish()


class Relayer:
    """The relaying node's side: sessions of other nodes that its streams watch."""

    def __init__(self, link: Link, node: str):
        self.link, self.node = link, node
        self.sessions: dict[str, Relayed] = {}  # bounded by the node's streams: each has a watcher
        self.leaving: set[str] = set()  # channels to unsubscribe from (nobody here watches any more)
        self.reported: set[str] = set()  # owners that hold a viewer report of this node
        self.pubsub: PubSub | None = None
        self.reader: asyncio.Task | None = None
        self.wake = asyncio.Event()
        self.history_at = 0.0  # when the relayed sessions' histories were last read

    async def attach(self, sid: str, owner: str) -> Relayed | Missing:
        """The relayed session (subscribed), or why it is not there; FieldError 503 when Redis is away."""
        session = self.sessions.get(sid)
        if session is not None:
            await self._fresh_history(session)  # the owner copies it every HISTORY_EVERY_S
            if self.sessions.get(sid) is session:  # (its last stream may have gone meanwhile)
                return session
        made: Relayed | None = None  # the session this call subscribes, undone if it fails
        try:
            async with asyncio.timeout(TIMEOUT_S * 1.5):
                found = await self._look_up(sid, owner)
                if isinstance(found, Missing):
                    return found
                session = self.sessions.get(sid)  # another stream may have attached meanwhile
                if session is None:
                    session = made = self.sessions[sid] = Relayed(sid, owner, history=found)
                    self.leaving.discard(sid)
                    await self._subscribe(sid)
        except DOWN as e:
            self.link.down(e)
            if made is not None and not made.watchers and self.sessions.get(sid) is made:
                del self.sessions[sid]
            raise unavailable() from None
        except BaseException:  # the client went (CancelledError), or a bug: no session without viewers
            if made is not None:
                self.detach(made)  # unsubscribes in the relay task
            raise
        self.wake.set()  # report the new viewer now, not in a second
        return session

    def detach(self, session: Relayed) -> None:
        """A stream ended; the last one here unsubscribes (in the relay task: this never waits)."""
        if not session.watchers and self.sessions.get(session.id) is session:
            del self.sessions[session.id]
            self.leaving.add(session.id)
            self.wake.set()

    async def _fresh_history(self, session: Relayed) -> None:
        """A new stream of a session already relayed here starts with the owner's newest copy
        of its history; Redis slow or away: the copy already held."""
        try:
            async with asyncio.timeout(TIMEOUT_S):
                history = await self.link.redis.get(history_key(session.id))
        except DOWN:
            return
        if history is not None:
            session.history = _text(history)

    async def _refresh_histories(self) -> None:
        """Every HISTORY_EVERY_S, the owners' newest copies for the sessions relayed here."""
        now = time.monotonic()
        if now - self.history_at < HISTORY_EVERY_S or not self.sessions:
            return
        sessions = list(self.sessions.values())
        copies = await self.link.redis.mget([history_key(s.id) for s in sessions])
        self.history_at = now
        for s, history in zip(sessions, copies):
            if history is not None:
                s.history = _text(history)

    async def _look_up(self, sid: str, owner: str) -> str | Missing:
        pipe = self.link.redis.pipeline(transaction=False)
        pipe.hexists(sessions_key(owner), sid)
        pipe.exists(node_key(owner))
        pipe.get(gone_key(sid))
        pipe.get(history_key(sid))
        live, node_up, gone, history = await pipe.execute()
        if gone is not None:
            return _missing(gone)
        if live and node_up:
            return history.decode() if history else "[]"
        return Missing("lost" if live else None)  # listed, but its node stopped refreshing: it died

    async def _subscribe(self, sid: str) -> None:
        if self.pubsub is None:
            self.pubsub = self.link.redis.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe(CHANNEL + sid)
        if self.reader is None or self.reader.done():
            self.reader = asyncio.get_running_loop().create_task(self._read(self.pubsub))

    async def _read(self, pubsub: PubSub) -> None:
        """Every message of every relayed session: kept (newest frame only), never queued here."""
        try:
            while pubsub is self.pubsub:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=REFRESH_S)
                if message is not None and message.get("type") == "message":
                    self._deliver(message["channel"].decode(), message["data"])
        except Exception as e:  # DOWN, or a bug: the relayed streams must not wait for nothing
            if pubsub is not self.pubsub:
                return  # a replaced subscription (closed by _fail_all): the new one is not ours to end
            if isinstance(e, DOWN):
                self.link.down(e)
            else:
                log.exception("relay reader failed")
            self._fail_all()

    def _deliver(self, channel: str, data: bytes) -> None:
        session = self.sessions.get(channel.removeprefix(CHANNEL))
        if session is None or session.closed is not None:
            return
        if data.startswith(b"event: frame\n"):
            session.publish(data)
            return
        try:
            body = json.loads(data[data.index(b"data: ") + 6 :])
            if data.startswith(b"event: watchers\n"):
                session.count = max(0, int(body["count"]))
                session.publish()
            elif data.startswith(b"event: closed\n"):
                self._end(session, str(body["reason"]), body.get("successor"))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed relay message on %s", channel)

    def _end(self, session: Relayed, reason: str, successor: str | None = None) -> None:
        session.end(reason, successor)
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
            self.leaving.add(session.id)

    def end_all(self, reason: str) -> None:
        """Every relayed stream here sends `closed` with this reason and ends."""
        for session in list(self.sessions.values()):
            self._end(session, reason)

    def _fail_all(self) -> None:
        """Redis failed: every relayed stream ends with a clear reason; a new subscription later."""
        self.end_all(RELAY_LOST)
        self.leaving.clear()
        self.reported.clear()  # their reports expire by themselves
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is not None:
            asyncio.get_running_loop().create_task(_quiet_close(pubsub))

    # --- the report and liveness task ---------------------------------------------------------
    async def run(self) -> None:
        await _backoff_loop(self.link, self._step, self.wake, self._fail_all)

    async def _step(self) -> bool:
        if not self.sessions and not self.reported and not self.leaving:
            return False  # nothing relayed: no Redis traffic at all
        await self._report()
        await self._check_alive()
        await self._refresh_histories()
        leaving = [CHANNEL + sid for sid in self.leaving if sid not in self.sessions]
        self.leaving.clear()
        if leaving and self.pubsub is not None:
            await self.pubsub.unsubscribe(*leaving)
        return True

    async def _report(self) -> None:
        """This node's viewers of each owner's sessions, one key per owner, expiring by itself."""
        by_owner: dict[str, dict[str, list]] = {}
        for s in self.sessions.values():
            if s.watchers and s.closed is None:
                fps = max(w.fps for w in s.watchers)
                by_owner.setdefault(s.owner, {})[s.id] = [len(s.watchers), fps, any(w.gradients for w in s.watchers)]
        pipe = self.link.redis.pipeline(transaction=True)  # the key exists whenever the set names us
        for owner, report in by_owner.items():
            pipe.set(viewers_key(owner, self.node), json.dumps(report), ex=LIVE_TTL_S)
            pipe.sadd(relays_key(owner), self.node)
            pipe.expire(relays_key(owner), RELAYS_TTL_S)
        for owner in self.reported - set(by_owner):
            pipe.delete(viewers_key(owner, self.node))  # the owner stops publishing at once
        self.reported = set(by_owner)
        if len(pipe):
            await pipe.execute()

    async def _check_alive(self) -> None:
        """End relayed sessions whose owner ended them (a missed closed message) or died."""
        sessions = list(self.sessions.values())
        owners = sorted({s.owner for s in sessions})
        if not sessions:
            return
        pipe = self.link.redis.pipeline(transaction=False)
        for s in sessions:
            pipe.hexists(sessions_key(s.owner), s.id)
        for owner in owners:
            pipe.exists(node_key(owner))
        found = await pipe.execute()
        up = dict(zip(owners, found[len(sessions) :]))
        dead = [s for s, live in zip(sessions, found) if not (live and up[s.owner])]
        if not dead:
            return
        reasons = await self.link.redis.mget([gone_key(s.id) for s in dead])
        for s, gone in zip(dead, reasons):
            missing = _missing(gone) if gone is not None else Missing("lost")
            self._end(s, missing.reason or "lost", missing.successor)

    async def close(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        self.end_all("shutdown")
        if pubsub is not None:
            await _quiet_close(pubsub)


def _missing(gone: bytes | str) -> Missing:
    try:
        body = json.loads(gone)
        return Missing(str(body["reason"]), body.get("successor"))
    except (ValueError, KeyError, TypeError):
        return Missing("lost")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _quiet_close(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()
    except DOWN:
        pass


class Relay:
    """Both sides of one node, started and stopped with the session store."""

    def __init__(self, url: str, node: str, host: Host, max_fps: float):
        self.link = Link(url)
        self.node = node
        self.publisher = Publisher(self.link, node, host, max_fps)
        self.relayer = Relayer(self.link, node)
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [
            loop.create_task(self.publisher.run()),
            loop.create_task(self.publisher.publish_loop()),
            loop.create_task(self.publisher.history_loop()),
            loop.create_task(self.relayer.run()),
        ]

    def relays(self, owner: str | None) -> bool:
        """Whether a stream of a session named for `owner` is relayed here (another node's)."""
        return owner is not None and owner != self.node

    def stop(self) -> asyncio.Task:
        """Stop the tasks; returns the task that closes the connections (best effort: the other
        nodes also notice this node's end when its liveness key expires)."""
        for task in self.tasks:
            task.cancel()
        if self.relayer.reader is not None:
            self.relayer.reader.cancel()
        return asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        await self.relayer.close()
        await self.link.aclose()
