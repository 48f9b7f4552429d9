"""Reliability soak: 2 resident sessions (played and watched all along) and 14 clients
cycling create → play → watch → patch / structure / step / reset / snapshot (and a session
from it) → delete, configs from a table incl. digits and bigger nets; a line per minute.
Errors must be 0 and every session cleaned up. Starts its own server (loopback, free port,
temporary DB_PATH) and stops it with SIGINT at the end; clients and run time are bounded.

Run: .venv/bin/python benchmarks/soak.py [--minutes 10] [--actors 16]   (--minutes 1 for a dry run)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

import httpx
from support import LiveServer, Samples, SPIRAL_6x8, aparse_sse, header, mb, row, run_main, stats_line, verdict

SOAK_CONFIGS = [
    {},  # the default network
    {"dataset": "circle", "hidden_layers": [{"units": 4, "activation": "relu"}, {"units": 2, "activation": "relu"}]},
    {"dataset": "xor", "features": ["x1", "x2", "x1x2"], "hidden_layers": [{"units": 3, "activation": "tanh"}]},
    {"dataset": "gauss", "classes": 3, "optimizer": "momentum", "learning_rate": 0.01},
    {**SPIRAL_6x8},
    {**SPIRAL_6x8, "epochs_per_frame": 10},
    {
        "dataset": "moons",
        "hidden_layers": [{"units": 16, "activation": "relu"}] * 3,
        "optimizer": "adam",
        "learning_rate": 0.003,
        "regularization": "l2",
        "regularization_rate": 0.001,
    },
    {
        "dataset": "spiral",
        "hidden_layers": [{"units": 32, "activation": "relu"}] * 4,
        "optimizer": "adam",
        "learning_rate": 0.003,
        "init": "he",
    },
    {"dataset": "reg-plane", "hidden_layers": [{"units": 8, "activation": "tanh"}] * 2, "learning_rate": 0.01},
    {"dataset": "reg-gauss", "lr_schedule": "cosine", "lr_period": 200},
    {
        "dataset": "digits",
        "hidden_layers": [{"units": 32, "activation": "relu"}],
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 32,
        "init": "he",
    },
    {
        "dataset": "digits",
        "hidden_layers": [{"units": 128, "activation": "relu"}, {"units": 64, "activation": "relu"}],
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 32,
        "init": "he",
    },
]


RESIDENTS = [{}, {**SPIRAL_6x8}]  # played and watched for the whole run


class Soak:
    def __init__(self, url: str, minutes: float, actors: int, report_every: float):
        self.url, self.actors, self.report_every = url, actors, report_every
        self.deadline = time.monotonic() + minutes * 60
        self.requests = 0
        self.latencies = Samples()  # ms, every API call (not streams)
        self.window = Samples()  # the same since the last progress line
        self.errors: list[str] = []
        self.live: dict[str, dict] = {}  # sid -> auth headers, for cleanup
        self.frames = 0
        self.streams = 0
        self.snapshots = 0
        self.cycles = 0
        self.resident_results: list[dict] = []
        self.by_route: dict[str, Samples] = {}
        self.lags = Samples()  # ms
        self.first_frame = Samples()  # ms from opening a stream to its first frame
        self.client_cpu = 0.0
        self.resident_ids: list[str] = []
        self.probe: dict[str, Samples] = {"healthz": Samples(), "worker": Samples()}

    async def call(self, c: httpx.AsyncClient, method: str, path: str, expect=(200,), **kw) -> httpx.Response | None:
        t = time.perf_counter()
        self.requests += 1
        try:
            r = await c.request(method, path, **kw)
        except Exception as e:  # noqa: BLE001 - every exception is an error of the run
            self.errors.append(f"{method} {path.split('/')[-1] or path}: {type(e).__name__}: {e}")
            return None
        ms = (time.perf_counter() - t) * 1000
        self.latencies.add(ms)
        self.window.add(ms)
        self.by_route.setdefault(f"{method} {self._shape(path)}", Samples()).add(ms)
        if r.status_code not in expect:
            self.errors.append(f"{method} {self._shape(path)} → {r.status_code}: {r.text[:200]}")
            return None
        return r

    @staticmethod
    def _shape(path: str) -> str:
        parts = path.split("/")
        return "/".join("{id}" if len(p) > 30 else p for p in parts)

    FIRST_FRAME_TIMEOUT_S = 5.0  # a stream with no frame by then counts as a timeout (an error)

    async def watch(self, c: httpx.AsyncClient, sid: str, seconds: float, fps: int) -> None:
        self.streams += 1
        start = time.monotonic()
        got, end = 0, start + seconds
        try:
            async with (
                asyncio.timeout(max(seconds, self.FIRST_FRAME_TIMEOUT_S) + 1.0),
                c.stream("GET", f"/api/sessions/{sid}/events", params={"fps": fps}) as r,
            ):
                if r.status_code != 200:
                    self.errors.append(f"GET events → {r.status_code}")
                    return
                async for ev in aparse_sse(r.aiter_lines()):
                    if ev.get("event") == "frame":
                        json.loads(ev["data"])
                        got += 1
                        self.frames += 1
                        if got == 1:
                            self.first_frame.add((time.monotonic() - start) * 1000)
                    elif ev.get("event") == "closed":
                        break
                    now = time.monotonic()
                    if now > end and (got or now > start + self.FIRST_FRAME_TIMEOUT_S):
                        break
        except TimeoutError:
            pass  # the stream went quiet (a paused session sends only changes): judged below
        except Exception as e:  # noqa: BLE001
            self.errors.append(f"stream: {type(e).__name__}: {e}")
            return
        if got == 0:
            self.errors.append(f"stream: no frame within {max(seconds, self.FIRST_FRAME_TIMEOUT_S):.1f} s")

    async def actor(self, c: httpx.AsyncClient, k: int) -> None:
        rng = random.Random(k)
        while time.monotonic() < self.deadline - 5:
            await self.cycle(c, rng)
            self.cycles += 1

    async def cycle(self, c: httpx.AsyncClient, rng: random.Random) -> None:
        config = {**rng.choice(SOAK_CONFIGS), "seed": rng.randrange(2**31)}
        r = await self.call(c, "POST", "/api/sessions", expect=(201,), json=config)
        if r is None:
            return
        body = r.json()
        sid, auth = body["id"], {"Authorization": f"Bearer {body['control_token']}"}
        self.live[sid] = auth
        base = f"/api/sessions/{sid}"
        try:
            await self.call(c, "POST", base + "/play", headers=auth, expect=(200, 409))
            watcher = asyncio.create_task(self.watch(c, sid, rng.uniform(2, 6), rng.choice((10, 30, 60))))
            for _ in range(rng.randint(3, 8)):
                await asyncio.sleep(rng.uniform(0.1, 0.6))
                op = rng.random()
                if op < 0.25:
                    await self.call(c, "GET", base)
                elif op < 0.40:
                    await self.call(
                        c,
                        "PATCH",
                        base,
                        headers=auth,
                        expect=(200,),
                        json={"learning_rate": rng.choice((0.001, 0.003, 0.01, 0.03))},
                    )
                elif op < 0.55:
                    layers = [
                        {"units": rng.randint(1, 12), "activation": rng.choice(("tanh", "relu", "sigmoid"))}
                        for _ in range(rng.randint(1, 4))
                    ]
                    await self.call(c, "PATCH", base, headers=auth, json={"hidden_layers": layers})
                elif op < 0.62:
                    # A 422 naming the layer limit is the right answer once the net has 8 layers.
                    r = await self.call(
                        c,
                        "POST",
                        f"/ui/sessions/{sid}/structure",
                        headers=auth,
                        expect=(200, 422),
                        data={"op": rng.choice(("add_unit", "add_layer")), "layer": "0"},
                    )
                    if r is not None and r.status_code == 422 and r.json().get("field") != "hidden_layers":
                        self.errors.append(f"POST /ui/sessions/{{id}}/structure → 422: {r.text[:200]}")
                elif op < 0.72:
                    await self.call(c, "POST", base + "/step", headers=auth, expect=(200, 409))
                    await self.call(c, "POST", base + "/play", headers=auth, expect=(200, 409))
                elif op < 0.78:
                    await self.call(c, "POST", base + "/reset", headers=auth)
                    await self.call(c, "POST", base + "/play", headers=auth, expect=(200, 409))
                elif op < 0.86:
                    await self.call(c, "GET", base + rng.choice(("/model", "/data", "/history", "/timeline")))
                elif op < 0.93:
                    snap = await self.call(c, "POST", base + "/snapshots", headers=auth, expect=(201,), json={})
                    if snap is not None:
                        self.snapshots += 1
                        if rng.random() < 0.5:  # start a second session from it, look at it, delete it
                            r2 = await self.call(
                                c, "POST", "/api/sessions", expect=(201,), json={"snapshot": snap.json()["snapshot_id"]}
                            )
                            if r2 is not None:
                                b2 = r2.json()
                                a2 = {"Authorization": f"Bearer {b2['control_token']}"}
                                self.live[b2["id"]] = a2
                                await self.call(c, "GET", f"/api/sessions/{b2['id']}")
                                await self.call(c, "DELETE", f"/api/sessions/{b2['id']}", headers=a2, expect=(204,))
                                self.live.pop(b2["id"], None)
                else:
                    await self.call(c, "POST", base + "/pause", headers=auth)
                    await self.call(c, "POST", base + "/play", headers=auth, expect=(200, 409))
            await watcher
        finally:
            r = await self.call(c, "DELETE", base, headers=auth, expect=(204,))
            if r is not None:
                self.live.pop(sid, None)
                await self.call(c, "GET", base, expect=(410,))

    async def resident(self, c: httpx.AsyncClient, config: dict, rng: random.Random) -> dict | None:
        """A session that plays for the whole run (a class demo left open): watched by a stream
        that reconnects every ~20 s, its learning rate nudged now and then."""
        r = await self.call(c, "POST", "/api/sessions", expect=(201,), json={**config, "seed": rng.randrange(2**31)})
        if r is None:
            return None
        body = r.json()
        sid, auth = body["id"], {"Authorization": f"Bearer {body['control_token']}"}
        self.live[sid] = auth
        self.resident_ids.append(sid)
        base = f"/api/sessions/{sid}"
        await self.call(c, "POST", base + "/play", headers=auth, expect=(200, 409))
        while time.monotonic() < self.deadline - 5:
            await self.watch(c, sid, min(20.0, max(1.0, self.deadline - 5 - time.monotonic())), 30)
            await self.call(c, "GET", base)
            await self.call(c, "PATCH", base, headers=auth, json={"learning_rate": rng.choice((0.003, 0.01, 0.03))})
        status = await self.call(c, "GET", base)
        timeline = await self.call(c, "GET", base + "/timeline")
        await self.call(c, "POST", base + "/pause", headers=auth)
        return {
            "config": config,
            "epoch": status.json()["epoch"] if status else None,
            "timeline": timeline.json() if timeline else None,
            "sid": sid,
            "auth": auth,
        }

    async def server_probe(self, c: httpx.AsyncClient) -> None:
        """GET /healthz (server only) and GET /api/stats (server only) against GET of a resident
        session (a round trip to its worker), every 100 ms: says where slow calls wait."""
        while True:
            await asyncio.sleep(0.1)
            for name, path in [("healthz", "/healthz")] + [
                ("worker", f"/api/sessions/{sid}") for sid in self.resident_ids[:1]
            ]:
                t = time.perf_counter()
                try:
                    r = await c.get(path)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.probe[name].add((time.perf_counter() - t) * 1000)

    async def lag_probe(self) -> None:
        """How late this client's own event loop runs (its delays would show in the latencies)."""
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            self.lags.add((time.monotonic() - t - 0.05) * 1000)

    async def reporter(self, c: httpx.AsyncClient, t0: float) -> None:
        minute = 0
        last_requests = 0
        while time.monotonic() < self.deadline:
            await asyncio.sleep(min(self.report_every, max(0.0, self.deadline - time.monotonic())))
            minute += 1
            st = (await c.get("/api/stats")).json()
            window, self.window = self.window, Samples()
            print(
                f"  {time.monotonic() - t0:6.0f} s  requests {self.requests - last_requests:6d} "
                f"(total {self.requests:7d})  errors {len(self.errors):3d}  p99 {window.stat('p99'):7.1f} ms  "
                f"RSS {mb(stats_line(st)[0]):>8}  sessions {st['sessions']:3d}  watchers {st['watchers']:3d}  "
                f"tasks {st['tasks']:3d}  threads {st['threads']:3d}",
                flush=True,
            )
            last_requests = self.requests

    async def actor_at_own_address(self, k: int) -> None:
        """An actor on a client of its own, from its own loopback address (127.0.0.10 + k): the
        per-address limits (snapshot writes, streams, connections) see 14 people, as in a class,
        not one address doing the work of 14."""
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{10 + k}")
        limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
        async with httpx.AsyncClient(
            base_url=self.url, transport=transport, timeout=httpx.Timeout(15.0, read=30.0), limits=limits
        ) as c:
            await self.actor(c, k)

    async def run(self) -> dict:
        limits = httpx.Limits(max_connections=4 * self.actors + 10, max_keepalive_connections=4 * self.actors + 10)
        async with httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(15.0, read=30.0), limits=limits) as c:
            st0 = (await c.get("/api/stats")).json()
            t0 = time.monotonic()
            rep = asyncio.create_task(self.reporter(c, t0))
            lag = asyncio.create_task(self.lag_probe())
            probe = asyncio.create_task(self.server_probe(c))
            cpu0 = os.times()
            rng = random.Random(1000)
            residents = [asyncio.create_task(self.resident(c, cfg, rng)) for cfg in RESIDENTS]
            actors = [asyncio.create_task(self.actor_at_own_address(k)) for k in range(self.actors - len(RESIDENTS))]
            done, pending = await asyncio.wait(
                actors + residents, timeout=max(0.0, self.deadline - time.monotonic()) + 60
            )
            for t in pending:  # should not happen: every cycle is bounded
                self.errors.append("an actor did not finish within 60 s of the deadline")
                t.cancel()
            for t in done:
                if t.exception() is not None:
                    self.errors.append(f"actor crashed: {t.exception()!r}")
            rep.cancel()
            lag.cancel()
            probe.cancel()
            cpu1 = os.times()
            self.client_cpu = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / (time.monotonic() - t0)
            st_before = (await c.get("/api/stats")).json()
            self.resident_results = [t.result() for t in residents if t.done() and not t.exception() and t.result()]
            for sid, auth in list(self.live.items()):  # clean up whatever is left (the residents too)
                await c.delete(f"/api/sessions/{sid}", headers=auth)
            await asyncio.sleep(2.0)
            st1 = (await c.get("/api/stats")).json()
            leftover = [sid for sid in self.live if (await c.get(f"/api/sessions/{sid}")).status_code != 410]
            return {
                "start": st0,
                "before_cleanup": st_before,
                "end": st1,
                "seconds": time.monotonic() - t0,
                "leftover": len(leftover),
            }


def server_errors(log_text: str) -> list[str]:
    """Tracebacks and 5xx answers in the server's log. /healthz answers 503 until every worker
    has sent its first heartbeat: the start-up wait's probes before the first 200 are not errors."""
    lines = log_text.splitlines()
    ready = next((i for i, ln in enumerate(lines) if '"GET /healthz' in ln and '" 200' in ln), 0)
    return [ln for i, ln in enumerate(lines) if "Traceback" in ln or ('" 50' in ln and i >= ready)]


def soak(minutes: float, actors: int = 16, workers: int | None = None) -> dict:
    report_every = 60.0 if minutes >= 2 else 15.0
    header(
        f"soak: {minutes:g} min, {actors} clients: {len(RESIDENTS)} resident sessions that play and are watched "
        f"all along, {actors - len(RESIDENTS)} actors cycling create → play → watch → patch/step/snapshot → "
        f"delete (≤ {actors} sessions at once, plus a snapshot copy now and then), configs from a table of "
        f"{len(SOAK_CONFIGS)} incl. digits and bigger nets; a line every {report_every:.0f} s"
    )
    with LiveServer(workers=workers) as srv:
        s = Soak(srv.url, minutes, actors, report_every)
        res = asyncio.run(s.run())
        log_text = srv.log_tail(10**6)
        log_errors = server_errors(log_text)
    kept = None
    if log_errors:  # keep the server log for a look at the tracebacks
        kept = Path(tempfile.gettempdir()) / f"mlp-soak-server-{time.strftime('%Y%m%d-%H%M%S')}.log"
        kept.write_text(log_text)
    srv.cleanup()
    st0, st1 = res["start"], res["end"]
    print()
    row(
        "total API requests",
        f"{s.requests:,}",
        f"{s.cycles} session cycles, {s.streams} streams, {s.frames:,} frames, {s.snapshots} snapshots",
    )
    row("errors", f"{len(s.errors)}")
    for e in s.errors[:20]:
        print(f"    - {e}")
    s.latencies.print("API latency", "median", "p99", "max")
    row(
        "this client: CPU / event-loop lag median / p99",
        f"{s.client_cpu * 100:.0f} % / " + s.lags.figures("median", "p99"),
        "(its own delays are part of the latencies)",
    )
    s.first_frame.print(
        "stream opened → first frame", "median", "p99", "max", digits=0, note=f"{len(s.first_frame)} streams"
    )
    for name, label in (
        ("healthz", "probe GET /healthz (server only)"),
        ("worker", "probe GET /api/sessions/{id} (via its worker)"),
    ):
        xs = s.probe[name]
        xs.print(label, "median", "p99", "max", note=f"{len(xs)} calls (not counted above)")
    print("  slowest routes by p99 (ms):")
    for route, xs in sorted(s.by_route.items(), key=lambda kv: -kv[1].stat("p99"))[:8]:
        row(f"    {route}", xs.figures("median", "p99", "max", digits=0), f"median / p99 / max, {len(xs)} calls")
    row(
        "RSS total at start → before cleanup → end",
        f"{mb(stats_line(st0)[0])} → {mb(stats_line(res['before_cleanup'])[0])} → {mb(stats_line(st1)[0])}",
        "workers " + " + ".join(mb(w) for w in stats_line(res["before_cleanup"])[2]) + " before cleanup",
    )
    for r in s.resident_results:
        tl = r["timeline"] or {}
        name = "default network" if not r["config"] else "6×8 tanh spiral"
        row(
            f"resident session ({name}): epochs / checkpoints",
            f"{r['epoch']} / {len(tl.get('epochs', []))}",
            f"timeline counts {tl.get('bytes', 0) / 1e6:.2f} MB of {tl.get('max_bytes', 0) / 1e6:.0f} MB, "
            f"every {tl.get('every')} epochs",
        )
    row("sessions / watchers at end", f"{st1['sessions']} / {st1['watchers']}", f"{res['leftover']} left by the client")
    row("tasks at start → end", f"{st0['tasks']} → {st1['tasks']}")
    row("threads at start → end", f"{st0['threads']} → {st1['threads']}")
    row("tracebacks or 5xx in the server log", f"{len(log_errors)}", f"kept: {kept}" if kept else "")
    if kept:
        lines = log_text.splitlines()
        first = next(i for i, ln in enumerate(lines) if "Traceback" in ln or '" 50' in ln)
        print("    first one:\n      " + "\n      ".join(lines[first : first + 25]))
    row("server stop after SIGINT", f"{srv.stop_seconds:.1f} s" if srv.stop_seconds is not None else "-")
    ok = not s.errors and not log_errors and st1["sessions"] == 0
    row("reliability: 0 errors, every session cleaned up", verdict(ok))
    return {"ok": ok, "requests": s.requests, "errors": len(s.errors), "p99": s.latencies.stat("p99")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--actors", type=int, default=16, help="concurrent clients, each with at most one session (max 20)")
    args = ap.parse_args()
    run_main(lambda: soak(args.minutes, actors=max(len(RESIDENTS) + 1, min(20, args.actors))))


if __name__ == "__main__":
    main()
