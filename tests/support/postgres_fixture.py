"""One throw-away PostgreSQL server per test session (deploy/postgres.py), and a fresh empty
database on it for each test that asks.

Import the fixtures into a test module (`from tests.support.postgres_fixture import
postgres_server, pg_url  # noqa: F401`). Several modules may import them: the server is
started by the first and stopped after the last is finished with it.

Without the PostgreSQL programs the tests skip with the reason, except in CI (CI=true),
where they fail: the PostgreSQL backend must be tested there.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from deploy.postgres import Postgres, find_binary
from tests.support.live import free_port

_server: Postgres | None = None
_users = 0
_databases = itertools.count()


def _require_binaries() -> None:
    missing = [name for name in ("initdb", "pg_ctl", "createdb") if find_binary(name) is None]
    if not missing:
        return
    reason = (
        f"PostgreSQL programs not found ({', '.join(missing)}): install the Debian package 'postgresql' "
        "to run the PostgreSQL snapshot tests"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: these tests must not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server():
    """The session's PostgreSQL server (deploy.postgres.Postgres), started on first use."""
    global _server, _users
    _require_binaries()
    if _server is None:
        server = Postgres(free_port(), Path(tempfile.mkdtemp(prefix="mlp-test-postgres-")))
        server.start()
        _server = server
    _users += 1
    yield _server
    _users -= 1
    if _users == 0 and _server is not None:
        _server.stop()
        shutil.rmtree(_server.workdir, ignore_errors=True)
        _server = None


def _admin(server: Postgres):
    import psycopg

    return psycopg.connect(server.url, autocommit=True)


@pytest.fixture
def pg_url(postgres_server) -> str:
    """The URL of a new, empty database, dropped after the test (open connections are ended)."""
    name = f"t{os.getpid()}_{next(_databases)}"
    with _admin(postgres_server) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_server.url.rsplit("/", 1)[0] + "/" + name
    with _admin(postgres_server) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
