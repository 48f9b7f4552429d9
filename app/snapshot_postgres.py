"""The snapshot store in PostgreSQL (DB_URL set): one backend of the interface in
app/snapshot_contract.py, shared by every node of a cluster. A snapshot saved through one
node opens on any other. Storage layer only; the HTTP routes live elsewhere.

Design
------
* **Schema and migrations.** ``mlp_snapshots`` holds the rows (the same columns as the SQLite
  table; the payload is compact JSON *text*, not jsonb, so a document is served as it was
  stored and numbers keep their exact spelling). ``mlp_schema_version`` records each applied
  version. At open, :func:`migrate` runs in one transaction under
  ``pg_advisory_xact_lock(MIGRATE_LOCK)``: nodes starting at once queue on that lock, the
  first creates or upgrades the schema, the others find it done. A database whose version is
  newer than ours, or whose table has other columns, raises :class:`CorruptStoreError` and is
  never altered.
* **Atomicity.** Every write is one transaction. ``save()`` takes
  ``pg_advisory_xact_lock(SAVE_LOCK)`` before counting, so two nodes saving at once cannot
  both pass the ``max_count`` check: the second counts after the first commits. (SERIALIZABLE
  would also catch that race, but by failing one transaction, which then needs a retry loop;
  the lock just queues saves, each a few milliseconds.) Ids are unique by constraint.
* **Threads.** One connection per store, every use under a :class:`threading.Lock`, so a
  transaction is never interleaved with another thread's statements. The server makes
  snapshot calls from worker threads, each a few milliseconds and rare (saves are rate-limited
  per client), so a pool would buy little; one connection per node also keeps the database's
  connection count at the number of nodes (psycopg_pool would be one more dependency).
* **Failures.** Every psycopg error becomes :class:`SnapshotError` naming host, port and
  database (never the password). A broken connection is dropped and the next call connects
  again; reads, ``rename()`` and ``save()`` are tried once more on the fresh connection
  (a retried save first looks for its own id, so a commit whose answer was lost is not saved
  twice). ``ping()`` fails the same way, so /healthz reports the database not ready.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from app.snapshot_contract import (
    CorruptStoreError,
    SnapshotError,
    check_page,
    document_bytes,
    encode_payload,
    full_message,
    now_iso,
    source_from_row,
    valid_id,
    validate_name,
)

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "PostgresSnapshotStore", "migrate", "schema_version"]

T = TypeVar("T")
Connection = psycopg.Connection[tuple[Any, ...]]

CONNECT_TIMEOUT_S = 5  # libpq's connect_timeout; an unreachable host fails a call after this long
STATEMENT_TIMEOUT_MS = 10_000  # no statement (or wait for a lock) holds a thread longer
# statement_timeout is enforced by the server: on a half-open TCP connection (the server's
# host gone, a dropped route) no answer ever comes, and a read would wait for the kernel's
# retransmission limit (about 15 minutes). TCP keep-alives notice a silent peer while idle
# (5 s, then 3 probes 2 s apart), and tcp_user_timeout ends a connection whose sent data stays
# unacknowledged this long: a call on a dead connection fails a little after the statement
# timeout instead of holding its thread.
CALL_TIMEOUT_S = STATEMENT_TIMEOUT_MS / 1000 + 5
KEEPALIVES: dict[str, Any] = {  # libpq connection parameters
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": int(CALL_TIMEOUT_S * 1000),
}
# A call waits at most this long for the store's one connection: behind a call stuck on a
# dead connection, the others fail with SnapshotError instead of each holding a thread of the
# default executor until it is used up.
LOCK_TIMEOUT_S = CALL_TIMEOUT_S
# pg_advisory_xact_lock keys ("MLPP" and a number): one for migrations, one for saves.
MIGRATE_LOCK = 0x4D4C5050_0001
SAVE_LOCK = 0x4D4C5050_0002

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS mlp_schema_version (
    version integer     PRIMARY KEY,
    applied timestamptz NOT NULL DEFAULT now()
)
"""
# MIGRATIONS[v - 1] takes the schema from version v - 1 to v. Only ever append.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the table as SQLite has it
        """
        CREATE TABLE mlp_snapshots (
            seq     bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- newest first = seq DESC
            id      text    NOT NULL UNIQUE,  -- secrets.token_urlsafe(16)
            name    text    NOT NULL,
            created text    NOT NULL,         -- UTC ISO-8601, returned exactly as saved
            epoch   bigint  NOT NULL,
            bytes   integer NOT NULL,         -- length of payload in UTF-8 bytes
            payload text    NOT NULL          -- compact JSON
        )
        """,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
_COLUMNS = [
    ("seq", "bigint"),
    ("id", "text"),
    ("name", "text"),
    ("created", "text"),
    ("epoch", "bigint"),
    ("bytes", "integer"),
    ("payload", "text"),
]
_META = "id, name, created, epoch, bytes"


def schema_version(conn: Connection) -> int:
    """The applied schema version, 0 for a database we have never touched."""
    if conn.execute("SELECT to_regclass('mlp_schema_version')").fetchone() == (None,):
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM mlp_schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: Connection) -> int:
    """Bring the schema to SCHEMA_VERSION in one transaction; returns the version found.
    Safe to run from several processes at once (they queue on MIGRATE_LOCK)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute(VERSION_TABLE)
        found = schema_version(conn)
        if found > SCHEMA_VERSION:
            raise CorruptStoreError(
                f"the snapshot database has schema version {found}; this program knows up to {SCHEMA_VERSION}. "
                "It was left untouched: run a newer MLP Playground, or point DB_URL elsewhere."
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO mlp_schema_version (version) VALUES (%s)", (version,))
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'mlp_snapshots' ORDER BY ordinal_position"
        ).fetchall()
        if [tuple(c) for c in columns] != _COLUMNS:
            raise CorruptStoreError(f"table mlp_snapshots has columns {columns}, expected {_COLUMNS}")
    return found


def describe(url: str) -> str:
    """host:port/dbname of a libpq URL, for messages: never the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error as e:
        raise SnapshotError(f"DB_URL is not a valid PostgreSQL connection URL: {e}") from None
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', info.get('user', ''))}"


def _first_line(e: BaseException) -> str:
    return " ".join(str(e).split("\n")[:2]).strip() or type(e).__name__


class PostgresSnapshotStore:
    def __init__(self, url: str, *, max_bytes: int = 5_000_000, max_count: int = 10_000):
        self.target = describe(url)
        self.max_bytes = int(max_bytes)
        self.max_count = int(max_count)
        self._url = url
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._closed = False
        try:
            self._run(migrate, retry=False)
        except BaseException:
            self.close()
            raise

    # --- plumbing -----------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._closed:
            raise SnapshotError("the snapshot store is closed")
        if self._conn is None or self._conn.closed:
            try:
                conn = psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    application_name="mlp-playground",
                    **KEEPALIVES,
                )
            except psycopg.Error as e:
                raise SnapshotError(
                    f"cannot connect to the snapshot database {self.target}: {_first_line(e)}"
                ) from None
            try:
                conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(STATEMENT_TIMEOUT_MS),))
            except psycopg.Error as e:
                conn.close()
                raise self._fail(e) from None
            self._conn = conn
        return self._conn

    def _fail(self, e: psycopg.Error) -> SnapshotError:
        return SnapshotError(f"snapshot database {self.target}: {_first_line(e)}")

    def _run(self, work: Callable[[Connection], T], *, retry: bool, timeout: float | None = None) -> T:
        """work(conn) under the lock, waiting for it at most `timeout` s (LOCK_TIMEOUT_S). A
        connection found broken is dropped and, with `retry`, work runs once more on a new one.
        psycopg errors become SnapshotError."""
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S if timeout is None else timeout):
            raise SnapshotError(f"the snapshot database is busy (a call to {self.target} is taking too long)")
        try:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    return work(conn)
                except psycopg.Error as e:
                    if not (conn.broken or conn.closed):
                        raise self._fail(e) from None
                    self._conn = None
                    conn.close()
                    if not retry or attempt == 2:
                        raise SnapshotError(
                            f"lost the connection to the snapshot database {self.target}: {_first_line(e)}"
                        ) from None
            raise AssertionError("unreachable")
        finally:
            self._lock.release()

    def _row(self, sql: str, snapshot_id: str) -> tuple | None:
        return self._run(lambda conn: conn.execute(sql, (snapshot_id,)).fetchone(), retry=True)

    @staticmethod
    def _meta(row: tuple) -> dict:
        sid, name, created, epoch, size = row
        return {"snapshot_id": sid, "name": name, "created": created, "epoch": epoch, "bytes": size}

    # --- the API --------------------------------------------------------------------------

    def save(self, payload: dict, *, name: str) -> dict:
        """Store a snapshot in one transaction; durable once this returns."""
        name = validate_name(name)
        text, size, epoch = encode_payload(payload, self.max_bytes)  # outside the lock: the slow part
        meta = {"snapshot_id": secrets.token_urlsafe(16), "name": name, "created": now_iso(), "epoch": epoch}
        tries = 0

        def insert(conn: Connection) -> None:
            nonlocal tries
            tries += 1
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SAVE_LOCK,))
                if (
                    tries > 1
                    and conn.execute("SELECT 1 FROM mlp_snapshots WHERE id = %s", (meta["snapshot_id"],)).fetchone()
                ):
                    return  # the first try committed; only its answer was lost
                row = conn.execute("SELECT count(*) FROM mlp_snapshots").fetchone()
                count = int(row[0]) if row else 0
                if count >= self.max_count:
                    raise SnapshotError(full_message(count, self.max_count))
                conn.execute(
                    "INSERT INTO mlp_snapshots (id, name, created, epoch, bytes, payload) VALUES (%s, %s, %s, %s, %s, %s)",
                    (meta["snapshot_id"], name, meta["created"], epoch, size, text),
                )

        self._run(insert, retry=True)
        return {**meta, "bytes": size}

    def get(self, snapshot_id: str) -> dict | None:
        if not valid_id(snapshot_id):
            return None
        row = self._row("SELECT id, name, created, epoch, payload FROM mlp_snapshots WHERE id = %s", snapshot_id)
        if row is None:
            return None
        try:
            payload = json.loads(row[4])
        except ValueError as e:
            raise CorruptStoreError(f"snapshot {snapshot_id} in {self.target} has an unreadable payload: {e}") from None
        return {"snapshot_id": row[0], "name": row[1], "created": row[2], "epoch": row[3], "payload": payload}

    def get_document(self, snapshot_id: str) -> bytes | None:
        """The stored snapshot as the JSON document GET /api/snapshots/{id} answers; the
        payload is the stored text itself, never decoded and encoded again."""
        if not valid_id(snapshot_id):
            return None
        row = self._row("SELECT id, name, created, epoch, payload FROM mlp_snapshots WHERE id = %s", snapshot_id)
        if row is None:
            return None
        return document_bytes(
            {"snapshot_id": row[0], "name": row[1], "created": row[2], "epoch": row[3]}, row[4].encode()
        )

    def get_source(self, snapshot_id: str) -> tuple[dict, bytes] | None:
        """(metadata with the payload's config, the payload's JSON bytes). PostgreSQL extracts
        the config (json, not jsonb: parsed only, the text kept), so this process never parses
        the whole payload; a worker does (protocol.Create)."""
        if not valid_id(snapshot_id):
            return None
        row = self._row(
            "SELECT id, name, created, epoch, (payload::json -> 'config')::text, payload FROM mlp_snapshots WHERE id = %s",
            snapshot_id,
        )
        return None if row is None else source_from_row(row, self.target)

    def ping(self, timeout: float = 2.0) -> None:
        """A cheap read of the table (health checks); SnapshotError when unusable."""
        self._run(
            lambda conn: conn.execute("SELECT seq FROM mlp_snapshots ORDER BY seq DESC LIMIT 1").fetchone(),
            retry=True,
            timeout=timeout,
        )

    def list(self, *, limit: int = 100, offset: int = 0) -> list[dict]:
        """Metadata of stored snapshots, newest first; never the payloads."""
        check_page(limit, offset)
        rows = self._run(
            lambda conn: conn.execute(
                f"SELECT {_META} FROM mlp_snapshots ORDER BY seq DESC LIMIT %s OFFSET %s", (limit, offset)
            ).fetchall(),
            retry=True,
        )
        return [self._meta(r) for r in rows]

    def count(self) -> int:
        row = self._run(lambda conn: conn.execute("SELECT count(*) FROM mlp_snapshots").fetchone(), retry=True)
        return int(row[0]) if row else 0

    def rename(self, snapshot_id: str, name: str) -> dict | None:
        """New metadata, or None if there is no such snapshot. ValueError for a bad name."""
        name = validate_name(name)
        if not valid_id(snapshot_id):
            return None
        row = self._run(  # one statement: its own transaction; the same twice does no harm
            lambda conn: conn.execute(
                f"UPDATE mlp_snapshots SET name = %s WHERE id = %s RETURNING {_META}", (name, snapshot_id)
            ).fetchone(),
            retry=True,
        )
        return None if row is None else self._meta(row)

    def delete(self, snapshot_id: str) -> bool:
        if not valid_id(snapshot_id):
            return False
        # Not retried: after a lost answer, a second try would find nothing and say "no such snapshot".
        cur = self._run(
            lambda conn: conn.execute("DELETE FROM mlp_snapshots WHERE id = %s", (snapshot_id,)), retry=False
        )
        return cur.rowcount > 0

    def close(self) -> None:
        """Close the connection (idempotent). Later calls raise SnapshotError."""
        self._closed = True  # new calls fail at once
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            return  # a call stuck on the connection; tcp_user_timeout ends it, and with it the connection
        try:
            conn, self._conn = self._conn, None
        finally:
            self._lock.release()
        if conn is not None:
            conn.close()

    def __enter__(self) -> PostgresSnapshotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
