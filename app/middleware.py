"""ASGI middleware around the whole app: the request-body limit and the security headers."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.routes.errors import error_body
from app.settings import Settings


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
    response. It wraps the whole application (see create_app), outside Starlette's error
    middleware, so even an unexpected 500 carries the headers. Pure ASGI, not
    BaseHTTPMiddleware, which buffers and mishandles streaming."""

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

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.headers if k not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
