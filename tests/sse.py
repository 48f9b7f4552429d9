"""Reading text/event-stream responses in tests: our own small parser."""
from __future__ import annotations


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
