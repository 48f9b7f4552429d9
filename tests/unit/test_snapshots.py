"""Tests for the snapshot stores (storage only, no HTTP): every test of the interface runs
against both backends, SQLite (app/snapshot_sqlite.py) and PostgreSQL (app/snapshot_postgres.py,
on the test session's throw-away server); the file-format tests are SQLite's alone.
PostgreSQL's own parts (migrations, lost connections) are in test_snapshot_postgres.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.settings import Settings
from app.snapshot_postgres import PostgresSnapshotStore
from app.snapshot_sqlite import APPLICATION_ID, SCHEMA_VERSION
from app.snapshot_sqlite import SqliteSnapshotStore as SnapshotStore
from app.snapshots import CorruptStoreError, SnapshotError, open_snapshot_store
from tests.support.postgres_fixture import pg_url, postgres_server  # noqa: F401, F811  (fixtures)

ROOT = Path(__file__).resolve().parents[2]


def make_payload(i: int = 0, n: int = 8) -> dict:
    """Shaped like app.worker.export_state, with None standing for a non-finite number."""
    return {
        "config": {"dataset": "circle", "hidden": [n, 4], "learning_rate": 0.03, "seed": i},
        "epoch": i,
        "step": 10 * i,
        "weights": [
            [[(r * n + c + i) / 7.0 for c in range(n)] for r in range(2)],
            [[-(r + c + i) / 3.0 for c in range(4)] for r in range(n)],
        ],
        "biases": [[0.1 * i] * n, [0.0, -0.5, 1e-300, 2.5e10]],
        "history": [[e, 0.5 / (e + 1), None if e == 2 else 0.4] for e in range(5)],
        "shape_version": 3 + i,
        "custom": None if i % 2 else {"x": [[0.5, -1.0], [2.0, 3.25]], "y": [0, 1], "is_train": [True, False]},
    }


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "nested" / "dir" / "snapshots.sqlite3"


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request, tmp_path):
    """open(**limits) -> a new store on this test's one database, as another node would open
    it; every store made is closed at the end."""
    if request.param == "sqlite":
        settings = {"db_path": tmp_path / "nested" / "dir" / "snapshots.sqlite3"}
    else:
        settings = {"db_url": request.getfixturevalue("pg_url")}
    opened = []

    def open_store(**limits):
        names = {"max_bytes": "max_snapshot_bytes", "max_count": "max_snapshots"}
        s = open_snapshot_store(Settings(**settings, **{names[k]: v for k, v in limits.items()}))
        opened.append(s)
        return s

    yield open_store
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store):
    return make_store()


@pytest.fixture
def sqlite_store(db_path):
    s = SnapshotStore(db_path)
    yield s
    s.close()


# --- basic operations ---------------------------------------------------------------


def test_settings_pick_the_backend(tmp_path, pg_url):  # noqa: F811  (the fixture)
    sqlite = open_snapshot_store(Settings(db_path=tmp_path / "s.db"))
    postgres = open_snapshot_store(Settings(db_path=tmp_path / "unused.db", db_url=pg_url))
    try:
        assert isinstance(sqlite, SnapshotStore)
        assert isinstance(postgres, PostgresSnapshotStore)
        assert not (tmp_path / "unused.db").exists()  # with DB_URL set, no SQLite file is made
    finally:
        sqlite.close()
        postgres.close()


def test_creates_parent_dirs_and_marks_the_file(db_path, sqlite_store):
    store = sqlite_store
    assert db_path.is_file()
    with sqlite3.connect(db_path) as c:
        assert c.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    c.close()
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_save_get_round_trip(store):
    payload = make_payload(4)
    meta = store.save(payload, name="  my run  ")
    assert set(meta) == {"snapshot_id", "name", "created", "epoch", "bytes"}
    assert meta["name"] == "my run"
    assert meta["epoch"] == 4
    assert meta["bytes"] > 100
    created = datetime.fromisoformat(meta["created"])
    assert created.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60
    got = store.get(meta["snapshot_id"])
    assert got == {
        "snapshot_id": meta["snapshot_id"],
        "name": "my run",
        "created": meta["created"],
        "epoch": 4,
        "payload": payload,
    }
    assert got["payload"]["history"][2][2] is None
    assert got["payload"]["biases"][1][2] == 1e-300  # floats round-trip exactly


def test_get_unknown_and_odd_ids(store):
    store.save(make_payload(), name="a")
    assert store.get("nope") is None
    assert store.get("") is None
    assert store.get("x" * 10_000) is None
    assert store.get(None) is None  # type: ignore[arg-type]
    assert store.get("' OR 1=1 --") is None


def test_ids_unique_and_long(store):
    ids = [store.save(make_payload(i), name=f"s{i}")["snapshot_id"] for i in range(50)]
    assert len(set(ids)) == 50
    assert all(len(i) >= 22 for i in ids)
    assert all(set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for i in ids)


def test_list_newest_first_metadata_only(store):
    metas = [store.save(make_payload(i), name=f"s{i}") for i in range(5)]
    listed = store.list()
    assert [m["snapshot_id"] for m in listed] == [m["snapshot_id"] for m in reversed(metas)]
    assert listed == list(reversed(metas))  # same metadata save() returned
    assert all("payload" not in m for m in listed)
    assert [m["snapshot_id"] for m in store.list(limit=2, offset=1)] == [
        metas[3]["snapshot_id"],
        metas[2]["snapshot_id"],
    ]
    assert store.list(limit=0) == []
    assert store.list(offset=5) == []
    with pytest.raises(ValueError, match="limit"):
        store.list(limit=-1)
    with pytest.raises(ValueError, match="offset"):
        store.list(offset=-1)


def test_rename(store):
    meta = store.save(make_payload(1), name="old")
    other = store.save(make_payload(2), name="other")
    renamed = store.rename(meta["snapshot_id"], " new name ")
    assert renamed == {**meta, "name": "new name"}
    assert store.get(meta["snapshot_id"])["name"] == "new name"
    assert store.get(meta["snapshot_id"])["payload"] == make_payload(1)
    assert store.get(other["snapshot_id"])["name"] == "other"
    assert store.rename("unknown-id", "x") is None
    with pytest.raises(ValueError, match="name"):
        store.rename(meta["snapshot_id"], "")
    assert store.get(meta["snapshot_id"])["name"] == "new name"


def test_delete(store):
    a = store.save(make_payload(1), name="a")
    b = store.save(make_payload(2), name="b")
    assert store.delete(a["snapshot_id"]) is True
    assert store.get(a["snapshot_id"]) is None
    assert store.delete(a["snapshot_id"]) is False
    assert store.delete("unknown") is False
    assert [m["snapshot_id"] for m in store.list()] == [b["snapshot_id"]]
    c = store.save(make_payload(3), name="c")  # still newest first after a delete
    assert [m["snapshot_id"] for m in store.list()] == [c["snapshot_id"], b["snapshot_id"]]


def test_closed_store_raises(make_store):
    s = make_store()
    s.close()
    s.close()  # idempotent
    with pytest.raises(SnapshotError, match="closed"):
        s.list()
    with pytest.raises(SnapshotError, match="closed"):
        s.save(make_payload(), name="x")


# --- validation and limits ------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "x" * 81,
        "a\nb",
        "tab\there",
        "nul\x00",
        "esc\x1b[31m",
        "del\x7f",
        "c1\x85inside",
        "line\u2028sep",
        42,
        None,
    ],
)
def test_bad_names_rejected(store, name):
    with pytest.raises(ValueError, match="name"):
        store.save(make_payload(), name=name)
    assert store.list() == []


@pytest.mark.parametrize(
    "name", ["<script>alert(1)</script>", "x" * 80, "日本語の実験 🚀", "O'Brien; DROP TABLE snapshots; --", 'a & b "q"']
)
def test_odd_but_valid_names_stored_verbatim(store, name):
    meta = store.save(make_payload(), name=name)
    assert meta["name"] == name
    assert store.get(meta["snapshot_id"])["name"] == name
    assert store.list()[0]["name"] == name


def test_bad_payloads_rejected(store):
    with pytest.raises(ValueError, match="non-finite"):
        store.save({**make_payload(), "history": [[1, float("nan"), 0.1]]}, name="x")
    with pytest.raises(ValueError, match="non-finite"):
        store.save({**make_payload(), "biases": [[float("inf")]]}, name="x")
    with pytest.raises(ValueError, match="epoch"):
        store.save({**make_payload(), "epoch": -1}, name="x")
    with pytest.raises(ValueError, match="epoch"):
        store.save({k: v for k, v in make_payload().items() if k != "epoch"}, name="x")
    with pytest.raises(ValueError, match="serialisable"):
        store.save({**make_payload(), "config": {"x": object()}}, name="x")
    with pytest.raises(ValueError, match="dict"):
        store.save([1, 2], name="x")  # type: ignore[arg-type]
    assert store.list() == []


def test_size_limit(make_store):
    s = make_store(max_bytes=2000)
    small = make_payload(1)
    meta = s.save(small, name="fits")
    assert meta["bytes"] <= 2000
    big = {**small, "weights": [[[0.123456789] * 300]]}
    with pytest.raises(SnapshotError, match="max_snapshot_bytes") as ei:
        s.save(big, name="too big")
    assert "2000" in ei.value.message
    assert [m["snapshot_id"] for m in s.list()] == [meta["snapshot_id"]]


def test_size_counts_utf8_bytes(store):
    p = {**make_payload(), "config": {"note": "é" * 100}}
    meta = store.save(p, name="utf8")
    ascii_meta = store.save({**make_payload(), "config": {"note": "e" * 100}}, name="ascii")
    assert meta["bytes"] == ascii_meta["bytes"] + 100  # é is two bytes in UTF-8


def test_count_limit(make_store):
    s = make_store(max_count=3)
    metas = [s.save(make_payload(i), name=f"s{i}") for i in range(3)]
    with pytest.raises(SnapshotError, match="max_snapshots"):
        s.save(make_payload(9), name="one too many")
    assert len(s.list()) == 3 and s.count() == 3
    assert s.delete(metas[0]["snapshot_id"])
    s.save(make_payload(9), name="room again")
    assert len(s.list()) == 3


def test_count_limit_holds_when_two_nodes_save_at_once(make_store):
    """The count is checked inside the saving transaction: two stores (two nodes) with four
    threads each racing for the last free places never store more than max_count."""
    limit = 6
    nodes = [make_store(max_count=limit), make_store(max_count=limit)]
    saved: list[str] = []
    refused: list[str] = []
    barrier = threading.Barrier(8)

    def work(node, t):
        barrier.wait()
        for j in range(3):
            try:
                saved.append(node.save(make_payload(j), name=f"{t}-{j}")["snapshot_id"])
            except SnapshotError as e:
                refused.append(e.message)

    threads = [threading.Thread(target=work, args=(nodes[t % 2], t)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert len(saved) == limit and len(refused) == 24 - limit
    assert all("max_snapshots" in m for m in refused)
    assert {m["snapshot_id"] for m in nodes[1].list(limit=100)} == set(saved)


def test_document_and_source(store):
    """get_document: the stored text spliced into the metadata; get_source: the config
    extracted by the database and the payload's bytes."""
    payload = make_payload(3)
    meta = store.save(payload, name="doc")
    document = json.loads(store.get_document(meta["snapshot_id"]))
    assert document == {k: v for k, v in store.get(meta["snapshot_id"]).items()}
    source_meta, raw = store.get_source(meta["snapshot_id"])
    assert source_meta == {
        **{k: meta[k] for k in ("snapshot_id", "name", "created", "epoch")},
        "config": payload["config"],
    }
    assert json.loads(raw) == payload
    assert store.get_document("unknown") is None and store.get_source("unknown") is None
    bare = store.save({"epoch": 0}, name="no config")
    assert store.get_source(bare["snapshot_id"])[0]["config"] is None


def test_ping(store):
    store.ping(timeout=2.0)
    store.close()
    with pytest.raises(SnapshotError, match="closed"):
        store.ping(timeout=2.0)


# --- persistence ------------------------------------------------------------------------


def test_survives_reopen(make_store):
    s = make_store()
    metas = [s.save(make_payload(i), name=f"s{i}") for i in range(3)]
    s.close()
    s2 = make_store()
    assert s2.list() == list(reversed(metas))
    for i, m in enumerate(metas):
        assert s2.get(m["snapshot_id"])["payload"] == make_payload(i)


def test_saved_on_one_node_opens_on_another(make_store):
    """Two stores open at once on one database, as two nodes: each sees the other's writes."""
    a, b = make_store(), make_store()
    meta = a.save(make_payload(5), name="from a")
    assert b.get(meta["snapshot_id"])["payload"] == make_payload(5)
    assert b.get_document(meta["snapshot_id"]) == a.get_document(meta["snapshot_id"])
    assert b.rename(meta["snapshot_id"], "renamed on b") == {**meta, "name": "renamed on b"}
    assert a.list() == [{**meta, "name": "renamed on b"}]
    assert b.delete(meta["snapshot_id"]) is True
    assert a.get(meta["snapshot_id"]) is None


def test_empty_existing_file_counts_as_new(tmp_path):
    p = tmp_path / "empty.db"
    p.touch()
    s = SnapshotStore(p)
    try:
        m = s.save(make_payload(), name="first")
        assert s.get(m["snapshot_id"]) is not None
    finally:
        s.close()


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from tests.unit.test_snapshots import make_payload
    from app.snapshot_sqlite import SqliteSnapshotStore
    store = SqliteSnapshotStore(Path(sys.argv[1]))
    for i in range(100000):
        meta = store.save(make_payload(i, n=32), name=f"crash {i}")
        print(i, meta["snapshot_id"], flush=True)
""")


def test_crash_mid_save_loses_nothing_acknowledged(tmp_path):
    path = tmp_path / "crash.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(ROOT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    acked: dict[str, int] = {}
    try:
        for _ in range(40):
            line = proc.stdout.readline()
            assert line.endswith("\n"), f"child died early: {proc.stderr.read()}"
            i, sid = line.split()
            acked[sid] = int(i)
        os.kill(proc.pid, signal.SIGKILL)  # mid-loop: it is saving the next one right now
        rest, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    for line in rest.splitlines(keepends=True):  # acknowledged after we read, before the kill
        if line.endswith("\n"):
            i, sid = line.split()
            acked[sid] = int(i)
    assert len(acked) >= 40

    with sqlite3.connect(path) as c:  # WAL recovery, then a full check
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    c.close()
    s = SnapshotStore(path)
    try:
        for sid, i in acked.items():
            got = s.get(sid)
            assert got is not None, f"acknowledged snapshot {i} lost"
            assert got["name"] == f"crash {i}" and got["epoch"] == i
            assert got["payload"] == make_payload(i, n=32)
        ids = {m["snapshot_id"] for m in s.list(limit=100000)}
        assert set(acked) <= ids
        assert len(ids) <= len(acked) + 1  # at most the one in flight when killed
        s.save(make_payload(), name="after the crash")  # still writable
    finally:
        s.close()


# --- corrupt and foreign files --------------------------------------------------------------


def assert_rejected_untouched(path: Path, match: str) -> CorruptStoreError:
    before = path.read_bytes()
    with pytest.raises(CorruptStoreError, match=match) as ei:
        SnapshotStore(path)
    assert str(path) in ei.value.message
    assert path.read_bytes() == before
    return ei.value


def test_random_bytes_rejected(tmp_path):
    p = tmp_path / "random.db"
    p.write_bytes(os.urandom(8192))
    assert_rejected_untouched(p, "not an MLP Playground snapshot database")


def test_short_file_and_text_file_rejected(tmp_path):
    p = tmp_path / "short.db"
    p.write_bytes(b"SQLite format 3\x00abc")
    assert_rejected_untouched(p, "not a SQLite database")
    t = tmp_path / "notes.txt"
    t.write_text("hello\n" * 100)
    assert_rejected_untouched(t, "not a SQLite database")


def test_unrelated_sqlite_db_rejected(tmp_path):
    p = tmp_path / "other.db"
    c = sqlite3.connect(p)
    c.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)")
    c.execute("INSERT INTO customers (email) VALUES ('a@example.com')")
    c.commit()
    c.close()
    err = assert_rejected_untouched(p, "not an MLP Playground snapshot database")
    assert "application_id" in err.message
    c = sqlite3.connect(p)  # still the other program's data
    assert c.execute("SELECT email FROM customers").fetchall() == [("a@example.com",)]
    c.close()


def test_foreign_wal_db_not_checkpointed(tmp_path):
    """A foreign WAL database with un-checkpointed frames: opening it read-write and closing
    would checkpoint the WAL into the main file. It must be rejected before that happens."""
    live = tmp_path / "live.db"
    c = sqlite3.connect(live, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA wal_autocheckpoint=0")
    c.execute("CREATE TABLE t (x)")
    c.execute("INSERT INTO t VALUES (1)")
    p = tmp_path / "foreign.db"
    p.write_bytes(live.read_bytes())
    wal = Path(str(p) + "-wal")
    wal.write_bytes(Path(str(live) + "-wal").read_bytes())
    c.close()
    wal_before = wal.read_bytes()
    assert wal_before  # there are frames to lose
    assert_rejected_untouched(p, "not an MLP Playground snapshot database")
    assert wal.read_bytes() == wal_before


def test_blank_sqlite_db_with_other_app_id_rejected(tmp_path):
    p = tmp_path / "other-app.db"
    c = sqlite3.connect(p)
    c.execute("PRAGMA application_id = 1234")
    c.execute("CREATE TABLE snapshots (x)")  # same table name, someone else's file
    c.commit()
    c.close()
    assert_rejected_untouched(p, "application_id")


def test_wrong_user_version_rejected(tmp_path):
    p = tmp_path / "s.db"
    SnapshotStore(p).close()
    c = sqlite3.connect(p)
    c.execute("PRAGMA user_version = 99")
    c.commit()
    c.close()
    assert_rejected_untouched(p, "user_version")


def test_our_id_but_wrong_schema_rejected(tmp_path):
    p = tmp_path / "s.db"
    c = sqlite3.connect(p)
    c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    c.execute("CREATE TABLE snapshots (id TEXT, blob BLOB)")
    c.commit()
    c.close()
    assert_rejected_untouched(p, "columns")
    c = sqlite3.connect(p)
    c.execute("CREATE TABLE extra (x)")
    c.commit()
    c.close()
    assert_rejected_untouched(p, "unexpected schema")


def test_truncated_db_rejected(tmp_path):
    src = tmp_path / "good.db"
    s = SnapshotStore(src)
    for i in range(30):
        s.save(make_payload(i, n=64), name=f"s{i}")
    s.close()
    p = tmp_path / "truncated.db"
    data = src.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    assert_rejected_untouched(p, "not an MLP Playground snapshot database")


def test_flipped_page_detected_by_integrity_check(tmp_path):
    p = tmp_path / "s.db"
    s = SnapshotStore(p)
    for i in range(30):
        s.save(make_payload(i, n=64), name=f"s{i}")
    s.close()
    data = bytearray(p.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for k in range(3 * page, 3 * page + 64):  # scribble over the 4th page's header area
        data[k] ^= 0xFF
    p.write_bytes(bytes(data))
    assert_rejected_untouched(p, "not an MLP Playground snapshot database")


def test_directory_path_is_an_error(tmp_path):
    d = tmp_path / "adir"
    d.mkdir()
    with pytest.raises(SnapshotError, match="directory"):
        SnapshotStore(d)


# --- concurrency ----------------------------------------------------------------------------


def test_threads_saving_at_once(store):
    n_threads, per = 8, 10
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)
    guard = threading.Lock()

    def work(t):
        try:
            barrier.wait()
            for j in range(per):
                sid = store.save(make_payload(t * 100 + j), name=f"t{t}-{j}")["snapshot_id"]
                assert store.get(sid) is not None
                store.list(limit=5)
                with guard:
                    results.append(sid)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors, errors
    assert len(results) == n_threads * per
    listed = store.list(limit=1000)
    assert {m["snapshot_id"] for m in listed} == set(results)
    assert len(listed) == n_threads * per


def test_two_stores_on_one_database(make_store):
    """Two connections (as two server processes would have) interleave writes safely."""
    a, b = make_store(), make_store()
    ids: list[str] = []
    errors: list[BaseException] = []

    def work(s, tag):
        try:
            for j in range(15):
                ids.append(s.save(make_payload(j), name=f"{tag}{j}")["snapshot_id"])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work, args=(s, tag)) for s, tag in ((a, "a"), (b, "b"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not errors, errors
    assert {m["snapshot_id"] for m in a.list(limit=100)} == set(ids)
    assert {m["snapshot_id"] for m in b.list(limit=100)} == set(ids)
