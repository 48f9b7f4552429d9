"""Issue 12, item 1: slow connections. Connections that send half a request line and then
stop, from many source addresses (127.0.0.2 …, standing for other machines), while a
prober in another process opens a new connection from 127.0.0.1 every 50 ms for
GET /healthz (timeout 2 s).

  1. `--idle` (2,000) such connections held: /healthz during the attack, and how many the
     server closed within its header timeout (10 s, + 1 s for the timer's start).
  2. `--attempts` (20,000) connection attempts for `--seconds` (15): /healthz, and the
     bytes of log the server wrote meanwhile.

Both run against the server as shipped (the connection guard, app/connguard.py, with its
default caps, and rate-limited logging) and against a reference measured in the same run:
the same server with every timeout, cap and the log limit set to 0 (off), which is how
uvicorn serves without the guard. The attack runs in two processes (each may hold as many
sockets as this machine's open-file limit, which the server has too).

Run: .venv/bin/python benchmarks/attack_connections.py [--idle 2000] [--attempts 20000] [--seconds 15]
About 80 s in all.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import socket
import time

from support import LOOPBACK, LiveServer, Samples, cpu_seconds, header, row, run_main, verdict

HEADER_TIMEOUT = 10.0
PARTIAL = b"GET /healthz HT"  # half a request line, then nothing
PROBE_EVERY_S = 0.05
PROBE_TIMEOUT_S = 2.0
GUARD_OFF = dict(
    header_timeout_seconds=0,
    body_timeout_seconds=0,
    max_connections=0,
    max_connections_per_client=0,
    log_repeats_per_minute=0,
)


# --- the prober: its own process, so the attack's event loop does not delay its timing ---------
def probe(port: int, seconds: float, out) -> None:
    """GET /healthz on a new connection every PROBE_EVERY_S: ms per answer, None per timeout."""
    times: list[float | None] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            with socket.create_connection((LOOPBACK, port), timeout=PROBE_TIMEOUT_S) as s:
                s.settimeout(max(0.01, PROBE_TIMEOUT_S - (time.perf_counter() - start)))
                s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {LOOPBACK}\r\nConnection: close\r\n\r\n".encode())
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            ok = answer.startswith(b"HTTP/1.1 200")
            times.append((time.perf_counter() - start) * 1000 if ok else None)
        except OSError:
            times.append(None)
        time.sleep(max(0.0, PROBE_EVERY_S - (time.perf_counter() - start)))
    out.put(times)


class Prober:
    def __init__(self, port: int, seconds: float):
        ctx = mp.get_context("spawn")
        self.out = ctx.Queue()
        self.proc = ctx.Process(target=probe, args=(port, seconds, self.out), daemon=True)
        self.proc.start()

    def result(self) -> tuple[Samples, int]:
        times = self.out.get(timeout=120)
        self.proc.join(10)
        answered = Samples("ms", [t for t in times if t is not None])
        return answered, len(times) - len(answered)


# --- the attack: its own processes (each holds up to its open-file limit of sockets) --------------
class Held(asyncio.Protocol):
    """One attacking connection: half a request line, then silence until the server closes it."""

    def __init__(self):
        self.opened = time.monotonic()
        self.closed: float | None = None  # when the server closed it (not when we hung up)
        self.hung_up = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(PARTIAL)

    def connection_lost(self, exc) -> None:
        if not self.hung_up:
            self.closed = time.monotonic()


def sources(n: int) -> list[str]:
    return [f"127.0.0.{2 + i}" for i in range(n)]


async def attack(port: int, count: int, addresses: list[str], seconds: float) -> tuple[list[Held], int]:
    """Open `count` connections (at most 500 connecting at once) spread over `addresses`, and
    keep them until the server closes them or `seconds` pass; then hang up. Returns the
    connections made and the number of attempts that did not connect within 3 s."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(500)
    made: list[Held] = []
    failed = 0
    deadline = loop.time() + seconds

    async def one(i: int) -> None:
        nonlocal failed
        async with gate:
            if loop.time() >= deadline:
                return
            sock = socket.socket()
            try:
                sock.setblocking(False)
                sock.bind((addresses[i % len(addresses)], 0))
                await asyncio.wait_for(loop.sock_connect(sock, (LOOPBACK, port)), 3)
                _, held = await loop.create_connection(Held, sock=sock)  # sock=: no name lookups
                made.append(held)
            except (OSError, TimeoutError):
                sock.close()
                failed += 1

    launch = asyncio.gather(*(one(i) for i in range(count)))
    try:
        await asyncio.wait_for(launch, seconds)  # cancels the attempts not made in time
    except TimeoutError:
        pass
    await asyncio.sleep(max(0.0, deadline - loop.time()))
    for held in made:
        if held.transport is not None and held.closed is None:
            held.hung_up = True
            held.transport.abort()
    await asyncio.sleep(0.2)
    return made, failed


def attacker(port: int, count: int, n_sources: int, seconds: float, nice: int, out) -> None:
    os.nice(nice)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    made, failed = asyncio.run(attack(port, count, sources(n_sources), seconds))
    out.put(([(h.opened, h.closed) for h in made], failed))


def run_attack(port: int, count: int, n_sources: int, seconds: float, procs: int, nice: int = 0):
    """The attack from `procs` processes at once: [(opened, closed by the server or None)], failed."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    workers = [
        ctx.Process(target=attacker, args=(port, count // procs, n_sources, seconds, nice, out), daemon=True)
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    made, failed = [], 0
    for _ in workers:
        m, f = out.get(timeout=seconds + 60)
        made += m
        failed += f
    for w in workers:
        w.join(10)
    return made, failed


def listen_drops() -> int:
    """SYNs this machine dropped because a listening socket's accept queue was full (all sockets)."""
    with open("/proc/net/netstat") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0][1:], lines[1][1:], strict=True)).get("ListenDrops", 0))


# --- the two figures --------------------------------------------------------------------------
def idle_connections(server: LiveServer, label: str, count: int) -> None:
    seconds = HEADER_TIMEOUT + 4
    prober = Prober(server.port, seconds)
    made, failed = run_attack(server.port, count, 20, seconds, procs=1)
    healthz, timeouts = prober.result()
    closed = [c - o for o, c in made if c is not None]
    in_time = sum(c <= HEADER_TIMEOUT + 1 for c in closed)
    healthz.print(
        f"{label}: /healthz", "median", "p99", "max", note=f"{len(healthz)} answered, {timeouts} timeouts (2 s)"
    )
    row(f"{label}: connected / closed by the server", f"{len(made):,} / {len(closed):,}", f"{failed} not connected")
    row(f"{label}: closed within the header timeout + 1 s", f"{in_time:,} of {count:,}", verdict(in_time == count))
    Samples("s", closed).print(f"{label}: time to close", "median", "max")


def many_attempts(server: LiveServer, label: str, count: int, seconds: float, nice: int = 0) -> None:
    log_before = server.log_path.stat().st_size
    cpu_before = cpu_seconds(server.proc.pid) or 0.0
    drops_before = listen_drops()
    prober = Prober(server.port, seconds)
    made, failed = run_attack(server.port, count, 100, seconds, procs=2, nice=nice)
    healthz, timeouts = prober.result()
    log_bytes = server.log_path.stat().st_size - log_before
    cpu = (cpu_seconds(server.proc.pid) or 0.0) - cpu_before
    drops = listen_drops() - drops_before
    p99 = healthz.stat("p99") if timeouts <= len(healthz) // 100 else float("inf")
    closed = sum(c is not None for _, c in made)
    healthz.print(
        f"{label}: /healthz", "median", "p99", "max", note=f"{len(healthz)} answered, {timeouts} timeouts (2 s)"
    )
    row(f"{label}: /healthz p99 ≤ 100 ms (a timeout counts as over)", f"{p99:,.1f} ms", verdict(p99 <= 100))
    row(f"{label}: connected / not connected", f"{len(made):,} / {failed:,}", f"{closed:,} closed by the server")
    row(f"{label}: log written during the attack", f"{log_bytes / 1e6:,.3f} MB", verdict(log_bytes <= 1e6))
    row(f"{label}: server CPU during the attack", f"{cpu:,.1f} s", f"in {seconds:g} s")
    row(f"{label}: SYNs dropped, accept queue full", f"{drops:,}", "a dropped SYN is resent after 1 s")


def no_attack(server: LiveServer, seconds: float) -> None:
    """The reference for /healthz: the same prober with no attack, in this run (the machine is shared)."""
    healthz, timeouts = Prober(server.port, seconds).result()
    healthz.print("no attack: /healthz", "median", "p99", "max", note=f"{len(healthz)} answered, {timeouts} timeouts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--attempts", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    row("open-file limit (ulimit -n) of this machine, soft / hard", f"{soft:,} / {hard:,}", "the servers keep it")
    guarded = LiveServer(None, workers=1, header_timeout_seconds=HEADER_TIMEOUT)
    reference = LiveServer(None, workers=1, **GUARD_OFF)
    try:
        guarded.start()
        reference.start()
        header("reference: /healthz with no attack")
        no_attack(guarded, 5.0)
        header(
            f"{args.idle:,} idle partial-request connections from 20 addresses (header timeout {HEADER_TIMEOUT:g} s)"
        )
        idle_connections(guarded, "guarded", args.idle)
        idle_connections(reference, "no guard", args.idle)
        header(f"{args.attempts:,} partial-request connection attempts from 100 addresses, {args.seconds:g} s")
        many_attempts(guarded, "guarded", args.attempts, args.seconds)
        many_attempts(reference, "no guard", args.attempts, args.seconds)
        # The attack's own processes share this machine's 2 cores with the server and the
        # prober. At the lowest priority they take only the CPU the server leaves: closer to
        # an attack from other machines, which is what a deployment sees.
        header("the same, the attacking processes at nice 19 (as if on other machines)")
        many_attempts(guarded, "guarded, attack niced", args.attempts, args.seconds, nice=19)
    finally:
        for server in (guarded, reference):
            server.stop()
            server.cleanup()


if __name__ == "__main__":
    run_main(main)
