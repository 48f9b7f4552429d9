"""Reading text/event-stream responses in tests: our own small parser."""
from __future__ import annotations

import socket


def parse_sse(lines):
    """text/event-stream lines → events as dicts of their fields (data lines joined by newlines)."""
    event: dict = {}
    for line in lines:
        if line == "":
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):  # ":" starts a comment (keep-alive ping)
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            event[name] = event[name] + "\n" + value if name == "data" and "data" in event else value
    if event:
        yield event


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
