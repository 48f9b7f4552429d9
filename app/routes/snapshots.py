"""Saved snapshots as JSON: save a session, list, read, rename, delete, import a file.

Reading one needs nothing (embed links publish snapshot ids); with ADMIN_TOKEN set,
listing, renaming, deleting, importing and saving also need `X-Admin-Token`.
"""

from __future__ import annotations

from fastapi import APIRouter, File, Response, UploadFile

from app.control import RenameBody, SaveBody
from app.routes.deps import Actions, Admin, AppSettings, Controlled, SnapshotId

router = APIRouter(tags=["snapshots"])


@router.post("/api/sessions/{sid}/snapshots", status_code=201)
async def save_snapshot(record: Controlled, control: Actions, _: Admin, body: SaveBody | None = None):
    """Save the session: config, weights, epoch and loss history. Survives a restart."""
    return await control.save(record, body.name if body else "")


@router.get("/api/snapshots")
async def list_snapshots(control: Actions, _: Admin, limit: int = 100, offset: int = 0):
    return {"snapshots": await control.list_snapshots(limit=limit, offset=offset)}


@router.get("/api/snapshots/{snapshot_id}")
async def read_snapshot(snapshot_id: SnapshotId, control: Actions):
    """The stored snapshot; as a file, it can be imported again (POST /api/snapshots/import).
    Its JSON is the stored text, assembled in a thread: the event loop never encodes it."""
    return Response(await control.snapshot_document(snapshot_id), media_type="application/json")


@router.patch("/api/snapshots/{snapshot_id}")
async def rename_snapshot(snapshot_id: SnapshotId, body: RenameBody, control: Actions, _: Admin):
    return await control.rename_snapshot(snapshot_id, body.name)


@router.delete("/api/snapshots/{snapshot_id}", status_code=204)
async def delete_snapshot(snapshot_id: SnapshotId, control: Actions, _: Admin):
    await control.delete_snapshot(snapshot_id)
    return Response(status_code=204)


@router.post("/api/snapshots/import", status_code=201)
async def import_snapshot(
    control: Actions,
    settings: AppSettings,
    _: Admin,
    file: UploadFile = File(description="a snapshot JSON file exported from here"),
):
    """Store a snapshot from an exported JSON file. A bad file gets 422 naming what is wrong."""
    return await control.import_snapshot(await file.read(settings.max_snapshot_bytes + 1))
