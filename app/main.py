"""create_app(): the routers, the lifespan of the session and snapshot stores, error
handlers and middleware."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from app.broadcast import Broadcasts
from app.control import Control
from app.metrics import Metrics
from app.middleware import (
    BodyLimit,
    CountResponses,
    SecurityHeaders,
    _TooLarge,
    server_error_response,
    too_large_response,
)
from app.netaddr import allowed_hosts
from app.origin import CrossSiteGuard
from app.ratelimit import ClientAddress
from app.routes.errors import install_error_handlers
from app.settings import Settings, env_settings
from app.snapshots import open_snapshot_store
from app.store import SessionStore
from app.streamguard import SendTimeout

ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None) -> SendTimeout:
    """The ASGI application: FastAPI app wrapped in the security headers and the streams' send
    timeout (`.app` is the FastAPI app, `.state` its state)."""
    settings = settings or env_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # Open the snapshot database first: a corrupt or foreign file stops the start-up
        # with its message (CorruptStoreError) instead of being overwritten.
        snapshots = open_snapshot_store(settings)
        store = SessionStore(settings)
        store.start()
        app.state.store, app.state.snapshots = store, snapshots
        app.state.control = Control(store, snapshots, settings)
        app.state.broadcasts = Broadcasts(store, app.state.control)  # shared embed sessions
        housekeeping = asyncio.create_task(_housekeeping(store))
        try:
            yield
        finally:
            housekeeping.cancel()
            store.stop()
            snapshots.close()

    app = FastAPI(
        title="MLP Playground",
        version="0.1.0",
        lifespan=lifespan,
        description="Train small NumPy neural networks on the server and watch them learn live.",
    )
    app.state.settings = settings
    app.state.metrics = metrics = Metrics(settings, lambda: getattr(app.state, "store", None))  # GET /metrics
    install_error_handlers(app)

    @app.exception_handler(_TooLarge)
    async def too_large(request, exc: _TooLarge):
        return too_large_response(exc.limit)

    @app.exception_handler(Exception)  # Starlette's error middleware sends it, then re-raises (see SecurityHeaders)
    async def unexpected(request, exc: Exception):
        return server_error_response()

    from app.routes import api, classroom, events, lessons, meta, pages, snapshots, ui  # keep importing app/ light

    for module in (api, snapshots, events, pages, ui, classroom, meta, lessons):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    import_limit = max(settings.max_body_bytes, settings.max_snapshot_bytes + 64_000)  # + multipart framing
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        larger={"/api/snapshots/import": import_limit, "/ui/snapshots/import": import_limit},
    )
    app.add_middleware(ClientAddress)  # the client address a snapshot write is charged to
    app.add_middleware(CrossSiteGuard, settings=settings)  # 403 for another site's writes
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings), www_redirect=False)  # 400

    # Outermost, so a stream's `send` is the server's own (see app/streamguard.py); the count
    # outside the security headers, so it sees their last-resort 500 too.
    counted = CountResponses(SecurityHeaders(app, settings), metrics.count_response)
    return SendTimeout(counted, settings.send_timeout_seconds)


async def _housekeeping(store: SessionStore) -> None:
    """Pause sessions that train for nobody, and end the ones idle past the TTL."""
    s = store.settings
    period = max(0.5, min(30.0, s.session_ttl_seconds / 4, s.idle_pause_seconds / 3))
    period = max(0.25, min(period, s.release_grace_seconds / 4, s.hidden_pause_seconds / 4))  # app/lifecycle.py
    while True:
        await asyncio.sleep(period)
        store.pause_unwatched()
        store.evict_idle()
        store.sweep()  # released, unused and unwatched sessions (app/lifecycle.py)
