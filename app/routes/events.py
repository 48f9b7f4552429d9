"""GET /api/sessions/{id}/events: a session's frames as server-sent events.

Events, in order:
  event: history   once, the loss history so far ([epoch, train, test] rows)
  event: frame     the newest frame, at most `fps` a second; on a paused session the
                   current frame at once, then only when something changes
  event: watchers  {"count": n} whenever the number of open streams on the session changes
  event: closed    once, when the session ends (deleted, expired, server shutdown)
A stream never queues frames: it sends whatever is newest when its turn comes, so a slow
client skips frames instead of falling behind.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, AsyncIterator

from fastapi import APIRouter, Depends, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.config import FieldError, Settings, get_settings
from app.numbers import json_safe
from app.routes.api import SessionId, get_store
from app.sessions import SessionHandle, SessionStore, Watcher

router = APIRouter(prefix="/api", tags=["stream"])


async def stream_target(sid: SessionId, store: SessionStore = Depends(get_store),
                        settings: Settings = Depends(get_settings)) -> SessionHandle:
    # Checked before the response starts, so a bad id or a full session gets a real 4xx.
    handle = store.get(sid)
    if len(handle.watchers) >= settings.max_watchers:
        raise FieldError("max_watchers", f"this session already has {settings.max_watchers} viewers "
                         "(limit max_watchers)", 429,
                         code="limit_watchers", max=settings.max_watchers)
    return handle


async def watching(handle: SessionHandle = Depends(stream_target), store: SessionStore = Depends(get_store),
                   fps: Annotated[int, Query(ge=1, le=60)] = 30, gradients: bool = False):
    """Register the viewer before the response starts and always unregister it: FastAPI runs
    this `finally` from the request's exit stack, even when it abandons the stream generator."""
    watcher = Watcher(float(fps), gradients)
    if not handle.watchers:
        handle.frame = None  # nobody watched, so frames were not built: wait for a fresh one
    await store.add_watcher(handle, watcher)  # checks MAX_WATCHERS and appends, no await in between
    try:
        yield watcher
    finally:
        store.remove_watcher(handle, watcher)


@router.get("/sessions/{sid}/events", response_class=EventSourceResponse, name="session_events")
async def session_events(
    handle: SessionHandle = Depends(stream_target),
    watcher: Watcher = Depends(watching),
    store: SessionStore = Depends(get_store),
    fps: Annotated[int, Query(ge=1, le=60, description="frames per second at most")] = 30,
    max_frames: Annotated[int | None, Query(ge=1, le=1_000_000, description="close after this many frames")] = None,
    gradients: Annotated[bool, Query(description="include ∂loss/∂W in frames (backprop view)")] = False,
) -> AsyncIterator[ServerSentEvent]:
    try:
        history = await store.call(handle, "history")
    except FieldError:
        history = []
    yield ServerSentEvent(event="history", raw_data=json.dumps(json_safe(history)))
    interval = 1.0 / fps
    sent, last_seq, next_at, watchers = 0, -1, 0.0, -1
    while True:
        if handle.closed is not None:
            yield ServerSentEvent(event="closed", raw_data=json.dumps({"reason": handle.closed}))
            return
        if len(handle.watchers) != watchers:
            watchers = len(handle.watchers)
            yield ServerSentEvent(event="watchers", raw_data=json.dumps({"count": watchers}))
            continue
        if handle.frame is None or handle.seq == last_seq:
            await handle.changed.wait()
            continue
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # fps cap; afterwards take whatever is newest
            continue
        last_seq = handle.seq
        yield ServerSentEvent(event="frame", raw_data=handle.frame.decode(), id=str(last_seq))
        sent += 1
        if max_frames is not None and sent >= max_frames:
            return
        now = time.monotonic()
        next_at = max(next_at + interval, now - interval)  # steady pace, no burst after a stall
