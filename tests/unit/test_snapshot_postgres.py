"""PostgreSQL's own parts of the snapshot store: migrations (from empty, re-run, two at once,
a newer or foreign schema) and a database that is unreachable or goes away (SnapshotError,
/healthz 503). The behaviour shared with SQLite is tested for both in test_snapshots.py."""

from __future__ import annotations

import threading

import psycopg
import pytest

from app.snapshot_postgres import SCHEMA_VERSION, PostgresSnapshotStore, migrate, schema_version
from app.snapshots import CorruptStoreError, SnapshotError
from tests.support.live import free_port
from tests.support.postgres_fixture import pg_url, postgres_server  # noqa: F401  (fixtures)
from tests.unit.test_snapshots import make_payload

# ruff: noqa: F811  (pytest fixtures as arguments shadow the imported names)


def tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM mlp_schema_version ORDER BY version").fetchall()]


# --- migrations ---------------------------------------------------------------------------


def test_migration_from_empty_then_rerun_is_a_no_op(pg_url):
    assert tables(pg_url) == []
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert schema_version(conn) == 0
        assert migrate(conn) == 0  # the version found
        assert schema_version(conn) == SCHEMA_VERSION
    assert tables(pg_url) == ["mlp_schema_version", "mlp_snapshots"]
    assert versions(pg_url) == list(range(1, SCHEMA_VERSION + 1))
    with PostgresSnapshotStore(pg_url) as store:  # opening migrates too: nothing left to do
        meta = store.save(make_payload(1), name="kept")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert migrate(conn) == SCHEMA_VERSION
    assert versions(pg_url) == list(range(1, SCHEMA_VERSION + 1))
    with PostgresSnapshotStore(pg_url) as store:
        assert store.get(meta["snapshot_id"])["payload"] == make_payload(1)


def test_two_migrators_at_once(pg_url):
    """Eight connections (as eight nodes starting together) migrate an empty database at the
    same moment: one creates the schema, the others wait for it and find it done."""
    n = 8
    barrier = threading.Barrier(n)
    found: list[int] = []
    errors: list[BaseException] = []
    conns = [psycopg.connect(pg_url, autocommit=True) for _ in range(n)]

    def work(conn):
        try:
            barrier.wait()
            found.append(migrate(conn))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(c,)) for c in conns]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for c in conns:
            c.close()
    assert not errors, errors
    assert sorted(found) == [0] + [SCHEMA_VERSION] * (n - 1)
    assert versions(pg_url) == list(range(1, SCHEMA_VERSION + 1))


def test_stores_opening_at_once_on_an_empty_database(pg_url):
    stores: list[PostgresSnapshotStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work():
        try:
            barrier.wait()
            stores.append(PostgresSnapshotStore(pg_url))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert not errors, errors
        meta = stores[0].save(make_payload(), name="x")
        assert all(s.get(meta["snapshot_id"]) is not None for s in stores)
    finally:
        for s in stores:
            s.close()


def test_newer_schema_is_refused_and_left_alone(pg_url):
    PostgresSnapshotStore(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO mlp_schema_version (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(CorruptStoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        PostgresSnapshotStore(pg_url)
    assert versions(pg_url) == list(range(1, SCHEMA_VERSION + 2))


def test_foreign_table_of_our_name_is_refused(pg_url):
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE mlp_snapshots (id text, blob bytea)")
        conn.execute("INSERT INTO mlp_snapshots VALUES ('a', 'x')")
    with pytest.raises(SnapshotError, match="mlp_snapshots"):
        PostgresSnapshotStore(pg_url)
    with psycopg.connect(pg_url) as conn:  # untouched: the failed migration was rolled back
        assert conn.execute("SELECT id FROM mlp_snapshots").fetchall() == [("a",)]
        assert conn.execute("SELECT to_regclass('mlp_schema_version')").fetchone() == (None,)


def test_changed_columns_are_refused(pg_url):
    PostgresSnapshotStore(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("ALTER TABLE mlp_snapshots ADD COLUMN extra text")
    with pytest.raises(CorruptStoreError, match="columns"):
        PostgresSnapshotStore(pg_url)


# --- a database that cannot be reached ------------------------------------------------------


def test_unreachable_database_is_a_clear_snapshot_error():
    url = f"postgresql://mlp:secret-password@127.0.0.1:{free_port()}/mlp"  # nobody listens there
    with pytest.raises(SnapshotError, match="cannot connect to the snapshot database 127.0.0.1:") as ei:
        PostgresSnapshotStore(url)
    assert "secret-password" not in ei.value.message


def test_bad_url_is_a_clear_snapshot_error():
    with pytest.raises(SnapshotError, match="DB_URL is not a valid PostgreSQL connection URL"):
        PostgresSnapshotStore("not a url at all")


def drop_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")  # ends the store's connection too


def test_database_gone_while_running(pg_url, postgres_server):
    store = PostgresSnapshotStore(pg_url)
    try:
        meta = store.save(make_payload(), name="before")
        drop_database(postgres_server.url, pg_url)
        calls = [
            lambda: store.ping(timeout=2.0),
            lambda: store.get(meta["snapshot_id"]),
            lambda: store.get_document(meta["snapshot_id"]),
            lambda: store.get_source(meta["snapshot_id"]),
            lambda: store.list(),
            lambda: store.count(),
            lambda: store.save(make_payload(), name="after"),
            lambda: store.rename(meta["snapshot_id"], "new"),
            lambda: store.delete(meta["snapshot_id"]),
        ]
        for call in calls:
            with pytest.raises(SnapshotError, match="snapshot database 127.0.0.1:"):
                call()
    finally:
        store.close()


def test_a_call_stuck_on_the_connection_makes_the_others_fail_not_wait(pg_url, monkeypatch):
    """A call holding the store's connection (as one waiting on a half-open connection
    would): the next call gives up after LOCK_TIMEOUT_S with a clear SnapshotError instead
    of holding its thread; once the connection is free, calls work again."""
    import app.snapshot_postgres as module

    store = PostgresSnapshotStore(pg_url)
    try:
        monkeypatch.setattr(module, "LOCK_TIMEOUT_S", 0.05)
        assert store._lock.acquire(timeout=1)  # the stuck call
        try:
            for call in (store.count, store.list, lambda: store.save(make_payload(), name="x")):
                with pytest.raises(SnapshotError, match="the snapshot database is busy"):
                    call()
        finally:
            store._lock.release()
        assert store.count() == 0
    finally:
        store.close()


def test_the_connection_detects_a_silent_server(pg_url):
    """TCP keep-alives and tcp_user_timeout are asked of libpq: a half-open connection fails
    a call soon after the statement timeout instead of waiting on the kernel for minutes."""
    from app.snapshot_postgres import CALL_TIMEOUT_S

    store = PostgresSnapshotStore(pg_url)
    try:
        dsn = store._run(lambda conn: conn.info.dsn, retry=False)  # libpq's options of the open connection
        assert "keepalives=1" in dsn and "keepalives_idle=5" in dsn and "keepalives_count=3" in dsn
        assert f"tcp_user_timeout={int(CALL_TIMEOUT_S * 1000)}" in dsn
    finally:
        store.close()


def cut_connections(admin_url: str, url: str) -> int:
    """End the stores' connections to the database of `url`, as a server restart would."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        return admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'mlp-playground'",
            (url.rsplit("/", 1)[1],),
        ).fetchone()[0]


def test_reconnects_after_the_connection_is_cut(pg_url, postgres_server):
    """A server restart or an idle-connection reaper ends the store's connection: the next
    call connects again instead of failing; a save retried so is stored once."""
    store = PostgresSnapshotStore(pg_url)
    try:
        meta = store.save(make_payload(2), name="kept")
        assert cut_connections(postgres_server.url, pg_url) == 1
        assert store.get(meta["snapshot_id"])["payload"] == make_payload(2)
        assert cut_connections(postgres_server.url, pg_url) == 1
        store.ping(timeout=2.0)
        assert cut_connections(postgres_server.url, pg_url) == 1
        again = store.save(make_payload(3), name="after")
        assert [m["snapshot_id"] for m in store.list()] == [again["snapshot_id"], meta["snapshot_id"]]
        assert cut_connections(postgres_server.url, pg_url) == 1
        assert store.rename(meta["snapshot_id"], "renamed")["name"] == "renamed"
    finally:
        store.close()


def test_healthz_reports_the_database_not_ready(tmp_path, pg_url, postgres_server):
    """The app on PostgreSQL: a snapshot saved through the API is in the database (any other
    node reads it); with the database gone, /healthz answers 503 naming the database and the
    snapshot routes a clear 503, never a 500."""
    from tests.support.inprocess import InProcessApp

    with InProcessApp(tmp_path / "unused.sqlite3", workers=1, db_url=pg_url) as app:
        client = app.client
        r = client.get("/healthz")
        assert r.status_code == 200 and r.json()["database"] == {"ok": True}, r.text
        body = client.post("/api/sessions", json={}).json()
        auth = {"Authorization": f"Bearer {body['control_token']}"}
        r = client.post(f"/api/sessions/{body['id']}/snapshots", json={"name": "through the app"}, headers=auth)
        assert r.status_code == 201, r.text
        with PostgresSnapshotStore(pg_url) as other_node:
            assert other_node.get(r.json()["snapshot_id"])["name"] == "through the app"

        drop_database(postgres_server.url, pg_url)
        r = client.get("/healthz")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable" and r.json()["database"]["ok"] is False
        r = client.get("/api/snapshots")
        assert r.status_code == 503 and "snapshot_store_unavailable" in r.text, r.text
    assert not (tmp_path / "unused.sqlite3").exists()
