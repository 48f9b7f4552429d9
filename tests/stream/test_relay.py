"""Watchers on any node (app/relay.py): two real servers, nodes "a" and "b", share a
throw-away Redis (deploy/redis.py). Sessions are made on a; read-only streams (`watch=1`)
are opened on b, as the reverse proxy does for viewers; b relays them from Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app import relay
from deploy.redis import Redis
from tests.support.live import free_port, start_server
from tests.support.sse import END, SseReader, strict_json
from tests.support.waiting import wait_until

if shutil.which("redis-server") is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("redis-server is missing: CI must install the Debian package 'redis-server'")
    pytest.skip(
        "\n\n  !!! redis-server not found: the relay tests are SKIPPED (apt-get install redis-server) !!!\n",
        allow_module_level=True,
    )

WAIT = 15.0  # seconds to wait for something that should happen within one or two relay rounds (1 s)


def run_in_own_thread(coro) -> None:
    """asyncio.run in a thread of its own: in a full run a browser test's Playwright keeps an
    event loop on the main thread, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with Redis(free_port(), tmp_path_factory.mktemp("redis")) as redis:
        yield redis


def node(directory, name: str, redis: Redis, **env):
    return start_server(directory, workers=1, node_id=name, redis_url=redis.url, **env)


@pytest.fixture(scope="module")
def a(redis_server, tmp_path_factory):
    server = node(tmp_path_factory.mktemp("node-a"), "a", redis_server, idle_pause_seconds=3)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def b(redis_server, tmp_path_factory):
    server = node(tmp_path_factory.mktemp("node-b"), "b", redis_server)
    yield server
    server.stop()


@pytest.fixture
def session_on_a(a):
    """A session made on a: (id, control headers); deleted at the end."""
    with httpx.Client(base_url=a.url, timeout=30) as c:
        r = c.post("/api/sessions", json={})
        assert r.status_code == 201, r.text
        sid, auth = r.json()["id"], {"Authorization": f"Bearer {r.json()['control_token']}"}
        assert sid.startswith("a.")
        yield sid, auth
        c.delete(f"/api/sessions/{sid}", headers=auth)


def stream(server, sid: str, **params) -> SseReader:
    return SseReader(f"{server.url}/api/sessions/{sid}/events", params=params)


def watch(server, sid: str) -> SseReader:
    return stream(server, sid, watch=1)


def last_count(reader: SseReader) -> int | None:
    counts = [json.loads(e["data"])["count"] for _, e in list(reader.received) if e.get("event") == "watchers"]
    return counts[-1] if counts else None


def relayed_watchers(server) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    samples = [line.split()[-1] for line in text.splitlines() if line.startswith("mlp_relayed_watchers{")]
    assert len(samples) == 1, text
    return float(samples[0])


def frames_after(reader: SseReader, n: int) -> list[dict]:
    """The next n frames (fewer if they stop coming)."""
    out = []
    while len(out) < n and (frame := reader.next_frame(WAIT)) is not None:
        out.append(frame)
    return out


def post(server, path: str, auth: dict) -> None:
    r = httpx.post(server.url + path, headers=auth, timeout=30)
    assert r.status_code == 200, r.text


# --- tests -----------------------------------------------------------------------------------------
def test_a_watcher_on_another_node_receives_the_sessions_frames(a, b, session_on_a):
    sid, auth = session_on_a
    post(a, f"/api/sessions/{sid}/play", auth)
    viewer = watch(b, sid)
    try:
        assert viewer.response.status_code == 200
        first = viewer.next(WAIT)
        assert first is not END and first["event"] == "history"
        assert isinstance(strict_json(first["data"]), list)
        frames = frames_after(viewer, 5)
        assert len(frames) == 5
        epochs = [f["epoch"] for f in frames]
        assert epochs == sorted(epochs) and epochs[-1] > epochs[0]  # training goes on, seen from b
    finally:
        viewer.close()


def test_the_viewer_count_is_the_total_on_both_nodes(a, b, session_on_a):
    sid, _ = session_on_a
    own = stream(a, sid)  # the teacher's page on the owner
    relayed = [watch(b, sid), watch(b, sid)]
    try:
        assert wait_until(lambda: last_count(own) == 3, WAIT), last_count(own)
        assert wait_until(lambda: all(last_count(r) == 3 for r in relayed), WAIT), [last_count(r) for r in relayed]
        assert relayed_watchers(b) == 2 and relayed_watchers(a) == 0  # /metrics: b serves a's session twice
        relayed.pop().close()
        assert wait_until(lambda: last_count(own) == 2, WAIT), last_count(own)
        assert wait_until(lambda: last_count(relayed[0]) == 2, WAIT), last_count(relayed[0])
    finally:
        for r in (own, *relayed):
            r.close()


def test_a_remote_viewer_keeps_the_session_running_like_a_local_one(a, b, session_on_a):
    sid, auth = session_on_a
    viewer = watch(b, sid)
    try:
        assert viewer.next_frame(WAIT) is not None  # a counts b's viewer: it publishes frames for it
        post(a, f"/api/sessions/{sid}/play", auth)
        time.sleep(3 * 3)  # three times a's IDLE_PAUSE_SECONDS (3): an unwatched session would pause
        assert httpx.get(f"{a.url}/api/sessions/{sid}", timeout=10).json()["status"] == "running"
        before = viewer.latest_frame()["epoch"]
        assert wait_until(lambda: viewer.latest_frame()["epoch"] > before, WAIT)
    finally:
        viewer.close()


def test_closing_the_session_on_its_node_reaches_the_relayed_watcher(a, b, session_on_a):
    sid, auth = session_on_a
    viewer = watch(b, sid)
    try:
        assert viewer.next_frame(WAIT) is not None
        assert httpx.delete(f"{a.url}/api/sessions/{sid}", headers=auth, timeout=10).status_code in (200, 204)
        closed = wait_until(
            lambda: next((e for _, e in list(viewer.received) if e.get("event") == "closed"), None), WAIT
        )
        assert closed is not None and json.loads(closed["data"]) == {"reason": "deleted", "successor": None}
        assert viewer.ended.wait(WAIT)
    finally:
        viewer.close()
    late = httpx.get(f"{b.url}/api/sessions/{sid}/events", params={"watch": 1}, timeout=10)
    owner = httpx.get(f"{a.url}/api/sessions/{sid}", timeout=10)
    assert late.status_code == owner.status_code == 410
    assert late.json() == owner.json()  # the same error body on either node


def test_an_unknown_id_on_the_relaying_node_is_404_with_the_usual_body(a, b):
    sid = "a.NoSuchSessionNoSuchSessionNoSuchSess"
    there = httpx.get(f"{b.url}/api/sessions/{sid}/events", params={"watch": 1}, timeout=10)
    here = httpx.get(f"{a.url}/api/sessions/{sid}/events", params={"watch": 1}, timeout=10)
    assert there.status_code == here.status_code == 404
    assert there.json() == here.json() and there.json()["code"] == "session_unknown"


def test_watch_on_the_owner_is_an_ordinary_stream(a, session_on_a):
    sid, auth = session_on_a
    post(a, f"/api/sessions/{sid}/play", auth)
    viewer = stream(a, sid, watch=1, max_frames=2)
    try:
        assert viewer.response.status_code == 200
        assert len(frames_after(viewer, 2)) == 2
        assert viewer.next(WAIT) is END  # max_frames, as on any stream
    finally:
        viewer.close()


def test_a_dead_relaying_nodes_viewers_stop_counting(a, redis_server, session_on_a, tmp_path):
    sid, _ = session_on_a
    own = stream(a, sid)
    c = node(tmp_path, "c", redis_server)
    try:
        relayed = watch(c, sid)
        assert wait_until(lambda: last_count(own) == 2, WAIT), last_count(own)
        os.killpg(c.proc.pid, signal.SIGKILL)  # no goodbye: its report has to expire
        assert wait_until(lambda: last_count(own) == 1, WAIT), last_count(own)
        relayed.close()
    finally:
        own.close()
        c.stop()


def test_a_relaying_node_that_stops_ends_its_streams_with_a_reason(a, redis_server, session_on_a, tmp_path):
    sid, _ = session_on_a
    c = node(tmp_path, "c", redis_server)
    try:
        relayed = watch(c, sid)
        assert relayed.next_frame(WAIT) is not None
        c.stop()  # Ctrl-C: streams end first, so the server does not wait on them
        closed = wait_until(
            lambda: next((e for _, e in list(relayed.received) if e.get("event") == "closed"), None), WAIT
        )
        assert closed is not None and json.loads(closed["data"])["reason"] == "shutdown"
        relayed.close()
    finally:
        c.stop()


def test_without_redis_the_owner_streams_go_on_and_relayed_ones_end_clearly(a, b, redis_server, session_on_a):
    sid, auth = session_on_a
    post(a, f"/api/sessions/{sid}/play", auth)
    own, relayed = stream(a, sid), watch(b, sid)
    try:
        assert relayed.next_frame(WAIT) is not None and own.next_frame(WAIT) is not None
        redis_server.stop()
        closed = wait_until(
            lambda: next((e for _, e in list(relayed.received) if e.get("event") == "closed"), None), WAIT
        )
        assert closed is not None and json.loads(closed["data"])["reason"] == "relay_lost"
        assert relayed.ended.wait(WAIT)
        assert len(frames_after(own, 20)) == 20  # the owner's own viewers do not notice
        refused = httpx.get(f"{b.url}/api/sessions/{sid}/events", params={"watch": 1}, timeout=10)
        assert refused.status_code == 503 and refused.json()["code"] == "relay_unavailable"
    finally:
        redis_server.start()  # the same port again: the nodes reconnect by themselves
        own.close()
        relayed.close()
    back = wait_until(lambda: _watch_status(b, sid) == 200, WAIT)
    assert back, "b relays again once Redis is back"


def _watch_status(server, sid: str) -> int:
    with httpx.Client(timeout=10) as c:
        with c.stream("GET", f"{server.url}/api/sessions/{sid}/events", params={"watch": 1}) as r:
            return r.status_code


def test_a_later_relayed_stream_gets_the_history_so_far(a, b, session_on_a):
    """The first stream on b may get [] (a starts copying once b reports a viewer); later ones
    read the owner's newest copy, not the one b read when the first stream attached."""
    sid, auth = session_on_a
    post(a, f"/api/sessions/{sid}/play", auth)
    first = watch(b, sid)
    try:
        assert first.next_frame(WAIT) is not None  # a relays to b from now on

        def later_history() -> list:
            later = watch(b, sid)
            try:
                event = later.next(WAIT)
                assert event is not END and event["event"] == "history"
                return strict_json(event["data"])
            finally:
                later.close()

        rows = wait_until(later_history, WAIT)
        assert rows and all(len(row) == 3 for row in rows), rows
    finally:
        first.close()


# --- the relay's own objects, without servers -------------------------------------------------------
class _NoHost:
    def live_ids(self):
        return []

    def frame_event_of(self, sid):
        return None

    def viewers_of(self, sid):
        return 0

    def set_remote(self, sid, remote):
        return True

    async def history_of(self, sid):
        return "[]"


def test_a_closed_session_leaves_no_publisher_memo(redis_server):
    publisher = relay.Publisher(relay.Link(redis_server.url), "a", _NoHost(), max_fps=30)
    sid = "a.x"
    publisher.remote[sid] = relay.Remote(count=1)
    publisher.frames[sid] = None
    publisher.counts.add(sid)
    publisher.next_at[sid] = publisher.sent_count[sid] = publisher.history_at[sid] = 1
    publisher.closed(sid, "deleted", None)
    memos = (publisher.remote, publisher.frames, publisher.counts, publisher.next_at)
    assert not any(memos) and not publisher.sent_count and not publisher.history_at
    assert publisher.messages[-1] == (sid, b'event: closed\ndata: {"reason": "deleted", "successor": null}\n\n')


def test_an_outage_without_a_message_is_logged_by_its_type(redis_server, caplog):
    with caplog.at_level(logging.WARNING, logger="mlp.relay"):
        relay.Link(redis_server.url).down(TimeoutError())
    assert "(TimeoutError)" in caplog.text


class _ReplacedPubSub:
    """A subscription replaced (and closed) while its reader waits on it, as _fail_all does."""

    def __init__(self, relayer, successor):
        self.relayer, self.successor = relayer, successor

    async def get_message(self, **_):
        self.relayer.pubsub = self.successor
        raise RuntimeError("pubsub connection not set")  # what a pubsub closed under its reader says


def test_a_replaced_subscriptions_reader_does_not_end_the_new_one(redis_server):
    async def run() -> None:
        relayer = relay.Relayer(relay.Link(redis_server.url), "b")
        current = relayer.link.redis.pubsub()
        old = relayer.pubsub = _ReplacedPubSub(relayer, current)  # type: ignore[assignment]
        session = relayer.sessions["a.x"] = relay.Relayed("a.x", "a")
        await relayer._read(old)  # type: ignore[arg-type]
        assert relayer.pubsub is current and session.closed is None and "a.x" in relayer.sessions
        await relayer.link.aclose()

    run_in_own_thread(run())


def test_a_client_gone_while_attaching_leaves_no_subscribed_session(redis_server):
    """CancelledError (the viewer left) during the SUBSCRIBE: the session is not kept."""

    async def run() -> None:
        link = relay.Link(redis_server.url)
        await link.redis.hset(relay.sessions_key("zz"), "zz.x", b"1")
        await link.redis.set(relay.node_key("zz"), b"1", ex=relay.LIVE_TTL_S)
        relayer = relay.Relayer(link, "b")
        subscribing = asyncio.Event()

        async def hang(sid: str) -> None:
            subscribing.set()
            await asyncio.Event().wait()

        relayer._subscribe = hang  # type: ignore[method-assign]
        attaching = asyncio.get_running_loop().create_task(relayer.attach("zz.x", "zz"))
        await subscribing.wait()
        attaching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attaching
        assert relayer.sessions == {} and relayer.leaving == {"zz.x"}
        await link.redis.delete(relay.sessions_key("zz"), relay.node_key("zz"))
        await link.aclose()

    run_in_own_thread(run())
