"""A per-client-address rate limit with bounded memory, and the address of the request
being served.

`RateLimiter` is a token bucket per address: `per_minute` tokens at most, refilled at
`per_minute / 60` a second, so a client may burst up to the whole minute's allowance and
then goes at the steady rate. At most `max_clients` addresses are tracked; past that the
least recently seen one is forgotten (a forgotten address starts again with a full bucket,
so the cap costs a little precision under a flood of addresses, never memory).

`client_address` holds the address of the request being served: `ClientAddress`, a pure
ASGI middleware, sets it from the ASGI scope's `client` (behind a proxy, uvicorn's
proxy-headers handling puts the forwarded address there), so the control layer can charge a
write to its client without every route passing the address along.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar

client_address: ContextVar[str] = ContextVar("client_address", default="unknown")
MAX_CLIENTS = 10_000  # addresses tracked at once (a few hundred bytes each)


class ClientAddress:
    """ASGI middleware: `client_address` is the request's client host while it is served."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = scope.get("client")
        token = client_address.set(str(client[0]) if client else "unknown")
        try:
            return await self.app(scope, receive, send)
        finally:
            client_address.reset(token)


class RateLimiter:
    """Token buckets per key. `per_minute` ≤ 0 means no limit."""

    def __init__(self, per_minute: int, *, max_clients: int = MAX_CLIENTS, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)
        self._lock = threading.Lock()

    def _tokens(self, key: str, now: float) -> float:
        tokens, when = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - when) * self.rate)

    def allows(self, key: str) -> bool:
        """Whether `key` has a write left now (nothing is spent)."""
        if self.capacity <= 0:
            return True
        with self._lock:
            return self._tokens(key, self.clock()) >= 1.0

    def take(self, key: str) -> bool:
        """Spend one write of `key`'s allowance; False (nothing spent) when none is left."""
        if self.capacity <= 0:
            return True
        with self._lock:
            now = self.clock()
            tokens = self._tokens(key, now)
            if tokens < 1.0:
                return False
            self._buckets[key] = (tokens - 1.0, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._buckets)
