"""A whole cluster on one machine, on loopback: PostgreSQL, Redis, two nodes and nginx.

    make cluster               # or: python -m deploy.cluster [--port 8080]; PORT=… works too
    → Open http://127.0.0.1:8080/   (Ctrl-C stops everything)

Everything lives in a throw-away temp dir, removed at the end. Ctrl-C (SIGINT to the process
group), SIGTERM or SIGHUP stop every part it started, front to back: nginx, the nodes, Redis,
PostgreSQL. When one part dies by itself, the rest are stopped too and the exit code is 1,
with a line naming the part and how it ended.

The cluster tests and benchmarks/cluster.py use the Cluster class directly (random ports,
no supervision: a test kills a node on purpose and checks that the rest carries on).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from deploy.nginx import Nginx
from deploy.postgres import Postgres
from deploy.redis import Redis

__all__ = ["Cluster", "Node", "free_port"]

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 60.0  # a node answers /healthz 200 once its workers beat; slow on a loaded 2-core machine
NODE_STOP_TIMEOUT_S = 10.0  # SIGINT, then SIGKILL to the node's process group
# One BLAS thread per process, as `make run` sets it: a node's workers are its parallelism.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection((LOOPBACK, port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Node:
    """One `python -m app` with NODE_ID=name on its own loopback port and process group."""

    def __init__(self, name: str, port: int, env: dict[str, str], log_path: Path | None):
        self.name, self.port, self.env, self.log_path = name, port, env, log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        """Start the process; ready() says when it serves."""
        out = open(self.log_path, "w") if self.log_path else subprocess.PIPE  # noqa: SIM115 (the child keeps it)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            if self.log_path:
                out.close()  # type: ignore[union-attr]
        if not self.log_path:  # each line on our stdout, prefixed with the node's name
            threading.Thread(target=self._relay_output, daemon=True).start()

    def _relay_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            sys.stdout.write(f"[{self.name}] {line.decode(errors='replace')}")
            sys.stdout.flush()

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the node's main process only (kill -9 of a node: its workers are orphaned, as in a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self) -> None:
        """Ctrl-C the node (it ends its streams and workers); SIGKILL its process group if it
        hangs, and in any case (workers left behind by a kill -9). Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(NODE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"cluster: node {self.name} did not stop within {NODE_STOP_TIMEOUT_S:.0f} s; killing it")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log_tail(self, n: int = 20) -> str:
        if not self.log_path:
            return ""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class Cluster:
    """PostgreSQL, Redis, nodes and nginx on loopback, every part in `workdir`.

    `port`: nginx's (None: a free one); `quiet`: every part's output into workdir/*.log
    instead of this terminal; `env`: settings for every node (e.g. {"WORKERS": "2"}).
    Also a context manager: stopped on any exit."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        nodes: tuple[str, ...] = ("a", "b"),
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        quiet: bool = False,
    ):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.names = nodes
        self.workers = workers
        self.extra_env = dict(env or {})
        self.quiet = quiet
        self.postgres: Postgres | None = None
        self.redis: Redis | None = None
        self.nodes: dict[str, Node] = {}
        self.nginx: Nginx | None = None
        self._nginx_log = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.postgres = Postgres(free_port(), self.workdir / "postgres")
        self.postgres.start()
        self.redis = Redis(free_port(), self.workdir / "redis")
        self.redis.start()
        for name in self.names:
            port = free_port()
            node = Node(name, port, self._node_env(name, port), self._log(f"node-{name}.log"))
            self.nodes[name] = node
            node.start()  # all at once: they start their workers in parallel
        self._wait_nodes_ready(time.monotonic() + READY_TIMEOUT_S)
        nginx_log = self._log("nginx.log")
        self._nginx_log = open(nginx_log, "w") if nginx_log else None  # noqa: SIM115 (closed in stop())
        self.nginx = Nginx(
            self.port,
            self.workdir / "nginx",
            {name: f"{LOOPBACK}:{node.port}" for name, node in self.nodes.items()},
            log=self._nginx_log,
            relay=True,  # the nodes share Redis: any node serves a viewer's stream
            access_log=str(self.workdir / "nginx" / "access.log"),
        )
        self.nginx.start()

    def _log(self, name: str) -> Path | None:
        return self.workdir / name if self.quiet else None

    def _node_env(self, name: str, port: int) -> dict[str, str]:
        assert self.postgres is not None and self.redis is not None
        return {
            **os.environ,
            **ONE_THREAD,
            "HOST": LOOPBACK,
            "PORT": str(port),
            "NODE_ID": name,
            "WORKERS": str(self.workers),
            "DB_URL": self.postgres.url,
            "REDIS_URL": self.redis.url,
            "DB_PATH": str(self.workdir / f"node-{name}.sqlite3"),  # unused with DB_URL; never the user's own
            # The nodes believe X-Forwarded-For only from nginx (TRUSTED_PROXIES; uvicorn reads
            # FORWARDED_ALLOW_IPS for the same list).
            "TRUSTED_PROXIES": LOOPBACK,
            "FORWARDED_ALLOW_IPS": LOOPBACK,
            "PUBLIC_URL": self.url,  # share links name nginx's address, not a node's
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def _wait_nodes_ready(self, deadline: float) -> None:
        waiting = dict(self.nodes)
        while waiting:
            for name, node in list(waiting.items()):
                assert node.proc is not None
                if node.proc.poll() is not None:
                    raise RuntimeError(f"node {name} exited at start (code {node.proc.returncode})\n{node.log_tail()}")
                if node.ready():
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(waiting)
                raise RuntimeError(f"node(s) {names} not ready within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every part that was started, front to back. Idempotent; every part is tried
        even when another fails to stop."""
        parts = [self.nginx, *self.nodes.values(), self.redis, self.postgres]
        for part in parts:
            if part is None:
                continue
            try:
                part.stop()
            except Exception as e:  # keep going: the other parts must stop too
                print(f"cluster: stopping {type(part).__name__} failed: {e}", file=sys.stderr)
        if self._nginx_log is not None:
            self._nginx_log.close()
            self._nginx_log = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def dead_part(self) -> str | None:
        """A line naming a part that has ended by itself, or None while all run."""
        procs = {f"node {name}": node.proc for name, node in self.nodes.items()}
        procs["nginx"] = self.nginx.proc if self.nginx else None
        procs["redis"] = self.redis.proc if self.redis else None
        for part, proc in procs.items():
            if proc is not None and proc.poll() is not None:
                return f"{part} exited ({_how(proc.returncode)})"
        if self.postgres is not None and not _listening(self.postgres.port):  # pg_ctl's server is not our child
            return f"PostgreSQL stopped answering on port {self.postgres.port}"
        return None

    def summary(self) -> str:
        lines = [f"MLP Playground cluster in {self.workdir}"]
        for name, node in self.nodes.items():
            pid = node.proc.pid if node.proc else "-"
            lines.append(f"  {'node ' + name:<11} {node.url}  (pid {pid})")
        if self.redis:
            lines.append(f"  redis       {self.redis.url}")
        if self.postgres:
            lines.append(f"  postgres    {self.postgres.url}")
        if self.nginx and self.nginx.proc:
            lines.append(f"  nginx       {self.nginx.url}  (pid {self.nginx.proc.pid}, config {self.nginx.conf})")
        return "\n".join(lines)


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the cluster like Ctrl-C (KeyboardInterrupt in the main thread).
    SIGINT too, explicitly: a shell starts a background job with SIGINT ignored, and Python
    keeps an inherited "ignore", so Ctrl-C sent to the group would reach only the parts."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def supervise(cluster: Cluster, poll_s: float = 0.5) -> int:
    """Wait until Ctrl-C (0) or until a part dies by itself (1)."""
    while True:
        time.sleep(poll_s)
        dead = cluster.dead_part()
        if dead is not None:
            time.sleep(0.3)  # a Ctrl-C that also reached Redis (same process group) arrives first
            print(f"cluster: {dead}; stopping the rest.", file=sys.stderr, flush=True)
            return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Two nodes, nginx, Redis and PostgreSQL on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8080), help="nginx's port (8080)")
    parser.add_argument("--workers", type=int, default=1, help="training worker processes per node (1)")
    parser.add_argument("--quiet", action="store_true", help="the parts' output into log files in the temp dir")
    args = parser.parse_args(argv)
    if _listening(args.port):
        print(f"cluster: port {args.port} is already in use; choose another with PORT=…", file=sys.stderr)
        return 2
    _stop_on_signals()
    workdir = Path(tempfile.mkdtemp(prefix="mlp-cluster-"))
    cluster = Cluster(workdir, args.port, workers=args.workers, quiet=args.quiet)
    code = 0
    try:
        cluster.start()
        print(cluster.summary(), flush=True)
        print(f"\nOpen {cluster.url}/   (Ctrl-C stops everything)\n", flush=True)
        code = supervise(cluster)
    except KeyboardInterrupt:
        print("\ncluster: stopping", flush=True)
    except Exception as e:
        print(f"cluster: could not start: {e}", file=sys.stderr)
        code = 1
    finally:
        with _ignoring_interrupts():  # a second Ctrl-C must not leave half the parts running
            cluster.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    print("cluster: stopped", flush=True)
    return code


@contextlib.contextmanager
def _ignoring_interrupts():
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
