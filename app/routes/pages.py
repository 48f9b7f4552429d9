"""The playground page (GET /): the query pre-fills the config; ?session=<id> reopens a session."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.querycodec import to_query
from app.routes.deps import Actions, AppSettings, Store
from app.routes.render import network_context, page_context, templates

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, store: Store, control: Actions, settings: AppSettings):
    """The playground. The query pre-fills the config; ?session=<id> reopens a session."""
    params = dict(request.query_params)
    sid = params.get("session", "")
    record = store.sessions.get(sid) if sid else None
    if record is not None:
        status = await control.status(record)
        cfg, dims, shape_version = record.config, status["dims"], status["shape_version"]
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
