"""Session lifecycle on a dedicated server with short timers: idle pause, TTL eviction."""

from __future__ import annotations

import time

import httpx

from tests.support.live import start_server


def test_unwatched_sessions_pause_then_expire(tmp_path):
    live = start_server(tmp_path, workers=1, idle_pause_seconds=1, session_ttl_seconds=3)
    try:
        with httpx.Client(base_url=live.url, timeout=30) as c:
            made = c.post("/api/sessions", json={"seed": 1}).json()
            sid, auth = made["id"], {"Authorization": f"Bearer {made['control_token']}"}
            assert c.post(f"/api/sessions/{sid}/play", headers=auth).json()["status"] == "running"
            time.sleep(2.5)  # nobody watches or asks: it pauses, keeping what it learned
            status = c.get(f"/api/sessions/{sid}").json()
            assert status["status"] == "paused" and status["epoch"] > 0
            time.sleep(4.5)  # paused and idle past the TTL: it ends, and says so
            gone = c.get(f"/api/sessions/{sid}")
            assert gone.status_code == 410 and gone.json()["code"] == "session_gone"
            assert "expired" in gone.json()["message"]
    finally:
        live.stop()
