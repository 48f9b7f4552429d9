"""Shared fixtures. Two ways to reach the app:

- `server` / `live_client`: a real `python -m app` (uvicorn and worker processes) on a free
  loopback port, shared by the test session. Streams, the browser and lifecycle tests need it.
- `app_client`: the app in this process through httpx.ASGITransport (tests/support/inprocess.py),
  with its lifespan (and so its worker processes) running; no port, no uvicorn. For routes
  that do not stream.

`client` is the live one here; tests/api/conftest.py makes it the in-process one there.
`make_session` creates sessions with whichever `client` the test gets.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.live import ROOT, LiveServer, free_port, start_server  # noqa: F401  (also imported from here by e2e tests)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> LiveServer:
    """One server shared by the whole test session; tests make their own sessions in it."""
    live = start_server(tmp_path_factory.mktemp("server"))
    yield live
    live.stop()


@pytest.fixture
def live_client(server) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def client(live_client) -> httpx.Client:
    return live_client


@pytest.fixture(scope="session")
def in_process_app(tmp_path_factory):
    """The app served in this process (one worker process is enough for these tests)."""
    from tests.support.inprocess import InProcessApp  # imports app.*: only when a test needs it

    app = InProcessApp(tmp_path_factory.mktemp("in-process") / "snapshots.sqlite3", workers=1, idle_pause_seconds=10)
    app.start()
    yield app
    app.stop()


@pytest.fixture
def app_client(in_process_app):
    return in_process_app.client


@pytest.fixture
def make_session(client):
    """Create a session (config kwargs as JSON); returns (id, headers with the bearer token).
    Every session made is deleted at the end of the test."""
    made = []

    def make(**config):
        r = client.post("/api/sessions", json=config)
        assert r.status_code == 201, r.text
        body = r.json()
        auth = {"Authorization": f"Bearer {body['control_token']}"}
        made.append((body["id"], auth))
        return body["id"], auth

    yield make
    for sid, auth in made:
        client.delete(f"/api/sessions/{sid}", headers=auth)
