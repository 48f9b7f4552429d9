"""ASGI middleware around the whole app: the request-body limit, the headers every response
carries (security, node), the last-resort 500 and the count of responses by status."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.routes.errors import error_body
from app.settings import Settings

log = logging.getLogger("mlp")


def server_error_response() -> JSONResponse:
    """The 500 of an unexpected error, in the one error shape (its details stay in the log)."""
    return JSONResponse(
        error_body("server", "something went wrong on the server", code="server_error"), status_code=500
    )


def too_large_response(limit: int) -> JSONResponse:
    return JSONResponse(
        error_body(
            "body",
            f"the request body is larger than {limit} bytes (limit max_body_bytes)",
            code="body_too_large",
            params={"max": limit},
        ),
        status_code=413,
    )


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
    response, and X-MLP-Node when NODE_ID is set (which node of a cluster answered). It wraps
    the whole application (see create_app), outside Starlette's error middleware, so even an
    unexpected 500 carries the headers. Pure ASGI, not BaseHTTPMiddleware, which buffers and
    mishandles streaming."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.state = app.state  # the wrapped app's state (the store), for the server's shutdown hook
        csp = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            f"frame-ancestors {settings.embed_origins}"
        )
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if settings.node_id:
            self.headers.append((b"x-mlp-node", settings.node_id.encode()))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.headers if k not in present
                ]
            await send(message)

        # Starlette's error middleware answers 500 and then re-raises; uvicorn would log it
        # and drop the keep-alive connection, so the client's next request on it failed
        # (ECONNRESET). Log here (rate-limited, see app/logfilter.py) and end normally: a
        # complete answer keeps the connection; a half-sent one is closed by uvicorn.
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("Unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await server_error_response()(scope, receive, send_with_headers)


class CountResponses:
    """ASGI wrapper calling `count(status)` for every response started, whoever answered it:
    the routes, the guards inside, or the last-resort 500 of SecurityHeaders, which it wraps
    (see create_app). `app` and `state` are the wrapped app's, as SendTimeout's are."""

    def __init__(self, inner, count: Callable[[int], None]):
        self.inner, self.count = inner, count
        self.app = getattr(inner, "app", inner)
        self.state = getattr(inner, "state", None)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)

        async def counted_send(message):
            if message["type"] == "http.response.start":
                self.count(message["status"])
            await send(message)

        await self.inner(scope, receive, counted_send)
