"""GET /api/sessions/{id}/events: a session's frames as server-sent events.

Events, in order:
  event: history   once, the loss history so far ([epoch, train, test] rows)
  event: frame     the newest frame, at most `fps` a second; on a paused session the
                   current frame at once, then only when something changes
  event: watchers  {"count": n} whenever the number of open streams on the session changes
  event: lesson    {"lesson", "step", "progress"} when the lesson step shown on the session's
                   page, or its exercise's progress, changes (app/routes/lessons.py; not relayed)
  event: closed    once, when the session ends: {"reason": "deleted" | "expired" | "shutdown" |
                   "lost" | "moved", "successor": the id to follow when "moved", else null}
  : ping           a comment after PING_SECONDS without an event (keeps proxies from closing)

What a stream costs the server, whatever its client does:
  - Nothing is queued. The response pulls its next event only when the previous one has
    been handed to the connection, and then takes whatever frame is newest: a slow client
    skips frames instead of falling behind.
  - A frame's SSE bytes are built once per frame (SessionRecord.frame_event) and every
    stream sends that same object, in slices of CHUNK bytes, so the connection's write
    buffer of a client that stops reading holds at most about one slice.
  - A client that has not drained its socket for SEND_TIMEOUT_SECONDS is dropped
    (app/streamguard.py), which ends the stream and unregisters the viewer.
  - Streams are capped per session (MAX_WATCHERS), in all (MAX_STREAMS) and per client
    address (MAX_STREAMS_PER_CLIENT); over a cap the request gets a 429 naming it.
  - After streams end, the server gives freed heap pages back to the system (malloc_trim,
    at most every TRIM_EVERY_S), as workers do after deletes.

Watchers on any node (REDIS_URL and NODE_ID, app/relay.py): a read-only viewer's stream
(`watch=1`) of a session another node owns is served here from Redis, with the same events:
its history as the owner last copied it to Redis (read again for every new stream; the owner
copies it every few seconds once another node relays the session, so the first stream of a
session on a node may get [] or a copy a few seconds old), the newest frame, the viewer
count of all nodes, and `closed` (reason "relay_lost" when Redis is lost). The
caps apply per node, so MAX_WATCHERS is per session and node. Every other stream, and every
stream without REDIS_URL, is served by the owner as above.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import StreamingResponse

from app.errors import FieldError
from app.relay import Relayed
from app.routes.deps import AppSettings, SessionId, Store
from app.routes.lessons import lesson_update
from app.store import SessionRecord, SessionStore, Watcher
from app.worker import MALLOC_TRIM, TRIM_EVERY_S

router = APIRouter(prefix="/api", tags=["stream"])
DEFAULT_FPS = 30  # frames a second when the client does not say
CHUNK = 64 * 1024  # a frame goes to the connection in slices of at most this many bytes
PING_SECONDS = 15.0  # a comment line after this long without an event
PING = b": ping\n\n"
TRIM_DELAY_S = 1.0  # after the last stream of a burst ends: its connection's buffers are gone by then


# The stream's lesson event: given the version this stream sent, the newer one and its JSON.
LessonUpdate = Callable[[int], Awaitable[tuple[int, str] | None]]


def sse(event: str, data: str) -> bytes:
    """One event in the text/event-stream format (data without line breaks: compact JSON)."""
    return f"event: {event}\ndata: {data}\n\n".encode()


class FrameStream(StreamingResponse):
    """text/event-stream, not cached, not buffered by proxies (nginx: X-Accel-Buffering)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes | memoryview], status_code: int = 200):
        # status_code: FastAPI reads the default from the signature for the OpenAPI document.
        super().__init__(content, status_code, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class _Trimmer:
    """malloc_trim(0) in the server process a moment after streams end, at most every
    TRIM_EVERY_S: glibc keeps freed heap pages mapped, so without it the server would stay
    at the peak of its busiest moment. Runs in a thread (it walks the heap)."""

    def __init__(self):
        self.last = float("-inf")
        self.pending = False

    def soon(self) -> None:
        if MALLOC_TRIM is None or self.pending:
            return
        self.pending = True
        delay = max(TRIM_DELAY_S, self.last + TRIM_EVERY_S - time.monotonic())
        asyncio.get_running_loop().call_later(delay, self._start)

    def _start(self) -> None:
        self.pending = False
        self.last = time.monotonic()
        asyncio.get_running_loop().run_in_executor(None, MALLOC_TRIM, 0)


trimmer = _Trimmer()


class Source(Protocol):
    """What a stream reads: a SessionRecord (this node's session) or a Relayed one (another node's)."""

    closed: str | None
    successor: str | None
    frame_event: bytes | None
    seq: int
    changed: asyncio.Event

    @property
    def viewers(self) -> int: ...


def _fps(fps: int | None, settings) -> int:
    if fps is None:  # the page asks for the default, so a server with a lower MAX_FPS still serves it
        return min(DEFAULT_FPS, settings.max_fps)
    if fps > settings.max_fps:
        raise FieldError(
            "fps",
            f"at most {settings.max_fps} frames per second (limit max_fps)",
            code="limit_fps",
            max=settings.max_fps,
        )
    return fps


async def watching(
    sid: SessionId,
    request: Request,
    store: Store,
    settings: AppSettings,
    fps: Annotated[
        int | None,
        Query(ge=1, le=60, description="frames per second at most; default 30, or MAX_FPS when that is lower"),
    ] = None,
    gradients: Annotated[bool, Query(description="include ∂loss/∂W in frames (backprop view)")] = False,
    watch: Annotated[
        bool,
        Query(
            description="a read-only viewer's stream: with REDIS_URL set, any node serves it "
            "(relayed through Redis from the session's node); otherwise an ordinary stream"
        ),
    ] = False,
):
    """Register the viewer before the response starts, so a bad id, a full session or a too
    high fps gets a real 4xx; and always unregister it: FastAPI runs this `finally` from the
    request's exit stack, after the response has ended (however it ended)."""
    client = request.client.host if request.client else ""
    if watch and store.relays(sid):
        watcher = Watcher(float(_fps(fps, settings)), gradients, client)
        relayed = await store.watch_relayed(sid, watcher)  # 404/410 as below, 503 without Redis
        try:
            yield relayed, watcher
        finally:
            store.unwatch_relayed(relayed, watcher)
            trimmer.soon()
        return
    record = store.get(sid)
    watcher = Watcher(float(_fps(fps, settings)), gradients, client)
    if not record.viewers:
        record.frame_event = None  # nobody watched, so frames were not built: wait for a fresh one
    await store.add_watcher(record, watcher)  # checks the caps and appends, no await in between
    try:
        yield record, watcher
    finally:
        store.remove_watcher(record, watcher)
        trimmer.soon()


@router.get(
    "/sessions/{sid}/events",
    response_class=FrameStream,  # not fastapi.sse.EventSourceResponse: its pipeline copies and queues each event per stream
    name="session_events",
)
async def session_events(
    viewing: Annotated[tuple[SessionRecord | Relayed, Watcher], Depends(watching)],
    store: Store,
    request: Request,
    max_frames: Annotated[int | None, Query(ge=1, le=1_000_000, description="close after this many frames")] = None,
) -> FrameStream:
    source, watcher = viewing
    lesson: LessonUpdate | None = None
    if isinstance(source, SessionRecord):  # the lesson step shown on the session's page (app/routes/lessons.py)
        lesson = partial(lesson_update, request.app, store, source)
    return FrameStream(_events(source, watcher, store, max_frames, lesson))


async def _events(
    source: SessionRecord | Relayed,
    watcher: Watcher,
    store: SessionStore,
    max_frames: int | None,
    lesson: LessonUpdate | None = None,
) -> AsyncIterator[bytes | memoryview]:
    history = source.history if isinstance(source, Relayed) else await store.history_json(source)
    yield sse("history", history)
    record: Source = source
    interval = 1.0 / watcher.fps
    sent, last_seq, next_at, watchers, lesson_sent = 0, -1, 0.0, -1, -1
    while True:
        if record.closed is not None:
            yield sse("closed", json.dumps({"reason": record.closed, "successor": record.successor}))
            return
        if record.viewers != watchers:
            watchers = record.viewers
            yield sse("watchers", json.dumps({"count": watchers}))
            continue
        update = await lesson(lesson_sent) if lesson is not None else None
        if update is not None:
            lesson_sent, data = update
            yield sse("lesson", data)
            continue
        event = record.frame_event
        if event is None or record.seq == last_seq:
            try:
                async with asyncio.timeout(PING_SECONDS):
                    await record.changed.wait()
            except TimeoutError:
                yield PING
            continue
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # fps cap; afterwards take whatever is newest
            continue
        last_seq = record.seq
        view = memoryview(event)
        for start in range(0, len(view), CHUNK):
            yield view[start : start + CHUNK]
        del view, event  # no stream keeps an old frame alive while it waits for the next
        sent += 1
        if max_frames is not None and sent >= max_frames:
            return
        now = time.monotonic()
        next_at = max(next_at + interval, now - interval)  # steady pace, no burst after a stall
