"""A throw-away Redis server on loopback: for the tests, the relay benchmark and `make cluster`.

    with Redis(port, workdir) as redis:     # redis-server on 127.0.0.1:PORT, answers PING
        use(redis.url)                      # redis://127.0.0.1:PORT/0
    # stopped here (SIGTERM, then SIGKILL after a few seconds)

* **Loopback only.** ``--bind 127.0.0.1`` with protected mode on: nothing else can reach it.
* **No persistence.** ``--save "" --appendonly no``: the relay keeps only short-lived keys
  (app/relay.py), so nothing is ever written to ``workdir`` (it is still the server's
  ``--dir``, so a stray BGSAVE cannot write elsewhere).
* **A child process** (``--daemonize no``): stop() ends exactly the server this object started.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["Redis", "RedisError"]

START_TIMEOUT_S = 15.0  # redis-server answers PING within milliseconds; this is for a loaded machine
STOP_TIMEOUT_S = 5.0  # SIGTERM, then SIGKILL


class RedisError(RuntimeError):
    """redis-server is missing, exited, or did not answer PING in time; the message has its log."""


def _ping(port: int) -> bool:
    """True when a Redis server on 127.0.0.1:port answers PING (inline command, no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Redis:
    def __init__(self, port: int, workdir: Path):
        self.port = int(port)
        self.workdir = Path(workdir)
        self.log_file = self.workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisError("redis-server not found on PATH (install the Debian package 'redis-server')")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"]
        args += ["--logfile", str(self.log_file)]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                self.stop()
                raise RedisError(f"redis-server on port {self.port} did not start:\n{err}{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """End the server (idempotent)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text().splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> Redis:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
