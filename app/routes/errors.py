"""The web layer's side of errors: HTTP statuses for the core's error codes, and the one
JSON shape every error answer has, whatever raised it:
  {"detail": [{"loc": [...], "msg": "...", "type": "..."}], "field": "hidden_layers.0.units",
   "message": "...", "code": "limit_units", "params": {...}}
`detail` is FastAPI's usual list (clients that know FastAPI keep working); `field` and
`message` name the first problem plainly; `code` and `params` let the page translate it.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import FieldError

log = logging.getLogger("mlp")

# Every code whose answer is not 422 (a bad value). One table, so a reader sees them all.
STATUS_BY_CODE = {
    "auth_missing": 401,
    "admin_missing": 401,
    "auth_wrong": 403,
    "admin_wrong": 403,
    "cross_site": 403,
    "session_unknown": 404,
    "snapshot_unknown": 404,
    "no_checkpoint": 404,
    "lesson_unknown": 404,
    "lesson_step_unknown": 404,
    "diverged_reset_first": 409,
    "custom_no_regenerate": 409,
    "not_broadcast": 409,
    "model_not_finite": 409,
    "session_gone": 410,
    "snapshot_too_large": 413,
    "body_too_large": 413,
    "limit_sessions": 429,
    "limit_watchers": 429,
    "limit_streams": 429,
    "limit_streams_per_client": 429,
    "limit_memory": 429,
    "limit_snapshot_writes": 429,
    "server_error": 500,
    "server_busy": 503,
    "snapshot_store_unavailable": 503,
    "relay_unavailable": 503,
    "worker_lost": 503,
    "snapshot_store_full": 507,
}


def status_of(e: FieldError) -> int:
    return STATUS_BY_CODE.get(e.code or "", 422)


def error_body(
    field: str,
    message: str,
    loc: list | None = None,
    kind: str = "value_error",
    code: str | None = None,
    params: dict | None = None,
) -> dict:
    body: dict = {
        "detail": [{"loc": loc or field.split("."), "msg": message, "type": kind}],
        "field": field,
        "message": message,
    }
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
    return (
        not path.startswith(("/api/", "/ui/", "/static/"))
        and "text/html" in request.headers.get("accept", "")
        and "hx-request" not in request.headers
    )


def _error_page(request: Request, status: int, field: str, message: str):
    from app.routes.render import error_response  # the templates load only when a page needs them

    return error_response(request, status, field, message)


def _validation_answer(request: Request, exc: RequestValidationError):
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    field = _field_of(tuple(first.get("loc", ("body",))))
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        field, message = "body", "the body is not valid JSON"
    elif first.get("type") == "model_attributes_type" and field == "body":
        # Usually a form post or a missing Content-Type: say what the API expects.
        message = "the body must be a JSON object sent with Content-Type: application/json"
    detail = [{"loc": list(e.get("loc", [])), "msg": str(e.get("msg", "")), "type": e.get("type", "")} for e in errors]
    if wants_page(request):
        return _error_page(request, 422, field, message)
    return JSONResponse(
        {"detail": detail, "field": field, "message": message, "code": "invalid", "params": {"name": field}},
        status_code=422,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FieldError)
    async def field_error(request: Request, exc: FieldError):
        status = status_of(exc)
        if wants_page(request):
            return _error_page(request, status, exc.field, exc.message)
        return JSONResponse(error_body(exc.field, exc.message, code=exc.code, params=exc.params), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return _validation_answer(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # A bug, never a user error: logged in full, answered in the usual shape.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("server", "something went wrong on the server", code="server_error"), status_code=500
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        field = "path" if exc.status_code in (404, 405) else "request"
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if wants_page(request):
            return _error_page(request, exc.status_code, field, message)
        return JSONResponse(
            error_body(field, message), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )
