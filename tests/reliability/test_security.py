"""Security: control tokens, the admin token, secrets kept out of pages and logs, headers,
escaping of user text, and the size/type limits on request bodies.

Most tests use one dedicated server (`secure`) started like a classroom server: bound to
0.0.0.0, with ADMIN_TOKEN, EMBED_ORIGINS and small upload limits, its output captured in
a log file we can search for secrets.
"""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest

from tests.support.live import start_server
from tests.support.sse import parse_sse

ADMIN = "adm-" + "Zq8" * 10
EMBED = "https://wiki.example.org https://lms.example.edu"
MAX_UPLOAD_BYTES, MAX_UPLOAD_ROWS = 4000, 50
MAX_FPS, MAX_POINTS = 24, 1000


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secure")
    live = start_server(
        tmp,
        host="0.0.0.0",
        workers=1,
        admin_token=ADMIN,
        embed_origins=EMBED,
        max_upload_bytes=MAX_UPLOAD_BYTES,
        max_upload_rows=MAX_UPLOAD_ROWS,
        max_fps=MAX_FPS,
        max_points=MAX_POINTS,
    )
    live.log = next(tmp.glob("server-*.log"))
    yield live
    live.stop()


@pytest.fixture
def sc(secure):
    with httpx.Client(base_url=secure.url, timeout=30) as c:
        yield c


def _create(c: httpx.Client, **config) -> tuple[str, str]:
    r = c.post("/api/sessions", json=config)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["control_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def csv_file(text: str, name: str = "points.csv") -> dict:
    return {"file": (name, io.BytesIO(text.encode()), "text/csv")}


GOOD_CSV = "x1,x2,label\n" + "\n".join(f"{i % 7 - 3},{i % 5 - 2},{i % 2}" for i in range(20))

# Every request that changes a session: (method, path, how the body is sent, body).
CONTROL = [
    ("PATCH", "/api/sessions/{sid}", "json", {"learning_rate": 0.1}),
    ("DELETE", "/api/sessions/{sid}", None, None),
    ("POST", "/api/sessions/{sid}/handover", "json", {"to": "elsewhere", "to_token": "its-token"}),
    ("POST", "/api/sessions/{sid}/play", None, None),
    ("POST", "/api/sessions/{sid}/pause", None, None),
    ("POST", "/api/sessions/{sid}/step", None, None),
    ("POST", "/api/sessions/{sid}/reset", None, None),
    ("PUT", "/api/sessions/{sid}/probe", "json", {"x": [0.5, 0.5]}),
    ("POST", "/api/sessions/{sid}/timeline/view", "json", {"epoch": 0}),
    ("POST", "/api/sessions/{sid}/timeline/resume", "json", {"epoch": 0}),
    ("POST", "/api/sessions/{sid}/params", "json", {"layer": 0, "j": 0, "value": 1.0}),
    ("POST", "/api/sessions/{sid}/regenerate", None, None),
    ("POST", "/api/sessions/{sid}/points", "json", {"x": [1.0, 1.0], "label": 1}),
    ("POST", "/api/sessions/{sid}/points/remove", "json", {"x": [1.0, 1.0]}),
    ("POST", "/api/sessions/{sid}/upload", "file", GOOD_CSV),
    ("POST", "/api/sessions/{sid}/snapshots", "json", {"name": "not yours"}),
    ("POST", "/ui/sessions/{sid}/config", "form", {"learning_rate": "0.1"}),
    ("POST", "/ui/sessions/{sid}/structure", "form", {"op": "add_layer"}),
    ("POST", "/ui/sessions/{sid}/transport", "form", {"op": "step"}),
    ("POST", "/ui/sessions/{sid}/regenerate", None, None),
    ("POST", "/ui/sessions/{sid}/recover", None, None),
    ("POST", "/ui/sessions/{sid}/upload", "file", GOOD_CSV),
    ("POST", "/ui/sessions/{sid}/points", "form", {"op": "add", "x1": "1", "x2": "1", "label": "1"}),
    ("POST", "/ui/sessions/{sid}/snapshots", "form", {"name": "not yours"}),
    ("POST", "/api/sessions/{sid}/release", None, None),
    ("DELETE", "/api/sessions/{sid}/release", None, None),
    ("PUT", "/api/sessions/{sid}/lesson", "json", {"lesson": "seed", "step": "layers"}),
    ("POST", "/ui/sessions/{sid}/lesson", "form", {"lesson": "seed", "step": "layers"}),
]
# Mutating routes that need no token, on purpose: a reader of a shared embed (who holds no
# token) forks their own copy; any other session answers 409 (tests/api/test_lifecycle_rules.py).
OPEN = {("POST", "/embed/{sid}/fork")}


def _send(c: httpx.Client, method: str, path: str, kind: str | None, body, headers: dict) -> httpx.Response:
    if kind == "json":
        return c.request(method, path, json=body, headers=headers)
    if kind == "form":
        return c.request(method, path, data=body, headers=headers)
    if kind == "file":
        return c.request(method, path, files=csv_file(body), headers=headers)
    return c.request(method, path, headers=headers)


def test_control_list_covers_every_mutating_session_route():
    from app.main import create_app

    # Every route of the app itself, so a new router cannot be left out of the list
    # (FastAPI keeps an included router's routes on the router it was given).
    app_routes = [
        route
        for entry in create_app().app.routes
        for route in getattr(getattr(entry, "original_router", None), "routes", [entry])
    ]
    routes = {
        (sorted(set(r.methods) - {"GET", "HEAD"})[0], r.path)
        for r in app_routes
        if hasattr(r, "methods")
        if set(r.methods) - {"GET", "HEAD"} and "{sid}" in r.path
    }
    assert routes == {(m, p) for m, p, _, _ in CONTROL} | OPEN


@pytest.fixture(scope="module")
def victim(server):
    """A session that every refused request aims at, and another session's token."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        sid, token = _create(c, seed=11)
        other, other_token = _create(c, seed=12)
        yield sid, token, other_token
        c.delete(f"/api/sessions/{sid}", headers=bearer(token))
        c.delete(f"/api/sessions/{other}", headers=bearer(other_token))


@pytest.mark.parametrize("method, path, kind, body", CONTROL, ids=[f"{m} {p}" for m, p, _, _ in CONTROL])
def test_control_needs_the_sessions_own_token(client, victim, method, path, kind, body):
    sid, token, other_token = victim
    url = path.format(sid=sid)
    before = client.get(f"/api/sessions/{sid}").json()
    for headers, status, code in (
        ({}, 401, "auth_missing"),
        ({"Authorization": "Bearer"}, 401, "auth_missing"),
        ({"Authorization": f"Basic {token}"}, 401, "auth_missing"),
        (bearer("x" * 43), 403, "auth_wrong"),
        (bearer(other_token), 403, "auth_wrong"),
        (bearer(token[:-1]), 403, "auth_wrong"),
    ):
        r = _send(client, method, url, kind, body, headers)
        assert r.status_code == status, (headers, r.status_code, r.text[:300])
        assert r.json()["field"] == "authorization" and r.json()["code"] == code, r.json()
    after = client.get(f"/api/sessions/{sid}").json()
    for key in ("status", "epoch", "step", "config", "loss"):
        assert after[key] == before[key], f"{key} changed by a refused request"


def test_token_never_leaves_in_pages_reads_frames_or_logs(secure, sc):
    sid, token = _create(sc, seed=3, dataset="gauss", classes=3)
    auth = bearer(token)
    admin = {"X-Admin-Token": ADMIN}
    # Controlled requests first, so the log has seen the token go by in every way we use it.
    assert sc.post(f"/api/sessions/{sid}/step", headers=auth).status_code == 200
    assert sc.patch(f"/api/sessions/{sid}", json={"learning_rate": 0.1}, headers=auth).status_code == 200
    assert sc.post(f"/api/sessions/{sid}/snapshots", json={}, headers={**auth, **admin}).status_code == 201
    assert sc.post(f"/api/sessions/{sid}/play", headers=bearer(token[::-1])).status_code == 403
    assert sc.post(f"/ui/sessions/{sid}/transport", data={"op": "step"}, headers=auth).status_code == 204
    reads = {
        "watch page": sc.get(f"/s/{sid}"),
        "watch page ja": sc.get(f"/s/{sid}?lang=ja"),
        "playground ?session=": sc.get(f"/?session={sid}"),
        "status": sc.get(f"/api/sessions/{sid}"),
        "share": sc.get(f"/api/sessions/{sid}/share"),
        "qr": sc.get(f"/s/{sid}/qr.svg"),
        "model": sc.get(f"/api/sessions/{sid}/model"),
        "data": sc.get(f"/api/sessions/{sid}/data"),
        "history": sc.get(f"/api/sessions/{sid}/history"),
        "timeline": sc.get(f"/api/sessions/{sid}/timeline"),
        "model.py": sc.get(f"/api/sessions/{sid}/export/model.py"),
        "data.csv": sc.get(f"/api/sessions/{sid}/export/data.csv"),
        "network partial": sc.get(f"/ui/sessions/{sid}/network?controls=false"),
        "stats": sc.get("/api/stats", headers=admin),
    }
    for name, r in reads.items():
        assert r.status_code == 200, (name, r.status_code)
        assert token not in r.text and token not in str(r.headers), f"token leaked in {name}"
        assert ADMIN not in r.text, f"admin token leaked in {name}"
    with sc.stream("GET", f"/api/sessions/{sid}/events", params={"max_frames": 1}) as r:
        text = r.read().decode()
    assert [e.get("event") for e in parse_sse(text.splitlines())].count("frame") == 1
    assert token not in text, "token leaked in a frame"
    log = secure.log.read_text()
    assert f"/api/sessions/{sid}/step" in log, "the log should show the requests (else this proves nothing)"
    assert token not in log, "token leaked in the server log"
    assert token[::-1] not in log, "a wrong token was logged"
    assert ADMIN not in log, "admin token leaked in the server log"
    sc.delete(f"/api/sessions/{sid}", headers=auth)


def _check_headers(r: httpx.Response, what: str) -> None:
    csp = r.headers.get("content-security-policy", "")
    assert f"frame-ancestors {EMBED}" in csp, (what, csp)
    assert "object-src 'none'" in csp and "script-src 'self'" in csp, (what, csp)
    assert r.headers.get("x-content-type-options") == "nosniff", what
    assert r.headers.get("referrer-policy"), what


def test_security_headers_on_every_kind_of_response(secure, sc):
    sid, token = _create(sc, seed=4)
    checks = {
        "html playground": (sc.get("/"), 200),
        "html watch": (sc.get(f"/s/{sid}"), 200),
        "html embed": (sc.get("/embed?dataset=xor"), 200),
        "json": (sc.get(f"/api/sessions/{sid}"), 200),
        "static css": (sc.get("/static/css/app.css"), 200),
        "static js": (sc.get("/static/js/playground.js"), 200),
        "svg": (sc.get(f"/s/{sid}/qr.svg"), 200),
        "csv": (sc.get(f"/api/sessions/{sid}/export/data.csv"), 200),
        "404 json": (sc.get("/api/sessions/nope"), 404),
        "404 html": (sc.get("/no-such-page", headers={"Accept": "text/html"}), 404),
        "404 static": (sc.get("/static/nope.js"), 404),
        "405": (sc.put("/healthz"), 405),
        "401": (sc.post(f"/api/sessions/{sid}/play"), 401),
        "422": (sc.post("/api/sessions", json={"noise": 9}), 422),
        "413": (
            sc.post(
                "/api/sessions", content=b"{" + b" " * 2_100_000 + b"}", headers={"Content-Type": "application/json"}
            ),
            413,
        ),
        "admin 401": (sc.get("/api/snapshots"), 401),
        "410": (None, 410),
    }
    sc.delete(f"/api/sessions/{sid}", headers=bearer(token))
    checks["410"] = (sc.get(f"/api/sessions/{sid}"), 410)
    other, other_token = _create(sc, seed=5)
    with sc.stream("GET", f"/api/sessions/{other}/events", params={"max_frames": 1}) as r:
        r.read()
        checks["sse"] = (r, 200)
    sc.delete(f"/api/sessions/{other}", headers=bearer(other_token))
    for what, (r, status) in checks.items():
        assert r.status_code == status, (what, r.status_code, r.text[:200])
        _check_headers(r, what)


def test_user_text_is_escaped_in_html_and_exports(secure, sc):
    admin = {"X-Admin-Token": ADMIN}
    sid, token = _create(sc, seed=6)
    auth = bearer(token)
    names = ["<script>alert(1)</script>", '"><svg onload=alert(2)>']
    ids = []
    for name in names:
        r = sc.post(f"/api/sessions/{sid}/snapshots", json={"name": name}, headers={**auth, **admin})
        assert r.status_code == 201, r.text
        assert r.json()["name"] == name  # stored as given: escaping is the output's job
        ids.append(r.json()["snapshot_id"])
    html = sc.get("/ui/snapshots", headers=admin)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "<script>alert(1)</script>" not in html.text and "<svg onload" not in html.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.text
    assert "&#34;&gt;&lt;svg onload=alert(2)&gt;" in html.text or "&quot;&gt;&lt;svg onload=alert(2)&gt;" in html.text
    evil = "<img src=x onerror=alert(1)>"
    rows = "\n".join(f"{i % 7 - 3},{i % 5 - 2},{evil if i % 2 else 'plain'}" for i in range(20))
    r = sc.post(f"/api/sessions/{sid}/upload", files=csv_file("x1,x2,label\n" + rows), headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["config"]["classes"] == 2
    ui = sc.post(f"/ui/sessions/{sid}/upload", files=csv_file("x1,x2,label\n" + rows), headers=auth)
    assert ui.status_code == 200 and "<img src=x" not in ui.text
    export = sc.get(f"/api/sessions/{sid}/export/data.csv")
    assert export.status_code == 200 and "<img" not in export.text
    assert export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers.get("content-disposition", "")
    labels = {line.split(",")[2] for line in export.text.splitlines()[1:]}
    assert labels == {"0", "1"}, labels
    for page in (f"/s/{sid}", f"/?session={sid}"):
        assert "<img src=x" not in sc.get(page).text
    # Too many classes names the line, and the label comes back as JSON text, not markup.
    many = "\n".join(f"{i},{i},<b>{i}</b>" for i in range(12))
    r = sc.post(f"/api/sessions/{sid}/upload", files=csv_file(many), headers=auth)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")
    assert r.json()["field"] == "file.line.11", r.json()
    for snapshot_id in ids:
        sc.delete(f"/api/snapshots/{snapshot_id}", headers=admin)
    sc.delete(f"/api/sessions/{sid}", headers=auth)


def test_upload_limits_name_the_limit_or_the_line(secure, sc):
    sid, token = _create(sc, seed=7)
    auth = bearer(token)
    rows = "\n".join(f"{i % 7},{i % 5},{i % 2}" for i in range(MAX_UPLOAD_ROWS + 10))
    assert len(rows) < MAX_UPLOAD_BYTES
    r = sc.post(f"/api/sessions/{sid}/upload", files=csv_file(rows), headers=auth)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == f"file.line.{MAX_UPLOAD_ROWS + 1}" and body["code"] == "csv_too_many_rows", body
    assert body["params"]["max"] == MAX_UPLOAD_ROWS
    big = "x1,x2,label\n" + "\n".join(f"{i % 7}.000000000,{i % 5}.000000000,{i % 2}" for i in range(200))
    assert len(big) > MAX_UPLOAD_BYTES
    r = sc.post(f"/api/sessions/{sid}/upload", files=csv_file(big), headers=auth)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "csv_too_large" and body["field"] == "file" and body["params"]["max"] == MAX_UPLOAD_BYTES, (
        body
    )
    assert str(MAX_UPLOAD_BYTES) in body["message"], body
    # A file over the whole request limit is refused before it is read.
    r = sc.post(f"/api/sessions/{sid}/upload", files=csv_file("1,2,0\n" * 500_000), headers=auth)
    assert r.status_code == 413 and r.json()["field"] == "body", r.text[:300]
    assert sc.get(f"/api/sessions/{sid}").json()["config"]["dataset"] == "circle"
    sc.delete(f"/api/sessions/{sid}", headers=auth)


def test_body_limit_is_413_naming_body(client):
    big = json.dumps({"dataset": "circle", "padding": "x" * 3_000_000})
    r = client.post("/api/sessions", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    body = r.json()
    assert body["field"] == "body" and body["code"] == "body_too_large" and "max_body_bytes" in body["message"]


def test_body_limit_holds_for_chunked_bodies(client):
    big = json.dumps({"dataset": "circle", "padding": "x" * 3_000_000}).encode()
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
    r = client.post("/api/sessions", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    assert r.json()["field"] == "body"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/api/sessions", '{"seed": 1}'),
        ("PATCH", "/api/sessions/{sid}", '{"learning_rate": 0.1}'),
        ("POST", "/api/sessions/{sid}/params", '{"layer": 0, "j": 0, "value": 1}'),
        ("PUT", "/api/sessions/{sid}/probe", '{"x": [0, 0]}'),
        ("POST", "/api/sessions/{sid}/points", '{"x": [0, 0], "label": 1}'),
        ("POST", "/api/sessions/{sid}/timeline/view", '{"epoch": 0}'),
    ],
)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data; boundary=zzz"],
)
def test_wrong_content_type_is_4xx_naming_the_body(client, make_session, method, path, body, content_type):
    sid, auth = make_session(seed=8)
    r = client.request(method, path.format(sid=sid), content=body, headers={**auth, "Content-Type": content_type})
    assert r.status_code == 422, (r.status_code, r.text[:300])
    body = r.json()
    assert body["field"] == "body" and "application/json" in body["message"], body


def test_json_to_an_upload_endpoint_is_4xx_naming_the_file(client, make_session):
    sid, auth = make_session(seed=9)
    r = client.post(f"/api/sessions/{sid}/upload", json={"file": "1,2,0"}, headers=auth)
    assert r.status_code == 422 and r.json()["field"] == "file", r.text[:300]


def test_admin_token_guards_snapshot_management(secure, sc):
    sid, token = _create(sc, seed=10)
    auth = bearer(token)
    good, wrong = {"X-Admin-Token": ADMIN}, {"X-Admin-Token": ADMIN[:-1] + "x"}
    saved = sc.post(f"/api/sessions/{sid}/snapshots", json={"name": "base"}, headers={**auth, **good})
    assert saved.status_code == 201
    snapshot_id = saved.json()["snapshot_id"]
    document = sc.get(f"/api/snapshots/{snapshot_id}").content  # reading one by id needs no admin token

    def attempts():
        yield (
            "save",
            lambda h: sc.post(f"/api/sessions/{sid}/snapshots", json={"name": "s"}, headers={**auth, **h}),
            201,
        )
        yield "list", lambda h: sc.get("/api/snapshots", headers=h), 200
        yield "rename", lambda h: sc.patch(f"/api/snapshots/{snapshot_id}", json={"name": "r"}, headers=h), 200
        yield (
            "import",
            lambda h: sc.post(
                "/api/snapshots/import", headers=h, files={"file": ("s.json", io.BytesIO(document), "application/json")}
            ),
            201,
        )
        yield "ui list", lambda h: sc.get("/ui/snapshots", headers=h), 200
        yield (
            "ui save",
            lambda h: sc.post(f"/ui/sessions/{sid}/snapshots", data={"name": "u"}, headers={**auth, **h}),
            200,
        )
        yield "stats", lambda h: sc.get("/api/stats", headers=h), 200

    for name, call, ok in attempts():
        for headers, status in (({}, 401), (wrong, 403), (good, ok)):
            r = call(headers)
            assert r.status_code == status, (name, headers, r.status_code, r.text[:200])
            if status != ok:
                assert r.json()["field"] == "x-admin-token", (name, r.json())
    for headers, status in (({}, 401), (wrong, 403), (good, 204)):
        r = sc.delete(f"/api/snapshots/{snapshot_id}", headers=headers)
        assert r.status_code == status, ("delete", headers, r.status_code, r.text[:200])
    assert sc.get(f"/api/snapshots/{snapshot_id}").status_code == 404
    sc.delete(f"/api/sessions/{sid}", headers=auth)


def test_all_interfaces_start_prints_lan_url_and_one_warning(secure):
    port = secure.url.rsplit(":", 1)[1]
    log = secure.log.read_text()
    assert re.search(rf"http://\d+\.\d+\.\d+\.\d+:{port}/", log), log[:800]
    warnings = [line for line in log.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, warnings
    assert "token" in warnings[0] and len(warnings[0]) < 200, warnings
    share = httpx.get(f"{secure.url}/api/sessions/none/share")
    assert share.status_code == 404


def test_max_fps_refuses_a_faster_stream_naming_fps(sc):
    sid, token = _create(sc, seed=21)
    r = sc.get(f"/api/sessions/{sid}/events", params={"fps": MAX_FPS + 1})
    assert r.status_code == 422, r.text[:300]
    body = r.json()
    assert body["field"] == "fps" and body["code"] == "limit_fps" and body["params"]["max"] == MAX_FPS, body
    # At the limit, and with no fps (the page's request: the default 30 comes down to MAX_FPS).
    for params in ({"fps": MAX_FPS, "max_frames": 1}, {"max_frames": 1}):
        with sc.stream("GET", f"/api/sessions/{sid}/events", params=params) as r:
            assert r.status_code == 200, params
            assert [e.get("event") for e in parse_sse(r.iter_lines())].count("frame") == 1, params
    sc.delete(f"/api/sessions/{sid}", headers=bearer(token))


def test_adding_a_point_at_max_points_is_refused_and_changes_nothing(sc):
    sid, token = _create(sc, seed=22, n_points=MAX_POINTS)
    auth = bearer(token)
    before = sc.get(f"/api/sessions/{sid}/data").json()
    r = sc.post(f"/api/sessions/{sid}/points", json={"x": [0.5, 0.5], "label": 1}, headers=auth)
    assert r.status_code == 422, r.text[:300]
    body = r.json()
    assert body["field"] == "n_points" and body["code"] == "limit_points" and body["params"]["max"] == MAX_POINTS
    r = sc.post(f"/ui/sessions/{sid}/points", data={"op": "add", "x1": "0.5", "x2": "0.5", "label": "1"}, headers=auth)
    assert r.status_code == 422, r.text[:300]
    assert sc.get(f"/api/sessions/{sid}/data").json() == before
    # Removing one makes room again.
    assert sc.post(f"/api/sessions/{sid}/points/remove", json={"x": [0.5, 0.5]}, headers=auth).status_code == 200
    r = sc.post(f"/api/sessions/{sid}/points", json={"x": [0.5, 0.5], "label": 1}, headers=auth)
    assert r.status_code == 200 and r.json()["config"]["n_points"] == MAX_POINTS, r.text[:300]
    sc.delete(f"/api/sessions/{sid}", headers=auth)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),
        ({"offset": 10**30}, "offset"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
    ],
)
def test_snapshot_list_paging_out_of_range_is_422_naming_the_field(sc, params, field):
    r = sc.get("/api/snapshots", params=params, headers={"X-Admin-Token": ADMIN})
    assert r.status_code == 422, r.text[:300]
    assert r.json()["field"] == field, r.json()
