"""The operators' view, in-process: GET /metrics (the Prometheus text format, protected like
/api/stats), X-MLP-Node on every kind of response when NODE_ID is set, and the node in /healthz.

One app of its own here (NODE_ID and ADMIN_TOKEN set); the shared in-process app (`client`)
is the one without them.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.inprocess import InProcessApp
from tests.support.sse import parse_sse
from tests.support.waiting import wait_until

NODE = "n1"
ADMIN = "admin-secret-for-metrics"
ADMIN_HEADERS = {"X-Admin-Token": ADMIN}
FAMILIES = {
    "mlp_sessions",
    "mlp_sessions_running",
    "mlp_watchers",
    "mlp_relayed_watchers",
    "mlp_streams",
    "mlp_frames_published",
    "mlp_process_cpu_seconds",
    "mlp_process_resident_memory_bytes",
    "mlp_http_responses",
    "mlp_workers_live",
    "mlp_worker_heartbeat_age_seconds",
}


@pytest.fixture(scope="module")
def node_app(tmp_path_factory):
    with InProcessApp(
        tmp_path_factory.mktemp("metrics") / "snapshots.sqlite3",
        workers=1,
        node_id=NODE,
        admin_token=ADMIN,
        idle_pause_seconds=60,
        snapshot_writes_per_minute=1,
    ) as app:
        yield app


@pytest.fixture
def nc(node_app):
    return node_app.client


def scrape(c, headers=ADMIN_HEADERS) -> dict[str, dict[tuple, float]]:
    """/metrics as {family: {(sample name, sorted labels): value}}, checking its content type."""
    r = c.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers["content-type"]
    return {
        family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        for family in text_string_to_metric_families(r.text)
    }


def value(families, family: str, sample: str | None = None, **labels) -> float:
    wanted = tuple(sorted({"node": NODE, **labels}.items()))
    found = [v for (name, got), v in families[family].items() if name == (sample or family) and got == wanted]
    assert len(found) == 1, (family, labels, families[family])
    return found[0]


def create(c) -> tuple[str, dict]:
    r = c.post("/api/sessions", json={})
    assert r.status_code == 201, r.text
    body = r.json()
    return body["id"], {"Authorization": f"Bearer {body['control_token']}"}


# --- /metrics ---------------------------------------------------------------------------------
def test_metrics_after_sessions_and_play(nc):
    made = [create(nc) for _ in range(3)]
    try:
        sid, auth = made[0]
        assert sid.startswith(f"{NODE}.")
        assert nc.post(f"/api/sessions/{sid}/play", headers=auth).status_code == 200
        r = nc.get(f"/api/sessions/{sid}/events", params={"max_frames": 3}, timeout=30)
        frames = [e for e in parse_sse(r.text.splitlines()) if e.get("event") == "frame"]
        assert len(frames) == 3, r.text[:300]

        families = scrape(nc)
        stats = nc.get("/api/stats", headers=ADMIN_HEADERS).json()
        assert FAMILIES <= set(families), sorted(FAMILIES - set(families))
        assert value(families, "mlp_sessions") == stats["sessions"] >= 3
        assert value(families, "mlp_sessions_running") == stats["running"] >= 1
        assert value(families, "mlp_watchers") == stats["watchers"] == 0  # the stream above has ended
        assert value(families, "mlp_relayed_watchers") == 0  # no Redis relay here
        # Every frame the stream got was published (the newest-only stream may skip some).
        assert value(families, "mlp_frames_published", "mlp_frames_published_total") >= 3
        assert value(families, "mlp_workers_live") == 1
        for process in ("server", "worker-0"):
            assert value(families, "mlp_process_resident_memory_bytes", process=process) > 10_000_000
            assert value(families, "mlp_process_cpu_seconds", "mlp_process_cpu_seconds_total", process=process) > 0
        assert value(families, "mlp_http_responses", "mlp_http_responses_total", status_class="2xx") >= 5

        # The frame counter never goes down, even when the session that published them ends.
        before = value(families, "mlp_frames_published", "mlp_frames_published_total")
        assert nc.delete(f"/api/sessions/{sid}", headers=auth).status_code == 204
        after = value(scrape(nc), "mlp_frames_published", "mlp_frames_published_total")
        assert after >= before
    finally:
        for sid, auth in made:
            nc.delete(f"/api/sessions/{sid}", headers=auth)


def test_4xx_counter_counts_a_404(nc):
    def count(status_class):
        return value(scrape(nc), "mlp_http_responses", "mlp_http_responses_total", status_class=status_class)

    before_4xx, before_5xx = count("4xx"), count("5xx")
    assert nc.get("/api/sessions/no-such-session").status_code == 404
    assert count("4xx") == before_4xx + 1
    assert count("5xx") == before_5xx  # listed (at 0 until the first) and not moved by a 404


def test_metrics_is_protected_like_stats(nc):
    for path in ("/metrics", "/api/stats"):
        assert nc.get(path).status_code == 401, path
        assert nc.get(path, headers={"X-Admin-Token": "wrong"}).status_code == 403, path
        r = nc.get(path)
        assert r.json()["field"] == "x-admin-token"
        assert nc.get(path, headers=ADMIN_HEADERS).status_code == 200, path


def test_metrics_open_without_admin_token_and_node_is_local(client):
    families = scrape(client, headers={})
    wanted = (("node", "local"),)
    assert [v for (name, labels), v in families["mlp_sessions"].items() if labels == wanted] == [
        client.get("/api/stats").json()["sessions"]
    ]


# --- X-MLP-Node -------------------------------------------------------------------------------
def responses(c, sid: str) -> dict:
    """One response of each kind: a route's 200, a 404, a 422, a static file, an SSE stream,
    a 400 from the Host guard and a 413 from the body limit (both answered before any route)."""
    return {
        "200": (c.get(f"/api/sessions/{sid}"), 200),
        "404": (c.get("/api/sessions/no-such-session"), 404),
        "422": (c.post("/api/sessions", json={"learning_rate": -1}), 422),
        "static": (c.get("/static/css/app.css"), 200),
        "sse": (c.get(f"/api/sessions/{sid}/events", params={"max_frames": 1}, timeout=30), 200),
        "host": (c.get("/healthz", headers={"Host": "evil.example"}), 400),
        "too large": (c.post("/api/sessions", content=b"x" * 3_000_000), 413),
    }


def test_every_response_names_the_node(nc):
    sid, auth = create(nc)
    try:
        answered = responses(nc, sid)
        # A 429 from the snapshot-write limit (SNAPSHOT_WRITES_PER_MINUTE=1 in this app).
        save = [nc.post(f"/api/sessions/{sid}/snapshots", headers={**auth, **ADMIN_HEADERS}) for _ in range(2)]
        answered["429"] = (save[1], 429)
        assert save[0].status_code == 201, save[0].text
        for kind, (r, code) in answered.items():
            assert r.status_code == code, (kind, r.status_code, r.text[:200])
            assert r.headers.get("x-mlp-node") == NODE, (kind, dict(r.headers))
        assert answered["sse"][0].headers["content-type"].startswith("text/event-stream")
    finally:
        nc.delete(f"/api/sessions/{sid}", headers=auth)


def test_no_node_header_without_node_id(client, make_session):
    sid, _ = make_session()
    for kind, (r, code) in responses(client, sid).items():
        assert r.status_code == code, (kind, r.status_code, r.text[:200])
        assert "x-mlp-node" not in r.headers, kind
        assert "content-security-policy" in r.headers, kind  # the headers every response has are there


# --- /healthz -----------------------------------------------------------------------------------
def test_healthz_names_the_node(nc, client):
    assert wait_until(lambda: nc.get("/healthz").status_code == 200, 10)
    body = nc.get("/healthz").json()
    assert body["status"] == "ok" and body["node"] == NODE
    assert "node" not in client.get("/healthz").json()
