"""Server-sent events, parsed by hand from text/event-stream (our own small parser: the
tests check what the server writes, so they do not lean on a client library's reading).

One decoder serves three readers: parse_sse (sync lines), aparse_sse (async lines) and
SseReader (a stream read by a background thread, for tests that wait for the next event
with a timeout and for benchmarks that time each frame's arrival).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx


class SseDecoder:
    """Lines in, events out: feed() returns the event that a blank line completes (a dict of
    its fields, data lines joined by newlines), else None. As in browsers, an event the
    stream ends in the middle of (no blank line after it) is never returned."""

    def __init__(self):
        self._event: dict = {}

    def feed(self, line: str) -> dict | None:
        if line == "":
            event, self._event = self._event, {}
            return event or None
        if not line.startswith(":"):  # ":" starts a comment (the keep-alive ping)
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data" and "data" in self._event:
                value = self._event["data"] + "\n" + value
            self._event[name] = value
        return None


def parse_sse(lines):
    """text/event-stream lines → events."""
    decoder = SseDecoder()
    for line in lines:
        event = decoder.feed(line)
        if event is not None:
            yield event


async def aparse_sse(lines):
    """The same for an async iterator of lines (httpx's response.aiter_lines())."""
    decoder = SseDecoder()
    async for line in lines:
        event = decoder.feed(line)
        if event is not None:
            yield event


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as a browser's JSON.parse does."""

    def refuse(const):
        raise ValueError(f"non-standard JSON constant {const}")

    return json.loads(text, parse_constant=refuse)


def stalled_stream(host: str, port: int, path: str, source: str) -> socket.socket:
    """A client that asks for a stream and never reads it: a raw socket from address `source`
    with a 4 KB receive buffer, so the server's writes back up after a few frames."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((source, 0))
    s.connect((host, port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    return s


def shut_socket(response) -> None:
    """Shut down an httpx streaming response's socket, so a thread blocked reading it returns
    at once (closing the response from another thread does not wake the reader)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


END = object()  # what SseReader.next() returns once the stream has ended


class SseReader:
    """One SSE connection (GET url) read by a background thread. Every event is kept with its
    arrival time (time.monotonic, taken as soon as the event's blank line is read).

    Tests walk the events in order with next() / next_frame(), which wait with a timeout
    (and so can show that nothing arrives) without tearing the connection down. Benchmarks
    look frames up by arrival time with frames() / wait_frame() / latest_frame().
    close() shuts the socket, which is what a browser tab going away looks like. A response
    other than 200 is not read: `response` has it, and the reader counts as ended.
    """

    def __init__(self, url: str, params: dict | None = None, *, socket_options=None, read_timeout: float = 60.0):
        transport = httpx.HTTPTransport(socket_options=socket_options) if socket_options else None
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=read_timeout), transport=transport)
        self._cm = self._client.stream("GET", url, params=params)
        self.response = self._cm.__enter__()
        self.received: list[tuple[float, dict]] = []  # (arrival, event), appended by the thread
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._cond = threading.Condition()
        self._cursor = 0  # next() position in `received`
        self._parsed: dict[int, dict] = {}  # index in `received` → the frame's JSON, parsed once
        self._closing = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        if self.response.status_code == 200:
            self._thread.start()
        else:
            self.ended.set()

    def _run(self):
        try:
            for event in parse_sse(self.response.iter_lines()):
                arrival = time.monotonic()
                with self._cond:
                    self.received.append((arrival, event))
                    self._cond.notify_all()
        except BaseException as e:  # never let the thread raise; a test can look at .error
            if not self._closing:  # close() shutting the socket is not an error
                self.error = e
        finally:
            with self._cond:
                self.ended.set()
                self._cond.notify_all()

    # --- in order (tests) --------------------------------------------------------------------
    def next(self, timeout: float):
        """The next event, END once the stream has ended, or None if nothing came within timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._cursor >= len(self.received):
                if self.ended.is_set():
                    return END
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            self._cursor += 1
            return self.received[self._cursor - 1][1]

    def next_frame(self, timeout: float) -> dict | None:
        """The next frame's JSON (parsed strictly, skipping other events); None on timeout or end."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.0, deadline - time.monotonic()))
            if event is None or event is END:
                return None
            if event.get("event") == "frame":
                return strict_json(event["data"])

    # --- by arrival time (benchmarks) --------------------------------------------------------
    def _frame(self, i: int) -> dict:
        if i not in self._parsed:
            self._parsed[i] = strict_json(self.received[i][1]["data"])
        return self._parsed[i]

    def frames(self, since: float = float("-inf"), until: float = float("inf")) -> list[tuple[float, dict, int]]:
        """(arrival, frame JSON, bytes of its data) of every frame that arrived in [since, until)."""
        with self._cond:
            picked = [
                (i, t, len(e["data"]))
                for i, (t, e) in enumerate(self.received)
                if e.get("event") == "frame" and since <= t < until
            ]
        return [(t, self._frame(i), n) for i, t, n in picked]

    def wait_frame(self, pred, since: float, timeout: float) -> tuple[float, dict] | None:
        """The first frame that arrived at or after `since` with pred(frame) true, waiting up to
        timeout for it; None if none came (or the stream ended)."""
        deadline = time.monotonic() + timeout
        i = 0
        with self._cond:
            while True:
                while i < len(self.received):
                    t, event = self.received[i]
                    if t >= since and event.get("event") == "frame" and pred(self._frame(i)):
                        return t, self._frame(i)
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.ended.is_set():
                    return None
                self._cond.wait(left)

    def latest_frame(self) -> dict | None:
        with self._cond:
            last = next(
                (i for i in range(len(self.received) - 1, -1, -1) if self.received[i][1].get("event") == "frame"), None
            )
        return None if last is None else self._frame(last)

    # --- end ---------------------------------------------------------------------------------
    def close(self):
        self._closing = True
        shut_socket(self.response)
        if self._thread.is_alive():
            self._thread.join(5)
        try:
            self._cm.__exit__(None, None, None)
        except Exception:  # the socket is already shut: closing may complain, and that is fine
            pass
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
