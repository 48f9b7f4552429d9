"""For operators: health and server statistics."""

from __future__ import annotations

from fastapi import APIRouter

from app.routes.deps import Admin, Store

router = APIRouter(tags=["meta"])


@router.get("/healthz")
async def healthz():
    return {"status": "ok"}


@router.get("/api/stats")
async def server_stats(store: Store, _: Admin):
    """Sessions, streams, asyncio tasks, threads and resident memory (server and workers).
    Needs X-Admin-Token when ADMIN_TOKEN is set."""
    return store.stats()
