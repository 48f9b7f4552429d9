"""The snapshot store the settings name: PostgreSQL when DB_URL is set (any number of nodes
share it), otherwise the SQLite file at DB_PATH (the default, no configuration).

The interface and its errors are defined in app/snapshot_contract.py and re-exported here,
so callers import everything about snapshots storage from this one module.
"""

from __future__ import annotations

from app.settings import Settings
from app.snapshot_contract import NAME_MAX, CorruptStoreError, SnapshotError, SnapshotStore, validate_name
from app.snapshot_postgres import PostgresSnapshotStore
from app.snapshot_sqlite import SqliteSnapshotStore

__all__ = ["NAME_MAX", "SnapshotError", "CorruptStoreError", "SnapshotStore", "validate_name", "open_snapshot_store"]


def open_snapshot_store(settings: Settings) -> SnapshotStore:
    """Open (and at PostgreSQL, migrate) the store; SnapshotError with a clear message when
    the database cannot be used, CorruptStoreError when it is not ours or is damaged."""
    limits = {"max_bytes": settings.max_snapshot_bytes, "max_count": settings.max_snapshots}
    if settings.db_url:
        return PostgresSnapshotStore(settings.db_url, **limits)
    return SqliteSnapshotStore(settings.db_path, **limits)
