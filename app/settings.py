"""Everything an operator may tune, from the environment (upper-case names).

Each limit is named in the 4xx/429 a request over it receives. Routes read the app's
settings through routes/deps.py; the core receives the values it needs as arguments.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.node import NODE_ID_PATTERN


def _default_db_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mlp-playground" / "snapshots.sqlite3"


class Settings(BaseSettings):
    """Everything an operator may tune. Environment variables use the upper-case names."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1))  # training processes
    # A worker silent this long is replaced (it beats every 1 s); silent half as long, it gets no new
    # sessions. 10 s, not less: on a machine saturated by other work a healthy worker was seen silent 5 s.
    worker_heartbeat_timeout_seconds: float = 10.0
    # Limits (every one is named in the 4xx/429 a request over it receives).
    max_sessions: int = 200
    max_hidden_layers: int = 8
    max_units: int = 256
    max_points: int = 5000
    max_watchers: int = 100  # SSE streams per session
    max_fps: int = 60
    max_body_bytes: int = 2_000_000
    max_upload_bytes: int = 1_000_000
    max_upload_rows: int = 5000
    max_snapshot_bytes: int = 2_000_000  # one snapshot's JSON; parsing one costs ~25 ms a MB (benchmarks)
    max_snapshots: int = 10_000
    session_ttl_seconds: float = 1800.0  # idle sessions (no stream, not running) are evicted
    idle_pause_seconds: float = 30.0  # a running session nobody watches or calls is paused (nothing lost)
    # --- session lifecycle (app/lifecycle.py) ----------------------------------------------
    release_grace_seconds: float = 20.0  # a released session (its tab closed) ends after this; a reload within keeps it
    unused_session_seconds: float = 120.0  # a session never played or changed ends this long after its viewers left
    hidden_pause_seconds: float = 5.0  # a running session whose viewers all left or hid pauses; it plays when one looks
    # Training pace: a running session advances `epochs_per_frame` epochs per tick, at most
    # `tick_hz` ticks a second, and never spends more than `max_tick_ms` in one tick so one
    # heavy session cannot starve the others on its worker.
    tick_hz: float = 60.0
    idle_tick_hz: float = 30.0
    max_tick_ms: float = 40.0
    grid: int = 100  # heatmap resolution of the output plot (peer: 100×100)
    thumb_stride: int = 5  # neuron thumbnails keep every 5th grid point (centred): 20×20
    history_len: int = 2000  # loss-history points kept per session (older ones thinned)
    timeline_bytes: int = 4_000_000  # per session: checkpoints for the timeline scrubber (thinned past this)
    compiled_engine: bool = True  # train small networks with the compiled kernel (app/nn/compiled); false: NumPy only
    embed_origins: str = "'self'"  # CSP frame-ancestors, space-separated origins
    admin_token: str | None = None
    db_path: Path = Field(default_factory=_default_db_path)

    # --- connections (slow or stalled clients) -------------------------------------------
    header_timeout_seconds: float = 10.0  # a request line and headers must arrive within this
    body_timeout_seconds: float = 30.0  # a request body must arrive within this
    # An idle keep-alive connection is closed after this. Longer than clients' own idle expiry
    # (httpx: 5 s), so the client closes first: when both close at 5 s, a request sent just as
    # the server closes is lost ("server disconnected"; seen once in a 10-minute soak).
    keepalive_timeout_seconds: float = 20.0
    keepalive_max_requests: int = 1000  # requests on one connection before it is closed
    max_connections: int = 2000  # open connections, all clients together
    max_connections_per_client: int = 200  # open connections from one client address
    log_repeats_per_minute: int = 20  # the same log message at most this often; then a summary line
    # --- streams --------------------------------------------------------------------------
    max_streams: int = 1000  # SSE streams, all sessions together
    max_streams_per_client: int = 50  # SSE streams from one client address
    send_timeout_seconds: float = 5.0  # a stream whose client has not drained its socket for this long ends
    # --- memory ---------------------------------------------------------------------------
    max_session_mb: float = 256.0  # estimated memory of one session (parameters, optimizer, data, timeline)
    max_memory_mb: float = 4096.0  # estimated memory of all sessions together
    # --- who may call -----------------------------------------------------------------------
    allowed_hosts: str = ""  # extra Host names to accept, comma-separated (localhost names always are)
    public_url: str | None = None  # the address share links use (e.g. https://playground.example.org)
    snapshot_writes_per_minute: int = 30  # saves and imports from one client address
    trusted_proxies: str = "127.0.0.1,::1"  # addresses whose X-Forwarded-For is believed
    # --- more than one machine (README → Beyond one machine); all unset on one machine ------
    # This node's name: session ids it creates start with "{node_id}." (app/node.py), and every
    # response says X-MLP-Node. Lower-case letters, digits and '-', at most 16.
    node_id: str | None = Field(default=None, pattern=NODE_ID_PATTERN)
    db_url: str | None = None  # postgresql://… : snapshots in PostgreSQL instead of the SQLite file at db_path
    redis_url: str | None = None  # redis://… : frames relayed so any node can serve a session's watchers


@lru_cache
def env_settings() -> Settings:
    """The environment's settings (the app's own are app.state.settings)."""
    return Settings()
