"""The shipped nginx config (deploy/nginx.conf.template) routes every route of the app.

The real nginx runs the rendered config in front of stub nodes (small HTTP servers in this
process that answer with their own name), and every route of create_app() is requested
through it. Real requests rather than the config's regexes re-applied in Python: what
decides is nginx's own matching (PCRE, the order of `map` regexes, $uri normalisation,
$arg_ parsing, which location a path falls in), and an imitation could pass while nginx
routes otherwise.

A route with {sid} in its path must reach the node named in the id; everything else, and a
viewer's stream (events?watch=1), must reach the pool. The pool is told apart from a node
by repetition: least_conn over idle nodes takes them in turn, so four requests to the pool
reach both live nodes, and four to a node reach only that one.

Skipped (loudly) without nginx, except in CI (CI=true), where it must run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from app.node import NODE_ID_PATTERN
from deploy.nginx import NODE_RE, Nginx, find_nginx, main, render
from tests.support.live import free_port

TOKEN = "Zx3_k-9QpL0wYt7VbN2mR4sD8fHj1uEa"  # the random part of an id (URL-safe base64)
REPEATS = 4  # requests per case: enough for least_conn to have taken both live nodes in turn


def _require_nginx():
    if find_nginx() is None:
        message = "\n" + "!" * 78 + "\n  NGINX ROUTE TESTS SKIPPED: no nginx (apt-get install nginx).\n" + "!" * 78
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is missing in CI: the proxy's tests must not skip" + message)
        print(message)
        pytest.skip("no nginx on this machine")


class StubNode:
    """An HTTP server standing in for a node: answers every request with its name, and keeps
    what it received (its name also in the X-Stub-Node header). A path ending in /events
    answers as a stream of one event; while `hold` is set, the stream then stays open until
    `hold` is cleared (so a client that sees the event saw it before the stream ended)."""

    def __init__(self, name: str):
        self.name = name
        self.requests: list[dict] = []
        self.hold = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn
            disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall)

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stub.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "version": self.request_version,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "peer": self.client_address,
                    }
                )
                if re.search(r"/events(\?|$)", self.path) and self.command == "GET":
                    self._stream()
                    return
                body = json.dumps({"node": stub.name}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Stub-Node", stub.name)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("X-Stub-Node", stub.name)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(f"event: node\ndata: {stub.name}\n\n".encode())
                self.wfile.flush()
                deadline = time.monotonic() + 10
                while stub.hold.is_set() and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.hold.clear()
        self.server.shutdown()
        self.server.server_close()


def _closed_port() -> int:
    """A loopback port nobody listens on: a dead node refuses at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _running_proxy(workdir, *, relay: bool):
    """nginx (rendered with or without a relay) in front of stub nodes a and b and a dead c."""
    _require_nginx()
    stubs = {name: StubNode(name) for name in ("a", "b")}
    nodes = {name: s.address for name, s in stubs.items()} | {"c": f"127.0.0.1:{_closed_port()}"}  # c is dead
    with open(workdir / "stderr.log", "w") as log:
        nginx = Nginx(free_port(), workdir, nodes, log=log, relay=relay)
        try:
            nginx.start()
            with httpx.Client(base_url=nginx.url, timeout=10) as client:
                yield client, stubs
        finally:
            nginx.stop()
            for s in stubs.values():
                s.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """As deploy/cluster.py runs it: the nodes share Redis, so viewers' streams are relayed."""
    with _running_proxy(tmp_path_factory.mktemp("nginx"), relay=True) as running:
        yield running


@pytest.fixture(scope="module")
def proxy_without_relay(tmp_path_factory):
    with _running_proxy(tmp_path_factory.mktemp("nginx-norelay"), relay=False) as running:
        yield running


def _served_by(client: httpx.Client, method: str, path: str, **kw) -> set[str]:
    seen = set()
    for _ in range(REPEATS):
        r = client.request(method, path, **kw)
        assert r.status_code == 200, (method, path, r.status_code, r.text[:300])
        seen.add(r.headers["x-stub-node"])
    return seen


def _app_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the app, mounts (static files) included."""
    from app.main import create_app

    routes = []
    for entry in create_app().app.routes:
        for route in getattr(getattr(entry, "original_router", None), "routes", [entry]):
            methods = sorted(set(getattr(route, "methods", None) or {"GET"}) - {"HEAD"})
            routes += [(m, route.path) for m in methods]
    return routes


def _fill(path: str, sid: str) -> str:
    path = path.replace("{sid}", sid)
    path = re.sub(r"\{path(:path)?\}", "css/page.css", path)  # a mount's own path
    return re.sub(r"\{\w+(:\w+)?\}", "x1", path)  # snapshot ids and any other parameter


SID_ROUTES = [(m, p) for m, p in _app_routes() if "{sid}" in p]
IDLESS_ROUTES = [(m, p) for m, p in _app_routes() if "{sid}" not in p] + [("GET", "/static/js/session.js")]


def test_the_app_has_session_routes_to_check():
    # Guards the walk itself: were it to find nothing, the tests below would check nothing.
    assert len(SID_ROUTES) > 30
    assert ("GET", "/api/sessions/{sid}/events") in SID_ROUTES
    assert ("GET", "/s/{sid}") in SID_ROUTES


@pytest.mark.parametrize(("method", "path"), SID_ROUTES, ids=[f"{m} {p}" for m, p in SID_ROUTES])
def test_every_session_route_reaches_the_node_in_the_id(proxy, method, path):
    client, _ = proxy
    for node in ("a", "b"):
        assert _served_by(client, method, _fill(path, f"{node}.{TOKEN}")) == {node}
    # An id without a node (a single node's id) or naming no node of this proxy: the pool.
    assert _served_by(client, method, _fill(path, TOKEN)) == {"a", "b"}
    assert _served_by(client, method, _fill(path, f"zz.{TOKEN}")) == {"a", "b"}


@pytest.mark.parametrize(("method", "path"), IDLESS_ROUTES, ids=[f"{m} {p}" for m, p in IDLESS_ROUTES])
def test_every_idless_route_reaches_the_pool(proxy, method, path):
    client, _ = proxy
    assert _served_by(client, method, _fill(path, "unused")) == {"a", "b"}


@pytest.mark.parametrize("watch", ["1", "true"])
def test_a_viewers_stream_goes_to_the_pool_a_controllers_to_the_owner(proxy, watch):
    client, _ = proxy
    events = f"/api/sessions/a.{TOKEN}/events"

    assert _served_by(client, "GET", events, params={"fps": "30", "watch": watch}) == {"a", "b"}
    assert _served_by(client, "GET", events, params={"fps": "30"}) == {"a"}
    assert _served_by(client, "GET", events, params={"watch": "0"}) == {"a"}


def test_without_a_relay_a_viewers_stream_goes_to_the_owner(proxy_without_relay):
    # Without Redis only the owner has the session's frames; another node would answer 404.
    client, _ = proxy_without_relay
    for node in ("a", "b"):
        events = f"/api/sessions/{node}.{TOKEN}/events"
        assert _served_by(client, "GET", events, params={"watch": "1"}) == {node}
    assert _served_by(client, "GET", f"/api/sessions/{TOKEN}/events", params={"watch": "1"}) == {"a", "b"}


# Every page that reopens the session named in its query (app/routes/pages.py
# playground_context, app/routes/classroom.py embed): a reload or a language switch.
SESSION_PAGES = ["/", "/learn/seed/layers", "/embed"]


@pytest.mark.parametrize("path", SESSION_PAGES)
def test_a_page_reopening_a_session_goes_to_its_node(proxy, path):
    client, stubs = proxy
    for node in ("a", "b"):
        assert _served_by(client, "GET", path, params={"session": f"{node}.{TOKEN}", "lang": "ja"}) == {node}
        # The dot percent-encoded by the client: still that node.
        before = len(stubs[node].requests)
        assert _served_by(client, "GET", f"{path}?session={node}%2E{TOKEN}") == {node}
        assert f"session={node}%2E{TOKEN}" in stubs[node].requests[before]["path"]  # nginx passed it as sent
    # No node in the id (a single node's id), an unknown node, or no id at all: the pool.
    for sid in (TOKEN, f"zz.{TOKEN}", ""):
        assert _served_by(client, "GET", path, params={"session": sid}) == {"a", "b"}
    assert _served_by(client, "GET", path) == {"a", "b"}
    # A session of a dead node is gone: a live node answers, and the page makes a new one.
    assert _served_by(client, "GET", path, params={"session": f"c.{TOKEN}"}) <= {"a", "b"}


def test_the_path_id_decides_before_near_and_near_before_session(proxy):
    client, _ = proxy
    both = {"near": f"b.{TOKEN}", "session": f"a.{TOKEN}"}
    assert _served_by(client, "GET", f"/api/sessions/a.{TOKEN}", params={"session": f"b.{TOKEN}"}) == {"a"}
    assert _served_by(client, "POST", "/api/sessions", params=both) == {"b"}


@pytest.mark.parametrize("path", ["/ui/sessions", "/api/sessions"])
def test_a_successor_is_created_near_the_old_session(proxy, path):
    client, _ = proxy
    for node in ("a", "b"):
        assert _served_by(client, "POST", path, params={"near": f"{node}.{TOKEN}"}) == {node}
    assert _served_by(client, "POST", path, params={"near": f"zz.{TOKEN}"}) == {"a", "b"}
    # Near a session of a dead node: that session is gone anyway, so a live node takes it.
    assert _served_by(client, "POST", path, params={"near": f"c.{TOKEN}"}) <= {"a", "b"}


def test_a_dead_nodes_sessions_get_a_502_naming_the_node(proxy):
    client, _ = proxy
    r = client.get(f"/api/sessions/c.{TOKEN}")
    assert r.status_code == 502
    body = r.json()
    assert body["code"] == "node_unreachable" and body["params"] == {"node": "c"} and body["field"] == "sid"
    assert "(node c)" in body["message"]
    # … and the pool leaves it out: id-less requests keep being answered.
    for _ in range(6):
        assert client.post("/api/sessions").status_code == 200


def test_streams_are_not_buffered_or_compressed(proxy):
    client, stubs = proxy
    for s in stubs.values():
        s.hold.set()
    try:
        with client.stream("GET", f"/api/sessions/b.{TOKEN}/events", headers={"Accept-Encoding": "gzip"}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in r.headers
            # The stub holds the stream open after its first event: seeing that event now
            # means nginx passed it on without waiting for more.
            lines = r.iter_lines()
            assert next(lines) == "event: node" and next(lines) == "data: b"
    finally:
        for s in stubs.values():
            s.hold.clear()


def test_the_client_address_host_and_scheme_are_forwarded_over_keepalive(proxy):
    client, stubs = proxy
    stub = stubs["a"]
    before = len(stub.requests)
    for _ in range(3):
        client.get(f"/api/sessions/a.{TOKEN}", headers={"X-Forwarded-For": "203.0.113.9"})
        time.sleep(0.01)
    seen = stub.requests[before:]
    assert len(seen) == 3
    host = client.base_url.host + ":" + str(client.base_url.port)
    for req in seen:
        h = req["headers"]
        # The address nginx saw, never the one the client claimed.
        assert h["x-forwarded-for"] == "127.0.0.1" and h["x-real-ip"] == "127.0.0.1"
        assert h["x-forwarded-proto"] == "http" and h["host"] == host
        assert req["version"] == "HTTP/1.1" and "connection" not in h  # keep-alive to the node
    assert len({req["peer"] for req in seen}) == 1  # one upstream connection, reused


# --- the rendered text (no nginx needed) -----------------------------------------------------


def _rendered(tmp_path, **kw) -> str:
    return render({"a": "127.0.0.1:8001", "b": "127.0.0.1:8002"}, "8080", tmp_path, **kw)


def test_the_node_pattern_is_the_apps(tmp_path):
    assert "^" + NODE_RE + "$" == NODE_ID_PATTERN
    conf = _rendered(tmp_path)
    assert conf.count(f"({NODE_RE})") == 3  # the path's, ?near='s and ?session='s node
    assert not re.search(r"\{\{\w+\}\}", conf)  # every field filled in


def test_only_connection_errors_are_retried(tmp_path):
    """A timed-out request may still run on its node: it is never sent to a second one."""
    conf = _rendered(tmp_path)
    retries = re.findall(r"^\s*proxy_next_upstream\s+([^;]*);", conf, re.M)
    assert retries == ["error"]  # no timeout, and no non_idempotent (a sent POST is never resent)
    assert re.search(r"^\s*proxy_next_upstream_tries 2;", conf, re.M)


def test_the_relay_flag_decides_where_viewers_streams_go(tmp_path, capsys):
    relay_rule = '"~^1:" mlp_pool;'
    assert relay_rule in _rendered(tmp_path, relay=True)
    assert relay_rule not in _rendered(tmp_path)
    for argv, expected in ((["--relay"], True), ([], False)):
        main(["--node", "a=127.0.0.1:8001", "--workdir", str(tmp_path), *argv])
        assert (relay_rule in capsys.readouterr().out) is expected
