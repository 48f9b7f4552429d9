"""`make cluster` as a person runs it: the address it prints serves the playground; Ctrl-C
(SIGINT to the whole process group: make, deploy/cluster.py and whatever shares the group)
stops every part; a part that dies by itself takes the rest down with a line naming it.

Each test starts its own stack under `make -o setup cluster PORT=…` (-o setup: the
environment is already set up; the tests must not install anything), in its own session
so the signal reaches that group only.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.cluster.conftest import require_cluster_binaries
from tests.support.live import ROOT, free_port

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 40.0  # nginx, two nodes (each up to 10 s), Redis, PostgreSQL, one after the other


class MakeCluster:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "-o", "setup", "cluster", f"PORT={self.port}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "COMPILED_ENGINE": "false"},
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_open(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        want = f"Open http://127.0.0.1:{self.port}/"
        while not any(line.startswith(want) for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"make cluster did not print {want!r}:\n{self.output()}")
            time.sleep(0.1)
        return want.split()[1]

    def ports(self) -> list[int]:
        """Every loopback port the summary names (nodes, Redis, PostgreSQL, nginx)."""
        parts = ("node ", "redis ", "postgres ", "nginx ")
        summary = [line for line in self.lines if line.startswith("  ") and line.strip().startswith(parts)]
        return sorted({int(p) for line in summary for p in re.findall(r"127\.0\.0\.1:(\d+)", line)})

    def pid_of(self, part: str) -> int:
        line = next(line for line in self.lines if line.strip().startswith(part))
        return int(re.search(r"\(pid (\d+)", line).group(1))

    def descendants(self) -> set[int]:
        """Processes below make (the nodes' workers included), from /proc."""
        children: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    stat = (d / "stat").read_text()
                except OSError:
                    continue
                children.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(int(d.name))
        found, todo = set(), [self.proc.pid]
        while todo:
            kids = children.get(todo.pop(), [])
            found.update(kids)
            todo += kids
        return found

    def wait_exit(self) -> int:
        try:
            return self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"make cluster did not end within {STOP_TIMEOUT_S:.0f} s:\n{self.output()}") from None

    def kill(self):
        """After a failed test: Ctrl-C first, so the cluster stops PostgreSQL too (pg_ctl's server
        is no child of make); then SIGKILL whatever is left below make."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.descendants():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent has not collected it


def _open_ports(ports: list[int]) -> list[int]:
    import socket

    still = []
    for port in ports:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            still.append(port)
        except OSError:
            pass
    return still


@pytest.fixture
def make_cluster():
    require_cluster_binaries()
    started = MakeCluster()
    yield started
    if started.proc.poll() is None:
        started.kill()
    started._reader.join(5)
    if not started._reader.is_alive():  # else a leftover still holds the pipe: closing would block
        started.proc.stdout.close()


def test_ctrl_c_stops_everything_make_cluster_started(make_cluster):
    url = make_cluster.wait_open()
    r = httpx.get(url + "healthz", timeout=10)
    assert r.status_code == 200 and r.headers["x-mlp-node"] in ("a", "b")
    workdir = Path(re.search(r"cluster in (\S+)", make_cluster.output()).group(1))
    ports, pids = make_cluster.ports(), make_cluster.descendants()
    assert len(ports) == 5 and len(pids) >= 5, make_cluster.output()  # nodes, their workers, Redis, nginx
    os.killpg(make_cluster.proc.pid, signal.SIGINT)
    make_cluster.wait_exit()
    assert "cluster: stopped" in make_cluster.output()
    assert [p for p in pids if _alive(p)] == []
    assert _open_ports(ports) == []
    assert not workdir.exists()


def test_a_part_that_dies_stops_the_rest_with_a_message(make_cluster):
    make_cluster.wait_open()
    ports, pids = make_cluster.ports(), make_cluster.descendants()
    os.kill(make_cluster.pid_of("nginx"), signal.SIGKILL)
    assert make_cluster.wait_exit() != 0
    assert "cluster: nginx exited (killed by SIGKILL); stopping the rest." in make_cluster.output()
    assert [p for p in pids if _alive(p)] == []
    assert _open_ports(ports) == []
