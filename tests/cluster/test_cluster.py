"""Two nodes behind nginx, with PostgreSQL and Redis: what a user of the one address sees.

One stack for the module (tests/cluster/conftest.py). Sessions that must live on a given
node are created at that node's own address (its ids then name it); everything else goes
through nginx, as a browser's requests would. The test that kills node b runs last.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter

import httpx

from tests.support.sse import END, SseReader
from tests.support.waiting import wait_until

FPS = 30


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def node_of(sid: str) -> str:
    return sid.partition(".")[0]


def create(base_url: str, path: str = "/api/sessions", **kw) -> tuple[str, dict]:
    """A new session (id, control headers) from POST base_url + path."""
    r = httpx.post(base_url + path, timeout=15, **({"json": {}} | kw))
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["x-mlp-node"] == node_of(body["id"]), "the node that created it names itself in the id"
    return body["id"], bearer(body["control_token"])


def events(cluster, sid: str, **params) -> SseReader:
    return SseReader(f"{cluster.url}/api/sessions/{sid}/events", {"fps": FPS, **params}, read_timeout=15)


def watchers_count(reader: SseReader, want: int, timeout: float = 10.0) -> bool:
    """Read `reader` until a watchers event says `want` (True) or time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = reader.next(deadline - time.monotonic())
        if event is None or event is END:
            return False
        if event.get("event") == "watchers" and int(event["data"].split(":")[1].strip(" }")) == want:
            return True
    return False


def test_new_sessions_spread_over_both_nodes(cluster, proxy):
    made = [create(cluster.url) for _ in range(6)]
    assert Counter(node_of(sid) for sid, _ in made).keys() == {"a", "b"}
    for sid, auth in made:
        assert proxy.delete(f"/api/sessions/{sid}", headers=auth).status_code == 204


def test_every_follow_up_request_reaches_the_owner(cluster, proxy):
    # A node that does not hold a session answers 404 for it: a 2xx here is the owner's answer.
    for node in ("a", "b"):
        sid, auth = create(cluster.nodes[node].url)
        requests = [
            ("GET", f"/api/sessions/{sid}", {}),
            ("PATCH", f"/api/sessions/{sid}", {"json": {"learning_rate": 0.01}, "headers": auth}),
            ("POST", f"/api/sessions/{sid}/step", {"headers": auth}),
            ("GET", f"/api/sessions/{sid}/model", {}),
            ("GET", f"/api/sessions/{sid}/data", {}),
            ("GET", f"/api/sessions/{sid}/history", {}),
            ("GET", f"/api/sessions/{sid}/share", {}),
            ("GET", f"/api/sessions/{sid}/export/model.py", {}),
            ("GET", f"/s/{sid}", {}),
            ("GET", f"/s/{sid}/qr.svg", {}),
            ("GET", f"/ui/sessions/{sid}/panels", {}),
            ("GET", f"/ui/sessions/{sid}/network", {}),
            ("POST", f"/api/sessions/{sid}/play", {"headers": auth}),
            ("POST", f"/api/sessions/{sid}/pause", {"headers": auth}),
            ("DELETE", f"/api/sessions/{sid}", {"headers": auth}),
        ]
        for method, path, kw in requests:
            r = proxy.request(method, path, **kw)
            assert r.status_code < 300, (method, path, r.status_code, r.text[:300])
            assert r.headers["x-mlp-node"] == node, (method, path)


def test_a_reloaded_page_reopens_its_session_on_the_owner(cluster, proxy):
    # Any node answers a page; only the owner has the session, and another would silently
    # make a new one. Four requests each: the pool would have given some to the other node.
    for node in ("a", "b"):
        sid, auth = create(cluster.nodes[node].url)
        for path in ("/", "/learn/seed/layers"):
            for lang in ("en", "ja", "en", "ja"):
                r = proxy.get(path, params={"session": sid, "lang": lang})
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
                assert r.headers["x-mlp-node"] == node, path
                assert f'data-session="{sid}"' in r.text, f"{path} reopened {sid}"
        proxy.delete(f"/api/sessions/{sid}", headers=auth)


def test_frames_stream_through_nginx(cluster, proxy):
    for node in ("a", "b"):
        sid, auth = create(cluster.nodes[node].url)
        assert proxy.post(f"/api/sessions/{sid}/play", headers=auth).status_code == 200
        with events(cluster, sid) as reader:
            assert reader.response.status_code == 200
            assert reader.response.headers["x-mlp-node"] == node
            assert reader.response.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in reader.response.headers
            epochs = [(reader.next_frame(10.0) or {}).get("epoch") for _ in range(5)]
        assert None not in epochs and epochs == sorted(epochs) and epochs[-1] > epochs[0], epochs
        proxy.delete(f"/api/sessions/{sid}", headers=auth)


def _relayed_watcher(cluster, sid: str, other: str) -> SseReader:
    """A viewer's stream (watch=1) of `sid` that nginx gave to node `other`: least_conn takes the
    nodes in turn, so a few tries reach it."""
    for _ in range(8):
        reader = events(cluster, sid, watch=1)
        assert reader.response.status_code == 200, reader.response.text
        if reader.response.headers["x-mlp-node"] == other:
            return reader
        reader.close()
    raise AssertionError(f"no viewer's stream of {sid} was served by node {other}")


def test_a_watcher_through_the_other_node_receives_frames_and_is_counted(cluster, proxy):
    sid, auth = create(cluster.nodes["a"].url)
    assert proxy.post(f"/api/sessions/{sid}/play", headers=auth).status_code == 200
    with events(cluster, sid) as controller:  # the owner's own stream (no watch flag)
        assert controller.response.headers["x-mlp-node"] == "a"
        assert watchers_count(controller, 1)
        with _relayed_watcher(cluster, sid, "b") as watcher:
            frames = [watcher.next_frame(10.0) for _ in range(3)]
            assert None not in frames and frames[-1]["epoch"] >= frames[0]["epoch"]
            assert watchers_count(controller, 2), "the viewer on node b counts on node a"
        assert watchers_count(controller, 1), "and stops counting when it leaves"
    proxy.delete(f"/api/sessions/{sid}", headers=auth)


def test_a_snapshot_saved_on_node_a_opens_on_node_b(cluster, proxy):
    sid, auth = create(cluster.nodes["a"].url, json={"seed": 5})
    for _ in range(3):
        assert proxy.post(f"/api/sessions/{sid}/step", headers=auth).status_code == 200
    saved = proxy.post(f"/api/sessions/{sid}/snapshots", headers=auth)
    assert saved.status_code == 201, saved.text
    copy, copy_auth = create(cluster.nodes["b"].url, json={"snapshot": saved.json()["snapshot_id"]})
    assert node_of(copy) == "b"
    original, opened = proxy.get(f"/api/sessions/{sid}/model"), proxy.get(f"/api/sessions/{copy}/model")
    assert opened.headers["x-mlp-node"] == "b"
    assert opened.json()["layers"] == original.json()["layers"]
    proxy.delete(f"/api/sessions/{sid}", headers=auth)
    proxy.delete(f"/api/sessions/{copy}", headers=copy_auth)


def test_a_successor_is_created_on_the_old_sessions_node_and_takes_its_viewers(cluster, proxy):
    for node in ("a", "b"):
        old, old_auth = create(cluster.nodes[node].url)
        near = {"near": old}
        # The page's two ways to make a successor: a preset (form) and a saved network (JSON).
        successors = [create(cluster.url, "/ui/sessions", data={"preset": "spiral"}, params=near) for _ in range(3)]
        successors += [create(cluster.url, params=near) for _ in range(3)]
        assert {node_of(sid) for sid, _ in successors} == {node}
        new, new_auth = successors[0]
        with events(cluster, old) as viewer:
            assert viewer.next(10.0) is not None  # connected (history first)
            r = proxy.post(
                f"/api/sessions/{old}/handover",
                headers=old_auth,
                json={"to": new, "to_token": new_auth["Authorization"][7:]},
            )
            assert r.status_code == 200, r.text
            closed = wait_until(lambda: _closed(viewer), 10.0)
            assert closed == {"reason": "moved", "successor": new}
        for sid, auth in successors:
            proxy.delete(f"/api/sessions/{sid}", headers=auth)


def _closed(reader: SseReader):
    """The closed event's JSON once it has come; "ended" if the stream ended without one."""
    event = reader.next(0.5)
    if event is END:
        return "ended"
    return json.loads(event["data"]) if event is not None and event.get("event") == "closed" else None


def test_nginx_drops_a_client_that_never_finishes_its_headers(cluster, proxy):
    """Behind nginx the app sees only nginx's connections, so nginx bounds slow clients itself
    (client_header_timeout 10 s, as the app's HEADER_TIMEOUT_SECONDS)."""
    url = httpx.URL(cluster.url)
    with socket.create_connection((url.host, url.port), timeout=20) as slow:
        slow.sendall(b"GET / HT")  # half a request line, then nothing
        opened = time.monotonic()
        while slow.recv(4096):  # nginx may answer 408 before it closes
            pass
        held = time.monotonic() - opened
    assert 9 <= held <= 15, held
    assert proxy.get("/healthz").status_code == 200


def test_killing_node_b_ends_only_its_sessions(cluster, proxy):
    """Last: node b stays dead. Its sessions answer 410 or 502 within 2 s; node a's stream goes on
    without a gap over 1 s, and new sessions all land on node a."""
    a_sid, a_auth = create(cluster.nodes["a"].url)
    b_sid, _ = create(cluster.nodes["b"].url)
    assert proxy.post(f"/api/sessions/{a_sid}/play", headers=a_auth).status_code == 200
    with events(cluster, a_sid) as stream:
        assert stream.next_frame(10.0) is not None
        time.sleep(0.5)
        cluster.nodes["b"].kill()
        killed = time.monotonic()
        answer = wait_until(lambda: _ended(proxy, b_sid), 5.0, interval=0.05)
        ended_after = time.monotonic() - killed
        assert answer is not None, "b's session still answers 5 s after the kill"
        assert answer.status_code in (410, 502) and ended_after <= 2.0, (answer.status_code, ended_after)
        if answer.status_code == 502:
            assert answer.json()["code"] == "node_unreachable" and answer.json()["params"] == {"node": "b"}
        time.sleep(max(0.0, killed + 3.0 - time.monotonic()))
        arrivals = [t for t, _, _ in stream.frames(since=killed - 0.5, until=killed + 3.0)]
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    assert len(arrivals) > 10 and max(gaps) <= 1.0, (len(arrivals), max(gaps, default=None))
    made = [create(cluster.url) for _ in range(4)]
    assert {node_of(sid) for sid, _ in made} == {"a"}


def _ended(proxy: httpx.Client, sid: str) -> httpx.Response | None:
    r = proxy.get(f"/api/sessions/{sid}")
    return r if r.status_code in (410, 502, 503, 504) else None
