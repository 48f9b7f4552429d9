"""The send timeout of streams: a client that stops reading its stream is dropped.

uvicorn's `send` waits while the connection's write buffer is over its high-water mark
(uvicorn/protocols/http/flow_control.py: `drain` waits until asyncio calls resume_writing),
so a client that never reads makes its stream's `send` wait forever, holding the stream,
its frame and the socket. This ASGI wrapper gives each `send` of a stream path at most
`seconds` to return. When one does not:
  - the connection is aborted (asyncio `transport.abort()`: the descriptor and whatever the
    transport still buffers are freed at once; a plain close would wait for the client to
    read the buffer first, which a stalled client never does);
  - the app's `receive` answers `http.disconnect`, which ends the stream's response
    (Starlette's StreamingResponse listens for it), so the stream's `finally` runs and
    the viewer is unregistered; later `send`s return at once, as after any disconnect.

The transport is uvicorn's (`send` is the bound method of its request-response cycle, which
holds it), so the wrapper sits outermost, around everything that wraps `send`. Under another
server, or when something outside wraps `send`, there is no transport to abort and the
stream still ends through `receive`; the server then closes the connection its own way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("mlp.streams")


def is_stream_path(path: str) -> bool:
    """The SSE routes: /api/sessions/{id}/events."""
    return path.startswith("/api/sessions/") and path.endswith("/events")


def _transport_of(send):
    """uvicorn's asyncio transport behind its `send`, or None."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if callable(getattr(transport, "abort", None)) else None


class SendTimeout:
    """ASGI wrapper: a stream `send` that waits more than `seconds` for the client ends the
    connection. `app` and `state` are the wrapped app's (create_app's callers read them)."""

    def __init__(self, inner, seconds: float, applies: Callable[[str], bool] = is_stream_path):
        self.inner = inner
        self.app = getattr(inner, "app", inner)
        self.state = getattr(inner, "state", None)
        self.seconds = seconds
        self.applies = applies
        self.dropped = 0  # streams ended by the timeout, for /api/stats and tests

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.seconds <= 0 or not self.applies(scope["path"]):
            return await self.inner(scope, receive, send)
        transport = _transport_of(send)
        dropped = asyncio.Event()

        async def timed_send(message) -> None:
            if dropped.is_set():
                return  # as uvicorn's send after a disconnect
            try:
                async with asyncio.timeout(self.seconds):
                    await send(message)
            except TimeoutError:
                dropped.set()
                self.dropped += 1
                log.info("a stream's client read nothing for %.0f s; its connection was closed", self.seconds)
                if transport is not None:
                    transport.abort()

        async def receive_or_drop():
            if dropped.is_set():
                return {"type": "http.disconnect"}
            received = asyncio.ensure_future(receive())
            dropping = asyncio.ensure_future(dropped.wait())
            try:
                await asyncio.wait((received, dropping), return_when=asyncio.FIRST_COMPLETED)
            finally:
                dropping.cancel()
                if not received.done():
                    received.cancel()
            if received.done() and not received.cancelled():
                return received.result()
            return {"type": "http.disconnect"}

        await self.inner(scope, receive_or_drop, timed_send)
