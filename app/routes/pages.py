"""The playground page (GET /): the query pre-fills the config; ?session=<id> reopens a session.
Also the page's panels alone, so a second page controlling the same session can follow it."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.control import Control
from app.querycodec import to_query
from app.routes.deps import Actions, AppSettings, Store, Viewed
from app.routes.render import network_context, page_context, render_panels, templates
from app.settings import Settings
from app.store import SessionStore

router = APIRouter(tags=["pages"], include_in_schema=False)


async def playground_context(
    request: Request, store: SessionStore, control: Control, settings: Settings, fields: dict, **extra
) -> dict:
    """The playground page's context: the session named by ?session= (its config and drawing,
    as its worker last reported them), or a config pre-filled from `fields` (a query)."""
    sid = request.query_params.get("session", "")
    record = store.sessions.get(sid) if sid else None
    if record is not None:
        status, cfg = await control.reported_status(record)  # no wait behind training
        dims, shape_version = status["dims"], status["shape_version"]
    else:
        sid = ""
        cfg, dims, shape_version = control.config_from_query(fields), None, 0
    return page_context(
        request,
        cfg,
        settings,
        session_id=sid,
        query=urlencode(to_query(cfg)),
        **extra,
        **network_context(cfg, dims, shape_version),
    )


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, store: Store, control: Actions, settings: AppSettings):
    """The playground. The query pre-fills the config; ?session=<id> reopens a session."""
    ctx = await playground_context(request, store, control, settings, dict(request.query_params))
    return templates.TemplateResponse(request, "index.html", ctx)


@router.get("/ui/sessions/{sid}/panels", response_class=HTMLResponse)
async def panels(record: Viewed, request: Request, control: Actions, settings: AppSettings):
    """The settings panels of a session (out-of-band swaps): a page whose session changed
    elsewhere (another tab) fetches them when the stream reports a new config_version. The
    frame can arrive before the change's reply: a status call first takes every earlier
    reply, and so the config, from the worker."""
    await control.status(record)
    return HTMLResponse(render_panels(request, record, settings))
