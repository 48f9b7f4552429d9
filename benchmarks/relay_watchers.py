"""Issue 15: one session watched by N streams spread over two nodes (REDIS_URL, app/relay.py),
against the same N streams on the one node that owns the session, measured in the same run.

Two nodes ("a" owns the session, "b" relays it) with one worker each share a throw-away
Redis (deploy/redis.py), all on 127.0.0.1. The session trains; N read-only streams
(`watch=1`, the page's default frame rate) are opened:
  reference   all N on a
  relayed     N/2 on a, N/2 on b (b's come through Redis)
For each: frames/s per watcher (median and p10 over the streams), and the CPU per watcher
of the server processes (a's, b's and Redis; the training workers are reported apart: they
do the same work in both runs), in milliseconds of CPU per second per watcher.

The streams are read by raw sockets in this process that only count frames, so the client
costs little next to the servers; still, on a 2-core machine client and servers share the
cores: compare the two rows, not the absolute figures across machines.

Run: .venv/bin/python benchmarks/relay_watchers.py [--watchers 300] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from support import LOOPBACK, LiveServer, Samples, cpu_seconds, create, header, row, run_main

from deploy.redis import Redis
from tests.support.live import free_port

MAX_WATCHERS = 1000  # bounds: streams, seconds
MAX_SECONDS = 60.0
MARK = b"event: frame\n"
SETTLE_S = 3.0  # after the streams open: the owner counts b's viewers (≤ 2 s) before measuring


async def count_frames(port: int, path: str, counts: list[int], i: int, stop: asyncio.Event) -> None:
    """One stream on a raw socket: counts frame events (a marker split between two reads is
    found through the kept tail), never parses them."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n\r\n".encode())
    tail = b""
    try:
        while not stop.is_set():
            chunk = await reader.read(256 * 1024)
            if not chunk:
                return
            data = tail + chunk
            counts[i] += data.count(MARK)
            tail = data[-(len(MARK) - 1) :]
    finally:
        writer.close()


def server_cpu(servers: list[LiveServer], redis: Redis) -> tuple[float, float]:
    """(server processes + Redis, training workers) CPU seconds so far."""
    main = sum(cpu_seconds(s.proc.pid) or 0.0 for s in servers)
    main += (cpu_seconds(redis.proc.pid) or 0.0) if redis.proc else 0.0
    workers = sum(cpu_seconds(pid) or 0.0 for s in servers for pid, r in s.child_pids().items() if r == "worker")
    return main, workers


async def measure(placement: list[LiveServer], sid: str, seconds: float, servers, redis) -> dict:
    """Open one stream per entry of `placement` (the node it goes to), settle, count frames for
    `seconds`; returns frames/s per stream by node, and CPU per watcher."""
    counts = [0] * len(placement)
    stop = asyncio.Event()
    path = f"/api/sessions/{sid}/events?watch=1"
    tasks = [asyncio.create_task(count_frames(s.port, path, counts, i, stop)) for i, s in enumerate(placement)]
    await asyncio.sleep(SETTLE_S)
    before, cpu0, t0 = list(counts), server_cpu(servers, redis), time.monotonic()
    await asyncio.sleep(seconds)
    after, cpu1, span = list(counts), server_cpu(servers, redis), time.monotonic() - t0
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    rates: dict[str, Samples] = {}
    for s, b, a in zip(placement, before, after):
        rates.setdefault(s.env["NODE_ID"], Samples("frames/s")).add((a - b) / span)
    n = len(placement)
    return {
        "rates": rates,
        "server_ms": (cpu1[0] - cpu0[0]) / span / n * 1000,
        "worker_ms": (cpu1[1] - cpu0[1]) / span / n * 1000,
        "n": n,
    }


def report(label: str, m: dict) -> None:
    for node, samples in sorted(m["rates"].items()):
        samples.print(f"{label}, {len(samples)} on {node}: frames/s per watcher", "median", "p10")
    row(f"{label}: server CPU per watcher (a, b, Redis)", f"{m['server_ms']:.2f} ms/s", "")
    row(f"{label}: training workers' CPU per watcher", f"{m['worker_ms']:.2f} ms/s", "the same work in both")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--watchers", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    n, seconds = max(2, min(args.watchers, MAX_WATCHERS)), max(1.0, min(args.seconds, MAX_SECONDS))
    caps = dict(max_watchers=n + 10, max_streams=n + 50, max_streams_per_client=n + 10)
    caps |= dict(max_connections_per_client=n + 50, max_connections=n + 100, workers=1, idle_pause_seconds=600)
    with tempfile.TemporaryDirectory(prefix="mlp-relay-bench-") as tmp, Redis(free_port(), Path(tmp)) as redis:
        a = LiveServer(Path(tmp) / "a", node_id="a", redis_url=redis.url, **caps)
        b = LiveServer(Path(tmp) / "b", node_id="b", redis_url=redis.url, **caps)
        with a, b, httpx.Client(base_url=a.url, timeout=30) as c:
            sid, auth = create(c, dataset="spiral", hidden_layers=[{"units": 8, "activation": "tanh"}] * 2, seed=3)
            c.post(f"/api/sessions/{sid}/play", headers=auth).raise_for_status()
            header(f"one session watched by {n} streams, {seconds:.0f} s each (after {SETTLE_S:.0f} s to settle)")
            reference = asyncio.run(measure([a] * n, sid, seconds, [a, b], redis))
            report("reference: all on node a", reference)
            time.sleep(2.0)  # the reference's streams are gone (and uncounted) before the next run
            spread = asyncio.run(measure([a, b] * (n // 2) + [a] * (n % 2), sid, seconds, [a, b], redis))
            report("spread over a and b (b's relayed)", spread)
            c.delete(f"/api/sessions/{sid}", headers=auth)


if __name__ == "__main__":
    run_main(main)
