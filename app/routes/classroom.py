"""Classroom and wiki pages: the watch page, its QR code and share links, and embeds.

A watch page shows a session live without controls and never contains its token. The
links handed out use PUBLIC_URL when it is set, otherwise an address students can reach
(see app/netaddr.py), built from a Host header the Host check has already accepted.
"""

from __future__ import annotations

import io
from typing import Annotated
from urllib.parse import urlencode

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.broadcast import Broadcasts as SharedSessions
from app.control import config_fields_from_query
from app.errors import FieldError
from app.netaddr import reachable_from_others, share_base_url
from app.querycodec import to_query
from app.routes.deps import Actions, AppSettings, SessionId, Store
from app.routes.render import network_context, page_context, templates
from app.settings import Settings

router = APIRouter(tags=["classroom"])


def _broadcasts(request: Request) -> SharedSessions:
    return request.app.state.broadcasts


Broadcasts = Annotated[SharedSessions, Depends(_broadcasts)]  # shared embed sessions (app/broadcast.py)

# Parts of the page an embed can hide with ?hide=a,b,…
HIDEABLE = ("header", "transport", "hyper", "data", "structure", "output", "chart", "plot", "metrics")


def base_url(request: Request, settings: Settings) -> str:
    return share_base_url(settings, request.url)


@router.get("/s/{sid}", response_class=HTMLResponse, name="watch_page", include_in_schema=False)
async def watch_page(sid: SessionId, request: Request, store: Store, control: Actions, settings: AppSettings):
    """The same live view without controls. Needs no token and never contains one."""
    moved = store.successor_of(sid) if sid not in store.sessions else None
    if moved is not None:  # the teacher moved on: an old link or QR code leads to the session now shown
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/s/{moved}{query}", status_code=307)
    record = store.get(sid)
    status, cfg = await control.reported_status(record)  # a hall opening the page waits for no worker
    ctx = page_context(
        request,
        cfg,
        settings,
        session_id=sid,
        query="",
        controls=False,
        body_class="watching",
        entry="watch",
        **network_context(cfg, status["dims"], status["shape_version"], controls=False),
    )
    return templates.TemplateResponse(request, "watch.html", ctx)


@router.get("/s/{sid}/qr.svg", name="watch_qr")
async def watch_qr(sid: SessionId, request: Request, store: Store, settings: AppSettings):
    """A QR code of the watch link, as SVG: sharp at any size, scannable from the back of a room."""
    store.get(sid)
    qr = segno.make(f"{base_url(request, settings)}/s/{sid}", error="m")
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=1, border=2, xmldecl=False, omitsize=True, dark="#000", light="#fff")
    return Response(out.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "max-age=3600"})


@router.get("/api/sessions/{sid}/share", tags=["sessions"])
async def share_info(sid: SessionId, request: Request, store: Store, settings: AppSettings):
    """Links to hand out: watch page, its QR code, the config link and an embed snippet. No token."""
    record = store.get(sid)
    base = base_url(request, settings)
    info = {
        "watch_url": f"{base}/s/{sid}",
        "qr_url": f"/s/{sid}/qr.svg",
        "config_url": None,
        "embed_url": None,
        "embed_html": None,
        "reachable": reachable_from_others(settings.host),
        "watchers": record.viewers,  # on every node (app/relay.py)
    }
    if record.config.dataset != "custom":  # uploaded or edited points do not fit in a URL: save a snapshot
        query = urlencode(to_query(record.config))
        info["config_url"], info["embed_url"] = f"{base}/?{query}", f"{base}/embed?{query}"
        info["embed_html"] = (
            f'<iframe src="{info["embed_url"]}" width="1000" height="640" style="border:0" '
            'title="MLP Playground" loading="lazy"></iframe>'
        )
    return info


def parse_hide(value: str | None) -> set[str]:
    parts = {p for p in (value or "").split(",") if p}
    unknown = parts - set(HIDEABLE)
    if unknown:
        raise FieldError("hide", f"unknown part {sorted(unknown)[0]!r}; choose from {', '.join(HIDEABLE)}")
    return parts


@router.get("/embed", response_class=HTMLResponse, include_in_schema=False)
async def embed(request: Request, control: Actions, settings: AppSettings, store: Store):
    """The playground with minimal chrome for an iframe: same query as /, plus autoplay=1 and
    hide=part,… (header, transport, hyper, data, structure, output, chart, plot, metrics).
    Its readers share one session (POST /embed/join); ?session= reopens a reader's own copy."""
    params = dict(request.query_params)
    hide = parse_hide(params.get("hide"))
    own = store.sessions.get(params.get("session", ""))  # a reader's fork, after a reload
    cfg = own.config if own is not None else control.config_from_query(params)
    status: dict = await control.status(own) if own is not None else {"dims": None, "shape_version": 0}
    ctx = page_context(
        request,
        cfg,
        settings,
        session_id=own.id if own is not None else "",
        query=urlencode(to_query(cfg)),
        embed=True,
        hide=hide,
        autoplay=params.get("autoplay") == "1",
        **network_context(cfg, status["dims"], status["shape_version"]),
    )
    ctx["body_class"] = "embed " + " ".join(f"hide-{h}" for h in sorted(hide))
    return templates.TemplateResponse(request, "index.html", ctx)


@router.get("/embed/snapshot/{snapshot_id}", response_class=HTMLResponse, include_in_schema=False)
async def embed_snapshot(snapshot_id: str, request: Request, control: Actions, settings: AppSettings):
    """An embed of a saved snapshot: each viewer gets a session with its trained weights."""
    found, cfg = await control.snapshot_config(snapshot_id[:64])
    hide = parse_hide(request.query_params.get("hide"))
    ctx = page_context(
        request,
        cfg,
        settings,
        session_id="",
        query="",
        embed=True,
        hide=hide,
        autoplay=request.query_params.get("autoplay") == "1",
        snapshot_id=found["snapshot_id"],
        **network_context(cfg, None, 0),
    )
    ctx["body_class"] = "embed " + " ".join(f"hide-{h}" for h in sorted(hide))
    return templates.TemplateResponse(request, "index.html", ctx)


@router.post("/embed/join", tags=["classroom"])
async def embed_join(request: Request, shared: Broadcasts):
    """The session every reader of this embed setup watches (app/broadcast.py): form fields are
    the embed's query (or `snapshot`), plus `autoplay`. No control token: a reader who
    changes something forks their own copy first (POST /embed/{id}/fork)."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    autoplay = form.pop("autoplay", "") == "1"
    if form.get("snapshot"):
        record = await shared.join_snapshot(form["snapshot"][:64], autoplay)
    else:
        record = await shared.join_query(config_fields_from_query(form), autoplay)
    return {"id": record.id, "broadcast": True, "config": record.config.model_dump(), "status": record.status}


@router.post("/embed/{sid}/fork", status_code=201, tags=["classroom"])
async def embed_fork(sid: SessionId, request: Request, shared: Broadcasts):
    """A reader's own copy of a shared embed session, continuing from its weights and epoch;
    answers like POST /api/sessions (with the copy's control token)."""
    record = await shared.fork(sid)
    return {"id": record.id, "control_token": record.token, "config": record.config.model_dump(), "forked_from": sid}
