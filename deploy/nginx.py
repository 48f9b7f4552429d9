"""nginx in front of the nodes: render deploy/nginx.conf.template from a node list, and run it.

    conf = render({"a": "10.0.0.1:8000", "b": "10.0.0.2:8000"}, listen="80", workdir=Path("/srv/mlp-nginx"))
    with Nginx(8080, workdir, {"a": "127.0.0.1:8001", "b": "127.0.0.1:8002"}) as proxy:
        use(proxy.url)                      # http://127.0.0.1:8080

or, for an operator's own nginx:

    python -m deploy.nginx --node a=10.0.0.1:8000 --node b=10.0.0.2:8000 --listen 80 \\
        --workdir /srv/mlp-nginx [--relay] > /srv/mlp-nginx/nginx.conf
    nginx -p /srv/mlp-nginx -c nginx.conf -e stderr

Every path nginx writes (pid, temp files, logs) is under the work dir, so it runs as root or
not without touching /etc or /var. Started as root, its workers run as `nobody`; their temp
files then go to a private directory of their own when `nobody` cannot reach the work dir
(pytest's temp dirs are 0700 root), removed again by stop().
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.node import NODE_ID_PATTERN

__all__ = ["Nginx", "NginxError", "render", "TEMPLATE"]

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
NGINX = "/usr/sbin/nginx"  # Debian's package; else `nginx` on PATH
# A node name is a NODE_ID (app/node.py): it goes into upstream names, and the pattern without
# its anchors into the config's regexes that find the node in an id.
NODE_NAME = re.compile(NODE_ID_PATTERN)
NODE_RE = NODE_ID_PATTERN.removeprefix("^").removesuffix("$")
ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d+$")  # host:port, [v6]:port
START_TIMEOUT_S = 10.0
POOL_FAIL_TIMEOUT = "10s"  # a node that failed is left out of the pool this long, then tried again


class NginxError(RuntimeError):
    """nginx is missing, its config test failed, or it exited; the message carries its output."""


def find_nginx() -> str | None:
    return NGINX if os.access(NGINX, os.X_OK) else shutil.which("nginx")


def render(
    nodes: dict[str, str],
    listen: str,
    workdir: Path,
    *,
    relay: bool = False,
    temp_dir: Path | None = None,
    user: str | None = None,
    worker_processes: str = "auto",
    worker_connections: int = 4096,
    error_log: str | None = None,
    access_log: str | None = None,
    connect_timeout: str = "1s",
    stream_read_timeout: str = "1h",
    client_max_body_size: str = "8m",
) -> str:
    """The nginx config for these nodes (name → host:port). `listen` is nginx's listen value
    ("8080", "127.0.0.1:8080"); `workdir` holds the pid file, temp files and logs unless
    temp_dir / error_log / access_log say otherwise ("stderr" and "off" work too). `relay`: the
    nodes share Redis (REDIS_URL), so any node serves a viewer's stream (events?watch=1), which
    then goes to the pool; without it a non-owner answers 404, so it goes to the owner."""
    if not nodes:
        raise ValueError("at least one node is needed")
    for name, address in nodes.items():
        if not NODE_NAME.match(name):
            raise ValueError(f"node name {name!r}: lower-case letters, digits and '-', at most 16 (as NODE_ID)")
        if not ADDRESS.match(address):
            raise ValueError(f"node {name}: address {address!r} is not host:port")
    workdir = Path(workdir).resolve()
    fields = {
        "user": f"user {user};" if user else "# user: nginx runs as whoever starts it",
        "worker_processes": worker_processes,
        "rlimit_nofile": str(2 * worker_connections + 64),
        "worker_connections": str(worker_connections),
        "workdir": str(workdir),
        "temp_dir": str(temp_dir or workdir / "tmp"),
        "error_log": error_log or str(workdir / "error.log"),
        "access_log": access_log or str(workdir / "access.log"),
        "client_max_body_size": client_max_body_size,
        "connect_timeout": connect_timeout,
        "stream_read_timeout": stream_read_timeout,
        "listen": listen,
        "node_re": NODE_RE,
        "upstream_map": _upstream_map(nodes, relay),
        "upstreams": _upstreams(nodes),
    }
    text = TEMPLATE.read_text()
    out = re.sub(r"\{\{(\w+)\}\}", lambda m: fields[m.group(1)], text)
    return out


def _upstream_map(nodes: dict[str, str], relay: bool) -> str:
    """The rules of the map from "watch:path node:near node:session node" to an upstream."""
    if relay:
        lines = ['        "~^1:" mlp_pool;  # a viewer\'s stream: any node relays it']
    else:
        lines = ["        # no relay (no shared Redis): a viewer's stream goes to the owner like any other"]
    for name in nodes:
        lines.append(f'        "~^[01]:{name}:" mlp_node_{name};  # a path naming a session of {name}')
    for name in nodes:
        lines.append(f'        "~^[01]::{name}:" mlp_near_{name};  # a create request near a session of {name}')
    for name in nodes:
        # The page's session lives on that node; when the node is down the session is gone
        # and the page makes a new one, so a live node may answer (the near upstream's backups).
        lines.append(f'        "~^[01]:::{name}$" mlp_near_{name};  # a page reopening a session of {name}')
    return "\n".join(lines)


def _upstreams(nodes: dict[str, str]) -> str:
    keepalive = "        keepalive {n};\n        keepalive_timeout 15s;\n        keepalive_requests 900;\n"
    blocks = [
        "    upstream mlp_pool {  # id-less requests and relayed viewer streams\n        least_conn;\n"
        + "".join(f"        server {a} max_fails=1 fail_timeout={POOL_FAIL_TIMEOUT};\n" for a in nodes.values())
        + keepalive.format(n=32)
        + "    }"
    ]
    for name, address in nodes.items():
        # Only the owner holds the session: no other server, so a dead owner is a fast 502.
        blocks.append(f"    upstream mlp_node_{name} {{\n        server {address};\n{keepalive.format(n=16)}    }}")
        # A successor is created on the old session's node; when that node is down, the old
        # session is gone anyway, and any live node may take the new one.
        others = "".join(f"        server {a} backup;\n" for n, a in nodes.items() if n != name)
        blocks.append(
            f"    upstream mlp_near_{name} {{\n        server {address} max_fails=1 fail_timeout={POOL_FAIL_TIMEOUT};\n"
            f"{others}{keepalive.format(n=4)}    }}"
        )
    return "\n".join(blocks)


class Nginx:
    """nginx on 127.0.0.1:`port` in front of `nodes`, run in the foreground as a child process
    (its own process group: a caller's Ctrl-C reaches the caller, which stops it in order)."""

    def __init__(
        self, port: int, workdir: Path, nodes: dict[str, str], *, log=None, worker_processes: str = "1", **render_args
    ):
        self.port = int(port)
        self.workdir = Path(workdir).resolve()
        self.nodes = dict(nodes)
        self.conf = self.workdir / "nginx.conf"
        self.log = log  # a file for nginx's stderr (its error log); None: the caller's stderr
        self.proc: subprocess.Popen | None = None
        self._private: Path | None = None
        self._render_args = {"worker_processes": worker_processes, **render_args}
        self._binary = find_nginx()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        if self._binary is None:
            raise NginxError(
                "nginx not found (looked for /usr/sbin/nginx and PATH; install the Debian package 'nginx')"
            )
        user, temp_dir = self._prepare_dirs()
        self.conf.write_text(
            render(
                self.nodes,
                f"127.0.0.1:{self.port}",
                self.workdir,
                temp_dir=temp_dir,
                user=user,
                error_log="stderr",
                **self._render_args,
            )
        )
        test = subprocess.run(self._argv("-t", "-q"), capture_output=True, text=True)
        if test.returncode != 0:
            raise NginxError(f"nginx -t failed for {self.conf}:\n{test.stderr.strip()}")
        self.proc = subprocess.Popen(self._argv(), stderr=self.log, stdout=self.log, start_new_session=True)
        try:
            self._wait_listening(time.monotonic() + START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Fast stop (SIGTERM: open streams end at once), then SIGKILL to its process group in any
        case: workers outlive a master that was killed, and would keep the port. Idempotent."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the workers: same process group
            self.proc.wait()
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _argv(self, *extra: str) -> list[str]:
        # -e: the error log before the config is read (else /var/log/nginx/error.log is tried).
        return [str(self._binary), "-p", str(self.workdir), "-c", str(self.conf), "-e", "stderr", *extra]

    def _prepare_dirs(self) -> tuple[str | None, Path]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        temp_dir = self.workdir / "tmp"
        if os.geteuid() != 0:
            temp_dir.mkdir(exist_ok=True)
            return None, temp_dir
        # As root, the workers run as nobody and must reach their temp dirs (nginx creates
        # them and hands them to nobody, but cannot open a 0700 parent for it).
        if subprocess.run(["runuser", "-u", "nobody", "--", "test", "-x", str(self.workdir)]).returncode != 0:
            self._private = Path(tempfile.mkdtemp(prefix="mlp-nginx-"))
            self._private.chmod(0o711)
            temp_dir = self._private
        temp_dir.mkdir(exist_ok=True)
        return "nobody nogroup", temp_dir

    def _wait_listening(self, deadline: float) -> None:
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise NginxError(f"nginx exited at start with code {self.proc.returncode} (config: {self.conf})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise NginxError(
                        f"nginx did not listen on 127.0.0.1:{self.port} within {START_TIMEOUT_S:.0f} s"
                    ) from None
                time.sleep(0.05)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the nginx config for MLP Playground nodes.")
    parser.add_argument("--node", action="append", required=True, metavar="NAME=HOST:PORT", help="one per node")
    parser.add_argument("--listen", default="80", help="nginx's listen value (default 80)")
    parser.add_argument("--workdir", required=True, type=Path, help="pid, temp files and logs go here")
    parser.add_argument("--user", default=None, help="the workers' user when nginx starts as root")
    parser.add_argument(
        "--relay",
        action="store_true",
        help="the nodes share Redis (REDIS_URL): viewers' streams (events?watch=1) go to any node",
    )
    args = parser.parse_args(argv)
    nodes = dict(n.split("=", 1) for n in args.node)
    try:
        sys.stdout.write(render(nodes, args.listen, args.workdir, relay=args.relay, user=args.user))
    except ValueError as e:
        parser.error(str(e))


if __name__ == "__main__":
    main()
