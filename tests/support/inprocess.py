"""The app served in this process, for routes that do not stream: no uvicorn, no port,
requests go through httpx.ASGITransport. The training worker processes still run: the
app's lifespan (which starts them and opens the snapshot store) is entered here, because
ASGITransport does not run it.

ASGITransport hands back a response once the app has sent all of it, so a stream can be
read this way only when the server ends it (max_frames); live streams need LiveServer.

This is the only module of tests/support that imports app.*.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx

from app.main import create_app
from app.settings import Settings  # the one place tests import Settings (and create_app, below)
from tests.support.waiting import wait_until

BASE_URL = "http://localhost"  # a Host the app accepts by default (app/netaddr.allowed_hosts)
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 60.0  # ASGITransport has no timeouts of its own; a stuck request fails the test instead of hanging


def openapi_document() -> dict:
    """The OpenAPI document the app publishes, built without starting anything."""
    return create_app(Settings()).app.openapi()  # .app: the FastAPI app inside the security-header wrapper


class InProcessApp:
    """create_app(Settings(**settings)) with its lifespan running on an event loop in a
    background thread, and a synchronous httpx-like client for it (`client`).

    One event loop runs the lifespan and every request, as under uvicorn: the session store
    delivers worker replies to the loop it was started on.
    """

    def __init__(self, db_path: Path, **settings):
        # The NumPy engine only, as start_server: results must not depend on kernel readiness.
        self.settings = Settings(db_path=db_path, **{"compiled_engine": False, **settings})
        self.asgi = create_app(self.settings)  # the security-headers wrapper; .app is the FastAPI app
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="in-process-app", daemon=True)
        self._lifespan = None
        self._async_client: httpx.AsyncClient | None = None
        self.client: SyncClient | None = None

    def run(self, coro, timeout: float = REQUEST_TIMEOUT):
        """Run a coroutine on the app's loop and return its result (from any other thread)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def start(self) -> InProcessApp:
        self._thread.start()
        self.run(self._enter())
        self.client = SyncClient(self)
        # Ready as /healthz says (LiveServer waits the same way): each worker has sent a heartbeat.
        if not wait_until(lambda: all(w.last_beat is not None for w in self.store.workers), START_TIMEOUT):
            raise RuntimeError(f"the training workers did not start within {START_TIMEOUT:.0f} s")
        return self

    async def _enter(self) -> None:
        fastapi_app = self.asgi.app
        self._lifespan = fastapi_app.router.lifespan_context(fastapi_app)
        await self._lifespan.__aenter__()
        self._async_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.asgi), base_url=BASE_URL)

    async def _exit(self) -> None:
        try:
            if self._async_client is not None:
                await self._async_client.aclose()
        finally:
            if self._lifespan is not None:
                await self._lifespan.__aexit__(None, None, None)

    def stop(self) -> None:
        try:
            if self._thread.is_alive():
                self.run(self._exit())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    @property
    def store(self):
        """The app's session store (app.store.SessionStore), once started."""
        return self.asgi.app.state.store

    def __enter__(self) -> InProcessApp:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SyncClient:
    """The part of httpx.Client the tests use (request, get, post, …), each call run to the
    end on the app's loop. Streams are refused: ASGITransport would buffer them."""

    def __init__(self, app: InProcessApp):
        self._app = app
        self.base_url = httpx.URL(BASE_URL)

    def request(self, method: str, url: str, *, timeout: float | None = None, **kwargs) -> httpx.Response:
        # ASGITransport ignores httpx timeouts: a number here bounds the whole call instead.
        return self._app.run(self._app._async_client.request(method, url, **kwargs), timeout or REQUEST_TIMEOUT)

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs) -> httpx.Response:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs) -> httpx.Response:
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: str, **kwargs) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def stream(self, *args, **kwargs):
        raise TypeError(
            "the in-process client cannot stream (ASGITransport buffers the whole body); "
            "use the live server's client (fixture live_client) for streams"
        )
