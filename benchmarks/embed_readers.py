"""Issue 13: readers of one autoplay embed share one session, and an embed nobody sees
costs nothing. N readers join the same `/embed?…&autoplay=1` setup (POST /embed/join, as
each reader's page does) and each opens its stream; the figures are how many sessions
train, and the workers' CPU while they watch, against one ordinary session with one
viewer measured in the same run (the reference). Then every reader scrolls away (streams
close) and the workers' CPU is measured over the out-of-view window.

Run: .venv/bin/python benchmarks/embed_readers.py [--readers 200] [--seconds 10] [--away 60]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from support import LiveServer, aparse_sse, cpu_seconds, create, header, row, run_main, verdict

QUERY = "dataset=spiral&hidden=8:tanh,8:tanh&seed=3&autoplay=1"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def worker_cpu(srv: LiveServer) -> float:
    return sum(cpu_seconds(pid) or 0.0 for pid, role in srv.child_pids().items() if role == "worker")


async def readers(url: str, n: int, seconds: float) -> tuple[set[str], int]:
    """n readers: join, then stream for `seconds`; returns the session ids and frames seen."""
    limits = httpx.Limits(max_connections=n + 10)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
        joined = await asyncio.gather(*(c.post("/embed/join", content=QUERY, headers=FORM) for _ in range(n)))
        ids = {r.json()["id"] for r in joined}
        frames = 0

        async def watch(sid: str) -> None:
            nonlocal frames
            end = time.monotonic() + seconds
            async with c.stream("GET", f"/api/sessions/{sid}/events", params={"fps": 10}) as r:
                async for ev in aparse_sse(r.aiter_lines()):
                    frames += ev.get("event") == "frame"
                    if time.monotonic() >= end:
                        return

        await asyncio.gather(*(watch(r.json()["id"]) for r in joined))
        return ids, frames


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--away", type=float, default=60.0)
    a = ap.parse_args()
    env = dict(workers=2, max_streams_per_client=a.readers + 10, max_watchers=a.readers + 10)
    with LiveServer(**env) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        header(f"{a.readers} readers of one autoplay embed, {a.seconds:.0f} s")
        # Reference: one ordinary session, playing, one viewer, same duration.
        sid, auth = create(c, dataset="spiral", hidden_layers=[{"units": 8, "activation": "tanh"}] * 2, seed=3)
        c.post(f"/api/sessions/{sid}/play", headers=auth)
        cpu0 = worker_cpu(srv)
        asyncio.run(readers_ref(srv.url, sid, a.seconds))
        ref = (worker_cpu(srv) - cpu0) / a.seconds
        c.delete(f"/api/sessions/{sid}", headers=auth)
        cpu0 = worker_cpu(srv)
        ids, frames = asyncio.run(readers(srv.url, a.readers, a.seconds))
        shared = (worker_cpu(srv) - cpu0) / a.seconds
        running = c.get("/api/stats").json()
        row("sessions made for the readers", f"{len(ids)}", f"target 1 ({verdict(len(ids) == 1)})")
        row("frames delivered to the readers", f"{frames:,}")
        row("worker CPU, all readers / reference (1 session, 1 viewer)", f"{shared:.2f} / {ref:.2f} cores")
        header(f"every reader scrolled away: worker CPU over {a.away:.0f} s")
        cpu0 = worker_cpu(srv)
        time.sleep(a.away)
        away = (worker_cpu(srv) - cpu0) / a.away
        row("worker CPU while out of view", f"{away:.3f} cores", f"target ≈ 0 ({verdict(away < 0.05)})")
        row("sessions left", f"{c.get('/api/stats').json()['sessions']} (were {running['sessions']})")


async def readers_ref(url: str, sid: str, seconds: float) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        end = time.monotonic() + seconds
        async with c.stream("GET", f"/api/sessions/{sid}/events", params={"fps": 10}) as r:
            async for _ in aparse_sse(r.aiter_lines()):
                if time.monotonic() >= end:
                    return


if __name__ == "__main__":
    run_main(main)
