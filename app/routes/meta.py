"""For operators: health, server statistics and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.metrics import CONTENT_TYPE, Metrics
from app.routes.deps import Admin, Store
from app.snapshots import SnapshotError, SnapshotStore

router = APIRouter(tags=["meta"])
log = logging.getLogger("mlp")

DB_TIMEOUT_S = 2.0  # a database that takes longer than this to answer one small read is not ready


@router.get("/healthz")
async def healthz(request: Request, store: Store):
    """200 {"status": "ok", …} when the server can serve: at least one training worker heard
    from (a heartbeat within WORKER_HEARTBEAT_TIMEOUT_SECONDS) and the snapshot database
    answering a small read; otherwise 503 {"status": "unavailable", …}. Both parts are listed,
    and "node" (NODE_ID) when set, so a check through the proxy says which node answered."""
    database = await _database(request)
    workers = store.health()
    ready = database["ok"] and any(w["live"] for w in workers)
    body = {"status": "ok" if ready else "unavailable", "workers": workers, "database": database}
    node = request.app.state.settings.node_id
    if node:
        body["node"] = node
    return JSONResponse(body, status_code=200 if ready else 503)


async def _database(request: Request) -> dict:
    """One small read in a thread, with a timeout. Concurrent checks share one read, so a
    hung database holds at most one thread of the pool however often /healthz is asked."""
    state = request.app.state
    probe: asyncio.Future | None = getattr(state, "database_probe", None)
    if probe is None or probe.done():
        snapshots: SnapshotStore = state.snapshots
        probe = state.database_probe = asyncio.ensure_future(asyncio.to_thread(snapshots.ping, DB_TIMEOUT_S))
        probe.add_done_callback(lambda f: f.cancelled() or f.exception())  # a late failure is not "never retrieved"
    try:
        await asyncio.wait_for(asyncio.shield(probe), DB_TIMEOUT_S + 0.5)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {DB_TIMEOUT_S:g} s"}
    except SnapshotError as e:
        log.warning("health check: %s", e)
        return {"ok": False, "error": "the snapshot database cannot be used"}  # details in the server log only
    return {"ok": True}


@router.get("/api/stats")
async def server_stats(store: Store, _: Admin):
    """Sessions, streams, asyncio tasks, threads and resident memory (server and workers).
    Needs X-Admin-Token when ADMIN_TOKEN is set."""
    return store.stats()


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "The Prometheus text format"}},
)
async def metrics(request: Request, _: Admin) -> Response:
    """Sessions, running, watchers, frames published, CPU and resident memory of the server
    and each worker, HTTP responses by status class … in the Prometheus text format
    (app/metrics.py). Read on the event loop, the thread that changes the store. Needs
    X-Admin-Token when ADMIN_TOKEN is set, as /api/stats."""
    registry: Metrics = request.app.state.metrics
    return Response(registry.exposition(), media_type=CONTENT_TYPE)
