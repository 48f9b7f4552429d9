"""Runs uvicorn, and makes Ctrl-C end open streams promptly instead of waiting on them."""
from __future__ import annotations

import socket
import sys

import uvicorn

from app.config import get_settings
from app.main import create_app


def lan_address() -> str:
    """This machine's address on the local network (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: connect() on UDP only picks a route
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


class Server(uvicorn.Server):
    def handle_exit(self, sig, frame):
        # Streams never finish by themselves; end them first so uvicorn's graceful
        # shutdown has nothing left to wait for.
        app = self.config.app
        if hasattr(app, "state") and hasattr(app.state, "store"):
            app.state.store.close_streams()
        super().handle_exit(sig, frame)


def main() -> None:
    settings = get_settings()
    app = create_app(settings)
    if settings.host in ("0.0.0.0", "::"):
        print(f"MLP Playground on your network: http://{lan_address()}:{settings.port}/", file=sys.stderr)
        print("Warning: anyone on this network can open and watch sessions; only token holders can control them.",
              file=sys.stderr)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, timeout_graceful_shutdown=3,
                            log_level="info")
    Server(config).run()


if __name__ == "__main__":
    main()
