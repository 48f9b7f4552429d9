"""Runs uvicorn behind the connection guard (app/connguard.py) with rate-limited logging
(app/logfilter.py), and makes Ctrl-C end open streams promptly instead of waiting on them."""

from __future__ import annotations

import gc
import resource
import sys

import uvicorn

from app import logfilter
from app.connguard import ConnectionLimits, guarded_protocol
from app.main import create_app
from app.netaddr import lan_address
from app.settings import Settings, env_settings
from app.snapshots import SnapshotError, open_snapshot_store

LIMITED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio", "mlp")


class Server(uvicorn.Server):
    def handle_exit(self, sig, frame):
        # Streams never finish by themselves; end them first so uvicorn's graceful
        # shutdown has nothing left to wait for.
        app = self.config.app
        if hasattr(app, "state") and hasattr(app.state, "store"):
            app.state.store.close_streams()
        super().handle_exit(sig, frame)


def main() -> None:
    settings = env_settings()
    try:  # check the snapshot database before serving, so a bad file or database is a clear message
        open_snapshot_store(settings).close()
    except SnapshotError as e:
        print(f"MLP Playground cannot start: {e}", file=sys.stderr)
        hint = "check DB_URL and that PostgreSQL answers" if settings.db_url else "move that file away, or set DB_PATH"
        print(f"To fix it: {hint}.", file=sys.stderr)
        raise SystemExit(2) from None
    app = create_app(settings)
    if settings.host in ("0.0.0.0", "::"):
        print(f"MLP Playground on your network: http://{lan_address()}:{settings.port}/", file=sys.stderr)
        print(
            "Warning: anyone on this network can open and watch sessions; only token holders can control them.",
            file=sys.stderr,
        )
        if not settings.admin_token:
            print(
                "Warning: ADMIN_TOKEN is not set, so anyone on this network can list, rename, delete, save and "
                "import snapshots and read /api/stats. Set ADMIN_TOKEN=<a long random string> to keep that to you.",
                file=sys.stderr,
            )
    config = uvicorn_config(app, settings)
    limiter = logfilter.install(settings.log_repeats_per_minute, LIMITED_LOGGERS)  # after uvicorn's logging setup
    # The start-up objects (the imported libraries' ~100,000) live as long as the server: kept
    # out of the cyclic collector, its full collections under a connection flood take ~10 ms
    # instead of up to 73 ms. Collected first, so no start-up garbage is kept with them.
    gc.collect()
    gc.freeze()
    try:
        Server(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; the shutdown already happened
        pass
    finally:
        limiter.flush()


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit; return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    except (ValueError, OSError):
        return soft


def uvicorn_config(app, settings: Settings) -> uvicorn.Config:
    """uvicorn with the guarded h11 protocol. The connection cap stays at most half the
    open-file limit: the rest is for workers' pipes, the database, static files and the
    connections the guard accepts only to close them."""
    fd_limit = raise_fd_limit()
    max_connections = settings.max_connections  # <= 0: no cap (only to measure the server without it)
    if 0 < fd_limit // 2 < max_connections:
        max_connections = fd_limit // 2
        print(f"MAX_CONNECTIONS lowered to {max_connections}: the open-file limit is {fd_limit}", file=sys.stderr)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(ConnectionLimits.from_settings(settings, max_connections)),
        loop="auto",  # uvicorn's default, said here: uvloop when installed (pyproject.toml), else asyncio
        ws="none",  # no WebSocket routes: an Upgrade would leave the guard's view of the connection
        timeout_keep_alive=settings.keepalive_timeout_seconds,  # type: ignore[arg-type]  # seconds, any float (call_later)
        timeout_graceful_shutdown=3,
        # X-Forwarded-For is believed only from these (the reverse proxy of a cluster): the
        # client address then is the reader's, for the per-client limits and the logs.
        forwarded_allow_ips=settings.trusted_proxies,
        log_level="info",
    )


if __name__ == "__main__":
    main()
