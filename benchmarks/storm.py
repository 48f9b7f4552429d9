"""A storm of mixed controls (issue 12, finding 7): several client threads hammer shared
sessions with play/pause, dataset and learning-rate PATCHes, added points, CSV uploads,
structure edits and data reads for `--seconds` (40 by default), then 30 pairs of PATCHes of
different fields are sent at the same moment. Prints the requests made, how many got a 5xx
(target 0; 71 of 1,849 were 500 before), the PATCH pairs that lost a change (target 0 of 30;
23 before), and request latency during the storm against the same mix sent from one thread
first (the reference, measured in this run).

    .venv/bin/python benchmarks/storm.py                 # --seconds 40 --threads 6
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter

import httpx
from support import LiveServer, Samples, create, header, row, run_main, verdict

DATASETS = ["circle", "xor", "gauss", "spiral"]
UPLOAD = "x1,x2,label\n" + "\n".join(f"{i % 7 - 3},{i % 5 - 2},{i % 2}" for i in range(30))
KINDS = ["transport", "patch dataset", "points", "points", "upload", "structure", "patch lr", "get data"]
MAX_REQUESTS_PER_THREAD = 20_000  # a bound in case the server answers unusually fast


def one_request(c: httpx.Client, sessions, i: int, k: int) -> tuple[str, httpx.Response]:
    """Request number i of thread k: the mix cycles through KINDS over the shared sessions."""
    sid, auth = sessions[(i + k) % len(sessions)]
    base, kind = f"/api/sessions/{sid}", KINDS[(i * 7 + k) % len(KINDS)]
    if kind == "transport":
        return kind, c.post(f"{base}/{'play' if i % 2 else 'pause'}", headers=auth)
    if kind == "patch dataset":
        return kind, c.patch(base, json={"dataset": DATASETS[i % 4]}, headers=auth)
    if kind == "points":
        return kind, c.post(f"{base}/points", json={"x": [(i % 9) - 4, (k % 5) - 2], "label": i % 2}, headers=auth)
    if kind == "upload":
        return kind, c.post(f"{base}/upload", files={"file": ("d.csv", UPLOAD)}, headers=auth)
    if kind == "structure":
        edit = {"op": "add_unit" if i % 2 else "remove_unit", "layer": "0"}
        return kind, c.post(f"/ui/sessions/{sid}/structure", data=edit, headers=auth)
    if kind == "patch lr":
        return kind, c.patch(base, json={"learning_rate": 0.01 + 0.001 * (i % 10)}, headers=auth)
    return kind, c.get(f"{base}/data")


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.server_errors: Counter = Counter()  # kind -> 5xx count
        self.examples: list[str] = []
        self.latency = Samples("ms")

    def add(self, kind: str, r: httpx.Response, ms: float) -> None:
        with self.lock:
            self.statuses[r.status_code] += 1
            self.latency.add(ms)
            if r.status_code >= 500:
                self.server_errors[kind] += 1
                if len(self.examples) < 3:
                    self.examples.append(f"{kind}: {r.status_code} {r.text[:160]}")


def storm(url: str, sessions, seconds: float, threads: int) -> Tally:
    tally, deadline = Tally(), time.monotonic() + seconds

    def worker(k: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            for i in range(MAX_REQUESTS_PER_THREAD):
                if time.monotonic() > deadline:
                    return
                start = time.perf_counter()
                kind, r = one_request(c, sessions, i, k)
                tally.add(kind, r, (time.perf_counter() - start) * 1000)

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 120)
    return tally


def patch_pairs(url: str, pairs: int = 30) -> tuple[int, int]:
    """(pairs that lost a change, requests that failed) of `pairs` simultaneous PATCHes of
    learning_rate and noise on one session."""
    lost = failed = 0
    with httpx.Client(base_url=url, timeout=60) as a, httpx.Client(base_url=url, timeout=60) as b:
        sid, auth = create(a, seed=7)
        for i in range(pairs):
            lr, noise = round(0.001 * (i + 1), 6), round(0.01 * (i % 40 + 1), 4)
            barrier, codes = threading.Barrier(2), []

            def send(c, body, barrier=barrier, codes=codes):
                barrier.wait(10)
                codes.append(c.patch(f"/api/sessions/{sid}", json=body, headers=auth).status_code)

            pair = [
                threading.Thread(target=send, args=(a, {"learning_rate": lr})),
                threading.Thread(target=send, args=(b, {"noise": noise})),
            ]
            for t in pair:
                t.start()
            for t in pair:
                t.join(60)
            failed += sum(code != 200 for code in codes)
            config = a.get(f"/api/sessions/{sid}").json()["config"]
            lost += config["learning_rate"] != lr or config["noise"] != noise
        a.delete(f"/api/sessions/{sid}", headers=auth)
    return lost, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=40.0, help="length of the storm (default 40)")
    ap.add_argument("--threads", type=int, default=6, help="client threads (default 6)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    seconds = min(args.seconds, 90.0)  # bounded: the machine is shared
    live = LiveServer(workers=args.workers, idle_pause_seconds=10)
    try:
        live.start()
        with httpx.Client(base_url=live.url, timeout=60) as c:
            sessions = [create(c, seed=n, n_points=200) for n in range(3)]
        header("reference: the same mix from one thread, 3 s")
        reference = storm(live.url, sessions, 3.0, threads=1)
        row("requests", f"{sum(reference.statuses.values()):,}")
        reference.latency.print("latency", "median", "p99")
        header(f"storm: {args.threads} threads, {seconds:.0f} s, {len(sessions)} shared sessions")
        tally = storm(live.url, sessions, seconds, threads=args.threads)
        total, errors = sum(tally.statuses.values()), sum(tally.server_errors.values())
        row("requests", f"{total:,} ({total / seconds:,.0f}/s)")
        row("statuses", ", ".join(f"{s}: {n:,}" for s, n in sorted(tally.statuses.items())))
        row("5xx answers", f"{errors}", f"target 0 (71 of 1,849 before)  {verdict(errors == 0)}")
        for example in tally.examples:
            print(f"    {example}")
        tally.latency.print("latency", "median", "p99", "max")
        header("30 pairs of PATCHes of different fields sent at once")
        lost, failed = patch_pairs(live.url)
        row("pairs that lost a change", f"{lost} of 30", f"target 0 (23 before)  {verdict(lost == 0)}")
        row("PATCHes not answered 200", f"{failed}")
    finally:
        live.stop()
        live.cleanup()


if __name__ == "__main__":
    run_main(main)
