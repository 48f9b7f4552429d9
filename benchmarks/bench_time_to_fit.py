"""Time to fit through the real server (target 7): the 6×8 tanh spiral (Adam lr 0.003,
batch 10) with epochs_per_frame = 100 must reach 95 % test accuracy within 10 s of wall
time, for seeds 1…5.

End to end: start a server (loopback, free port, temporary DB_PATH), create the session
with epochs_per_frame=100, open its stream (fps=30), press Play, and read frames until
accuracy.test ≥ 0.95; the wall time runs from sending Play to receiving that frame. The
peer's time for the same number of epochs is computed from tf-playground-facts.md: one
epoch per animation frame, ~11 frames/s on a 6×8 network (before any painting).
bench_fit.py measures the same in-process, without HTTP, workers or streams.

Run: .venv/bin/python benchmarks/bench_time_to_fit.py
"""

from __future__ import annotations

import json
import statistics
import time

import httpx
from support import LiveServer, SPIRAL_6x8, create, parse_sse, row

SEEDS = (1, 2, 3, 4, 5)
EPOCHS_PER_FRAME = 100
LIMIT_S = 60.0
PEER_FPS_6x8 = 11.0  # tf-playground-facts.md: "one full frame … 91 ms (~11 frames/s)" on 6×8, one epoch per frame


def fit(base_url: str, client: httpx.Client, seed: int) -> tuple[float, int, int]:
    """(wall seconds, epoch, frames received) from Play until a frame shows ≥ 95 % test accuracy."""
    sid, auth = create(client, seed=seed, epochs_per_frame=EPOCHS_PER_FRAME, **SPIRAL_6x8)
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(10.0, read=30.0)) as sc,
            sc.stream("GET", f"{base_url}/api/sessions/{sid}/events", params={"fps": 30}) as r,
        ):
            r.raise_for_status()
            frames, started = 0, None
            for event in parse_sse(r.iter_lines()):
                if started is None:  # the stream is open (history came): press Play
                    started = time.monotonic()
                    client.post(f"/api/sessions/{sid}/play", headers=auth).raise_for_status()
                if event.get("event") != "frame":
                    continue
                frame = json.loads(event["data"])
                frames += 1
                if (frame.get("accuracy", {}).get("test") or 0) >= 0.95:
                    return time.monotonic() - started, frame["epoch"], frames
                if time.monotonic() - started > LIMIT_S:
                    return float("inf"), frame["epoch"], frames
            return float("inf"), -1, frames
    finally:
        client.post(f"/api/sessions/{sid}/pause", headers=auth)
        client.delete(f"/api/sessions/{sid}", headers=auth)


def main() -> None:
    print(
        f"Time to 95 % test accuracy through the server: spiral, 6 × 8 tanh, Adam lr 0.003, batch 10, "
        f"epochs_per_frame {EPOCHS_PER_FRAME}, stream fps 30, seeds {SEEDS}"
    )
    with LiveServer() as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        runs = []
        for seed in SEEDS:
            secs, epochs, frames = fit(srv.url, c, seed)
            runs.append((secs, epochs))
            peer = epochs / PEER_FPS_6x8
            row(
                f"seed {seed}: wall time to 95 % test accuracy",
                f"{secs:.2f} s",
                f"({epochs} epochs, {frames} frames, {epochs / secs:.0f} epochs/s; peer {peer:.1f} s)",
            )
    srv.cleanup()
    med_s = statistics.median(r[0] for r in runs)
    med_e = statistics.median(r[1] for r in runs)
    peer_s = med_e / PEER_FPS_6x8
    row("median wall time to 95 %", f"{med_s:.2f} s", f"(median {med_e:.0f} epochs)")
    row("worst seed", f"{max(r[0] for r in runs):.2f} s")
    row(
        "peer, computed from tf-playground-facts.md:",
        f"{peer_s:.1f} s",
        f"({med_e:.0f} epochs at 1 epoch/frame, ~{PEER_FPS_6x8:.0f} frames/s)",
    )
    row("ratio peer / ours (median)", f"{peer_s / med_s:.1f}×")
    ok = all(r[0] <= 10.0 for r in runs)
    row("target 7: every seed ≤ 10 s", "MET" if ok else "MISSED")


if __name__ == "__main__":
    main()
