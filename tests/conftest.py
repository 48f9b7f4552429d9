"""Shared fixtures: a real uvicorn server on a free port, and an httpx client for it.

API and stream tests go through a real server (worker processes included), because
httpx's ASGITransport buffers whole bodies and cannot read a stream.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    proc: subprocess.Popen
    env: dict

    def stop(self, timeout: float = 10.0) -> float:
        """Ctrl-C the server; returns how many seconds it took to exit."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT, as a person pressing Ctrl-C
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return time.monotonic() - start


def start_server(tmp_path: Path, **env_overrides) -> LiveServer:
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "2",
           # Closed test pages leave sessions running; pause them soon so they stop loading the CPU.
           "IDLE_PAUSE_SECONDS": "10",
           "DB_PATH": str(tmp_path / "snapshots.sqlite3"), "PYTHONUNBUFFERED": "1",
           **{k.upper(): str(v) for k, v in env_overrides.items()}}
    with open(tmp_path / f"server-{port}.log", "w") as log:  # the child keeps its own copy of the file
        proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early: {(tmp_path / f'server-{port}.log').read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return LiveServer(url, proc, env)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 30 s")


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> LiveServer:
    """One server shared by the whole test session; tests make their own sessions in it."""
    live = start_server(tmp_path_factory.mktemp("server"))
    yield live
    live.stop()


@pytest.fixture
def client(server) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def make_session(client):
    """Create a session (config kwargs as JSON); returns (id, headers with the bearer token)."""
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
