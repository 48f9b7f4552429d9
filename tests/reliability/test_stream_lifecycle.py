"""Streams, sessions and the server over their whole life: churn, deletion, shutdown, limits, TTL.

Every server here is dedicated (tests/support/live.py start_server) so /api/stats counts only
what the test itself did. Time bounds are generous "does not hang" limits, never speed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.live import start_server
from tests.support.sse import END, SseReader, parse_sse, strict_json


def _create(c: httpx.Client, **config) -> tuple[str, dict]:
    r = c.post("/api/sessions", json=config)
    assert r.status_code == 201, r.text
    body = r.json()
    return body["id"], {"Authorization": f"Bearer {body['control_token']}"}


def _rest(reader: SseReader, timeout: float) -> list:
    """Every event up to the end of the stream (END included if it ended within timeout)."""
    out, deadline = [], time.monotonic() + timeout
    while True:
        event = reader.next(max(0.0, deadline - time.monotonic()))
        if event is None:
            return out
        out.append(event)
        if event is END:
            return out


# --- (a) connect/disconnect churn -------------------------------------------------------------
CYCLES, CONCURRENCY = 500, 10


def _cycle(url: str, kind: int, local: threading.local, made: list) -> str:
    c = getattr(local, "client", None)
    if c is None:  # one client per thread; a connection hung up on is not reused
        c = local.client = httpx.Client(timeout=httpx.Timeout(10.0))
        made.append(c)
    deadline = time.monotonic() + 15
    if kind == 0:  # read one frame, then hang up mid-stream
        with c.stream("GET", url) as r:
            assert r.status_code == 200
            seen = []
            for event in parse_sse(r.iter_lines()):
                seen.append(event.get("event"))
                if event.get("event") == "frame":
                    strict_json(event["data"])
                    return "frame-then-close"
                assert time.monotonic() < deadline, f"no frame within 15 s on {url[-50:]}: {seen[:5]}…{seen[-5:]}"
        raise AssertionError("stream ended before a frame")
    if kind == 1:  # hang up right after the headers
        with c.stream("GET", url) as r:
            assert r.status_code == 200
        return "close-at-once"
    with c.stream("GET", url, params={"max_frames": 1}) as r:  # let the server end it
        assert r.status_code == 200
        events = []
        for event in parse_sse(r.iter_lines()):
            events.append(event.get("event"))
            assert time.monotonic() < deadline, (
                f"max_frames=1 stream still open after 15 s on {url[-50:]}: {events[:5]}…{events[-5:]}"
            )
        assert events.count("frame") == 1, events
        return "max-frames-1"


THREAD_SLACK = 5  # anyio keeps idle worker threads (sync dependencies) for 10 s; a leak would add hundreds


def _settled(c: httpx.Client, base: dict, timeout: float, watchers: int, grace: float = 1.5) -> dict:
    """/api/stats once tasks, threads and pending calls are back near `base` and (within a
    short grace) exactly `watchers` streams are counted; else what it says at `timeout`."""
    deadline, grace_until = time.monotonic() + timeout, None
    while True:
        now = c.get("/api/stats").json()
        calm = (
            now["tasks"] <= base["tasks"] + 2
            and now["threads"] <= base["threads"] + THREAD_SLACK
            and now["pending_calls"] == 0
        )
        if calm and grace_until is None:
            grace_until = time.monotonic() + grace
        if (calm and now["watchers"] == watchers) or time.monotonic() > min(deadline, grace_until or deadline):
            return now
        time.sleep(0.25)


@pytest.fixture(scope="module")
def churn(tmp_path_factory) -> dict:
    """500 stream connect/disconnect cycles, 10 at a time, on a running and a paused session
    of a dedicated server; /api/stats before and after.

    One long-lived viewer stays on each session throughout, so no cycle is ever a session's
    first viewer: that path (frame reset, then wait for a fresh one) has its own race, see
    the report, and would turn this leak test into a hang instead of a count.

    Afterwards the server gets SIGINT with six streams open (test (c) below)."""
    tmp_path = tmp_path_factory.mktemp("churn")
    live = start_server(tmp_path, workers=1)
    log = next(tmp_path.glob("server-*.log"))
    keep: list[SseReader] = []
    try:
        with httpx.Client(base_url=live.url, timeout=30) as c:
            running, auth = _create(c, seed=1)
            assert c.post(f"/api/sessions/{running}/play", headers=auth).status_code == 200
            paused, _ = _create(c, seed=2)
            urls = [f"{live.url}/api/sessions/{sid}/events" for sid in (running, paused)]
            keep = [SseReader(url) for url in urls]
            for reader in keep:
                assert reader.next_frame(10) is not None

            def run(n: int, offset: int = 0) -> dict:
                done: dict[str, int] = {}
                local, made = threading.local(), []
                pool = ThreadPoolExecutor(CONCURRENCY)
                try:
                    futures = [
                        pool.submit(_cycle, urls[i % 2], (i // 2) % 3, local, made) for i in range(offset, offset + n)
                    ]
                    for f in futures:
                        kind = f.result(timeout=40)
                        done[kind] = done.get(kind, 0) + 1
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)  # fail fast, never queue 500 hangs
                    for cl in made:  # no keep-alive connections left behind to count
                        cl.close()
                return done

            run(30)  # warm-up: thread pools, imports, first frames
            base = _settled(c, {"tasks": 10**6, "threads": 10**6}, 5, watchers=2, grace=0.5)
            start = time.monotonic()
            done = run(CYCLES, offset=30)
            elapsed = time.monotonic() - start
            after = _settled(c, base, 15, watchers=2)
            per_session = {
                name: c.get(f"/api/sessions/{sid}").json()["watchers"]
                for name, sid in (("running", running), ("paused", paused))
            }
            print(
                f"{CYCLES} cycles in {elapsed:.1f} s: {done}\nbefore {base}\nafter  {after}\n"
                f"watchers per session after (1 long-lived each): {per_session}"
            )
            # (c) The same server then gets Ctrl-C with these two viewers and four fresh ones open.
            for url, fps in ((urls[0], 2), (urls[0], 30), (urls[1], 5), (urls[1], 30)):
                keep.append(SseReader(url, {"fps": fps}))
                assert keep[-1].next_frame(10) is not None
        start = time.monotonic()
        live.proc.send_signal(signal.SIGINT)
        endings = [_rest(reader, 5) for reader in keep]
        try:
            code = live.proc.wait(max(0.1, 5 - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - start
        print(f"after SIGINT: exit status {code} after {took:.2f} s")
        return {
            "base": base,
            "after": after,
            "elapsed": elapsed,
            "done": done,
            "per_session": per_session,
            "shutdown": {"endings": endings, "code": code, "took": took, "log": log.read_text()},
        }
    finally:
        for reader in keep:
            reader.close()
        live.stop()


def test_stream_churn_leaves_no_tasks_threads_or_memory(churn):
    base, after, done = churn["base"], churn["after"], churn["done"]
    assert sum(done.values()) == CYCLES and len(done) == 3, done
    assert churn["elapsed"] < 40, "the churn should not hang"
    assert after["pending_calls"] == 0
    assert after["tasks"] <= base["tasks"] + 2, (base, after)
    assert after["threads"] <= base["threads"] + THREAD_SLACK, (base, after)
    grown = after["rss_bytes"]["server"] - base["rss_bytes"]["server"]
    assert grown < 30 * 2**20, f"server memory grew by {grown / 2**20:.1f} MB"


def test_stream_churn_leaves_no_watchers(churn):
    assert churn["after"]["watchers"] == 2, churn["after"]  # the two long-lived viewers
    assert churn["per_session"] == {"running": 1, "paused": 1}


# --- (b) deleting a session ends its streams ----------------------------------------------------
def test_delete_closes_every_open_stream_with_reason(server, client, make_session):
    sid, auth = make_session(seed=5)
    other, other_auth = make_session(seed=6)
    client.post(f"/api/sessions/{sid}/play", headers=auth)
    url = f"{server.url}/api/sessions/{sid}/events"
    readers = [SseReader(url, {"fps": fps}) for fps in (1, 5, 30)]
    bystander = SseReader(f"{server.url}/api/sessions/{other}/events")
    try:
        for reader in readers + [bystander]:
            assert reader.next_frame(10) is not None
        assert client.delete(f"/api/sessions/{sid}", headers=auth).status_code == 204
        for reader in readers:
            rest = _rest(reader, 5)
            assert rest and rest[-1] is END, f"stream did not end after delete: {rest[-3:]}"
            closed = [e for e in rest if e is not END and e.get("event") == "closed"]
            assert len(closed) == 1 and strict_json(closed[0]["data"]) == {"reason": "deleted", "successor": None}, (
                rest[-3:]
            )
            assert rest[-2] is closed[0], "closed must be the last event"
        # A stream on another session is untouched.
        assert not bystander.ended.is_set()
        assert client.get(f"/api/sessions/{other}").json()["watchers"] == 1
        gone = client.get(f"/api/sessions/{sid}/events")
        assert gone.status_code == 410 and gone.json()["code"] == "session_gone"
    finally:
        for reader in readers + [bystander]:
            reader.close()


# --- (c) Ctrl-C ends every stream, then the process -----------------------------------------------
def test_sigint_closes_streams_with_shutdown_and_exits_within_5s(churn):
    shutdown = churn["shutdown"]
    for rest in shutdown["endings"]:
        assert rest and rest[-1] is END, f"stream not ended by shutdown: {rest[-3:]}"
        closed = [e for e in rest if e is not END and e.get("event") == "closed"]
        assert len(closed) == 1 and strict_json(closed[0]["data"]) == {"reason": "shutdown", "successor": None}, rest[
            -3:
        ]
        assert rest[-2] is closed[0], "closed must be the last event"
    assert shutdown["code"] is not None, f"still running 5 s after Ctrl-C:\n{shutdown['log'][-2000:]}"
    assert "Finished server process" in shutdown["log"]


def test_sigint_exit_is_clean(churn):
    shutdown = churn["shutdown"]
    # Ending by the re-raised SIGINT (-2) is the shell convention; 0 would do too. A traceback is not.
    assert shutdown["code"] in (0, -signal.SIGINT, 130), shutdown["code"]
    tail = shutdown["log"].rpartition("Shutting down")[2]  # (the churn before it logs FastAPI's own noise)
    assert "Traceback" not in tail and "KeyboardInterrupt" not in tail, tail[-1500:]


# --- (d) (e) (f) limits and TTL on one small server -----------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    live = start_server(
        tmp_path_factory.mktemp("small"), workers=1, max_sessions=3, max_watchers=2, session_ttl_seconds=3
    )
    yield live
    live.stop()


def _delete_all(c: httpx.Client, made: list) -> None:
    for sid, auth in made:
        c.delete(f"/api/sessions/{sid}", headers=auth)


def test_max_sessions_refuses_the_fourth_naming_the_limit(small):
    with httpx.Client(base_url=small.url, timeout=30) as c:
        made, readers = [], []
        try:
            for seed in range(3):
                made.append(_create(c, seed=seed))
                # A watched session is never evicted, so the limit cannot be dodged by the TTL.
                readers.append(SseReader(f"{small.url}/api/sessions/{made[-1][0]}/events"))
            r = c.post("/api/sessions", json={"seed": 9})
            assert r.status_code == 429, r.text
            body = r.json()
            assert body["field"] == "max_sessions" and "max_sessions" in body["message"], body
            assert body["code"] == "limit_sessions" and body["params"] == {"max": 3}, body
            assert c.get("/api/stats").json()["sessions"] == 3
        finally:
            for reader in readers:
                reader.close()
            _delete_all(c, made)


def test_max_watchers_refuses_the_third_stream_before_any_body(small):
    with httpx.Client(base_url=small.url, timeout=30) as c:
        made = [_create(c, seed=1)]
        sid = made[0][0]
        url = f"{small.url}/api/sessions/{sid}/events"
        readers = [SseReader(url), SseReader(url)]
        try:
            for reader in readers:
                assert reader.next_frame(10) is not None
            assert c.get(f"/api/sessions/{sid}").json()["watchers"] == 2
            with c.stream("GET", url) as r:
                assert r.status_code == 429
                assert r.headers["content-type"].startswith("application/json")
                body = json.loads(r.read())
            assert body["field"] == "max_watchers" and "max_watchers" in body["message"], body
            assert body["params"] == {"max": 2}
            # The refused viewer did not count, and a slot frees when a viewer leaves.
            assert c.get(f"/api/sessions/{sid}").json()["watchers"] == 2
            readers.pop().close()
            deadline = time.monotonic() + 5
            while c.get(f"/api/sessions/{sid}").json()["watchers"] != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            with SseReader(url) as third:
                assert third.response.status_code == 200 and third.next_frame(10) is not None
        finally:
            for reader in readers:
                reader.close()
            _delete_all(c, made)


def test_max_watchers_holds_under_concurrent_connects(small):
    with httpx.Client(base_url=small.url, timeout=30) as c:
        made = [_create(c, seed=1)]
        url = f"{small.url}/api/sessions/{made[0][0]}/events"
        outcomes: list[str] = []
        try:
            for _ in range(4):
                barrier = threading.Barrier(8)

                def connect(barrier: threading.Barrier = barrier) -> str:
                    with httpx.Client(timeout=10) as cc:
                        barrier.wait(5)
                        try:
                            with cc.stream("GET", url, params={"max_frames": 1}) as r:
                                if r.status_code == 429:
                                    return "429"
                                events = [e.get("event") for e in parse_sse(r.iter_lines())]
                                return "200" if events.count("frame") == 1 else f"200 without frame {events}"
                        except httpx.HTTPError as e:
                            return f"200 then cut off ({type(e).__name__})"

                with ThreadPoolExecutor(8) as pool:
                    round_ = [f.result(30) for f in [pool.submit(connect) for _ in range(8)]]
                outcomes += round_
                deadline = time.monotonic() + 5
                while c.get("/api/stats").json()["watchers"] and time.monotonic() < deadline:
                    time.sleep(0.05)
            bad = [o for o in outcomes if o not in ("200", "429")]
            assert not bad, outcomes
        finally:
            _delete_all(c, made)


def test_late_client_after_ttl_gets_410_session_gone(small):
    with httpx.Client(base_url=small.url, timeout=30) as c:
        sid, auth = _create(c, seed=4)
        # Poll /api/stats (which does not touch the session) until housekeeping ends it.
        deadline = time.monotonic() + 20
        while c.get("/api/stats").json()["sessions"] and time.monotonic() < deadline:
            time.sleep(0.25)
        for r in (
            c.get(f"/api/sessions/{sid}"),
            c.get(f"/api/sessions/{sid}/events"),
            c.post(f"/api/sessions/{sid}/play", headers=auth),
            c.get(f"/s/{sid}"),
        ):
            assert r.status_code == 410, (r.request.url, r.status_code, r.text[:200])
        body = c.get(f"/api/sessions/{sid}").json()
        assert body["code"] == "session_gone" and body["params"]["reason"] == "expired", body
