"""Issue 12, finding 4: session memory has no budget.

200 `POST /api/sessions` of the largest config a client may ask for (8×256 ReLU on digits,
Adam, batch 1, 1,000 epochs per frame), then every accepted session plays for a while.
Printed: how many were accepted and how many refused at the memory budget (429
limit_memory), the store's estimate, and the RSS of the server and its workers (from
/proc/<pid>/statm) against MAX_MEMORY_MB. Reference in the same run: the RSS of the same
processes before the first session (what the budget does not count: Python, NumPy, uvicorn).
Target: refused with a 4xx at the budget; RSS of the sessions ≤ MAX_MEMORY_MB.

MAX_MEMORY_MB defaults to 1000 here (the server's default is 4096) so that a shared machine
is not pushed into swap; --max-memory-mb sets it.

Run: .venv/bin/python benchmarks/attack_memory.py [--sessions 200] [--max-memory-mb 1000] [--play 20]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

import httpx
from support import LiveServer, header, row, run_main, verdict

BIGGEST = dict(
    dataset="digits",
    hidden_layers=[{"units": 256, "activation": "relu"}] * 8,
    optimizer="adam",
    batch_size=1,
    epochs_per_frame=1000,
)
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return 0


def total_rss(srv: LiveServer) -> int:
    return rss(srv.proc.pid) + sum(rss(p) for p, role in srv.child_pids().items() if role == "worker")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--max-memory-mb", type=float, default=1000.0)
    p.add_argument("--play", type=float, default=20.0, help="seconds every accepted session plays")
    a = p.parse_args()
    header(f"attack-memory: {a.sessions} creations of 8×256 ReLU digits, Adam, batch 1, 1000 epochs/frame")
    env = dict(workers=2, max_memory_mb=a.max_memory_mb, worker_heartbeat_timeout_seconds=120)
    with LiveServer(**env) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        base = total_rss(srv)
        codes: Counter = Counter()
        made = []
        t0 = time.monotonic()
        for _ in range(a.sessions):
            r = c.post("/api/sessions", json=BIGGEST)
            if r.status_code == 201:
                body = r.json()
                made.append((body["id"], {"Authorization": f"Bearer {body['control_token']}"}))
                codes["201"] += 1
            else:
                codes[f"{r.status_code} {r.json().get('code')}"] += 1
        created_s = time.monotonic() - t0
        paused = total_rss(srv)
        for sid, auth in made:
            c.post(f"/api/sessions/{sid}/play", headers=auth)
        time.sleep(a.play)
        playing, peak_stats = total_rss(srv), c.get("/api/stats").json()
        for sid, auth in made:
            c.delete(f"/api/sessions/{sid}", headers=auth)
    srv.cleanup()
    limit = a.max_memory_mb * 1e6
    row("MAX_MEMORY_MB", f"{a.max_memory_mb:,.0f} MB", "MAX_SESSION_MB 256 (default)")
    row(f"answers to {a.sessions} creations ({created_s:.1f} s)", ", ".join(f"{n} × {k}" for k, n in codes.items()))
    refused = sum(n for k, n in codes.items() if "limit_memory" in k)
    row("refused at the memory budget (429 limit_memory)", str(refused), verdict(refused > 0 and codes["201"] > 0))
    row("the store's estimate of its sessions", f"{peak_stats['memory_estimate_bytes'] / 1e6:,.0f} MB")
    row("reference: RSS before any session (server + workers)", f"{base / 1e6:,.0f} MB")
    row("RSS, sessions created, paused", f"{paused / 1e6:,.0f} MB", f"sessions' share {(paused - base) / 1e6:,.0f} MB")
    share = playing - base
    row(
        f"RSS after {a.play:.0f} s of play",
        f"{playing / 1e6:,.0f} MB",
        f"sessions' share {share / 1e6:,.0f} MB ≤ MAX_MEMORY_MB {verdict(share <= limit)}; total {verdict(playing <= limit)}",
    )
    row("issue 12 figure (before this change)", "8.8 GB and growing", "174 accepted, then the 200-session cap")


if __name__ == "__main__":
    run_main(main)
