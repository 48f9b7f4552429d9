"""The server under test: a real `python -m app` (uvicorn and its training worker
processes) on a free loopback port, with its own DB_PATH, stopped with SIGINT.

Tests keep the log and database in a pytest tmp_path (start_server); benchmarks let
LiveServer make a temporary directory and remove it with cleanup().
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class LiveServer:
    """`python -m app` on a free loopback port. start() waits until /healthz answers and every
    training worker has started; stop() sends SIGINT (as a person pressing Ctrl-C) and kills
    the process group if it has not exited within `timeout`. Also a context manager, stopped
    on any exit (normal end, exception, Ctrl-C).

    The server runs in its own process group, so a Ctrl-C in the terminal reaches only the
    caller, which then stops the server itself. Settings are environment variables:
    LiveServer(directory, workers=1, max_sessions=3) sets WORKERS=1 and MAX_SESSIONS=3.
    """

    def __init__(self, directory: Path | None = None, **env_overrides):
        self._tmp = None if directory is not None else tempfile.TemporaryDirectory(prefix="mlp-server-")
        self.directory = Path(directory if directory is not None else self._tmp.name)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.env = {
            **os.environ,
            "HOST": LOOPBACK,
            "PORT": str(self.port),
            "DB_PATH": str(self.directory / "snapshots.sqlite3"),
            "PYTHONUNBUFFERED": "1",
            **{k.upper(): str(v) for k, v in env_overrides.items() if v is not None},
        }
        self.log_path = self.directory / f"server-{self.port}.log"  # several servers may share a directory
        self.proc: subprocess.Popen | None = None
        self.stop_seconds: float | None = None

    def start(self, timeout: float = 30.0) -> LiveServer:
        # free_port() closes its probe socket, so another process may take the port before
        # the server binds it: a parallel test's outgoing connection that got it as its
        # ephemeral port (without SO_REUSEADDR) makes the bind fail. Then take another one.
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except RuntimeError:
                if attempt == 2 or "address already in use" not in self.log_tail():
                    raise
                self._move_to(free_port())
        raise AssertionError("unreachable")

    def _move_to(self, port: int) -> None:
        self.log_path.unlink(missing_ok=True)  # the failed attempt's: tests read the one log there
        self.port, self.url = port, f"http://{LOOPBACK}:{port}"
        self.env["PORT"] = str(port)
        self.log_path = self.directory / f"server-{port}.log"

    def _start_once(self, timeout: float) -> LiveServer:
        with open(self.log_path, "w") as log:  # the child keeps its own copy of the file
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer /healthz in time:\n{self.log_tail()}")
            time.sleep(0.1)
        # The workers are spawned in the lifespan: wait until /api/stats shows each one's memory,
        # so the first measured or tested request does not wait for a process to start.
        headers = {"X-Admin-Token": self.env["ADMIN_TOKEN"]} if self.env.get("ADMIN_TOKEN") else {}
        while True:
            workers = httpx.get(self.url + "/api/stats", headers=headers, timeout=5).json()["rss_bytes"]["workers"]
            if workers and all(workers):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the training workers did not start in time:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> float:
        """Ctrl-C the server; returns how many seconds it took to exit (also kept in stop_seconds)."""
        if self.proc is not None and self.proc.poll() is None:
            start = time.monotonic()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"  ! server did not stop within {timeout:.0f} s of SIGINT; killing it (log: {self.log_path})")
                os.killpg(self.proc.pid, signal.SIGKILL)  # the workers too: same process group
                self.proc.wait()
            self.stop_seconds = time.monotonic() - start
        return self.stop_seconds or 0.0

    def __enter__(self) -> LiveServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def cleanup(self) -> None:
        """Remove the temporary directory, when LiveServer made it (after stop())."""
        if self._tmp is not None:
            self._tmp.cleanup()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-n:])
        except OSError:
            return ""

    def child_pids(self) -> dict[int, str]:
        """pid → role ("worker" or "tracker") of the server's child processes (from /proc)."""
        out = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
                if ppid != self.proc.pid:
                    continue
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError):
                continue
            out[int(d.name)] = "tracker" if "resource_tracker" in cmd else "worker"
        return out


def start_server(directory: Path, **env_overrides) -> LiveServer:
    """A started LiveServer with the tests' defaults: two workers; running sessions nobody
    watches paused after 10 s (closed test pages leave sessions running; this stops them
    loading the CPU); and the NumPy engine only, so results never depend on when a worker's
    compiled kernel becomes ready (tests/unit/test_kernel.py checks both engines agree); and
    no snapshot write rate limit, since every test saves from 127.0.0.1 (the limit's own test,
    tests/reliability/test_hostile_clients.py, sets one). Keyword arguments override them."""
    defaults = {"workers": 2, "idle_pause_seconds": 10, "compiled_engine": "false", "snapshot_writes_per_minute": 0}
    return LiveServer(directory, **{**defaults, **env_overrides}).start()
