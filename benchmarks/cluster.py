"""Issue 15: two nodes with one worker each behind nginx, against one node with two workers,
on the same machine in the same run: how many default-network sessions each holds at
≥ 20 frames/s per stream.

For each N (--sessions 20,40,60): N default sessions playing, one SSE stream each at fps=30
(asyncio + httpx in client processes, many.py's reader), frames counted over --seconds after
a warm-up:
  cluster     deploy/cluster.py's stack: nodes a and b (WORKERS=1 each), nginx, Redis and
              PostgreSQL; sessions created and streamed through nginx (the pool spreads them)
  one node    `python -m app` with WORKERS=2, streamed directly (the reference)
Printed per N and stack: streams held at ≥ 20 frames/s, median and slowest frames/s per
stream, and the longest gap; then the largest N each stack held entirely. Client and
servers share this machine's cores: compare the two stacks, not figures across machines.

Run: .venv/bin/python benchmarks/cluster.py [--sessions 20,40,60] [--seconds 15] [--client-procs 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import httpx
from many import _stream_process  # one SSE reader for both load scripts
from support import LiveServer, Samples, create, header, row, run_main

from deploy.cluster import Cluster

FPS = 30
HELD_FPS = 20.0  # a stream "held": at least this many frames a second over the window
MAX_SESSIONS = 200  # bounds: sessions per step, seconds per step
MAX_SECONDS = 60.0
WARMUP_S = 3.0  # per measurement, after the streams open
# Per stack, before the first measurement: a session plays on every worker this long, unreported,
# so training has moved to the compiled kernel (about 8 s after a worker starts, README →
# Performance) in both stacks alike.
ENGINE_WARMUP_S = 10.0


def measure(base_url: str, n: int, seconds: float, client_procs: int) -> dict:
    """N sessions created and played at base_url, one stream each; per-stream figures."""
    with httpx.Client(base_url=base_url, timeout=30) as c:
        made = [create(c, seed=i) for i in range(n)]
        try:
            for sid, auth in made:
                c.post(f"/api/sessions/{sid}/play", headers=auth).raise_for_status()
            results = _read_streams(base_url, [sid for sid, _ in made], seconds, client_procs)
        finally:
            for sid, auth in made:
                try:
                    c.delete(f"/api/sessions/{sid}", headers=auth)
                except httpx.HTTPError:
                    pass
    streams = [s for r in results for s in r["streams"]]
    rates = Samples("f/s", [s["n"] / seconds for s in streams])
    return {
        "n": n,
        "held": sum(1 for v in rates.values if v >= HELD_FPS),
        "rates": rates,
        "errors": [s["error"] for s in streams if s["error"]],
        "max_gap": max((s["max_gap"] for s in streams), default=float("nan")),
        "nodes": sorted({sid.partition(".")[0] for sid, _ in made if "." in sid}),
    }


def _read_streams(base_url: str, sids: list[str], seconds: float, client_procs: int) -> list[dict]:
    ctx = mp.get_context("spawn")
    t_start = time.monotonic() + WARMUP_S + 1.0  # +1 s: the client processes start up
    t_end = t_start + seconds
    procs, pipes = [], []
    for k in range(client_procs):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_stream_process, args=(base_url, sids[k::client_procs], FPS, t_start, t_end, send))
        p.daemon = True
        p.start()
        send.close()
        procs.append(p)
        pipes.append(recv)
    results = []
    for recv, p in zip(pipes, procs):
        if recv.poll(t_end - time.monotonic() + 30):
            results.append(recv.recv())
        p.join(10)
        if p.is_alive():
            p.kill()
    return results


def warm_up(base_url: str, sessions: int) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        made = [create(c, seed=100 + i) for i in range(sessions)]
        for sid, auth in made:
            c.post(f"/api/sessions/{sid}/play", headers=auth).raise_for_status()
        time.sleep(ENGINE_WARMUP_S)
        for sid, auth in made:
            c.delete(f"/api/sessions/{sid}", headers=auth)


def report(label: str, m: dict) -> None:
    note = f"{len(m['errors'])} stream errors: {m['errors'][0]}" if m["errors"] else ""
    if m["nodes"]:
        note = f"nodes {'+'.join(m['nodes'])}  {note}"
    row(f"{label}, {m['n']} sessions: held at ≥ {HELD_FPS:.0f} f/s", f"{m['held']} / {m['n']}", note)
    row("  frames/s per stream: median / slowest", m["rates"].figures("median", "min"))
    row("  longest gap between two frames of a stream", f"{m['max_gap'] * 1000:.0f} ms")


def run(sizes: list[int], seconds: float, client_procs: int) -> None:
    header(
        f"cluster: N default sessions, one stream each at fps={FPS}, {seconds:.0f} s after {WARMUP_S:.0f} s warm-up; "
        f"2 nodes × 1 worker through nginx against 1 node × 2 workers"
    )
    per_client = str(max(50, max(sizes) + 5))  # every stream comes from this machine's one loopback address
    held: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="mlp-bench-cluster-") as tmp:
        with Cluster(Path(tmp) / "cluster", env={"MAX_STREAMS_PER_CLIENT": per_client}, quiet=True) as cluster:
            warm_up(cluster.url, 4)  # the pool spreads them: both nodes' workers
            for n in sizes:
                m = measure(cluster.url, n, seconds, client_procs)
                report("2 nodes × 1 worker (nginx)", m)
                held["2 nodes × 1 worker"] = max(held.get("2 nodes × 1 worker", 0), n if m["held"] == n else 0)
        one = LiveServer(Path(tmp) / "one", workers=2, max_streams_per_client=per_client)
        with one:
            warm_up(one.url, 4)  # sessions go to the least loaded worker: both
            for n in sizes:
                m = measure(one.url, n, seconds, client_procs)
                report("1 node × 2 workers", m)
                held["1 node × 2 workers"] = max(held.get("1 node × 2 workers", 0), n if m["held"] == n else 0)
    header("most sessions with every stream held at ≥ 20 frames/s (of the sizes tried)")
    for label, n in held.items():
        row(label, str(n) if n else f"< {min(sizes)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="20,40,60", help="comma-separated sizes to try (default 20,40,60)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--client-procs", type=int, default=1)
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sessions.split(",")})
    if not sizes or sizes[0] < 1 or sizes[-1] > MAX_SESSIONS:
        parser.error(f"--sessions: sizes from 1 to {MAX_SESSIONS}")
    if not 1 <= args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds: 1 to {MAX_SECONDS:.0f}")
    run(sizes, args.seconds, max(1, args.client_procs))


if __name__ == "__main__":
    run_main(main)
