"""Target 3: frames/s delivered to one client at fps=60 on the 6×8 tanh spiral (Adam lr
0.003, batch 10), playing, and epochs per frame. Starts its own server (loopback, free
port, temporary DB_PATH) and stops it with SIGINT at the end.

Run: .venv/bin/python benchmarks/one_stream.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import time

import httpx
from support import LiveServer, Samples, SPIRAL_6x8, SseReader, cpu_seconds, create, header, row, run_main, verdict


def one_stream(seconds: float = 10.0, warmup: float = 2.0) -> dict:
    header(f"one-stream: 6×8 tanh spiral (Adam lr 0.003, batch 10), playing, one client at fps=60, {seconds:.0f} s")
    with LiveServer() as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        sid, auth = create(c, seed=1, **SPIRAL_6x8)
        reader = SseReader(f"{srv.url}/api/sessions/{sid}/events", {"fps": 60}, read_timeout=30.0)
        try:
            reader.response.raise_for_status()
            c.post(f"/api/sessions/{sid}/play", headers=auth).raise_for_status()
            time.sleep(warmup)
            pids = {
                "server": srv.proc.pid,
                **{f"{role} {pid}": pid for pid, role in srv.child_pids().items() if role == "worker"},
            }
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            t0 = time.monotonic()
            time.sleep(seconds)
            t1 = time.monotonic()
            cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
            c.post(f"/api/sessions/{sid}/pause", headers=auth)
        finally:
            reader.close()
        frames = [(t, f["epoch"], n) for t, f, n in reader.frames(t0, t1)]
        c.delete(f"/api/sessions/{sid}", headers=auth)
    srv.cleanup()

    windows = Samples(
        "frames/s", [sum(1 for t, _, _ in frames if t0 + i <= t < t0 + i + 1) for i in range(int(seconds))]
    )
    overall = (len(frames) - 1) / (frames[-1][0] - frames[0][0]) if len(frames) > 1 else 0.0
    deltas = Samples("epochs", [b[1] - a[1] for a, b in zip(frames, frames[1:])])
    gaps = Samples("ms", [(b[0] - a[0]) * 1000 for a, b in zip(frames, frames[1:])])
    sizes = Samples("B", [n for _, _, n in frames])
    res = {
        "fps_median": windows.median if windows else 0,
        "fps_overall": overall,
        "epf_median": deltas.median if deltas else 0,
    }
    row("frames delivered", f"{len(frames)}", f"in {t1 - t0:.1f} s")
    row("frames/s, median of 1 s windows", f"{res['fps_median']:.1f}", f"windows: {windows.values}")
    row("frames/s overall", f"{overall:.1f}")
    row(
        "epochs per frame (median delta)",
        f"{res['epf_median']:.0f}",
        f"min {min(deltas.values, default=0)}, max {max(deltas.values, default=0)}, "
        f"{sum(d < 1 for d in deltas.values)} frames with no new epoch",
    )
    row(
        "epochs per second",
        f"{(frames[-1][1] - frames[0][1]) / (frames[-1][0] - frames[0][0]):.1f}" if len(frames) > 1 else "-",
    )
    gaps.print("gap between frames", "median", "p99", "max")
    row("bytes per frame (median)", sizes.figures("median", digits=0))
    for k in pids:
        if cpu0[k] is not None and cpu1[k] is not None:
            row(f"CPU of {k}", f"{(cpu1[k] - cpu0[k]) / (t1 - t0) * 100:.0f} %", "of one core")
    ok = res["fps_median"] >= 55 and res["epf_median"] >= 1
    row("target 3: ≥ 55 frames/s and ≥ 1 epoch/frame", verdict(ok))
    res["ok"] = ok
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    run_main(lambda: one_stream(args.seconds))


if __name__ == "__main__":
    main()
