"""create_app(): routers, the session store's lifespan, error format and response headers.

Every error the API returns has one JSON shape, whatever raised it:
  {"detail": [{"loc": [...], "msg": "...", "type": "..."}], "field": "hidden_layers.0.units",
   "message": "..."}
`detail` is FastAPI's usual list (clients that know FastAPI keep working); `field` and
`message` name the first problem plainly for people and for the page.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.config import FieldError, Settings, get_settings
from app.sessions import SessionStore
from app.snapshots import SnapshotStore

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("mlp")


def error_body(field: str, message: str, loc: list | None = None, kind: str = "value_error",
               code: str | None = None, params: dict | None = None) -> dict:
    body = {"detail": [{"loc": loc or field.split("."), "msg": message, "type": kind}],
            "field": field, "message": message}
    if code:  # the page translates "error.<code>" with these params
        body["code"], body["params"] = code, params or {}
    return body


def _field_of(loc: tuple) -> str:
    # FastAPI locations start with where the value came from: body, query, path, header.
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def wants_page(request: Request) -> bool:
    """A browser opening a page (not the API or an htmx/fetch call) gets HTML errors."""
    path = request.url.path
    return (not path.startswith(("/api/", "/ui/", "/static/")) and "text/html" in request.headers.get("accept", "")
            and "hx-request" not in request.headers)


def error_page(request: Request, status: int, field: str, message: str):
    from app.routes.pages import error_response

    return error_response(request, status, field, message)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FieldError)
    async def field_error(request: Request, exc: FieldError):
        if wants_page(request):
            return error_page(request, exc.status, exc.field, exc.message)
        return JSONResponse(error_body(exc.field, exc.message, code=exc.code, params=exc.params),
                            status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = _field_of(tuple(first.get("loc", ("body",))))
        message = str(first.get("msg", "invalid value"))
        if first.get("type") == "json_invalid":
            field, message = "body", "the body is not valid JSON"
        elif first.get("type") == "model_attributes_type" and field == "body":
            # Usually a form post or a missing Content-Type: say what the API expects.
            message = "the body must be a JSON object sent with Content-Type: application/json"
        detail = [{"loc": list(e.get("loc", [])), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
                  for e in errors]
        if wants_page(request):
            return error_page(request, 422, field, message)
        return JSONResponse({"detail": detail, "field": field, "message": message, "code": "invalid",
                             "params": {"name": field}}, status_code=422)

    @app.exception_handler(_TooLarge)
    async def too_large(request: Request, exc: "_TooLarge"):
        return too_large_response(exc.limit)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # A bug, never a user error: logged in full, answered in the usual shape.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("server", "something went wrong on the server", code="server_error"),
                            status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        field = "path" if exc.status_code in (404, 405) else "request"
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if wants_page(request):
            return error_page(request, exc.status_code, field, message)
        return JSONResponse(error_body(field, message), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))


def too_large_response(limit: int) -> JSONResponse:
    return JSONResponse(error_body("body", f"the request body is larger than {limit} bytes (limit max_body_bytes)",
                                   code="body_too_large", params={"max": limit}), status_code=413)


class BodyLimit:
    """ASGI middleware: refuse request bodies over the limit with 413, without reading them all.
    `larger` gives some paths their own limit (snapshot imports may be as big as a snapshot)."""

    def __init__(self, app, max_bytes: int, larger: dict[str, int] | None = None):
        self.app, self.max_bytes, self.larger = app, max_bytes, larger or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.larger.get(scope["path"], self.max_bytes)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await too_large_response(limit)(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge as e:
            await too_large_response(e.limit)(scope, receive, send)


class _TooLarge(StarletteHTTPException):
    """An HTTPException so FastAPI's body parsing re-raises it instead of answering 400."""

    def __init__(self, limit: int):
        super().__init__(413)
        self.limit = limit


class SecurityHeaders:
    """ASGI wrapper adding the CSP (with frame-ancestors from settings) and friends to every
    response. It wraps the whole application (see create_app), outside Starlette's error
    middleware, so even an unexpected 500 carries the headers. Pure ASGI, not
    BaseHTTPMiddleware, which buffers and mishandles streaming."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.state = app.state  # the wrapped app's state (the store), for the server's shutdown hook
        csp = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
               f"frame-ancestors {settings.embed_origins}")
        self.headers = [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"no-referrer")]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.headers if k not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None) -> SecurityHeaders:
    """The ASGI application: FastAPI app wrapped in the security headers (`.app` is the FastAPI app)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # Open the snapshot database first: a corrupt or foreign file stops the start-up
        # with its message (CorruptStoreError) instead of being overwritten.
        snapshots = SnapshotStore(settings.db_path, max_bytes=settings.max_snapshot_bytes,
                                  max_count=settings.max_snapshots)
        store = SessionStore(settings)
        store.start()
        app.state.store, app.state.snapshots = store, snapshots
        housekeeping = asyncio.create_task(_housekeeping(store))
        try:
            yield
        finally:
            housekeeping.cancel()
            store.stop()
            snapshots.close()

    app = FastAPI(title="MLP Playground", version="0.1.0", lifespan=lifespan,
                  description="Train small NumPy neural networks on the server and watch them learn live.")
    app.state.settings = settings
    install_error_handlers(app)

    from app.routes import api, classroom, events, pages, snapshots  # keep importing app/ light

    app.include_router(api.router)
    app.include_router(snapshots.router)
    app.include_router(events.router)
    app.include_router(pages.router)
    app.include_router(classroom.router)
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    import_limit = max(settings.max_body_bytes, settings.max_snapshot_bytes + 64_000)  # + multipart framing
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       larger={"/api/snapshots/import": import_limit, "/ui/snapshots/import": import_limit})

    @app.get("/healthz", tags=["meta"])
    async def healthz():
        return {"status": "ok"}

    return SecurityHeaders(app, settings)


async def _housekeeping(store: SessionStore) -> None:
    """Pause sessions that train for nobody, and end the ones idle past the TTL."""
    s = store.settings
    period = max(0.5, min(30.0, s.session_ttl_seconds / 4, s.idle_pause_seconds / 3))
    while True:
        await asyncio.sleep(period)
        store.pause_unwatched()
        store.evict_idle()
