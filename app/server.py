"""Runs uvicorn, and makes Ctrl-C end open streams promptly instead of waiting on them."""

from __future__ import annotations

import sys

import uvicorn

from app.main import create_app
from app.netaddr import lan_address
from app.settings import env_settings
from app.snapshots import SnapshotError, SnapshotStore


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
    try:  # check the snapshot database before serving, so a bad file is a clear message
        SnapshotStore(settings.db_path, max_bytes=settings.max_snapshot_bytes, max_count=settings.max_snapshots).close()
    except SnapshotError as e:
        print(f"MLP Playground cannot start: {e}", file=sys.stderr)
        print("Move that file away, or set DB_PATH to another file.", file=sys.stderr)
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
    config = uvicorn.Config(app, host=settings.host, port=settings.port, timeout_graceful_shutdown=3, log_level="info")
    try:
        Server(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; the shutdown already happened
        pass


if __name__ == "__main__":
    main()
