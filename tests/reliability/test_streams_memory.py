"""Issue 12, findings 2 and 4: streams whose clients never read, stream caps, frame size,
the memory budget (estimate, per session, server-wide), the timeline's hard bound, and
which requests keep a session alive.

Streams need a real server (tests/support/live.py); the budgets and the TTL use the app in
this process (tests/support/inprocess.py) with small limits; the estimate and the timeline
are checked on the core directly. Time bounds are generous "does not hang" limits.
"""

from __future__ import annotations

import gc
import socket
import time
import tracemalloc
from contextlib import ExitStack

import httpx
import pytest

from app import protocol as cmd
from app.budget import MB, Sizing, estimate
from app.frames import FrameBuilder
from app.numbers import compact_json
from app.schema import ConfigFields, Limits, resolve
from app.training import Session
from app.worker import Worker, WorkerConfig
from tests.support.inprocess import InProcessApp
from tests.support.live import LOOPBACK, start_server
from tests.support.sse import SseReader, stalled_stream
from tests.support.waiting import wait_until

WIDE = [{"units": 256, "activation": "relu"}] * 8  # the 8×256 network
SEND_TIMEOUT = 1.5


def _create(c, **config) -> tuple[str, dict]:
    r = c.post("/api/sessions", json=config)
    assert r.status_code == 201, r.text
    body = r.json()
    return body["id"], {"Authorization": f"Bearer {body['control_token']}"}


def _closed_by_server(s: socket.socket, timeout: float) -> bool:
    """Reads what is left; True when the server has closed (EOF) or reset the connection."""
    s.settimeout(timeout)
    try:
        while s.recv(1 << 20):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture(scope="module")
def streams_server(tmp_path_factory):
    live = start_server(
        tmp_path_factory.mktemp("streams"),
        workers=1,
        send_timeout_seconds=SEND_TIMEOUT,
        max_streams=6,
        max_streams_per_client=3,
        worker_heartbeat_timeout_seconds=60,  # an 8×256 session training on a loaded machine is not a hung worker
    )
    yield live
    live.stop()


# --- streams ------------------------------------------------------------------------------------
def test_streams_that_are_never_read_are_dropped_and_a_reading_one_is_not(streams_server):
    with httpx.Client(base_url=streams_server.url, timeout=30) as c:
        sid, auth = _create(c, hidden_layers=WIDE, batch_size=50)
        c.post(f"/api/sessions/{sid}/play", headers=auth)
        path = f"/api/sessions/{sid}/events?fps=60&gradients=true"
        reader = SseReader(streams_server.url + path)
        stalled = [stalled_stream(LOOPBACK, streams_server.port, path, "127.0.0.2") for _ in range(3)]
        try:
            assert wait_until(lambda: c.get("/api/stats").json()["streams"] == 4, 10)
            # Frames of ~0.7 MB fill a 4 KB window at once: each stalled stream is dropped
            # SEND_TIMEOUT after its send blocks, and its viewer goes away.
            assert wait_until(lambda: c.get("/api/stats").json()["watchers"] == 1, SEND_TIMEOUT + 10)
            assert c.get("/api/stats").json()["streams"] == 1
            assert all(_closed_by_server(s, 5) for s in stalled)  # aborted, not left half-open
            # The reading stream lives on and keeps getting frames.
            seen = len(reader.frames())
            assert wait_until(lambda: len(reader.frames()) > seen + 2, 10)
            assert not reader.ended.is_set()
        finally:
            for s in stalled:
                s.close()
            reader.close()
            c.delete(f"/api/sessions/{sid}", headers=auth)


def _open(stack: ExitStack, url: str, source: str) -> httpx.Response:
    """A stream from `source` (kept open by `stack`, not read); its response as it started."""
    client = stack.enter_context(httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10))
    return stack.enter_context(client.stream("GET", url))


def test_stream_caps_answer_429_naming_the_limit(streams_server):
    with httpx.Client(base_url=streams_server.url, timeout=30) as c, ExitStack() as stack:
        sid, auth = _create(c)
        url = f"{streams_server.url}/api/sessions/{sid}/events"
        assert [_open(stack, url, "127.0.0.3").status_code for _ in range(3)] == [200] * 3
        over = _open(stack, url, "127.0.0.3")  # a 4th from the same address
        over.read()
        assert over.status_code == 429 and over.json()["code"] == "limit_streams_per_client", over.text
        assert over.json()["params"] == {"max": 3}
        assert [_open(stack, url, "127.0.0.4").status_code for _ in range(3)] == [200] * 3  # 6 in all
        over = _open(stack, url, "127.0.0.5")  # a new address, but the server is full
        over.read()
        assert over.status_code == 429 and over.json()["code"] == "limit_streams", over.text
        assert over.json()["params"] == {"max": 6}
        stack.close()  # every stream closed: the counts go back and streams open again
        assert wait_until(lambda: c.get("/api/stats").json()["streams"] == 0, 10)
        with c.stream("GET", url) as r:
            assert r.status_code == 200
        c.delete(f"/api/sessions/{sid}", headers=auth)


def test_gradient_frames_of_an_8x256_network_stay_small():
    """Wide layers are drawn as weight images without gradients, so the backprop view adds
    (almost) nothing; the frame is the quantised weights, ~0.69 MB."""
    cfg = resolve(None, ConfigFields(hidden_layers=WIDE, optimizer="adam", batch_size=1), Limits())
    s = Session(cfg)
    builder = FrameBuilder()
    plain = len(compact_json(builder.build(s)))
    with_gradients = len(compact_json(builder.build(s, gradients=True)))
    assert with_gradients - plain < 2_000, (plain, with_gradients)
    assert with_gradients < 750_000


# --- the estimate -------------------------------------------------------------------------------
ESTIMATED = {
    "8x256 adam batch 1 (circle)": dict(hidden_layers=WIDE, optimizer="adam", batch_size=1),
    "8x256 adam digits": dict(dataset="digits", hidden_layers=WIDE, optimizer="adam", batch_size=1),
    "4x64 full batch 3000 points": dict(
        hidden_layers=[{"units": 64, "activation": "tanh"}] * 4, n_points=3000, batch_size=3000, optimizer="momentum"
    ),
    "6x8 spiral, timeline full": dict(
        dataset="spiral", hidden_layers=[{"units": 8, "activation": "tanh"}] * 6, epochs_per_frame=50
    ),
}
FACTOR = 2.0  # the estimate is within a factor 2 of the measured peak, either way


@pytest.mark.parametrize("name", list(ESTIMATED))
def test_the_estimate_is_within_a_factor_of_2_of_the_measured_peak(name):
    """A session as its worker runs it (created, watched with gradients, trained a moment,
    a frame each tick), measured by tracemalloc (NumPy reports its arrays to it). The peak
    comes with the first frames (evaluation and gradients over the data)."""
    limits = Limits(max_session_bytes=10**12, sizing=Sizing(timeline_bytes=400_000))
    sizes = dict(grid=100, thumb_stride=5, history_len=2000, timeline_bytes=400_000)
    conf = WorkerConfig(tick_hz=60, idle_tick_hz=30, max_tick_ms=40, limits=limits, **sizes)
    sent: list = []
    worker = Worker(conf, sent.append)
    cfg = resolve(None, ConfigFields(**ESTIMATED[name]), limits)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for rid, command in enumerate([cmd.Create("s", cfg, None), cmd.Watch("s", 30.0, True), cmd.Play("s")]):
            worker.handle((rid, command))
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            for slot in worker.due_slots(time.monotonic()):
                worker.tick(slot, time.monotonic())
            sent.clear()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    estimated = estimate(cfg, limits.sizing)["total"]
    assert peak / FACTOR <= estimated <= peak * FACTOR, (estimated, peak)


# --- the budgets ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tight(tmp_path_factory):
    """MAX_SESSION_MB 60 (an 8×256 adam session is ~49 MB, on digits ~77 MB) and MAX_MEMORY_MB 120."""
    app = InProcessApp(
        tmp_path_factory.mktemp("tight") / "snapshots.sqlite3", workers=1, max_session_mb=60, max_memory_mb=120
    )
    app.start()
    yield app
    app.stop()


def test_a_session_over_max_session_mb_is_refused_at_create_and_on_change(tight):
    c = tight.client
    r = c.post("/api/sessions", json={"dataset": "digits", "hidden_layers": WIDE, "optimizer": "adam"})
    assert r.status_code == 422 and r.json()["code"] == "limit_session_memory", r.text
    params = r.json()["params"]
    assert params["max"] == 60 and params["need"] > 60
    sid, auth = _create(c)
    r = c.patch(
        f"/api/sessions/{sid}", json={"dataset": "digits", "hidden_layers": WIDE, "optimizer": "adam"}, headers=auth
    )
    assert r.status_code == 422 and r.json()["code"] == "limit_session_memory", r.text
    assert c.get(f"/api/sessions/{sid}").json()["config"]["dataset"] == "circle"  # nothing changed
    c.delete(f"/api/sessions/{sid}", headers=auth)


def test_max_memory_mb_refuses_what_would_pass_it_and_frees_on_delete(tight):
    c = tight.client
    big = {"hidden_layers": WIDE, "optimizer": "adam", "batch_size": 1}  # ~49 MB, under MAX_SESSION_MB
    assert estimate(resolve(None, ConfigFields(**big), Limits()), tight.store.sizing)["total"] > 40 * MB
    first = _create(c, **big)
    second = _create(c, **big)
    r = c.post("/api/sessions", json=big)  # a third would pass 120 MB
    assert r.status_code == 429 and r.json()["code"] == "limit_memory", r.text
    assert r.json()["params"] == {"max": 120}
    small_sid, small_auth = _create(c)  # a small one still fits
    r = c.patch(f"/api/sessions/{small_sid}", json={"hidden_layers": WIDE}, headers=small_auth)
    assert r.status_code == 429 and r.json()["code"] == "limit_memory", r.text  # growing it would not
    assert tight.store.memory_estimate() <= 120 * MB
    c.delete(f"/api/sessions/{first[0]}", headers=first[1])
    r = c.patch(f"/api/sessions/{small_sid}", json={"hidden_layers": WIDE}, headers=small_auth)
    assert r.status_code == 200, r.text  # room again
    for sid, auth in (second, (small_sid, small_auth)):
        c.delete(f"/api/sessions/{sid}", headers=auth)
    assert tight.store.memory_estimate() == 0


# --- the timeline ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "hidden, optimizer, epochs",
    [
        (WIDE, "adam", 3),  # one checkpoint (~19.7 MB) is bigger than the budget: none kept
        ([{"units": 256, "activation": "tanh"}] * 2, "adam", 6),  # room for one checkpoint (~2.8 MB)
        ([{"units": 16, "activation": "tanh"}] * 3, "momentum", 400),  # many small ones, thinned
    ],
)
def test_timeline_bytes_never_exceed_max_bytes(hidden, optimizer, epochs):
    cfg = resolve(None, ConfigFields(hidden_layers=hidden, optimizer=optimizer, batch_size=250), Limits())
    s = Session(cfg, timeline_bytes=4_000_000)
    for _ in range(epochs):
        s.train(1)
        summary = s.timeline.summary()
        assert summary["bytes"] <= summary["max_bytes"] == 4_000_000, summary
        assert summary["bytes"] == sum(c.nbytes for c in s.timeline.points)
    if hidden is WIDE:
        assert summary["off"] and summary["epochs"] == [] and summary["checkpoint_bytes"] > 4_000_000
    else:
        assert not summary["off"] and summary["epochs"][0] == 0  # the start stays


# --- what keeps a session alive -------------------------------------------------------------------
def test_reads_do_not_keep_an_idle_session_alive_but_control_requests_do(tmp_path):
    with InProcessApp(tmp_path / "snapshots.sqlite3", workers=1, session_ttl_seconds=1.5) as app:
        c = app.client
        warm_up = _create(c)  # the worker has started: the next creations take milliseconds
        c.delete(f"/api/sessions/{warm_up[0]}", headers=warm_up[1])
        read_only, _ = _create(c)
        controlled, auth = _create(c)
        assert c.get(f"/api/sessions/{read_only}").status_code == 200
        end = time.monotonic() + 4  # over 2 TTLs (housekeeping runs every 0.5 s)
        while time.monotonic() < end:
            c.get(f"/api/sessions/{read_only}")
            c.get(f"/api/sessions/{read_only}/timeline")
            assert c.post(f"/api/sessions/{controlled}/pause", headers=auth).status_code == 200
            time.sleep(0.3)
        r = c.get(f"/api/sessions/{read_only}")
        assert r.status_code == 410 and r.json()["params"]["reason"] == "expired", r.text
        assert c.get(f"/api/sessions/{controlled}").status_code == 200
