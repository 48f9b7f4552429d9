"""Issue 13: page views whose tabs close must not fill the server. V page views each create
a session as the page does (POST /ui/sessions), watch it for one frame, and close: their
pagehide releases the session (POST …/release with the token). Then one new visitor must
get a working session. Figures: refusals during the churn, the new visitor's answer, and
how long after its release each sampled session ended, against RELEASE_GRACE_SECONDS
(the reference: the grace itself, plus one housekeeping round).

Run: .venv/bin/python benchmarks/tab_churn.py [--views 1000] [--grace 5] [--sample 30]
"""

from __future__ import annotations

import argparse
import time

import httpx
from support import LiveServer, Samples, header, row, run_main, verdict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--views", type=int, default=1000)
    ap.add_argument("--grace", type=float, default=5.0)
    ap.add_argument("--sample", type=int, default=30)
    a = ap.parse_args()
    with LiveServer(workers=2, release_grace_seconds=a.grace) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        header(f"{a.views} page views whose tabs close (RELEASE_GRACE_SECONDS={a.grace:g})")
        refused, released = 0, {}
        for i in range(a.views):
            r = c.post("/ui/sessions", data={"dataset": "circle", "seed": str(i)})
            if r.status_code != 201:
                refused += 1
                continue
            sid, token = r.json()["id"], r.json()["control_token"]
            with c.stream("GET", f"/api/sessions/{sid}/events", params={"max_frames": 1}) as s:
                s.read()  # the page saw its first frame; then the tab closes
            c.post(f"/api/sessions/{sid}/release", headers={"Authorization": f"Bearer {token}"})
            released[sid] = time.monotonic()
        row("views refused while the tabs came and went", f"{refused}", f"target 0 ({verdict(refused == 0)})")
        new = c.post("/ui/sessions", data={"dataset": "circle"})
        row("the new visitor", f"HTTP {new.status_code}", verdict(new.status_code == 201))
        ended = Samples("s")
        for sid in list(released)[-a.sample :]:  # the newest ones are still within their grace
            while (r := c.get(f"/api/sessions/{sid}")).status_code == 200:
                time.sleep(0.05)
            ended.add(time.monotonic() - released[sid])
        limit = a.grace + max(0.25, a.grace / 4) + 0.5  # the grace, one housekeeping round, 0.5 s for polling
        ended.print("released session ended after its release", "median", "max", digits=2)
        within = verdict(ended.stat("max") <= limit)
        row("every sampled release ended within grace + one round + 0.5 s", f"≤ {limit:.2f} s", within)
        row("sessions held now", f"{c.get('/api/stats').json()['sessions']}")


if __name__ == "__main__":
    run_main(main)
