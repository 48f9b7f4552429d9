"""Issue 12, item 3: two clients looping GET of the largest snapshot allowed, while a viewer
watches a playing session at fps=30 and a poller measures GET /healthz. The same figures
with no attack are measured first in the same run (the reference).

Prints /healthz median / p99 / max, the viewer's frames/s and the attackers' GET rate
and latency, per phase. Bounded: two phases of --seconds each (default 20), about a
minute in all with the server's start.

Run: .venv/bin/python benchmarks/attack_snapshots.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time

import httpx
from support import LiveServer, Samples, SPIRAL_6x8, SseReader, create, header, row, run_main, verdict

# Networks tried from the biggest down: the first whose snapshot fits MAX_SNAPSHOT_BYTES is used.
CANDIDATES = [(units, layers) for units in (160, 128, 96, 64) for layers in (8, 7, 6, 5, 4)]
POLL_EVERY_S = 0.05


def largest_snapshot(c: httpx.Client) -> tuple[str, int]:
    """(id, bytes) of the largest snapshot the server stores: real sessions, saved after a step."""
    for units, layers in CANDIDATES:
        sid, auth = create(c, dataset="spiral", hidden_layers=[{"units": units, "activation": "tanh"}] * layers)
        try:
            c.post(f"/api/sessions/{sid}/step", headers=auth).raise_for_status()
            r = c.post(f"/api/sessions/{sid}/snapshots", headers=auth, json={"name": f"{units}x{layers}"})
            if r.status_code == 201:
                return r.json()["snapshot_id"], r.json()["bytes"]
            if r.status_code != 413:
                r.raise_for_status()
        finally:
            c.delete(f"/api/sessions/{sid}", headers=auth)
    raise RuntimeError("no network's snapshot fits MAX_SNAPSHOT_BYTES")


def attacker(url: str, path: str, seconds: float, out) -> None:
    """A separate process (its client work must not share the poller's GIL): GET in a loop."""
    times, failures = [], 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as c:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            if c.get(path).status_code != 200:
                failures += 1
            times.append((time.perf_counter() - start) * 1000)
    out.put((times, failures))


def poller(url: str, stop: threading.Event, times: Samples, failures: list) -> None:
    with httpx.Client(base_url=url, timeout=30) as c:
        while not stop.is_set():
            start = time.perf_counter()
            r = c.get("/healthz")
            if r.status_code != 200:
                failures.append(r.status_code)
            times.add((time.perf_counter() - start) * 1000)
            time.sleep(POLL_EVERY_S)


def phase(srv: LiveServer, reader: SseReader, snapshot: str | None, seconds: float) -> dict:
    stop = threading.Event()
    health, gets, failures = Samples(), Samples(), []
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    attackers = []
    if snapshot is not None:
        args = (srv.url, f"/api/snapshots/{snapshot}", seconds, out)
        attackers = [ctx.Process(target=attacker, args=args) for _ in range(2)]
        for p in attackers:
            p.start()
        time.sleep(1.5)  # the attackers' interpreters start
    watcher = threading.Thread(target=poller, args=(srv.url, stop, health, failures))
    start = time.monotonic()
    watcher.start()
    time.sleep(seconds - (1.5 if attackers else 0))
    stop.set()
    end = time.monotonic()
    watcher.join(60)
    for _ in attackers:
        times, failed = out.get(timeout=60)
        gets.extend(times)
        failures += [0] * failed
    for p in attackers:
        p.join(10)
    frames = len(reader.frames(since=start, until=end))
    return {"health": health, "gets": gets, "fps": frames / (end - start), "failures": failures, "seconds": end - start}


def report(name: str, figures: dict, seconds: float) -> None:
    figures["health"].print(f"{name}: GET /healthz", "median", "p99", "max")
    row(f"{name}: viewer frames/s (asked 30)", f"{figures['fps']:.1f}")
    if figures["gets"]:
        figures["gets"].print(f"{name}: snapshot GET", "median", "p99")
        row(f"{name}: snapshot GETs a second (2 clients)", f"{len(figures['gets']) / seconds:.1f}")
    row(f"{name}: answers other than 200", str(len(figures["failures"])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each phase (default 20)")
    seconds = ap.parse_args().seconds
    with LiveServer(workers=2) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        snapshot, size = largest_snapshot(c)
        header(
            f"attack_snapshots: 2 clients looping GET of a {size / 1e6:.2f} MB snapshot (the largest that fits "
            f"MAX_SNAPSHOT_BYTES), a viewer at fps=30, /healthz polled every {POLL_EVERY_S * 1000:.0f} ms; "
            f"{seconds:.0f} s per phase"
        )
        sid, auth = create(c, **SPIRAL_6x8)
        c.post(f"/api/sessions/{sid}/play", headers=auth).raise_for_status()
        reader = SseReader(f"{srv.url}/api/sessions/{sid}/events", {"fps": 30}, read_timeout=30.0)
        try:
            reader.response.raise_for_status()
            time.sleep(2)  # the stream settles
            quiet = phase(srv, reader, None, seconds)
            attacked = phase(srv, reader, snapshot, seconds)
        finally:
            reader.close()
        report("no attack (reference)", quiet, seconds)
        report("attack", attacked, seconds)
        p99, fps = attacked["health"].stat("p99"), attacked["fps"]
        row(
            "target: /healthz p99 ≤ 50 ms, viewer ≥ 25 frames/s",
            f"{p99:.1f} ms, {fps:.1f}",
            verdict(p99 <= 50 and fps >= 25),
        )


if __name__ == "__main__":
    run_main(main)
