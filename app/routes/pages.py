"""The playground page (GET /): the query pre-fills the config; ?session=<id> reopens a session.
Also the page's panels alone, so a second page controlling the same session can follow it."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.querycodec import to_query
from app.routes.deps import Actions, AppSettings, Store, Viewed
from app.routes.render import network_context, page_context, render_panels, templates

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, store: Store, control: Actions, settings: AppSettings):
    """The playground. The query pre-fills the config; ?session=<id> reopens a session."""
    params = dict(request.query_params)
    sid = params.get("session", "")
    record = store.sessions.get(sid) if sid else None
    if record is not None:
        status, cfg = await control.reported_status(record)  # no wait behind training
        dims, shape_version = status["dims"], status["shape_version"]
    else:
        sid = ""
        cfg, dims, shape_version = control.config_from_query(params), None, 0
    ctx = page_context(
        request,
        cfg,
        settings,
        session_id=sid,
        query=urlencode(to_query(cfg)),
        **network_context(cfg, dims, shape_version),
    )
    return templates.TemplateResponse(request, "index.html", ctx)


@router.get("/ui/sessions/{sid}/panels", response_class=HTMLResponse)
async def panels(record: Viewed, request: Request, control: Actions, settings: AppSettings):
    """The settings panels of a session (out-of-band swaps): a page whose session changed
    elsewhere (another tab) fetches them when the stream reports a new config_version. The
    frame can arrive before the change's reply: a status call first takes every earlier
    reply, and so the config, from the worker."""
    await control.status(record)
    return HTMLResponse(render_panels(request, record, settings))
