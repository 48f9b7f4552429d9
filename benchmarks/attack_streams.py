"""Issue 12, finding 2: clients that never read their stream.

100 raw sockets with a 4 KB receive buffer open `/events?fps=60&gradients=true` on a playing
8×256 session and never read. Printed: the server process's RSS (from /proc/<pid>/statm)
before, at its peak during the attack, and 30 s after the sockets close; /healthz latency
during the attack; how many streams were still open when the attack ended.
Reference in the same run: the same attack against a server with the send timeout off
(SEND_TIMEOUT_SECONDS=0), which keeps every stalled stream (its RSS during only).
Targets: growth ≤ +50 MB, back to baseline ± 20 MB within 30 s of closing.

A stalled socket first absorbs a few frames in its kernel send buffer (not in RSS), so the
send that blocks, and the 5 s timeout, come a few frames after the client stops reading.

Run: .venv/bin/python benchmarks/attack_streams.py [--streams 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import httpx
from support import LOOPBACK, LiveServer, Samples, create, header, row, run_main, verdict

from tests.support.sse import stalled_stream

WIDE = [{"units": 256, "activation": "relu"}] * 8
PAGE = os.sysconf("SC_PAGE_SIZE")
SOURCES = [f"127.0.0.{i}" for i in range(10, 14)]  # spread over addresses: MAX_STREAMS_PER_CLIENT is 50


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def attack(streams: int, seconds: float, after: float, **env) -> dict:
    """One server, one playing 8×256 session with one reading viewer, then the attack."""
    # A worker training an 8×256 network on a loaded machine can miss heartbeats; replacing it
    # would end the session and its streams, and measure that instead of the send timeout.
    # Nor may the lifecycle pause the session for want of a viewer before the attack starts.
    env = {"worker_heartbeat_timeout_seconds": 120, "hidden_pause_seconds": 600, **env}
    with LiveServer(workers=1, **env) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        pid = srv.proc.pid
        sid, auth = create(c, hidden_layers=WIDE, batch_size=50)
        c.post(f"/api/sessions/{sid}/play", headers=auth).raise_for_status()
        path = f"/api/sessions/{sid}/events?fps=60&gradients=true"
        time.sleep(2)  # playing, nobody watching yet: no frames are built
        base = rss(pid)
        peak, healthz, stop, all_dropped = [base], Samples("ms"), threading.Event(), []

        def sample():
            while not stop.is_set():
                peak.append(rss(pid))
                if not all_dropped and c.get("/api/stats").json().get("streams") == 0:
                    all_dropped.append(time.monotonic() - started)
                t0 = time.perf_counter()
                c.get("/healthz")
                healthz.add((time.perf_counter() - t0) * 1000)
                time.sleep(0.2)

        started = time.monotonic()
        socks = [stalled_stream(LOOPBACK, srv.port, path, SOURCES[i % len(SOURCES)]) for i in range(streams)]
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        time.sleep(seconds)
        stats = c.get("/api/stats").json()
        open_at_end = stats.get("streams")
        lost = stats["sessions"] == 0  # the session ended (its streams with it): the figures do not count
        stop.set()
        sampler.join()
        for s in socks:
            s.close()
        back = None
        if after:
            time.sleep(after)
            back = rss(pid)
        c.post(f"/api/sessions/{sid}/pause", headers=auth)
        c.delete(f"/api/sessions/{sid}", headers=auth)
    srv.cleanup()
    if lost:
        print("  ! the session ended during the attack (see the server log); figures below are not valid")
    dropped_after = all_dropped[0] if all_dropped else None
    return {
        "base": base,
        "peak": max(peak),
        "back": back,
        "healthz": healthz,
        "open": open_at_end,
        "dropped": dropped_after,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--streams", type=int, default=100)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--after", type=float, default=30.0)
    a = p.parse_args()
    header(f"attack-streams: {a.streams} non-reading streams (4 KB SO_RCVBUF), fps=60&gradients=true, 8×256 playing")
    guarded = attack(a.streams, a.seconds, a.after)
    reference = attack(a.streams, a.seconds, 0, send_timeout_seconds=0)
    grow = (guarded["peak"] - guarded["base"]) / 1e6
    back = (guarded["back"] - guarded["base"]) / 1e6
    row("server RSS before the attack", f"{guarded['base'] / 1e6:,.0f} MB")
    row("growth during (peak − before)", f"{grow:+,.0f} MB", f"target ≤ +50 MB  {verdict(grow <= 50)}")
    row(f"{a.after:.0f} s after closing (− before)", f"{back:+,.0f} MB", f"target ± 20 MB  {verdict(abs(back) <= 20)}")
    dropped = guarded["dropped"]
    row(
        f"streams still open after {a.seconds:.0f} s of attack",
        str(guarded["open"]),
        "all dropped after " + (f"{dropped:.1f} s" if dropped is not None else "-") + " (send timeout 5 s)",
    )
    guarded["healthz"].print("/healthz during the attack", "median", "p99", "max")
    ref_grow = (reference["peak"] - reference["base"]) / 1e6
    row("reference, send timeout off: growth during", f"{ref_grow:+,.0f} MB", f"{reference['open']} streams still open")
    reference["healthz"].print("reference: /healthz during", "median", "p99", "max")
    row("issue 12 figure (before this change)", "+424 MB", "then 1,268 MB after closing")


if __name__ == "__main__":
    run_main(main)
