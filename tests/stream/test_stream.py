"""Server-sent events over a live server, parsed by hand from text/event-stream.

`SseReader` (tests/support/sse.py) reads a stream in a background thread, so a test can
wait for the next event with a timeout (and see that nothing arrives) without tearing the
connection down; closing it shuts the socket, which is what a browser tab going away looks like.
"""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.sse import END, SseReader, parse_sse, strict_json
from tests.support.waiting import wait_until


def events_url(server, sid: str) -> str:
    return f"{server.url}/api/sessions/{sid}/events"


def watchers(client, sid) -> int:
    return client.get(f"/api/sessions/{sid}").json()["watchers"]


def check_frame(frame: dict, hidden: list[int]):
    assert isinstance(frame["epoch"], int) and isinstance(frame["step"], int)
    for part in ("train", "test"):
        assert isinstance(frame["loss"][part], float) and math.isfinite(frame["loss"][part])
    layers = frame["layers"]
    assert [layer["units"] for layer in layers] == [2, *hidden, 2]
    assert layers[0]["activation"] == "input"
    assert layers[-1]["activation"] == "softmax"
    for layer in layers:
        assert len(layer["activations"]) == layer["units"]
        assert all(isinstance(a, (int, float)) and math.isfinite(a) for a in layer["activations"])
    probs = layers[-1]["activations"]
    assert sum(probs) == pytest.approx(1.0, abs=2e-3)  # softmax output, rounded for display


# --- tests -----------------------------------------------------------------------------------------
def test_stream_format(server, client, make_session):
    sid, auth = make_session()
    client.post(f"/api/sessions/{sid}/play", headers=auth)
    with client.stream("GET", f"/api/sessions/{sid}/events", params={"max_frames": 3}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(parse_sse(r.iter_lines()))
    client.post(f"/api/sessions/{sid}/pause", headers=auth)
    # Other event kinds may be added (the contract allows it); history first, frames after.
    assert events[0]["event"] == "history"
    history = strict_json(events[0]["data"])
    assert isinstance(history, list) and history
    assert all(len(row) == 3 for row in history)
    frame_events = [e for e in events if e.get("event") == "frame"]
    assert len(frame_events) == 3
    assert events[-1] is frame_events[-1]  # max_frames=3 closes right after the third
    for e in events:
        strict_json(e["data"])  # NaN/Infinity literals would raise (a substring check would hit base64)
    frames = [strict_json(e["data"]) for e in frame_events]
    for f in frames:
        check_frame(f, [4, 2])
    epochs = [f["epoch"] for f in frames]
    assert epochs == sorted(epochs) and epochs[-1] > epochs[0]
    ids = [int(e["id"]) for e in frame_events]
    assert ids == sorted(set(ids))


@pytest.mark.parametrize("n", [1, 4])
def test_max_frames_closes_after_exactly_n(server, client, make_session, n):
    sid, auth = make_session()
    client.post(f"/api/sessions/{sid}/play", headers=auth)
    start = time.monotonic()
    with httpx.Client(timeout=httpx.Timeout(10.0)) as c:
        with c.stream("GET", events_url(server, sid), params={"max_frames": n, "fps": 60}) as r:
            kinds = [e.get("event") for e in parse_sse(r.iter_lines())]
    assert kinds.count("frame") == n
    assert kinds[0] == "history" and kinds[-1] == "frame"
    assert time.monotonic() - start < 10  # ended by itself, not by a read timeout
    assert wait_until(lambda: watchers(client, sid) == 0, 3)


def test_paused_stream_sends_current_frame_then_only_changes(server, client, make_session):
    sid, auth = make_session()
    client.post(f"/api/sessions/{sid}/step", headers=auth)
    with SseReader(events_url(server, sid)) as reader:
        first = reader.next(2.0)
        assert first is not None and first is not END and first["event"] == "history"
        frame = reader.next_frame(2.0)
        assert frame is not None, "a paused session sends its current frame at once"
        assert frame["epoch"] == 1 and frame["status"] == "paused"
        assert reader.next_frame(1.5) is None, "nothing changed, so no frame should arrive"

        r = client.post(f"/api/sessions/{sid}/step", headers=auth)
        assert r.status_code == 200
        after = reader.next_frame(5.0)
        assert after is not None
        assert after["epoch"] == 2
        assert after["step"] == r.json()["step"]
        assert reader.next_frame(1.0) is None, "one change, one frame"


def test_fps_cap(server, client, make_session):
    sid, auth = make_session()
    client.post(f"/api/sessions/{sid}/play", headers=auth)
    fps = 10
    with SseReader(events_url(server, sid), {"fps": fps}) as reader:
        first = reader.next_frame(5.0)
        assert first is not None
        start = time.monotonic()
        frames = []
        while time.monotonic() - start < 2.0:
            f = reader.next_frame(max(0.0, 2.0 - (time.monotonic() - start)))
            if f is not None:
                frames.append(f)
        elapsed = time.monotonic() - start
    client.post(f"/api/sessions/{sid}/pause", headers=auth)
    assert len(frames) >= 3, "a running session streams frames"
    assert len(frames) <= fps * elapsed + 2
    epochs = [first["epoch"]] + [f["epoch"] for f in frames]
    assert epochs == sorted(epochs) and epochs[-1] > epochs[0]


def _wmem_max() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


def test_slow_reader_gets_newest_frame_not_a_backlog(server, client, make_session):
    """A reader that stalls gets the newest frame once the pipe is full, not every frame.

    The operating system buffers a stalled stream too: the server's TCP send buffer grows
    up to net.ipv4.tcp_wmem's maximum (4 MB by default) and the client's receive buffer
    (capped here with SO_RCVBUF). The server can only coalesce behind those buffers, so a
    test that stalls for 1 s on small frames would only see the kernel's queue. This one
    makes big frames (digits, eight 64-unit layers: ~300 kB of inline weights per frame),
    stalls until twice the buffers' capacity has been produced, then reads as fast as it
    can: the epochs must jump after at most a buffer's worth of frames. A server that
    queued every frame would deliver them all, one epoch apart.
    """
    sid, auth = make_session(
        dataset="digits", n_points=40, batch_size=100, hidden_layers=[{"units": 64, "activation": "tanh"}] * 8
    )
    client.post(f"/api/sessions/{sid}/play", headers=auth)
    rcvbuf = 256 * 1024
    transport = httpx.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)])
    try:
        with httpx.Client(transport=transport, timeout=httpx.Timeout(10.0, read=30.0)) as slow:
            with slow.stream("GET", events_url(server, sid), params={"fps": 60}) as r:
                frames = (e["data"] for e in parse_sse(r.iter_lines()) if e.get("event") == "frame")
                warmup = [next(frames) for _ in range(3)]
                frame_bytes = min(len(f) for f in warmup)
                last_epoch = strict_json(warmup[-1])["epoch"]
                # What the pipe can hold: the server's send buffer, the client's receive buffer
                # (the kernel doubles SO_RCVBUF), the server's transport buffer (64 kB + the frame
                # being written) and the few frames inside the SSE response's pipeline.
                capacity_bytes = _wmem_max() + 2 * rcvbuf + 64 * 1024
                held = capacity_bytes // frame_bytes + 1 + 6
                bound = held * 3 // 2  # margin for frame sizes and kernel bookkeeping
                # Stall (read nothing) until twice the bound's worth of frames has been produced.
                produced = 0
                deadline = time.monotonic() + 30
                while produced < 2 * bound and time.monotonic() < deadline:
                    time.sleep(0.25)
                    produced = client.get(f"/api/sessions/{sid}").json()["epoch"] - last_epoch
                assert produced >= 2 * bound, f"only {produced} epochs in 30 s; too slow to test"
                epochs = [last_epoch]
                for _ in range(2 * bound):
                    epochs.append(strict_json(next(frames))["epoch"])
                    if epochs[-1] - epochs[-2] > 1:
                        break
    finally:
        client.post(f"/api/sessions/{sid}/pause", headers=auth)
    gaps = [b - a for a, b in zip(epochs, epochs[1:])]
    assert all(g >= 1 for g in gaps), epochs
    # A server that queued every frame would deliver all `produced` (≥ 2·bound) of them one epoch apart.
    assert gaps[-1] > 1, f"no frame skipped in {len(gaps)} frames (the pipe holds about {held})"
    assert len(gaps) <= bound, f"{len(gaps)} frames before the jump; the pipe holds about {held}"


def test_structure_change_while_streaming(server, client, make_session):
    sid, auth = make_session()
    with SseReader(events_url(server, sid)) as reader:
        before = reader.next_frame(5.0)
        assert before is not None
        check_frame(before, [4, 2])
        r = client.patch(
            f"/api/sessions/{sid}", json={"hidden_layers": [{"units": 5}, {"units": 3}, {"units": 2}]}, headers=auth
        )
        assert r.status_code == 200
        after = reader.next_frame(5.0)
        assert after is not None
    check_frame(after, [5, 3, 2])
    assert after["shape_version"] > before["shape_version"]
    assert [len(layer["weights"]) for layer in after["layers"][1:]] == [2, 5, 3, 2]


def closed_event(reader: SseReader, timeout: float = 5.0) -> dict:
    """The stream's `closed` event (its JSON), skipping frames; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = reader.next(max(0.0, deadline - time.monotonic()))
        if event is None or event is END:
            break
        if event.get("event") == "closed":
            return strict_json(event["data"])
    raise AssertionError(f"no 'closed' event within {timeout} s")


def test_delete_closes_streams(server, client, make_session):
    sid, auth = make_session()
    client.post(f"/api/sessions/{sid}/play", headers=auth)
    with SseReader(events_url(server, sid), {"fps": 5}) as reader:
        assert reader.next_frame(5.0) is not None
        assert client.delete(f"/api/sessions/{sid}", headers=auth).status_code == 204
        assert closed_event(reader) == {"reason": "deleted", "successor": None}
        assert reader.next(5.0) is END, "the stream ends after 'closed'"
        assert reader.ended.is_set()
        assert reader.error is None


def test_handover_sends_viewers_to_the_new_session(server, client, make_session):
    """The teacher opens a preset or a saved network: the old session ends, its viewers are told
    where to go, and the old watch link leads there from then on (also after a second move)."""
    old, old_auth = make_session(seed=1)
    new, new_auth = make_session(seed=2, dataset="xor")
    client.post(f"/api/sessions/{old}/play", headers=old_auth)
    new_token = new_auth["Authorization"].split()[1]
    with SseReader(events_url(server, old), {"fps": 5}) as reader:
        assert reader.next_frame(5.0) is not None
        r = client.post(f"/api/sessions/{old}/handover", json={"to": new, "to_token": new_token}, headers=old_auth)
        assert r.status_code == 200, r.text
        assert r.json()["moved_to"] == new and r.json()["watch_url"].endswith(f"/s/{new}")
        assert closed_event(reader) == {"reason": "moved", "successor": new}
        assert reader.next(5.0) is END
    gone = client.get(f"/api/sessions/{old}")  # a watcher reconnecting later learns where to go
    assert gone.status_code == 410 and gone.json()["params"] == {"reason": "moved", "successor": new}, gone.text
    page = client.get(f"/s/{old}?lang=ja", follow_redirects=False)
    assert page.status_code == 307 and page.headers["location"] == f"/s/{new}?lang=ja"
    assert client.get(f"/api/sessions/{new}").json()["config"]["dataset"] == "xor"  # untouched
    third, third_auth = make_session(seed=3)
    r = client.post(
        f"/api/sessions/{new}/handover",
        headers=new_auth,
        json={"to": third, "to_token": third_auth["Authorization"].split()[1]},
    )
    assert r.status_code == 200, r.text
    assert client.get(f"/s/{old}", follow_redirects=False).headers["location"] == f"/s/{third}"
    client.delete(f"/api/sessions/{third}", headers=third_auth)
    assert client.get(f"/s/{old}").status_code == 410  # the end of the chain is gone too


def test_handover_needs_both_tokens_and_a_real_target(client, make_session):
    a, a_auth = make_session(seed=4)
    b, b_auth = make_session(seed=5)
    b_token = b_auth["Authorization"].split()[1]
    cases = [
        ({"to": b, "to_token": b_token}, {}, 401, "authorization"),  # no token for the old session
        ({"to": b, "to_token": "x" * 43}, a_auth, 403, "to"),  # not the new session's token
        ({"to": "no-such-session", "to_token": b_token}, a_auth, 404, "to"),
        ({"to": a, "to_token": a_auth["Authorization"].split()[1]}, a_auth, 422, "to"),  # itself
        ({"to": b}, a_auth, 422, "to_token"),
    ]
    for body, headers, status, field in cases:
        r = client.post(f"/api/sessions/{a}/handover", json=body, headers=headers)
        assert r.status_code == status and r.json()["field"] == field, (body, r.status_code, r.text[:300])
    assert client.get(f"/api/sessions/{a}").status_code == 200  # nothing ended
    assert client.get(f"/api/sessions/{b}").status_code == 200


def test_unknown_session_is_404_before_streaming(server, client):
    with client.stream("GET", "/api/sessions/not-a-session/events") as r:
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/json")
        body = json.loads(r.read())
    assert body["field"] == "id"
    assert body["message"]


def test_closing_the_client_removes_the_watcher(server, client, make_session):
    sid, _ = make_session()
    with httpx.Client(timeout=10) as c:
        with c.stream("GET", events_url(server, sid)) as r:
            events = parse_sse(r.iter_lines())
            assert next(events)["event"] == "history"
            assert any(e.get("event") == "frame" for e in events)  # stops at the first frame
            assert watchers(client, sid) == 1
    # A paused session sends nothing more, so the server must notice the disconnect itself.
    assert wait_until(lambda: watchers(client, sid) == 0, 3.0), "watcher not removed within 3 s"


def test_closing_a_running_stream_removes_the_watcher(server, client, make_session):
    sid, auth = make_session()
    client.post(f"/api/sessions/{sid}/play", headers=auth)
    reader = SseReader(events_url(server, sid), {"fps": 30})
    try:
        assert reader.next_frame(5.0) is not None
        assert watchers(client, sid) == 1
    finally:
        start = time.monotonic()
        reader.close()
        assert time.monotonic() - start < 5
    assert wait_until(lambda: watchers(client, sid) == 0, 3.0)
    client.post(f"/api/sessions/{sid}/pause", headers=auth)


def test_two_watchers(server, client, make_session):
    sid, auth = make_session()
    client.post(f"/api/sessions/{sid}/play", headers=auth)
    with SseReader(events_url(server, sid), {"fps": 20}) as a, SseReader(events_url(server, sid), {"fps": 5}) as b:
        fa, fb = a.next_frame(5.0), b.next_frame(5.0)
        assert fa is not None and fb is not None
        assert watchers(client, sid) == 2
        # Both keep receiving newer frames.
        fa2, fb2 = a.next_frame(5.0), b.next_frame(5.0)
        assert fa2 is not None and fb2 is not None
        assert fa2["epoch"] > fa["epoch"] and fb2["epoch"] > fb["epoch"]
        a.close()
        assert wait_until(lambda: watchers(client, sid) == 1, 3.0)
        fb3 = b.next_frame(5.0)
        assert fb3 is not None and fb3["epoch"] > fb2["epoch"], "the other watcher keeps getting frames"
    assert wait_until(lambda: watchers(client, sid) == 0, 3.0)
    client.post(f"/api/sessions/{sid}/pause", headers=auth)


def test_history_event_reflects_training(server, client, make_session):
    sid, auth = make_session()
    for _ in range(3):
        client.post(f"/api/sessions/{sid}/step", headers=auth)
    expected = client.get(f"/api/sessions/{sid}/history").json()["history"]
    r = client.get(f"/api/sessions/{sid}/events", params={"max_frames": 1}, timeout=10)
    events = list(parse_sse(r.text.splitlines()))
    assert events[0]["event"] == "history"
    assert strict_json(events[0]["data"]) == expected
    assert [row[0] for row in expected] == [0, 1, 2, 3]
    frames = [strict_json(e["data"]) for e in events if e.get("event") == "frame"]
    assert [f["epoch"] for f in frames] == [3]


# --- a diverging regression while watched --------------------------------------------------------
# Full-batch regression at learning rate 100 diverges after ~70 epochs. With seed 1 the probe's
# output is then about -8.8e154: finite, but its square overflows a Python float. Frames must
# still be built (the loss shows as null) and the last one must say "diverged".
DIVERGING = dict(dataset="reg-plane", learning_rate=100, batch_size=10000, seed=1)


def test_diverging_step_while_watched(server, client, make_session):
    sid, auth = make_session(**DIVERGING)
    with SseReader(events_url(server, sid)) as reader:
        assert reader.next_frame(5.0) is not None
        for _ in range(200):
            r = client.post(f"/api/sessions/{sid}/step", headers=auth)
            assert r.status_code == 200, f"{r.status_code}: {r.text[:300]}"
            if r.json()["status"] == "diverged":
                break
        assert r.json()["status"] == "diverged"
        last = None
        while (frame := reader.next_frame(1.0)) is not None:
            last = frame
        assert last is not None and last["status"] == "diverged"


def test_diverging_while_playing_and_watched(server, client, make_session):
    sid, auth = make_session(**DIVERGING)
    with SseReader(events_url(server, sid), {"fps": 60}) as reader:
        assert reader.next_frame(5.0) is not None
        client.post(f"/api/sessions/{sid}/play", headers=auth)
        last = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # Frames flow at up to 60/s while it trains; 3 s of silence means the stream stalled.
            event = reader.next(min(3.0, max(0.0, deadline - time.monotonic())))
            if not isinstance(event, dict):
                break
            last = event
            if event.get("event") != "frame" or strict_json(event["data"])["status"] == "diverged":
                break
    assert last is not None and last.get("event") == "frame", last
    assert strict_json(last["data"])["status"] == "diverged"
    r = client.get(f"/api/sessions/{sid}")
    assert r.status_code == 200, r.text[:300]
    assert r.json()["status"] == "diverged"
