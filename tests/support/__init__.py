"""Helpers shared by the tests and the benchmarks.

A plain package: nothing here imports pytest, so benchmarks/ may import it too, and one
copy of each helper serves both (the server under test, the SSE parser, polling).

  live.py       LiveServer: `python -m app` on a free loopback port with its own DB_PATH
  sse.py        the text/event-stream parser (sync and async) and SseReader, a stream
                read by a background thread
  waiting.py    wait_until: poll a predicate until it holds or time runs out
  pixels.py     rgb_pixels: the pixels of a PNG screenshot, for tests that look at the paint
  inprocess.py  InProcessApp: create_app() served in this process through
                httpx.ASGITransport (imports app.*; the only module here that does)

This file imports nothing, so importing one module does not load the others.
"""
