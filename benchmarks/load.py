"""Load figures through a real server: frame rate of one stream, thirty streams at once,
control latency, and a soak run. Every mode starts its own server (`python -m app` on a
free loopback port, a temporary DB_PATH) and stops it with SIGINT at the end, also on
Ctrl-C or an error. Clients and run time are bounded; the script prints figures and never
asserts (targets are printed next to the figures).

Run:
  .venv/bin/python benchmarks/load.py one-stream      # target 3: one 6×8 tanh stream at fps=60
  .venv/bin/python benchmarks/load.py many            # target 4: 30 sessions × 1 stream, WORKERS=1 and 2
  .venv/bin/python benchmarks/load.py latency         # target 6: control action → first frame showing it
  .venv/bin/python benchmarks/load.py soak --minutes 10   # reliability: mixed clients, errors must be 0
  .venv/bin/python benchmarks/load.py all             # one-stream, many, latency (not soak)

Other scripts (browser.py, bench_time_to_fit.py) import the server and SSE helpers from here.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from common import ROOT, row  # also: one BLAS thread per process, inherited by the server

from tests.sse import parse_sse, shut_socket  # the repository root is on sys.path (common)

LOOPBACK = "127.0.0.1"
TANH_6x8 = [{"units": 8, "activation": "tanh"}] * 6
SPIRAL_6x8 = dict(dataset="spiral", hidden_layers=TANH_6x8, optimizer="adam", learning_rate=0.003, batch_size=10)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the server under test -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class LiveServer:
    """`python -m app` on a free loopback port with a temporary database, as a context
    manager: started on enter (waits for /healthz), stopped with SIGINT on exit, whatever
    the exit (normal end, exception, Ctrl-C). Its own process group, so a Ctrl-C in the
    terminal reaches only this script, which then stops the server itself."""

    def __init__(self, workers: int | None = None, **env_overrides):
        self.tmp = tempfile.TemporaryDirectory(prefix="mlp-bench-")
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.env = {**os.environ, "HOST": LOOPBACK, "PORT": str(self.port),
                    "DB_PATH": str(Path(self.tmp.name) / "snapshots.sqlite3"), "PYTHONUNBUFFERED": "1",
                    **({"WORKERS": str(workers)} if workers else {}),
                    **{k.upper(): str(v) for k, v in env_overrides.items()}}
        self.log_path = Path(self.tmp.name) / "server.log"
        self.proc: subprocess.Popen | None = None
        self.stop_seconds: float | None = None

    def __enter__(self) -> "LiveServer":
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
                try:
                    if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start within 30 s")
                time.sleep(0.1)
            # The workers are spawned in the lifespan; wait until /api/stats lists them all.
            while time.monotonic() < deadline:
                st = httpx.get(self.url + "/api/stats", timeout=5).json()
                if st["rss_bytes"]["workers"] and all(st["rss_bytes"]["workers"]):
                    break
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            start = time.monotonic()
            self.proc.send_signal(signal.SIGINT)  # as a person pressing Ctrl-C
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                print(f"  ! server did not stop within 15 s of SIGINT; killing it (log: {self.log_path})")
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.stop_seconds = time.monotonic() - start
        if hasattr(self, "_log"):
            self._log.close()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-n:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.tmp.cleanup()

    # -- processes: the server and its children (the training workers) ------------------------
    def child_pids(self) -> dict[int, str]:
        """pid → role ("worker" or "tracker") of the server's child processes."""
        out = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                if ppid != self.proc.pid:
                    continue
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError):
                continue
            out[int(d.name)] = "tracker" if "resource_tracker" in cmd else "worker"
        return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stats_line(st: dict) -> tuple[int, int, list[int]]:
    """(total, server, [workers]) resident bytes from GET /api/stats."""
    rss = st["rss_bytes"]
    workers = [w or 0 for w in rss["workers"]]
    return (rss["server"] or 0) + sum(workers), rss["server"] or 0, workers


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


# --- server-sent events, parsed by hand (tests/sse.py: one parser for tests and benchmarks) -------


async def aparse_sse(lines):
    """The same for an async iterator of lines."""
    event: dict = {}
    async for line in lines:
        if line == "":
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            event[name] = event[name] + "\n" + value if name == "data" and "data" in event else value


class FrameReader:
    """One SSE stream read by a background thread: every frame with its arrival time
    (time.monotonic, taken as soon as the event's last line is read), a few fields kept."""

    def __init__(self, base_url: str, sid: str, fps: int, keep=lambda f: f):
        self.frames: list[tuple[float, dict, int]] = []  # (arrival, keep(frame), bytes)
        self.cond = threading.Condition()
        self.error: BaseException | None = None
        self._keep = keep
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=30.0))
        self._cm = self._client.stream("GET", f"{base_url}/api/sessions/{sid}/events", params={"fps": fps})
        self.response = self._cm.__enter__()
        self.response.raise_for_status()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            for event in parse_sse(self.response.iter_lines()):
                if self._stop:
                    return
                if event.get("event") == "frame":
                    t = time.monotonic()
                    data = event["data"]
                    item = (t, self._keep(json.loads(data)), len(data))
                    with self.cond:
                        self.frames.append(item)
                        self.cond.notify_all()
        except BaseException as e:
            if not self._stop:
                self.error = e
        finally:
            with self.cond:
                self.cond.notify_all()

    def wait_for(self, pred, since: float, timeout: float) -> tuple[float, dict] | None:
        """The first frame that arrived at or after `since` and satisfies pred(kept frame)."""
        deadline = time.monotonic() + timeout
        i = 0
        with self.cond:
            while True:
                while i < len(self.frames):
                    t, f, _ = self.frames[i]
                    i += 1
                    if t >= since and pred(f):
                        return t, f
                left = deadline - time.monotonic()
                if left <= 0 or self.error is not None or not self._thread.is_alive():
                    return None
                self.cond.wait(left)

    def latest(self) -> dict | None:
        with self.cond:
            return self.frames[-1][1] if self.frames else None

    def close(self):
        self._stop = True
        shut_socket(self.response)
        self._thread.join(5)
        try:
            self._cm.__exit__(None, None, None)
        except Exception:
            pass
        self._client.close()


# --- small helpers ------------------------------------------------------------------------------
def pct(values, q: float) -> float:
    """The q-th percentile (0…100), nearest-rank; NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def create(client: httpx.Client, **config) -> tuple[str, dict]:
    r = client.post("/api/sessions", json=config)
    r.raise_for_status()
    body = r.json()
    return body["id"], {"Authorization": f"Bearer {body['control_token']}"}


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def header(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


# --- one-stream (target 3) --------------------------------------------------------------------
def one_stream(seconds: float = 10.0, warmup: float = 2.0) -> dict:
    header(f"one-stream: 6×8 tanh spiral (Adam lr 0.003, batch 10), playing, one client at fps=60, {seconds:.0f} s")
    with LiveServer() as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        sid, auth = create(c, seed=1, **SPIRAL_6x8)
        reader = FrameReader(srv.url, sid, 60, keep=lambda f: {"epoch": f["epoch"]})
        try:
            c.post(f"/api/sessions/{sid}/play", headers=auth).raise_for_status()
            time.sleep(warmup)
            pids = {"server": srv.proc.pid, **{f"{role} {pid}": pid for pid, role in srv.child_pids().items()
                                               if role == "worker"}}
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            t0 = time.monotonic()
            time.sleep(seconds)
            t1 = time.monotonic()
            cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
            c.post(f"/api/sessions/{sid}/pause", headers=auth)
        finally:
            reader.close()
        frames = [(t, f["epoch"], n) for t, f, n in reader.frames if t0 <= t < t1]
        c.delete(f"/api/sessions/{sid}", headers=auth)
    srv.cleanup()
    windows = [sum(1 for t, _, _ in frames if t0 + i <= t < t0 + i + 1) for i in range(int(seconds))]
    overall = (len(frames) - 1) / (frames[-1][0] - frames[0][0]) if len(frames) > 1 else 0.0
    deltas = [b[1] - a[1] for a, b in zip(frames, frames[1:])]
    gaps = [(b[0] - a[0]) * 1000 for a, b in zip(frames, frames[1:])]
    res = {"fps_median": statistics.median(windows) if windows else 0, "fps_overall": overall,
           "epf_median": statistics.median(deltas) if deltas else 0}
    row("frames delivered", f"{len(frames)}", f"in {t1 - t0:.1f} s")
    row("frames/s, median of 1 s windows", f"{res['fps_median']:.1f}", f"windows: {windows}")
    row("frames/s overall", f"{overall:.1f}")
    row("epochs per frame (median delta)", f"{res['epf_median']:.0f}",
        f"min {min(deltas) if deltas else 0}, max {max(deltas) if deltas else 0}, "
        f"{sum(d < 1 for d in deltas)} frames with no new epoch")
    row("epochs per second", f"{(frames[-1][1] - frames[0][1]) / (frames[-1][0] - frames[0][0]):.1f}" if len(frames) > 1 else "-")
    row("gap between frames p50 / p99 / max", f"{pct(gaps, 50):.1f} / {pct(gaps, 99):.1f} / {max(gaps, default=0):.1f} ms")
    row("bytes per frame (median)", f"{statistics.median(n for _, _, n in frames):,.0f} B" if frames else "-")
    for k in pids:
        if cpu0[k] is not None and cpu1[k] is not None:
            row(f"CPU of {k}", f"{(cpu1[k] - cpu0[k]) / (t1 - t0) * 100:.0f} %", "of one core")
    ok = res["fps_median"] >= 55 and res["epf_median"] >= 1
    row("target 3: ≥ 55 frames/s and ≥ 1 epoch/frame", verdict(ok))
    res["ok"] = ok
    return res


# --- many (target 4) -----------------------------------------------------------------------------
def _stream_process(base_url: str, sids: list[str], fps: int, t_start: float, t_end: float, out) -> None:
    """A client process: one SSE stream per session id (asyncio + httpx.AsyncClient),
    frame arrival times inside [t_start, t_end); also its own CPU time and loop lag."""
    async def one(client: httpx.AsyncClient, sid: str) -> dict:
        arrivals, epochs, err = [], [], None
        try:
            async with client.stream("GET", f"{base_url}/api/sessions/{sid}/events", params={"fps": fps}) as r:
                if r.status_code != 200:
                    return {"sid": sid, "n": 0, "error": f"HTTP {r.status_code}"}
                async for ev in aparse_sse(r.aiter_lines()):
                    t = time.monotonic()
                    if t >= t_end:
                        break
                    if ev.get("event") == "frame" and t >= t_start:
                        arrivals.append(t)
                        epochs.append(json.loads(ev["data"])["epoch"])
        except Exception as e:  # noqa: BLE001 - reported, not raised
            err = f"{type(e).__name__}: {e}"
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        return {"sid": sid, "n": len(arrivals), "error": err, "max_gap": max(gaps, default=0.0),
                "epochs": (epochs[-1] - epochs[0]) if len(epochs) > 1 else 0}

    async def lag_probe() -> list[float]:
        lags = []
        while time.monotonic() < t_end:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            lags.append(time.monotonic() - t - 0.05)
        return lags

    async def main():
        limits = httpx.Limits(max_connections=len(sids) + 5, max_keepalive_connections=len(sids) + 5)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=30.0), limits=limits) as client:
            lag = asyncio.create_task(lag_probe())
            results = await asyncio.gather(*(one(client, s) for s in sids))
            return results, await lag

    cpu0 = os.times()
    results, lags = asyncio.run(main())
    cpu1 = os.times()
    out.send({"streams": results, "cpu": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
              "lag_p99_ms": pct(lags, 99) * 1000, "lag_max_ms": max(lags, default=0) * 1000, "pid": os.getpid()})
    out.close()


class StatsSampler(threading.Thread):
    """GET /api/stats once a second into `samples` as (t, total_rss, stats)."""

    def __init__(self, url: str, period: float = 1.0):
        super().__init__(daemon=True)
        self.url, self.period = url, period
        self.samples: list[tuple[float, int, dict]] = []
        self.errors = 0
        self._halt = threading.Event()

    def run(self):
        with httpx.Client(timeout=10) as c:
            while not self._halt.is_set():
                try:
                    st = c.get(self.url + "/api/stats").json()
                    self.samples.append((time.monotonic(), stats_line(st)[0], st))
                except Exception:  # noqa: BLE001
                    self.errors += 1
                self._halt.wait(self.period)

    def stop(self):
        self._halt.set()
        self.join(15)


def many(workers: int, n_sessions: int = 30, fps: int = 30, seconds: float = 30.0, warmup: float = 5.0,
         poll_hz: float = 20.0, client_procs: int = 1) -> dict:
    header(f"many: {n_sessions} default-network sessions playing, one stream each at fps={fps}, "
           f"WORKERS={workers}, {seconds:.0f} s after {warmup:.0f} s warm-up, "
           f"{client_procs} client process(es), GET poller at {poll_hz:.0f}/s")
    ctx = mp.get_context("spawn")
    with LiveServer(workers=workers) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        sampler = StatsSampler(srv.url)
        sampler.start()
        time.sleep(1.5)
        made = [create(c, seed=i) for i in range(n_sessions)]
        try:
            for sid, auth in made:
                c.post(f"/api/sessions/{sid}/play", headers=auth).raise_for_status()
            t_start = time.monotonic() + warmup + 1.0  # +1 s: client processes start up
            t_end = t_start + seconds
            procs, pipes = [], []
            for k in range(client_procs):
                recv, send = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_stream_process, args=(srv.url, [s for s, _ in made[k::client_procs]],
                                                               fps, t_start, t_end, send), daemon=True)
                p.start()
                send.close()
                procs.append(p)
                pipes.append(recv)
            pids = {"server": srv.proc.pid, **{f"worker {pid}": pid for pid, role in srv.child_pids().items()
                                               if role == "worker"},
                    **{f"client process {i}": p.pid for i, p in enumerate(procs)}}
            time.sleep(max(0.0, t_start - time.monotonic()))
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            # The poller: GET /api/sessions/{id}, round robin, at a steady pace (open loop is
            # not needed: at 20/s a request that takes longer than 50 ms shows in p99 anyway).
            latencies, get_errors, i = [], [], 0
            next_at = time.monotonic()
            while time.monotonic() < t_end:
                sid = made[i % n_sessions][0]
                i += 1
                t = time.perf_counter()
                try:
                    r = c.get(f"/api/sessions/{sid}")
                    if r.status_code != 200:
                        get_errors.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as e:
                    get_errors.append(f"{type(e).__name__}")
                latencies.append((time.perf_counter() - t) * 1000)
                next_at += 1.0 / poll_hz
                time.sleep(max(0.0, next_at - time.monotonic()))
            cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
            results = []
            for recv, p in zip(pipes, procs):
                if recv.poll(30):
                    results.append(recv.recv())
                p.join(10)
                if p.is_alive():
                    p.kill()
        finally:
            end_sample = sampler.samples[-1] if sampler.samples else None
            for sid, auth in made:
                try:
                    c.delete(f"/api/sessions/{sid}", headers=auth)
                except httpx.HTTPError:
                    pass
            time.sleep(1.5)
            sampler.stop()
        after = c.get("/api/stats").json()
    srv.cleanup()

    streams = [s for r in results for s in r["streams"]]
    rates = sorted(s["n"] / seconds for s in streams)
    errors = [s for s in streams if s["error"]]
    samples = sampler.samples
    during = [st for t, _, st in samples if t_start <= t <= t_end]
    start_rss = samples[0][1] if samples else 0
    peak = max(samples, key=lambda s: s[1]) if samples else None
    res = {"workers": workers, "fps_min": rates[0] if rates else 0, "fps_median": statistics.median(rates) if rates else 0,
           "fps_p10": pct(rates, 10), "get_p50": pct(latencies, 50), "get_p99": pct(latencies, 99),
           "get_max": max(latencies, default=0), "rss_peak": peak[1] if peak else 0, "streams": len(streams)}
    row("streams measured / with errors", f"{len(streams)} / {len(errors)}",
        "; ".join(f"{e['error']}" for e in errors[:3]))
    row("frames/s per stream: min / p10 / median", f"{res['fps_min']:.1f} / {res['fps_p10']:.1f} / {res['fps_median']:.1f}")
    row("longest gap between two frames of a stream", f"{max((s['max_gap'] for s in streams), default=0) * 1000:.0f} ms")
    epf = [s["epochs"] / max(1, s["n"] - 1) for s in streams if s["n"] > 1]
    row("epochs per frame (median over streams)", f"{statistics.median(epf):.2f}" if epf else "-")
    row(f"GET /api/sessions/{{id}}: p50 / p99 / max ({len(latencies)} requests)",
        f"{res['get_p50']:.1f} / {res['get_p99']:.1f} / {res['get_max']:.1f} ms",
        f"{len(get_errors)} errors" if get_errors else "")
    if samples:
        row("RSS total (server + workers): start / peak / end",
            f"{mb(start_rss)} / {mb(peak[1])} / {mb(end_sample[1])}")
        _, srv_rss, w_rss = stats_line(peak[2])
        row("  at peak: server / workers", f"{mb(srv_rss)} / " + " + ".join(mb(w) for w in w_rss))
        if during:
            row("  tasks / threads during the run (max)", f"{max(st['tasks'] for st in during)} / "
                f"{max(st['threads'] for st in during)}", f"watchers {max(st['watchers'] for st in during)}")
    row("after deleting every session: sessions / watchers / tasks / threads",
        f"{after['sessions']} / {after['watchers']} / {after['tasks']} / {after['threads']}",
        f"RSS {mb(stats_line(after)[0])}")
    span = seconds
    used = {k: cpu1[k] - cpu0[k] for k in pids if cpu0.get(k) is not None and cpu1.get(k) is not None}
    for k, v in used.items():
        row(f"CPU of {k}", f"{v / span * 100:.0f} %", "of one core")
    frames = sum(s["n"] for s in streams)
    worker_cpu = sum(v for k, v in used.items() if k.startswith("worker"))
    res["cpu_total"] = sum(used.values()) / span
    if frames:
        row("worker CPU per frame (train 1 epoch + build + send)", f"{worker_cpu / frames * 1000:.2f} ms",
            f"{frames / span:.0f} frames/s in all")
        row("server CPU per frame relayed", f"{used.get('server', 0) / frames * 1000:.2f} ms")
        res["worker_ms"] = worker_cpu / frames * 1000
        res["server_ms"] = used.get("server", 0) / frames * 1000
    row("CPU of this benchmark's processes, all together", f"{res['cpu_total'] * 100:.0f} %",
        f"of {os.cpu_count() * 100} %; the rest went to other processes (load average {os.getloadavg()[0]:.1f})")
    for i, r in enumerate(results):
        busy = r["cpu"] / span > 0.7 or r["lag_p99_ms"] > 100
        row(f"client process {i}: CPU / event-loop lag p99 / max",
            f"{r['cpu'] / span * 100:.0f} % / {r['lag_p99_ms']:.1f} / {r['lag_max_ms']:.0f} ms",
            f"{len(r['streams'])} streams; " + ("busy: try --client-procs 2" if busy else "keeps up"))
    if during and len(during) > 1:
        d = [(t, tot) for t, tot, _ in samples if t_start <= t <= t_end]
        row("RSS growth during the run", f"{(d[-1][1] - d[0][1]) / 1e6 / ((d[-1][0] - d[0][0]) / 60):+.1f} MB/min")
    ok = res["fps_min"] >= 25 and res["get_p99"] <= 50 and res["rss_peak"] <= 1e9 and not errors
    row("target 4: every stream ≥ 25 f/s, GET p99 ≤ 50 ms, RSS ≤ 1 GB", verdict(ok),
        f"(min {res['fps_min']:.1f} f/s, p99 {res['get_p99']:.1f} ms, peak {mb(res['rss_peak'])})")
    res["ok"] = ok
    return res


def many_table(results: list[dict]) -> None:
    if len(results) < 2:
        return
    header("many: what each worker count gives")
    print(f"  {'WORKERS':>7}  {'f/s min':>7}  {'f/s p10':>7}  {'f/s median':>10}  {'GET p50':>8}  {'GET p99':>8}  "
          f"{'RSS peak':>9}  {'CPU used':>8}  {'worker ms/frame':>15}  {'server ms/frame':>15}")
    for r in results:
        print(f"  {r['workers']:>7}  {r['fps_min']:7.1f}  {r['fps_p10']:7.1f}  {r['fps_median']:10.1f}  "
              f"{r['get_p50']:6.1f}ms  {r['get_p99']:6.1f}ms  {mb(r['rss_peak']):>9}  {r.get('cpu_total', 0) * 100:7.0f}%  "
              f"{r.get('worker_ms', float('nan')):15.2f}  {r.get('server_ms', float('nan')):15.2f}")


# --- latency (target 6) -------------------------------------------------------------------------
def latency(samples: int = 40, network: str = "default") -> dict:
    header(f"latency: control action → first frame showing it, one stream at fps=60 on a playing session "
           f"({network} network), {samples} samples per route")
    config = {"seed": 3} if network == "default" else {"seed": 3, **SPIRAL_6x8}
    first_act = "tanh"

    def keep(f):
        return {"epoch": f["epoch"], "structure": f["structure"], "units": f["layers"][1]["units"],
                "activation": f["layers"][1]["activation"]}

    out = {}
    with LiveServer() as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        sid, auth = create(c, **config)
        base_units = c.get(f"/api/sessions/{sid}").json()["config"]["hidden_layers"]
        reader = FrameReader(srv.url, sid, 60, keep=keep)
        try:
            c.post(f"/api/sessions/{sid}/play", headers=auth).raise_for_status()
            if reader.wait_for(lambda f: True, 0, 10) is None:
                raise RuntimeError("no frame within 10 s")
            time.sleep(1.0)
            rng = random.Random(0)
            for route in ("api", "ui"):
                to_frame, to_reply, misses = {"structure": [], "activation": []}, [], 0
                for k in range(samples):
                    time.sleep(rng.uniform(0.05, 0.15))  # frames keep flowing between actions
                    now = reader.latest()
                    kind = "structure" if k % 2 == 0 else "activation"
                    if kind == "structure":
                        grow = now["units"] <= base_units[0]["units"]
                        units = now["units"] + (1 if grow else -1)
                        pred = (lambda f, u=units, s=now["structure"]: f["units"] == u or f["structure"] > s)
                        layers = [{"units": units, "activation": now["activation"]}, *base_units[1:]]
                        form = {"op": "add_unit" if grow else "remove_unit", "layer": "0"}
                    else:
                        act = "relu" if now["activation"] == first_act else first_act
                        pred = (lambda f, a=act: f["activation"] == a)
                        layers = [{"units": now["units"], "activation": act}, *base_units[1:]]
                        form = {"op": "activation", "layer": "0", "activation": act}
                    t0 = time.monotonic()
                    if route == "api":
                        r = c.patch(f"/api/sessions/{sid}", json={"hidden_layers": layers}, headers=auth)
                    else:
                        r = c.post(f"/ui/sessions/{sid}/structure", data=form, headers=auth)
                    t_reply = time.monotonic()
                    r.raise_for_status()
                    hit = reader.wait_for(pred, t0, 5.0)
                    to_reply.append((t_reply - t0) * 1000)
                    if hit is None:
                        misses += 1
                        continue
                    to_frame[kind].append((hit[0] - t0) * 1000)
                both = to_frame["structure"] + to_frame["activation"]
                name = "PATCH /api/sessions/{id}" if route == "api" else "POST /ui/sessions/{id}/structure (htmx)"
                print(f"  {name}")
                row("    request → frame showing it: median / p90 (all)",
                    f"{pct(both, 50):.1f} / {pct(both, 90):.1f} ms", f"{len(both)} samples, {misses} never seen")
                for kind, xs in to_frame.items():
                    row(f"      {kind} change: median / p90", f"{pct(xs, 50):.1f} / {pct(xs, 90):.1f} ms", f"{len(xs)} samples")
                row("    request → response: median / p90", f"{pct(to_reply, 50):.1f} / {pct(to_reply, 90):.1f} ms")
                out[route] = {"median": pct(both, 50), "p90": pct(both, 90), "reply_median": pct(to_reply, 50),
                              "misses": misses}
            c.post(f"/api/sessions/{sid}/pause", headers=auth)
        finally:
            reader.close()
        c.delete(f"/api/sessions/{sid}", headers=auth)
    srv.cleanup()
    ok = all(v["median"] <= 100 and v["misses"] == 0 for v in out.values())
    row("target 6: median ≤ 100 ms (API and htmx)", verdict(ok))
    out["ok"] = ok
    return out


# --- soak (reliability) --------------------------------------------------------------------------
SOAK_CONFIGS = [
    {},  # the default network
    {"dataset": "circle", "hidden_layers": [{"units": 4, "activation": "relu"}, {"units": 2, "activation": "relu"}]},
    {"dataset": "xor", "features": ["x1", "x2", "x1x2"], "hidden_layers": [{"units": 3, "activation": "tanh"}]},
    {"dataset": "gauss", "classes": 3, "optimizer": "momentum", "learning_rate": 0.01},
    {**SPIRAL_6x8},
    {**SPIRAL_6x8, "epochs_per_frame": 10},
    {"dataset": "moons", "hidden_layers": [{"units": 16, "activation": "relu"}] * 3, "optimizer": "adam",
     "learning_rate": 0.003, "regularization": "l2", "regularization_rate": 0.001},
    {"dataset": "spiral", "hidden_layers": [{"units": 32, "activation": "relu"}] * 4, "optimizer": "adam",
     "learning_rate": 0.003, "init": "he"},
    {"dataset": "reg-plane", "hidden_layers": [{"units": 8, "activation": "tanh"}] * 2, "learning_rate": 0.01},
    {"dataset": "reg-gauss", "lr_schedule": "cosine", "lr_period": 200},
    {"dataset": "digits", "hidden_layers": [{"units": 32, "activation": "relu"}], "optimizer": "adam",
     "learning_rate": 0.001, "batch_size": 32, "init": "he"},
    {"dataset": "digits", "hidden_layers": [{"units": 128, "activation": "relu"}, {"units": 64, "activation": "relu"}],
     "optimizer": "adam", "learning_rate": 0.001, "batch_size": 32, "init": "he"},
]


RESIDENTS = [{}, {**SPIRAL_6x8}]  # played and watched for the whole run


class Soak:
    def __init__(self, url: str, minutes: float, actors: int, report_every: float):
        self.url, self.actors, self.report_every = url, actors, report_every
        self.deadline = time.monotonic() + minutes * 60
        self.requests = 0
        self.latencies: list[float] = []  # ms, every API call (not streams)
        self.window: list[float] = []
        self.errors: list[str] = []
        self.live: dict[str, dict] = {}  # sid -> auth headers, for cleanup
        self.frames = 0
        self.streams = 0
        self.snapshots = 0
        self.cycles = 0
        self.resident_results: list[dict] = []
        self.by_route: dict[str, list[float]] = {}
        self.lags: list[float] = []
        self.first_frame: list[float] = []  # ms from opening a stream to its first frame
        self.client_cpu = 0.0
        self.resident_ids: list[str] = []
        self.probe: dict[str, list[float]] = {"healthz": [], "worker": []}

    async def call(self, c: httpx.AsyncClient, method: str, path: str, expect=(200,), **kw) -> httpx.Response | None:
        t = time.perf_counter()
        self.requests += 1
        try:
            r = await c.request(method, path, **kw)
        except Exception as e:  # noqa: BLE001 - every exception is an error of the run
            self.errors.append(f"{method} {path.split('/')[-1] or path}: {type(e).__name__}: {e}")
            return None
        ms = (time.perf_counter() - t) * 1000
        self.latencies.append(ms)
        self.window.append(ms)
        self.by_route.setdefault(f"{method} {self._shape(path)}", []).append(ms)
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
            async with asyncio.timeout(max(seconds, self.FIRST_FRAME_TIMEOUT_S) + 1.0), \
                    c.stream("GET", f"/api/sessions/{sid}/events", params={"fps": fps}) as r:
                if r.status_code != 200:
                    self.errors.append(f"GET events → {r.status_code}")
                    return
                async for ev in aparse_sse(r.aiter_lines()):
                    if ev.get("event") == "frame":
                        json.loads(ev["data"])
                        got += 1
                        self.frames += 1
                        if got == 1:
                            self.first_frame.append((time.monotonic() - start) * 1000)
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
                    await self.call(c, "PATCH", base, headers=auth, expect=(200,),
                                    json={"learning_rate": rng.choice((0.001, 0.003, 0.01, 0.03))})
                elif op < 0.55:
                    layers = [{"units": rng.randint(1, 12), "activation": rng.choice(("tanh", "relu", "sigmoid"))}
                              for _ in range(rng.randint(1, 4))]
                    await self.call(c, "PATCH", base, headers=auth, json={"hidden_layers": layers})
                elif op < 0.62:
                    # A 422 naming the layer limit is the right answer once the net has 8 layers.
                    r = await self.call(c, "POST", f"/ui/sessions/{sid}/structure", headers=auth, expect=(200, 422),
                                        data={"op": rng.choice(("add_unit", "add_layer")), "layer": "0"})
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
                            r2 = await self.call(c, "POST", "/api/sessions", expect=(201,),
                                                 json={"snapshot": snap.json()["snapshot_id"]})
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
        return {"config": config, "epoch": status.json()["epoch"] if status else None,
                "timeline": timeline.json() if timeline else None, "sid": sid, "auth": auth}

    async def server_probe(self, c: httpx.AsyncClient) -> None:
        """GET /healthz (server only) and GET /api/stats (server only) against GET of a resident
        session (a round trip to its worker), every 100 ms: says where slow calls wait."""
        while True:
            await asyncio.sleep(0.1)
            for name, path in [("healthz", "/healthz")] + [("worker", f"/api/sessions/{sid}") for sid in self.resident_ids[:1]]:
                t = time.perf_counter()
                try:
                    r = await c.get(path)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.probe[name].append((time.perf_counter() - t) * 1000)

    async def lag_probe(self) -> None:
        """How late this client's own event loop runs (its delays would show in the latencies)."""
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            self.lags.append((time.monotonic() - t - 0.05) * 1000)

    async def reporter(self, c: httpx.AsyncClient, t0: float) -> None:
        minute = 0
        last_requests = 0
        while time.monotonic() < self.deadline:
            await asyncio.sleep(min(self.report_every, max(0.0, self.deadline - time.monotonic())))
            minute += 1
            st = (await c.get("/api/stats")).json()
            window, self.window = self.window, []
            print(f"  {time.monotonic() - t0:6.0f} s  requests {self.requests - last_requests:6d} "
                  f"(total {self.requests:7d})  errors {len(self.errors):3d}  p99 {pct(window, 99):7.1f} ms  "
                  f"RSS {mb(stats_line(st)[0]):>8}  sessions {st['sessions']:3d}  watchers {st['watchers']:3d}  "
                  f"tasks {st['tasks']:3d}  threads {st['threads']:3d}", flush=True)
            last_requests = self.requests

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
            actors = [asyncio.create_task(self.actor(c, k)) for k in range(self.actors - len(RESIDENTS))]
            done, pending = await asyncio.wait(actors + residents,
                                               timeout=max(0.0, self.deadline - time.monotonic()) + 60)
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
            return {"start": st0, "before_cleanup": st_before, "end": st1, "seconds": time.monotonic() - t0,
                    "leftover": len(leftover)}


def soak(minutes: float, actors: int = 16, workers: int | None = None) -> dict:
    report_every = 60.0 if minutes >= 2 else 15.0
    header(f"soak: {minutes:g} min, {actors} clients: {len(RESIDENTS)} resident sessions that play and are watched "
           f"all along, {actors - len(RESIDENTS)} actors cycling create → play → watch → patch/step/snapshot → "
           f"delete (≤ {actors} sessions at once, plus a snapshot copy now and then), configs from a table of "
           f"{len(SOAK_CONFIGS)} incl. digits and bigger nets; a line every {report_every:.0f} s")
    with LiveServer(workers=workers) as srv:
        s = Soak(srv.url, minutes, actors, report_every)
        res = asyncio.run(s.run())
        log_text = srv.log_tail(10**6)
        log_errors = [ln for ln in log_text.splitlines() if "Traceback" in ln or '" 50' in ln]
    kept = None
    if log_errors:  # keep the server log for a look at the tracebacks
        kept = Path(tempfile.gettempdir()) / f"mlp-soak-server-{time.strftime('%Y%m%d-%H%M%S')}.log"
        kept.write_text(log_text)
    srv.cleanup()
    st0, st1 = res["start"], res["end"]
    print()
    row("total API requests", f"{s.requests:,}", f"{s.cycles} session cycles, {s.streams} streams, "
        f"{s.frames:,} frames, {s.snapshots} snapshots")
    row("errors", f"{len(s.errors)}")
    for e in s.errors[:20]:
        print(f"    - {e}")
    row("API latency p50 / p99 / max", f"{pct(s.latencies, 50):.1f} / {pct(s.latencies, 99):.1f} / "
        f"{max(s.latencies, default=0):.1f} ms")
    row("this client: CPU / event-loop lag p50 / p99", f"{s.client_cpu * 100:.0f} % / {pct(s.lags, 50):.1f} / "
        f"{pct(s.lags, 99):.1f} ms", "(its own delays are part of the latencies)")
    row("stream opened → first frame: p50 / p99 / max", f"{pct(s.first_frame, 50):.0f} / "
        f"{pct(s.first_frame, 99):.0f} / {max(s.first_frame, default=0):.0f} ms", f"{len(s.first_frame)} streams")
    for name, label in (("healthz", "probe GET /healthz (server only)"),
                        ("worker", "probe GET /api/sessions/{id} (via its worker)")):
        xs = s.probe[name]
        row(f"{label}: p50 / p99 / max", f"{pct(xs, 50):.1f} / {pct(xs, 99):.1f} / {max(xs, default=0):.0f} ms",
            f"{len(xs)} calls (not counted above)")
    print("  slowest routes by p99 (ms):")
    for route, xs in sorted(s.by_route.items(), key=lambda kv: -pct(kv[1], 99))[:8]:
        row(f"    {route}", f"{pct(xs, 50):.0f} / {pct(xs, 99):.0f} / {max(xs):.0f}", f"p50 / p99 / max, {len(xs)} calls")
    row("RSS total at start → before cleanup → end", f"{mb(stats_line(st0)[0])} → "
        f"{mb(stats_line(res['before_cleanup'])[0])} → {mb(stats_line(st1)[0])}",
        "workers " + " + ".join(mb(w) for w in stats_line(res["before_cleanup"])[2]) + " before cleanup")
    for r in s.resident_results:
        tl = r["timeline"] or {}
        name = "default network" if not r["config"] else "6×8 tanh spiral"
        row(f"resident session ({name}): epochs / checkpoints", f"{r['epoch']} / {len(tl.get('epochs', []))}",
            f"timeline counts {tl.get('bytes', 0) / 1e6:.2f} MB of {tl.get('max_bytes', 0) / 1e6:.0f} MB, "
            f"every {tl.get('every')} epochs")
    row("sessions / watchers at end", f"{st1['sessions']} / {st1['watchers']}", f"{res['leftover']} left by the client")
    row("tasks at start → end", f"{st0['tasks']} → {st1['tasks']}")
    row("threads at start → end", f"{st0['threads']} → {st1['threads']}")
    row("tracebacks or 5xx in the server log", f"{len(log_errors)}", f"kept: {kept}" if kept else "")
    if kept:
        lines = log_text.splitlines()
        first = next(i for i, ln in enumerate(lines) if "Traceback" in ln or '" 50' in ln)
        print("    first one:\n      " + "\n      ".join(lines[first:first + 25]))
    row("server stop after SIGINT", f"{srv.stop_seconds:.1f} s" if srv.stop_seconds is not None else "-")
    ok = not s.errors and not log_errors and st1["sessions"] == 0
    row("reliability: 0 errors, every session cleaned up", verdict(ok))
    return {"ok": ok, "requests": s.requests, "errors": len(s.errors), "p99": pct(s.latencies, 99)}


# --- command line -----------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("one-stream", help="target 3")
    p.add_argument("--seconds", type=float, default=10.0)
    p = sub.add_parser("many", help="target 4")
    p.add_argument("--sessions", type=int, default=30)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", default="1,2", help="comma-separated WORKERS values to run (default 1,2)")
    p.add_argument("--client-procs", type=int, default=1, help="processes that read the streams")
    p = sub.add_parser("latency", help="target 6")
    p.add_argument("--samples", type=int, default=40)
    p.add_argument("--network", choices=("default", "spiral"), default="default")
    p = sub.add_parser("soak", help="reliability")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--actors", type=int, default=16, help="concurrent clients, each with at most one session (max 20)")
    sub.add_parser("all", help="one-stream, many, latency")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally`s: stop the server
    print(f"MLP Playground load figures, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    try:
        if args.mode == "one-stream":
            one_stream(args.seconds)
        elif args.mode == "many":
            many_table([many(int(w), n_sessions=args.sessions, seconds=args.seconds, client_procs=args.client_procs)
                        for w in args.workers.split(",")])
        elif args.mode == "latency":
            latency(args.samples, args.network)
        elif args.mode == "soak":
            soak(args.minutes, actors=max(len(RESIDENTS) + 1, min(20, args.actors)))
        else:
            one_stream()
            many_table([many(w) for w in (1, 2)])
            latency()
    except KeyboardInterrupt:
        print("\ninterrupted; the server was stopped")
        sys.exit(130)


if __name__ == "__main__":
    main()
