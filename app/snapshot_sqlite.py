"""The snapshot store in a SQLite file, the default (no configuration): one backend of the
interface in app/snapshot_contract.py. Storage layer only; the HTTP routes live elsewhere.
One table, one row per snapshot, the payload kept as compact JSON text in the last column
so listing metadata never reads it.

Design
------
* **Ownership.** The file is marked with ``PRAGMA application_id`` (``0x4D4C5050``, "MLPP")
  and ``PRAGMA user_version`` (the schema version). At open both are checked, the schema is
  compared with ours and ``PRAGMA integrity_check`` runs; anything wrong raises
  :class:`CorruptStoreError` naming the path and the problem. The file is never overwritten or
  "repaired": a missing or 0-byte file is the only thing initialised. Before SQLite opens an
  existing file at all, its 100-byte header is read directly, so a foreign file (not SQLite,
  or another program's SQLite database) is rejected without SQLite ever opening it for writing.
* **Atomicity and durability.** Every write is one ``BEGIN IMMEDIATE … COMMIT`` transaction,
  so a crash mid-save loses nothing already committed and never leaves a half row.
  ``journal_mode=WAL``: a commit appends to one file; readers never block the writer.
  ``synchronous=FULL``: in WAL mode, NORMAL only syncs at checkpoints, so a commit acknowledged
  just before a power cut or OS crash could be rolled back; FULL fsyncs the WAL on every commit,
  so once ``save()`` returns the snapshot survives even that (a process kill is survived either
  way). If the filesystem cannot do WAL (some network filesystems) SQLite keeps the rollback
  journal (DELETE), which with synchronous=FULL is durable too.
* **Threads.** One connection opened with ``check_same_thread=False`` and every use guarded
  by a :class:`threading.Lock`. A ``sqlite3.Connection`` must not be used by two threads at
  once, and SQLite serialises writers anyway, so per-call connections would buy little
  concurrency while paying an open (pragmas, file handles) on every call. Operations are a
  few milliseconds, JSON encoding/decoding happens outside the lock, so the lock is never held
  long. Another *process* on the same file is handled by SQLite's locking (busy_timeout).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

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

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SqliteSnapshotStore"]

APPLICATION_ID = 0x4D4C5050  # "MLPP"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000
# Deleted snapshots' pages go back to the filesystem (auto_vacuum=INCREMENTAL) once this many
# are free (1 MB of 4 KB pages), so a burst of small deletes does not vacuum on every one.
VACUUM_FREE_PAGES = 256

_SQLITE_MAGIC = b"SQLite format 3\x00"
# Errors that mean "the bytes are wrong", as opposed to locked / unreadable / disk full.
_CORRUPT_CODES = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}

_COLUMNS = [  # (name, declared type, notnull, pk) as PRAGMA table_info reports them
    ("seq", "INTEGER", 0, 1),
    ("id", "TEXT", 1, 0),
    ("name", "TEXT", 1, 0),
    ("created", "TEXT", 1, 0),
    ("epoch", "INTEGER", 1, 0),
    ("bytes", "INTEGER", 1, 0),
    ("payload", "TEXT", 1, 0),
]
_SCHEMA = """
CREATE TABLE snapshots (
    seq     INTEGER PRIMARY KEY,      -- insertion order: newest first = seq DESC
    id      TEXT    NOT NULL UNIQUE,  -- secrets.token_urlsafe(16)
    name    TEXT    NOT NULL,
    created TEXT    NOT NULL,         -- UTC ISO-8601
    epoch   INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,         -- length of payload in UTF-8 bytes
    payload TEXT    NOT NULL          -- compact JSON; last, so metadata reads skip it
)
"""


class SqliteSnapshotStore:
    def __init__(self, path: Path, *, max_bytes: int = 5_000_000, max_count: int = 10_000):
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.max_count = int(max_count)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open()
        self._file = self._identity()  # the file the connection has open (see _db)

    # --- opening and checking -----------------------------------------------------------

    def _corrupt(self, what: str) -> CorruptStoreError:
        return CorruptStoreError(
            f"{self.path} is not an MLP Playground snapshot database "
            f"or is damaged: {what}. It was left untouched; move it aside "
            f"or point db_path elsewhere."
        )

    def _check_header(self) -> bool:
        """True if the file is new (missing or 0 bytes). Raises for foreign files.

        Reads the raw header so a non-SQLite file, or another program's SQLite database, is
        rejected before SQLite opens it read-write (which could roll back or checkpoint it).
        """
        try:
            with open(self.path, "rb") as f:
                head = f.read(100)
        except FileNotFoundError:
            return True
        except IsADirectoryError:
            raise SnapshotError(f"{self.path} is a directory, not a snapshot database") from None
        except OSError as e:
            raise SnapshotError(f"cannot read snapshot database {self.path}: {e}") from None
        if not head:
            return True
        if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
            raise self._corrupt("not a SQLite database file")
        app_id = int.from_bytes(head[68:72], "big")
        if app_id != APPLICATION_ID:
            raise self._corrupt(f"application_id is 0x{app_id:08X}, expected 0x{APPLICATION_ID:08X}")
        return False

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SnapshotError(f"cannot create the directory for {self.path}: {e}") from None
        new = self._check_header()
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise SnapshotError(f"cannot open snapshot database {self.path}: {e}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._init_or_check(conn, new)
            self._reclaim_at_open(conn)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. a filesystem without shared memory
                conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA journal_size_limit=16777216")  # don't keep a huge -wal around
        except CorruptStoreError:
            conn.close()
            raise
        except sqlite3.Error as e:
            conn.close()
            if getattr(e, "sqlite_errorname", None) in _CORRUPT_CODES:
                raise self._corrupt(str(e)) from None
            raise SnapshotError(f"cannot open snapshot database {self.path}: {e}") from None
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _objects(conn: sqlite3.Connection) -> list[tuple[str, str]]:
        return sorted(conn.execute("SELECT type, name FROM sqlite_master").fetchall())

    def _init_or_check(self, conn: sqlite3.Connection, new: bool) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        blank = app_id == 0 and version == 0 and not self._objects(conn)
        # `blank` with a non-new header happens only after SQLite rolled back a hot journal
        # left by a crash during our own initialisation (the header check saw our id).
        if new or blank:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes before the first table
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Re-read under the write lock: another process may have initialised it.
                if (
                    conn.execute("PRAGMA application_id").fetchone()[0] == 0
                    and conn.execute("PRAGMA user_version").fetchone()[0] == 0
                    and not self._objects(conn)
                ):
                    conn.execute(_SCHEMA)
                    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise self._corrupt(f"application_id is 0x{app_id & 0xFFFFFFFF:08X}, expected 0x{APPLICATION_ID:08X}")
        if version != SCHEMA_VERSION:
            raise self._corrupt(
                f"schema version (user_version) is {version}, this program reads version {SCHEMA_VERSION}"
            )
        objects = [o for o in self._objects(conn) if not o[1].startswith("sqlite_autoindex_")]
        if objects != [("table", "snapshots")]:
            raise self._corrupt(f"unexpected schema objects {objects}")
        cols = [(r[1], r[2].upper(), r[3], r[5]) for r in conn.execute("PRAGMA table_info(snapshots)").fetchall()]
        if cols != _COLUMNS:
            raise self._corrupt(f"table snapshots has columns {cols}")
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check(5)").fetchall()]
        if problems != ["ok"]:
            raise self._corrupt("integrity_check failed: " + "; ".join(map(str, problems)))

    # --- plumbing -----------------------------------------------------------------------

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SnapshotError("the snapshot store is closed")
        # A database file removed or replaced under a running server: the open connection
        # would go on reading and writing the unlinked old file, and saves acknowledged now
        # would be gone at the next start. One stat() per call refuses that instead.
        if self._identity() != self._file:
            raise SnapshotError(f"the snapshot database {self.path} was removed or replaced while the server ran")
        return self._conn

    def _fail(self, e: sqlite3.Error) -> SnapshotError:
        if getattr(e, "sqlite_errorname", None) in _CORRUPT_CODES:
            return CorruptStoreError(f"snapshot database {self.path} is damaged: {e}")
        return SnapshotError(f"snapshot database {self.path}: {e}")

    @staticmethod
    def _meta(row: tuple) -> dict:
        sid, name, created, epoch, size = row
        return {"snapshot_id": sid, "name": name, "created": created, "epoch": epoch, "bytes": size}

    @contextmanager
    def _transaction(self):
        """The connection inside BEGIN IMMEDIATE … COMMIT (ROLLBACK on any error), under the lock."""
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise self._fail(e) from None

    # --- the API --------------------------------------------------------------------------

    def save(self, payload: dict, *, name: str) -> dict:
        """Store a snapshot in one transaction; durable once this returns."""
        name = validate_name(name)
        text, size, epoch = encode_payload(payload, self.max_bytes)  # outside the lock: the slow part
        sid = secrets.token_urlsafe(16)
        created = now_iso()
        with self._transaction() as conn:
            count = conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
            if count >= self.max_count:
                raise SnapshotError(full_message(count, self.max_count))
            conn.execute(
                "INSERT INTO snapshots (id, name, created, epoch, bytes, payload) VALUES (?, ?, ?, ?, ?, ?)",
                (sid, name, created, epoch, size, text),
            )
        return {"snapshot_id": sid, "name": name, "created": created, "epoch": epoch, "bytes": size}

    def get(self, snapshot_id: str) -> dict | None:
        if not valid_id(snapshot_id):
            return None
        with self._lock:
            try:
                row = (
                    self._db()
                    .execute("SELECT id, name, created, epoch, payload FROM snapshots WHERE id = ?", (snapshot_id,))
                    .fetchone()
                )
            except sqlite3.Error as e:
                raise self._fail(e) from None
        if row is None:
            return None
        try:
            payload = json.loads(row[4])
        except ValueError as e:
            raise CorruptStoreError(f"snapshot {snapshot_id} in {self.path} has an unreadable payload: {e}") from None
        return {"snapshot_id": row[0], "name": row[1], "created": row[2], "epoch": row[3], "payload": payload}

    def _row(self, sql: str, snapshot_id: str) -> tuple | None:
        """One row by id under the lock; sqlite errors become SnapshotError."""
        with self._lock:
            try:
                return self._db().execute(sql, (snapshot_id,)).fetchone()
            except sqlite3.Error as e:
                raise self._fail(e) from None

    def get_document(self, snapshot_id: str) -> bytes | None:
        """The stored snapshot as the JSON document GET /api/snapshots/{id} answers:
        {"snapshot_id", "name", "created", "epoch", "payload"}. The payload is the stored
        text itself, never decoded and encoded again, so a read costs a copy, not a parse."""
        if not valid_id(snapshot_id):
            return None
        row = self._row(
            "SELECT id, name, created, epoch, CAST(payload AS BLOB) FROM snapshots WHERE id = ?", snapshot_id
        )
        if row is None:
            return None
        return document_bytes({"snapshot_id": row[0], "name": row[1], "created": row[2], "epoch": row[3]}, row[4])

    def get_source(self, snapshot_id: str) -> tuple[dict, bytes] | None:
        """(metadata with the payload's config, the payload's JSON bytes): what a session or an
        embed is made from. SQLite extracts the config (in C, without Python's GIL), so the
        server process never parses the whole payload; a worker does (protocol.Create)."""
        if not valid_id(snapshot_id):
            return None
        row = self._row(
            "SELECT id, name, created, epoch, json_extract(payload, '$.config'), CAST(payload AS BLOB) "
            "FROM snapshots WHERE id = ?",
            snapshot_id,
        )
        return None if row is None else source_from_row(row, str(self.path))

    def ping(self, timeout: float = 2.0) -> None:
        """A cheap read that touches the file (health checks); SnapshotError when unusable."""
        if not self._lock.acquire(timeout=timeout):
            raise SnapshotError("the snapshot database is busy (a write is taking too long)")
        try:
            self._db().execute("SELECT seq FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
        except sqlite3.Error as e:
            raise self._fail(e) from None
        finally:
            self._lock.release()

    def list(self, *, limit: int = 100, offset: int = 0) -> list[dict]:
        """Metadata of stored snapshots, newest first; never the payloads."""
        check_page(limit, offset)
        with self._lock:
            try:
                rows = (
                    self._db()
                    .execute(
                        "SELECT id, name, created, epoch, bytes FROM snapshots ORDER BY seq DESC LIMIT ? OFFSET ?",
                        (limit, offset),
                    )
                    .fetchall()
                )
            except sqlite3.Error as e:
                raise self._fail(e) from None
        return [self._meta(r) for r in rows]

    def count(self) -> int:
        with self._lock:
            try:
                return self._db().execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
            except sqlite3.Error as e:
                raise self._fail(e) from None

    def rename(self, snapshot_id: str, name: str) -> dict | None:
        """New metadata, or None if there is no such snapshot. ValueError for a bad name."""
        name = validate_name(name)
        if not valid_id(snapshot_id):
            return None
        with self._transaction() as conn:
            conn.execute("UPDATE snapshots SET name = ? WHERE id = ?", (name, snapshot_id))
            row = conn.execute(
                "SELECT id, name, created, epoch, bytes FROM snapshots WHERE id = ?", (snapshot_id,)
            ).fetchone()
        return None if row is None else self._meta(row)

    def delete(self, snapshot_id: str) -> bool:
        if not valid_id(snapshot_id):
            return False
        with self._lock:
            try:  # a single statement in autocommit mode is its own transaction
                cur = self._db().execute("DELETE FROM snapshots WHERE id = ?", (snapshot_id,))
            except sqlite3.Error as e:
                raise self._fail(e) from None
            self._give_back_space(self._db())
        return cur.rowcount > 0

    @staticmethod
    def _give_back_space(conn: sqlite3.Connection) -> None:
        """Truncate the file by its free pages when there are enough of them (auto_vacuum=
        INCREMENTAL). Best effort: the delete is already committed whatever happens here."""
        try:
            if conn.execute("PRAGMA freelist_count").fetchone()[0] >= VACUUM_FREE_PAGES:
                # One page per VDBE step, and execute() steps once: executescript runs it to the end.
                conn.executescript("PRAGMA incremental_vacuum;")
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # in WAL, the file shrinks here
        except sqlite3.Error:
            pass

    def _reclaim_at_open(self, conn: sqlite3.Connection) -> None:
        """A file made before auto_vacuum was set (mode NONE) never shrinks: when a quarter
        of it is free pages, convert it once (VACUUM rewrites the file); otherwise leave it."""
        mode = conn.execute("PRAGMA auto_vacuum").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        if mode == 0 and free >= VACUUM_FREE_PAGES and 4 * free >= pages:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("VACUUM")
        elif mode == 2:
            self._give_back_space(conn)

    def close(self) -> None:
        """Close the connection (idempotent). Later calls raise SnapshotError."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> SqliteSnapshotStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
