"""The snapshot store under a crash, and with a file that is not ours.

* SIGKILL the server while clients save snapshots: after a restart on the same DB_PATH,
  every snapshot the server acknowledged (201) is listed and loads into a new session.
* A corrupt or foreign DB file: the server refuses to start, says which file, exits
  non-zero, and leaves the file exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.live import ROOT, free_port, start_server


def test_acknowledged_snapshots_survive_sigkill(tmp_path):
    db = tmp_path / "store" / "snapshots.sqlite3"
    live = start_server(tmp_path, workers=1, db_path=db)
    acked: dict[str, int] = {}  # snapshot_id -> epoch
    lock, stop = threading.Lock(), threading.Event()
    errors: list[str] = []
    try:
        with httpx.Client(base_url=live.url, timeout=30) as c:
            made = c.post("/api/sessions", json={"seed": 1}).json()
            sid, auth = made["id"], {"Authorization": f"Bearer {made['control_token']}"}

        def saver(n: int) -> None:
            with httpx.Client(base_url=live.url, timeout=10) as c:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        if i % 4 == 0:
                            c.post(f"/api/sessions/{sid}/step", headers=auth)
                        r = c.post(f"/api/sessions/{sid}/snapshots", json={"name": f"saver {n} #{i}"}, headers=auth)
                    except httpx.HTTPError:
                        return  # the server is gone
                    if r.status_code == 201:
                        with lock:
                            acked[r.json()["snapshot_id"]] = r.json()["epoch"]
                    else:
                        errors.append(f"{r.status_code} {r.text[:200]}")

        threads = [threading.Thread(target=saver, args=(n,), daemon=True) for n in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 30 and time.monotonic() < deadline and not errors:
            time.sleep(0.02)
        live.proc.kill()  # SIGKILL: no shutdown code runs
        live.proc.wait(10)
        for t in threads:
            t.join(15)
        stop.set()
    finally:
        stop.set()
        live.stop()
    assert not errors, errors[:3]
    assert len(acked) >= 30, f"only {len(acked)} snapshots were acknowledged before the kill"

    again = start_server(tmp_path, workers=1, db_path=db)
    try:
        with httpx.Client(base_url=again.url, timeout=30) as c:
            listed = c.get("/api/snapshots", params={"limit": 500}).json()["snapshots"]
            listed_ids = {s["snapshot_id"] for s in listed}
            missing = set(acked) - listed_ids
            assert not missing, f"{len(missing)} of {len(acked)} acknowledged snapshots are gone"
            for snapshot_id, epoch in acked.items():
                r = c.post("/api/sessions", json={"snapshot": snapshot_id})
                assert r.status_code == 201, (snapshot_id, r.text[:300])
                made = r.json()
                status = c.get(f"/api/sessions/{made['id']}").json()
                assert status["epoch"] == epoch, (snapshot_id, status["epoch"], epoch)
                c.delete(f"/api/sessions/{made['id']}", headers={"Authorization": f"Bearer {made['control_token']}"})
        print(f"{len(acked)} acknowledged snapshots, all listed and loadable after SIGKILL")
    finally:
        again.stop()


def _own_database(path: Path) -> None:
    """A real snapshot database of ours with a few pages of data."""
    from app.snapshot_sqlite import SqliteSnapshotStore as SnapshotStore

    with SnapshotStore(path) as store:
        for epoch in range(6):
            store.save({"epoch": epoch, "padding": "w" * 20_000}, name=f"run {epoch}")
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE grades (student TEXT, grade INTEGER)")
    conn.execute("INSERT INTO grades VALUES ('ada', 1)")
    conn.commit()
    conn.close()


def _damaged(path: Path) -> None:
    _own_database(path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    assert len(data) >= 3 * page
    data[page : page + 200] = b"\xff" * 200  # the snapshots table's root page
    path.write_bytes(bytes(data))


BAD_FILES = {"random bytes": _garbage, "another program's sqlite": _foreign_sqlite, "damaged page": _damaged}


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> dict:
    """`python -m app` started on each bad file, all at once (each start imports the app)."""
    runs = {}
    for name, make in BAD_FILES.items():
        folder = tmp_path_factory.mktemp("baddb")
        db = folder / "snapshots.sqlite3"
        make(db)
        before = (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns, db.stat().st_size)
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(free_port()),
            "WORKERS": "1",
            "DB_PATH": str(db),
            "PYTHONUNBUFFERED": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        runs[name] = (db, before, set(folder.iterdir()), proc)
    results = {}
    for name, (db, before, siblings, proc) in runs.items():
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results[name] = {
            "db": db,
            "before": before,
            "siblings": siblings,
            "code": proc.returncode,
            "stdout": out,
            "stderr": err,
        }
    return results


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_database_file_stops_the_start_and_is_left_alone(refused, name):
    run = refused[name]
    db, output = run["db"], run["stdout"] + run["stderr"]
    assert run["code"] not in (0, None), output[-1000:]
    assert str(db) in run["stderr"], run["stderr"][-1000:]
    assert "Traceback" not in output, output[-1500:]
    assert "Uvicorn running" not in output
    after = (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns, db.stat().st_size)
    assert after == run["before"], "the file was changed"
    assert set(db.parent.iterdir()) == run["siblings"], "files were created next to it"
