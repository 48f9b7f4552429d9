"""GET /api/sessions/{id}/events: a session's frames as server-sent events.

Events, in order:
  event: history   once, the loss history so far ([epoch, train, test] rows)
  event: frame     the newest frame, at most `fps` a second; on a paused session the
                   current frame at once, then only when something changes
  event: watchers  {"count": n} whenever the number of open streams on the session changes
  event: closed    once, when the session ends: {"reason": "deleted" | "expired" | "shutdown" |
                   "lost" | "moved", "successor": the id to follow when "moved", else null}
A stream never queues frames: it sends whatever is newest when its turn comes, so a slow
client skips frames instead of falling behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app import protocol as cmd
from app.errors import FieldError
from app.numbers import json_safe
from app.routes.deps import AppSettings, SessionId, Store
from app.store import SessionRecord, Watcher

router = APIRouter(prefix="/api", tags=["stream"])
DEFAULT_FPS = 30  # frames a second when the client does not say


async def watching(
    sid: SessionId,
    store: Store,
    settings: AppSettings,
    fps: Annotated[
        int | None,
        Query(ge=1, le=60, description="frames per second at most; default 30, or MAX_FPS when that is lower"),
    ] = None,
    gradients: Annotated[bool, Query(description="include ∂loss/∂W in frames (backprop view)")] = False,
):
    """Register the viewer before the response starts, so a bad id, a full session or a too
    high fps gets a real 4xx; and always unregister it: FastAPI runs this `finally` from the
    request's exit stack, even when it abandons the stream generator."""
    record = store.get(sid)
    if fps is None:  # the page asks for the default, so a server with a lower MAX_FPS still serves it
        fps = min(DEFAULT_FPS, settings.max_fps)
    elif fps > settings.max_fps:
        raise FieldError(
            "fps",
            f"at most {settings.max_fps} frames per second (limit max_fps)",
            code="limit_fps",
            max=settings.max_fps,
        )
    watcher = Watcher(float(fps), gradients)
    if not record.watchers:
        record.frame = None  # nobody watched, so frames were not built: wait for a fresh one
    await store.add_watcher(record, watcher)  # checks MAX_WATCHERS and appends, no await in between
    try:
        yield record, watcher
    finally:
        store.remove_watcher(record, watcher)


@router.get("/sessions/{sid}/events", response_class=EventSourceResponse, name="session_events")
async def session_events(
    viewing: Annotated[tuple[SessionRecord, Watcher], Depends(watching)],
    store: Store,
    max_frames: Annotated[int | None, Query(ge=1, le=1_000_000, description="close after this many frames")] = None,
) -> AsyncIterator[ServerSentEvent]:
    record, watcher = viewing
    try:
        history = await store.call(record, cmd.History(record.id))
    except FieldError:
        history = []
    yield ServerSentEvent(event="history", raw_data=json.dumps(json_safe(history)))
    interval = 1.0 / watcher.fps
    sent, last_seq, next_at, watchers = 0, -1, 0.0, -1
    while True:
        if record.closed is not None:
            yield ServerSentEvent(
                event="closed", raw_data=json.dumps({"reason": record.closed, "successor": record.successor})
            )
            return
        if len(record.watchers) != watchers:
            watchers = len(record.watchers)
            yield ServerSentEvent(event="watchers", raw_data=json.dumps({"count": watchers}))
            continue
        if record.frame is None or record.seq == last_seq:
            await record.changed.wait()
            continue
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # fps cap; afterwards take whatever is newest
            continue
        last_seq = record.seq
        yield ServerSentEvent(event="frame", raw_data=record.frame, id=str(last_seq))
        sent += 1
        if max_frames is not None and sent >= max_frames:
            return
        now = time.monotonic()
        next_at = max(next_at + interval, now - interval)  # steady pace, no burst after a stall
