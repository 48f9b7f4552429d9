"""Saved snapshots: save a session, list, rename, delete, export and import as JSON files,
and start a session or an embed from one.

A snapshot is config + weights + epoch + loss history (+ the points of custom data),
stored in SQLite (app/snapshots.py), so it survives a restart. With ADMIN_TOKEN set,
listing, renaming, deleting, importing and saving also need `X-Admin-Token`.
"""
from __future__ import annotations

import hmac
import json
from typing import Annotated

from fastapi import APIRouter, Depends, File, Header, Path, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from app.config import FieldError, Settings, check_limits, get_settings, validate_model
from app.routes.api import controlled, get_store
from app.sessions import SessionHandle, SessionStore
from app.snapshots import SnapshotError, SnapshotStore
from app.training import validate_payload

router = APIRouter(tags=["snapshots"])
SnapshotId = Annotated[str, Path(min_length=1, max_length=64)]


def get_snapshots(request: Request) -> SnapshotStore:
    return request.app.state.snapshots


def admin(settings: Settings = Depends(get_settings),
          x_admin_token: Annotated[str | None, Header(description="needed when ADMIN_TOKEN is set")] = None) -> None:
    """On a shared server (ADMIN_TOKEN set), managing snapshots needs the admin token."""
    if settings.admin_token is None:
        return
    if not x_admin_token:
        raise FieldError("x-admin-token", "this server needs the admin token (X-Admin-Token) for that", 401,
                         code="admin_missing")
    if not hmac.compare_digest(x_admin_token.encode(), settings.admin_token.encode()):
        raise FieldError("x-admin-token", "wrong admin token", 403, code="admin_wrong")


def store_error(e: SnapshotError) -> FieldError:
    text = str(e)
    if "max_snapshot_bytes" in text:
        return FieldError("max_snapshot_bytes", text, 413, code="snapshot_too_large")
    if "max_snapshots" in text:
        return FieldError("max_snapshots", text, 507, code="snapshot_store_full")
    return FieldError("snapshot", text, 503, code="server_busy")


async def _save(snapshots: SnapshotStore, payload: dict, name: str) -> dict:
    try:
        return await run_in_threadpool(snapshots.save, payload, name=name)  # JSON of big weights: off the loop
    except ValueError as e:
        if "non-finite" in str(e):  # a diverged network: NaN/inf weights or losses
            raise FieldError("model", "the network has diverged (NaN or infinite numbers); reset it or lower "
                             "the learning rate before saving", 409, code="model_not_finite")
        raise FieldError("name", str(e), code="snapshot_name")
    except SnapshotError as e:
        raise store_error(e)


class SaveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=200, description="defaults to dataset and epoch")


@router.post("/api/sessions/{sid}/snapshots", status_code=201)
async def save_snapshot(body: SaveBody | None = None, handle: SessionHandle = Depends(controlled),
                        store: SessionStore = Depends(get_store), snapshots: SnapshotStore = Depends(get_snapshots),
                        _: None = Depends(admin)):
    """Save the session: config, weights, epoch and loss history. Survives a restart."""
    state = await store.call(handle, "export")
    name = (body.name if body else "").strip() or f"{state['config']['dataset']} · epoch {state['epoch']}"
    meta = await _save(snapshots, state, name)
    return meta


@router.get("/api/stats", tags=["meta"])
async def server_stats(request: Request, _: None = Depends(admin)):
    """Sessions, streams, asyncio tasks, threads and resident memory (server and workers).
    Needs X-Admin-Token when ADMIN_TOKEN is set."""
    return request.app.state.store.stats()


@router.get("/api/snapshots")
async def list_snapshots(limit: int = 100, offset: int = 0, snapshots: SnapshotStore = Depends(get_snapshots),
                         _: None = Depends(admin)):
    if not 1 <= limit <= 500:
        raise FieldError("limit", "limit must be 1 … 500", code="invalid", name="limit")
    if not 0 <= offset < 2**53:  # SQLite's OFFSET is a 64-bit integer; a bigger one would be a 500
        raise FieldError("offset", "offset must be 0 or more, below 2^53", code="invalid", name="offset")
    return {"snapshots": await run_in_threadpool(snapshots.list, limit=limit, offset=offset)}


@router.get("/api/snapshots/{snapshot_id}")
async def read_snapshot(snapshot_id: SnapshotId, snapshots: SnapshotStore = Depends(get_snapshots)):
    """The stored snapshot; as a file, it can be imported again (POST /api/snapshots/import)."""
    found = await run_in_threadpool(snapshots.get, snapshot_id)
    if found is None:
        raise FieldError("snapshot_id", "no such snapshot", 404, code="snapshot_unknown")
    return found


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


@router.patch("/api/snapshots/{snapshot_id}")
async def rename_snapshot(snapshot_id: SnapshotId, body: RenameBody,
                          snapshots: SnapshotStore = Depends(get_snapshots), _: None = Depends(admin)):
    try:
        meta = await run_in_threadpool(snapshots.rename, snapshot_id, body.name)
    except ValueError as e:
        raise FieldError("name", str(e), code="snapshot_name")
    if meta is None:
        raise FieldError("snapshot_id", "no such snapshot", 404, code="snapshot_unknown")
    return meta


@router.delete("/api/snapshots/{snapshot_id}", status_code=204)
async def delete_snapshot(snapshot_id: SnapshotId, snapshots: SnapshotStore = Depends(get_snapshots),
                          _: None = Depends(admin)):
    if not await run_in_threadpool(snapshots.delete, snapshot_id):
        raise FieldError("snapshot_id", "no such snapshot", 404, code="snapshot_unknown")
    return Response(status_code=204)


@router.post("/api/snapshots/import", status_code=201)
async def import_snapshot(file: UploadFile = File(description="a snapshot JSON file exported from here"),
                          snapshots: SnapshotStore = Depends(get_snapshots),
                          settings: Settings = Depends(get_settings), _: None = Depends(admin)):
    """Store a snapshot from an exported JSON file. A bad file gets 422 naming what is wrong."""
    raw = await file.read(settings.max_snapshot_bytes + 1)
    if len(raw) > settings.max_snapshot_bytes:
        raise FieldError("file", f"the file is larger than {settings.max_snapshot_bytes} bytes "
                         "(limit max_snapshot_bytes)", 413, code="snapshot_too_large")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise FieldError("file", f"not a JSON file: {e}", code="snapshot_not_json")
    payload = document.get("payload", document) if isinstance(document, dict) else document
    validate_payload(payload, lambda cfg: check_limits(cfg, settings))
    name = document.get("name") if isinstance(document, dict) and isinstance(document.get("name"), str) else ""
    return await _save(snapshots, payload, (name or "imported").strip()[:80] or "imported")


# --- htmx: the "Saved networks" dialog ---------------------------------------------------------
def _list_html(request: Request, rows: list[dict]) -> HTMLResponse:
    from app.routes.pages import request_language, templates
    from app.i18n import translator

    html = templates.get_template("partials/_snapshots.html").render(
        {"request": request, "t": translator(request_language(request)), "snapshots": rows})
    return HTMLResponse(html)


async def _rows(snapshots: SnapshotStore) -> list[dict]:
    return await run_in_threadpool(snapshots.list, limit=100)


@router.get("/ui/snapshots", include_in_schema=False)
async def ui_list(request: Request, snapshots: SnapshotStore = Depends(get_snapshots), _: None = Depends(admin)):
    return _list_html(request, await _rows(snapshots))


@router.post("/ui/sessions/{sid}/snapshots", include_in_schema=False)
async def ui_save(request: Request, handle: SessionHandle = Depends(controlled), store: SessionStore = Depends(get_store),
                  snapshots: SnapshotStore = Depends(get_snapshots), _: None = Depends(admin)):
    body = validate_model(SaveBody, {"name": str((await request.form()).get("name", ""))})
    await save_snapshot(body, handle, store, snapshots, None)
    return _list_html(request, await _rows(snapshots))


@router.patch("/ui/snapshots/{snapshot_id}", include_in_schema=False)
async def ui_rename(snapshot_id: SnapshotId, request: Request, snapshots: SnapshotStore = Depends(get_snapshots),
                    _: None = Depends(admin)):
    name = str((await request.form()).get("name", ""))
    await rename_snapshot(snapshot_id, validate_model(RenameBody, {"name": name}), snapshots, None)
    return _list_html(request, await _rows(snapshots))


@router.delete("/ui/snapshots/{snapshot_id}", include_in_schema=False)
async def ui_delete(snapshot_id: SnapshotId, request: Request, snapshots: SnapshotStore = Depends(get_snapshots),
                    _: None = Depends(admin)):
    await delete_snapshot(snapshot_id, snapshots, None)
    return _list_html(request, await _rows(snapshots))


@router.post("/ui/snapshots/import", include_in_schema=False)
async def ui_import(request: Request, file: UploadFile = File(), snapshots: SnapshotStore = Depends(get_snapshots),
                    settings: Settings = Depends(get_settings), _: None = Depends(admin)):
    await import_snapshot(file, snapshots, settings, None)
    return _list_html(request, await _rows(snapshots))
