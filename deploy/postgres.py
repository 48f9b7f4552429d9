"""A throw-away PostgreSQL server on loopback: for the tests and for `make cluster`.

    with Postgres(port, workdir) as pg:     # initdb, start, create database "mlp"
        use(pg.url)                         # postgresql://mlp@127.0.0.1:PORT/mlp
    # stopped here (pg_ctl stop -m fast); the data directory is left for the caller to remove

* **Unprivileged.** PostgreSQL refuses to run as root. Started as root, the server runs as the
  Debian package's ``postgres`` user (or ``nobody`` when there is none) through ``runuser``,
  in a data directory that user owns. When that user cannot reach ``workdir`` (pytest's temp
  dirs are 0700 root), the data directory goes into a private directory of its own under the
  system temp dir instead, removed again by ``stop()``.
* **Loopback only, no passwords.** ``listen_addresses=127.0.0.1`` and a pg_hba.conf that trusts
  the private Unix socket and 127.0.0.1 and nothing else.
* **Throw-away.** ``fsync=off``: the data lives as long as this object; a power cut may lose it,
  which costs nothing here and makes every commit of a test run cheaper.
"""

from __future__ import annotations

import glob
import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["Postgres", "PostgresError", "find_binary"]

DB_USER = "mlp"  # the superuser initdb creates (-U), and the user of `url`
DB_NAME = "mlp"
START_TIMEOUT_S = 60  # pg_ctl -w waits this long for "ready to accept connections"
HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\n"


class PostgresError(RuntimeError):
    """initdb, pg_ctl or createdb failed; the message carries its output and the server log."""


def find_binary(name: str) -> str | None:
    """The newest /usr/lib/postgresql/N/bin/NAME (Debian keeps them off PATH), else NAME on PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[4]))
    return found[-1] if found else shutil.which(name)


def _run_as() -> str | None:
    """The user to run the server as: None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgresError("running as root, and there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")


class Postgres:
    def __init__(self, port: int, workdir: Path):
        self.port = int(port)
        self.workdir = Path(workdir)
        self.user = _run_as()
        self._private: Path | None = None  # our own temp dir when the user cannot reach workdir
        self.data_dir = self.workdir / "data"
        self.socket_dir = self.workdir / "socket"
        self.log_file = self.workdir / "postgres.log"
        self._bin = {name: find_binary(name) for name in ("initdb", "pg_ctl", "createdb")}
        self._running = False

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    # --- start and stop -------------------------------------------------------------------

    def start(self) -> None:
        missing = [name for name, path in self._bin.items() if path is None]
        if missing:
            raise PostgresError(
                f"PostgreSQL programs not found: {', '.join(missing)} "
                "(looked in /usr/lib/postgresql/*/bin and PATH; install the Debian package 'postgresql')"
            )
        self._prepare_dirs()
        fresh = not (self.data_dir / "PG_VERSION").exists()  # else a data dir of an earlier start
        if fresh:
            self._cmd(
                "initdb", "-D", self.data_dir, "-U", DB_USER, "-E", "UTF8", "--locale=C", "--auth=trust", "--no-sync"
            )
            (self.data_dir / "pg_hba.conf").write_text(HBA)  # as root this file is the user's: keep its owner
            self._chown(self.data_dir / "pg_hba.conf")
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )
        self._cmd(
            "pg_ctl", "start", "-w", "-t", START_TIMEOUT_S, "-D", self.data_dir, "-l", self.log_file, "-o", options
        )
        self._running = True
        try:
            if fresh:
                self._create_database()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are ended). Idempotent."""
        try:
            if self._running:
                self._running = False
                self._cmd("pg_ctl", "stop", "-w", "-m", "fast", "-D", self.data_dir)
        finally:
            if self._private is not None:
                shutil.rmtree(self._private, ignore_errors=True)
                self._private = None

    def __enter__(self) -> Postgres:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- plumbing ---------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.user is not None and not self._reachable(self.workdir):
            self._private = Path(tempfile.mkdtemp(prefix="mlp-postgres-"))
            self.data_dir, self.socket_dir = self._private / "data", self._private / "socket"
            self.log_file = self._private / "postgres.log"
            self._chown(self._private)
        for d in (self.data_dir, self.socket_dir):
            d.mkdir(mode=0o700, exist_ok=True)
            self._chown(d)
        if self.user is not None:
            self.log_file.touch()
            self._chown(self.log_file)

    def _reachable(self, path: Path) -> bool:
        """Can the server's user reach `path` (search every directory above it)? Its files there
        are made by us and given to it. (os.access would answer for root, not for that user.)"""
        probe = subprocess.run(["runuser", "-u", str(self.user), "--", "test", "-x", str(path)])
        return probe.returncode == 0

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            shutil.chown(path, self.user, self.user if _has_group(self.user) else None)

    def _cmd(self, name: str, *args: object) -> None:
        argv = [str(self._bin[name]), *map(str, args)]
        if self.user is not None and name != "createdb":  # createdb is only a client
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tempfile.gettempdir())
        if done.returncode != 0:
            raise PostgresError(
                f"{name} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}{self._log_tail()}"
            )

    def _create_database(self) -> None:
        self._cmd("createdb", "-h", "127.0.0.1", "-p", self.port, "-U", DB_USER, DB_NAME)

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            return ""
        return "\nserver log:\n" + "\n".join(lines) if lines else ""


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False
