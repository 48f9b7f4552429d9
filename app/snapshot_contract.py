"""What a snapshot store is, whichever database holds it: the interface both backends
implement (SQLite in app/snapshot_sqlite.py, PostgreSQL in app/snapshot_postgres.py), its
errors, and the parts they share (name rules, payload encoding, the stored document's bytes).

A module of its own because app/snapshots.py picks a backend (so imports both) and the
backends need these parts: kept in app/snapshots.py they would make an import loop.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = [
    "NAME_MAX",
    "ID_MAX",
    "SnapshotError",
    "CorruptStoreError",
    "SnapshotStore",
    "validate_name",
    "encode_payload",
    "check_page",
    "valid_id",
    "now_iso",
    "document_bytes",
    "full_message",
]

NAME_MAX = 80
ID_MAX = 64  # longest id get/rename/delete will look up (ids we issue are 22 chars)


class SnapshotError(Exception):
    """A store-level problem (limit reached, store closed, database unusable)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class CorruptStoreError(SnapshotError):
    """The database is not an MLP Playground snapshot database, or it is damaged."""


class SnapshotStore(Protocol):
    """Saved sessions (config, weights, counters, loss history), one JSON payload each.

    Every method may raise SnapshotError when the database cannot be used; a method taking a
    name raises ValueError (naming `name`) for a bad one. Unknown or malformed ids are "not
    found" (None / False), never an error. Every write is one transaction, durable once the
    method returns; a store may be shared by threads.
    """

    max_bytes: int  # largest payload in UTF-8 bytes of compact JSON (max_snapshot_bytes)
    max_count: int  # most snapshots kept; a save beyond it is refused (max_snapshots)

    def save(self, payload: dict, *, name: str) -> dict:
        """{"snapshot_id", "name", "created", "epoch", "bytes"}; ValueError for a bad payload
        or name, SnapshotError naming max_snapshot_bytes / max_snapshots over a limit."""
        ...

    def get(self, snapshot_id: str) -> dict | None:
        """{"snapshot_id", "name", "created", "epoch", "payload"} with the payload decoded."""
        ...

    def get_document(self, snapshot_id: str) -> bytes | None:
        """The same as get() as JSON bytes, the payload copied as stored (never re-encoded)."""
        ...

    def get_source(self, snapshot_id: str) -> tuple[dict, bytes] | None:
        """(metadata with the payload's "config", the payload's JSON bytes)."""
        ...

    def ping(self, timeout: float = 2.0) -> None:
        """A cheap read for health checks; SnapshotError when the database is not usable."""
        ...

    def list(self, *, limit: int = 100, offset: int = 0) -> list[dict]:
        """Metadata (as save() returns it) newest first, never the payloads."""
        ...

    def count(self) -> int: ...

    def rename(self, snapshot_id: str, name: str) -> dict | None:
        """New metadata, or None if there is no such snapshot."""
        ...

    def delete(self, snapshot_id: str) -> bool:
        """True when a snapshot was deleted."""
        ...

    def close(self) -> None:
        """Release the database (idempotent); later calls raise SnapshotError."""
        ...

    def __enter__(self) -> SnapshotStore: ...

    def __exit__(self, *exc: object) -> None: ...


def full_message(count: int, max_count: int) -> str:
    """The store-full error; app/control.py maps it by the limit's name max_snapshots."""
    return f"the snapshot store is full ({count} snapshots, limit max_snapshots={max_count}); delete some first"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def valid_id(snapshot_id: Any) -> bool:
    return isinstance(snapshot_id, str) and 0 < len(snapshot_id) <= ID_MAX


def check_page(limit: Any, offset: Any) -> None:
    for label, v in (("limit", limit), ("offset", offset)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{label} must be a non-negative integer")


def validate_name(name: Any) -> str:
    """The stripped name, or ValueError naming `name`. HTML is allowed: escaping is output's job."""
    if not isinstance(name, str):
        raise ValueError("name must be a string")
    name = name.strip()
    if not name:
        raise ValueError("name must not be empty")
    if len(name) > NAME_MAX:
        raise ValueError(f"name must be at most {NAME_MAX} characters (got {len(name)})")
    for ch in name:
        # Cc: C0/C1 controls (NUL, newline, ESC …); Cs: lone surrogates (not encodable);
        # Zl/Zp: Unicode line and paragraph separators.
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            raise ValueError(f"name must not contain control characters (found U+{ord(ch):04X})")
    return name


def encode_payload(payload: Any, max_bytes: int) -> tuple[str, int, int]:
    """(json text, its UTF-8 size, epoch) or ValueError / SnapshotError.

    Compact JSON with every non-ASCII character kept as is; control characters (NUL
    included) are always escaped by json, so the text is storable in any text column."""
    if not isinstance(payload, dict):
        raise ValueError("payload must be a dict")
    epoch = payload.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError("payload.epoch must be a non-negative integer")
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except ValueError as e:  # NaN / ±Infinity
        raise ValueError(f"payload contains a non-finite number; pass None instead ({e})") from None
    except (TypeError, RecursionError) as e:
        raise ValueError(f"payload is not JSON-serialisable: {e}") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("payload contains a lone surrogate character") from None
    if size > max_bytes:
        raise SnapshotError(f"snapshot is {size} bytes, over the limit max_snapshot_bytes={max_bytes}")
    return text, size, epoch


def source_from_row(row: tuple, where: str) -> tuple[dict, bytes]:
    """A get_source row (id, name, created, epoch, the config's JSON text, payload) as
    (metadata with the parsed config, the payload's bytes); `where` names the store in errors."""
    snapshot_id, name, created, epoch, config_text, payload = row
    try:
        config = json.loads(config_text) if isinstance(config_text, str) else None
    except ValueError as e:
        raise CorruptStoreError(f"snapshot {snapshot_id} in {where} has an unreadable config: {e}") from None
    meta = {"snapshot_id": snapshot_id, "name": name, "created": created, "epoch": epoch, "config": config}
    return meta, payload.encode() if isinstance(payload, str) else payload


def document_bytes(meta: dict, payload: bytes) -> bytes:
    """{"snapshot_id", "name", "created", "epoch", "payload"} as JSON bytes, the payload's
    stored text spliced in, so a read costs a copy, not a parse."""
    head = json.dumps(meta, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return b"".join((head[:-1].encode(), b',"payload":', payload, b"}"))
