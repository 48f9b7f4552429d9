"""The connection guard: uvicorn's HTTP/1.1 protocol (h11) with the limits it lacks.

uvicorn times out only an idle keep-alive connection between requests. A client that
sends half a request line, or headers and half a body, and then stops is held forever,
and `limit_concurrency` answers 503 *after* accepting, so nothing bounds open sockets:
20,000 such connections exhausted the file descriptors and took the server down. This
subclass, passed as `uvicorn.Config(http=...)`, adds per connection:

- a header timer: the request line and headers must be complete within
  `header_timeout` of the connection opening, or of the first byte of the next request
  on a keep-alive connection (the gap between requests is uvicorn's keep-alive timer);
- a body timer: a request body must be complete within `body_timeout` of its headers;
- no timer while a request is being answered, so a long stream (SSE) lives on;
- at most `max_requests` requests, the last answered with `Connection: close`;
- caps on open connections per client address (a new one over it is closed at once)
  and in all (a new one closes the oldest connection that is waiting on its client, so
  an attacker who fills every slot cannot lock out everyone else; only when every
  connection is being answered is the new one refused).

Closing uses transport.abort(): the descriptor is freed at once, even when a client has
stopped reading what we wrote. Every close is logged as a warning, which the log rate
limit (app/logfilter.py) turns into a summary line under a flood. A limit <= 0 is off.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.settings import Settings

log = logging.getLogger("uvicorn.error")
CLOSE = (b"connection", b"close")
CLIENT_OWES = (h11.IDLE, h11.SEND_BODY)  # h11 states in which we wait on the client's bytes


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_requests: int
    max_connections: int
    max_per_client: int
    uncapped: frozenset[str]  # trusted proxies carry many clients: not capped per address

    @classmethod
    def from_settings(cls, s: Settings, max_connections: int) -> ConnectionLimits:
        return cls(
            header_timeout=s.header_timeout_seconds,
            body_timeout=s.body_timeout_seconds,
            max_requests=s.keepalive_max_requests,
            max_connections=max_connections,
            max_per_client=s.max_connections_per_client,
            uncapped=frozenset(a.strip() for a in s.trusted_proxies.split(",") if a.strip()),
        )


class ConnectionTable:
    """The server's open connections, shared by every protocol instance. Everything runs
    on the one event loop, so there are no locks."""

    def __init__(self, limits: ConnectionLimits):
        self.limits = limits
        self.open: set[GuardedH11Protocol] = set()
        self.per_client: dict[str, int] = {}
        # Connections waiting on their client (for headers or a body), oldest first: the
        # ones a new connection may push out when the server is full.
        self.waiting: dict[GuardedH11Protocol, None] = {}

    def admit(self, conn: GuardedH11Protocol) -> bool:
        lim, host = self.limits, conn.host
        if 0 < lim.max_per_client <= self.per_client.get(host, 0) and host not in lim.uncapped:
            log.warning(
                "Closed a new connection from %s: %d already open (max_connections_per_client)",
                host,
                lim.max_per_client,
            )
            return False
        if 0 < lim.max_connections <= len(self.open):
            oldest = next(iter(self.waiting), None)
            if oldest is None:
                log.warning("Closed a new connection: %d open, all being answered (max_connections)", len(self.open))
                return False
            log.warning(
                "At max_connections (%d): closed the longest-waiting connection, from %s", len(self.open), oldest.host
            )
            oldest.close()
        self.open.add(conn)
        self.per_client[host] = self.per_client.get(host, 0) + 1
        return True

    def release(self, conn: GuardedH11Protocol) -> None:
        """Forget a connection (idempotent: close() and connection_lost() both call it)."""
        if conn in self.open:
            self.open.discard(conn)
            self.waiting.pop(conn, None)
            left = self.per_client[conn.host] - 1
            if left:
                self.per_client[conn.host] = left
            else:
                del self.per_client[conn.host]

    def set_waiting(self, conn: GuardedH11Protocol, waiting: bool) -> None:
        self.waiting.pop(conn, None)  # re-inserted at the end: the newest waiter
        if waiting and conn in self.open:
            self.waiting[conn] = None


class GuardedH11Protocol(H11Protocol):
    """uvicorn's H11Protocol plus the timers, request count and caps above. The hooks are
    the three places h11's state can change: data_received (new bytes), handle_events
    (also run for pipelined requests) and on_response_complete (a response finished)."""

    table: ConnectionTable  # set on the subclass guarded_protocol() makes

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.host = ""
        self._timer: asyncio.TimerHandle | None = None
        self._phase: object = None  # h11.IDLE or h11.SEND_BODY (waiting on the client), or None
        self._counted: object = None  # the request cycle last counted
        self._requests = 0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.host = self.client[0] if self.client else ""
        if not self.table.admit(self):
            transport.abort()
            return
        self._phase = h11.IDLE  # the first request's headers are due from now
        self.table.set_waiting(self, True)
        self._start_timer(self.table.limits.header_timeout, "no complete request headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.table.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase is h11.IDLE and self._timer is None:  # the first byte of the next request
            self._start_timer(self.table.limits.header_timeout, "no complete request headers")
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        self._after_events()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._after_events()

    def close(self) -> None:
        self._cancel_timer()
        self.table.release(self)
        self.transport.abort()

    def _after_events(self) -> None:
        if self.transport.is_closing():
            self._cancel_timer()
            self.table.set_waiting(self, False)
            return
        new_request = self.cycle is not self._counted
        if new_request:  # a request's headers are complete and its ASGI task is not yet running
            self._counted = self.cycle
            self._requests += 1
            if 0 < self.table.limits.max_requests <= self._requests:
                # As if the client had asked to close: uvicorn then answers with
                # `Connection: close` and closes after the response.
                self.headers.append(CLOSE)
        state = self.conn.their_state
        phase = state if state in CLIENT_OWES else None
        if phase is self._phase and not new_request:
            return
        self._phase = phase
        self._cancel_timer()
        self.table.set_waiting(self, phase is not None)
        if phase is h11.SEND_BODY:
            self._start_timer(self.table.limits.body_timeout, "request body incomplete")
        # phase IDLE after a response: uvicorn's keep-alive timer runs until the next
        # request's first byte (data_received); phase None: a request is being answered.

    def _start_timer(self, seconds: float, reason: str) -> None:
        self._cancel_timer()
        if seconds > 0:
            self._timer = self.loop.call_later(seconds, self._timed_out, seconds, reason)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, seconds: float, reason: str) -> None:
        self._timer = None
        log.warning("Closed a connection from %s: %s after %g s", self.host, reason, seconds)
        self.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A protocol class for uvicorn.Config(http=...) with its own table of connections."""

    class GuardedH11(GuardedH11Protocol):
        table = ConnectionTable(limits)

    return GuardedH11
