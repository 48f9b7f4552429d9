"""Only this server's own pages may change things: the Host check and the cross-site guard.

* **Host.** Starlette's TrustedHostMiddleware (registered in app/main.py) answers 400 to a
  request whose `Host` header is not one of `app.netaddr.allowed_hosts` (the port is ignored). A DNS-rebinding page
  (evil.example made to resolve to 127.0.0.1) sends `Host: evil.example`, so it never
  reaches a route, and the Host that share links are built from is always one we chose.
* **Cross-site writes.** A POST, PUT, PATCH or DELETE whose `Origin` is not this server's
  own origin (scheme, host and port, or PUBLIC_URL's), or that the browser marks
  `Sec-Fetch-Site: cross-site`, is refused with 403 (`cross_site`) unless it carries a
  control token (`Authorization: Bearer …`) or the admin token: a page on another site can
  send a form or a simple multipart POST, but never those headers (that needs a CORS
  preflight, which this server does not grant). Reads (GET, HEAD, OPTIONS) are never
  refused here, so embeds and watch pages keep working; the page's own htmx and fetch
  calls are same-origin. Clients that are not browsers send no Origin and pass.

Both are pure ASGI (no BaseHTTPMiddleware, which buffers streams).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from app.errors import FieldError
from app.routes.errors import error_body, status_of
from app.settings import Settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, lower-case with the default port filled
    in; None for "null" or anything unparsable."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not scheme or not host:
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS.get(scheme, 0)


class CrossSiteGuard:
    """ASGI middleware: 403 for a state-changing request from another site without a token."""

    def __init__(self, app, settings: Settings):
        self.app, self.settings = app, settings
        self.public = origin_of(settings.public_url) if settings.public_url else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if self._foreign(scope, headers) and not self._has_token(headers):
            return await self._refuse(scope, receive, send)
        return await self.app(scope, receive, send)

    def _foreign(self, scope, headers: Headers) -> bool:
        if headers.get("sec-fetch-site", "").lower() == "cross-site":
            return True
        origin = headers.get("origin")
        if origin is None:  # not sent by a browser (or a same-origin GET-like request)
            return False
        theirs = origin_of(origin)
        own = origin_of(f"{scope.get('scheme', 'http')}://{headers.get('host', '')}")
        return theirs is None or theirs not in (own, self.public)

    def _has_token(self, headers: Headers) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return True  # the route checks that it is the right one
        admin, given = self.settings.admin_token, headers.get("x-admin-token", "")
        return bool(admin and given and hmac.compare_digest(given.encode(), admin.encode()))

    @staticmethod
    async def _refuse(scope, receive, send) -> None:
        e = FieldError(
            "origin", "a request from another site cannot change anything here without a token", code="cross_site"
        )
        body = error_body(e.field, e.message, code=e.code, params=e.params)
        await JSONResponse(body, status_code=status_of(e))(scope, receive, send)
