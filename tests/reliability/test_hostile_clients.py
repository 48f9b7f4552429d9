"""Hostile and careless clients (issue 12, findings 5–8): cross-site writes, DNS rebinding,
share links, the snapshot write rate limit, disk space of deleted snapshots, huge numbers in
uploads and imports, and concurrent controls.

One live server bound to every interface without ADMIN_TOKEN (the classroom default, so
the start-up warning shows in its log), with a small snapshot write limit. The rate limit
counts per client address, so each test that writes snapshots sends from its own 127.0.0.x
source address. Everything is bounded in count and time; nothing here is timed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter

import httpx
import numpy as np
import pytest

from tests.support.live import start_server

WRITES_PER_MINUTE = 4
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_server(
        tmp_path_factory.mktemp("hostile"), host="0.0.0.0", workers=2, snapshot_writes_per_minute=WRITES_PER_MINUTE
    )
    yield server
    server.stop()


def client_from(live, n: int) -> httpx.Client:
    """A client whose connections come from 127.0.0.n (its own rate-limit bucket)."""
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{n}")
    return httpx.Client(base_url=live.url, timeout=30, transport=transport)


def new_session(c: httpx.Client, **config) -> tuple[str, dict]:
    r = c.post("/api/sessions", json={"seed": 3, **config})
    assert r.status_code == 201, r.text
    return r.json()["id"], {"Authorization": f"Bearer {r.json()['control_token']}"}


def exported(c: httpx.Client, sid: str, auth: dict) -> dict:
    """A snapshot file of the session, as GET /api/snapshots/{id} hands it out."""
    saved = c.post(f"/api/sessions/{sid}/snapshots", json={"name": "export"}, headers=auth)
    assert saved.status_code == 201, saved.text
    return c.get(f"/api/snapshots/{saved.json()['snapshot_id']}").json()


def import_file(c: httpx.Client, content: bytes, **headers) -> httpx.Response:
    return c.post("/api/snapshots/import", files={"file": ("s.json", content, "application/json")}, headers=headers)


# --- Host: DNS rebinding and share links ------------------------------------------------------


def test_a_foreign_host_gets_400_and_the_own_names_pass(live):
    port = live.port
    with httpx.Client(base_url=live.url, timeout=30) as c:
        sid, auth = new_session(c)
        for host in ("evil.example", f"evil.example:{port}", "attacker.test:1234"):
            # What a DNS-rebinding page sends: every route, reads and writes, is refused.
            assert c.get("/api/snapshots", headers={"Host": host}).status_code == 400, host
            assert c.get(f"/api/sessions/{sid}/share", headers={"Host": host}).status_code == 400, host
            assert c.get(f"/s/{sid}/qr.svg", headers={"Host": host}).status_code == 400, host
            assert c.delete("/api/snapshots/nope", headers={"Host": host}).status_code == 400, host
            assert c.post(f"/api/sessions/{sid}/pause", headers={"Host": host, **auth}).status_code == 400, host
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
            assert c.get("/api/snapshots", headers={"Host": host}).status_code == 200, host


def test_share_links_never_contain_a_foreign_host(live):
    with httpx.Client(base_url=live.url, timeout=30) as c:
        made = c.post("/api/sessions", json={"seed": 1}, headers={"Host": "evil.example:1234"})
        assert made.status_code == 400  # no session, no link
        made = c.post("/api/sessions", json={"seed": 1})
        assert made.status_code == 201 and "evil" not in made.json()["watch_url"]
        share = c.get(f"/api/sessions/{made.json()['id']}/share").json()
    links = [share["watch_url"], share["config_url"], share["embed_url"], share["embed_html"]]
    assert all(link and "evil" not in link for link in links), links
    # Bound to every interface, a loopback visitor is handed the LAN address students can open.
    assert share["watch_url"].endswith(f":{live.port}/s/{made.json()['id']}")


def test_the_start_up_warns_about_admin_token_on_every_interface(live):
    assert "ADMIN_TOKEN is not set" in live.log_path.read_text()


def test_public_url_is_what_share_links_use(tmp_path):
    from tests.support.inprocess import InProcessApp

    public, admin = "https://playground.example.org", "adm-" + "k3" * 12
    with InProcessApp(tmp_path / "s.sqlite3", workers=1, public_url=public, admin_token=admin) as app:
        c = app.client
        made = c.post("/api/sessions", json={"seed": 2})
        assert made.status_code == 201
        sid = made.json()["id"]
        assert made.json()["watch_url"] == f"{public}/s/{sid}"
        share = c.get(f"/api/sessions/{sid}/share").json()
        assert share["watch_url"] == f"{public}/s/{sid}"
        assert share["config_url"].startswith(f"{public}/?") and f'src="{public}/embed?' in share["embed_html"]
        # Its host is accepted (a proxy passes it on), and so is a write from its pages.
        assert c.get("/healthz", headers={"Host": "playground.example.org"}).status_code == 200
        own_page = {"Host": "playground.example.org", "Origin": public}
        assert c.post("/ui/sessions", data={"seed": "1"}, headers=own_page).status_code == 201
        # The admin token lets another site's write through (to "no such snapshot"); a wrong one does not.
        r = c.delete("/api/snapshots/none", headers={"Origin": EVIL, "X-Admin-Token": admin})
        assert r.status_code == 404 and r.json()["code"] == "snapshot_unknown", r.text
        r = c.delete("/api/snapshots/none", headers={"Origin": EVIL, "X-Admin-Token": "wrong"})
        assert r.status_code == 403 and r.json()["code"] == "cross_site", r.text


# --- cross-site writes ------------------------------------------------------------------------


def test_another_sites_writes_get_403_unless_they_carry_a_token(live):
    own = {"Origin": live.url, "Sec-Fetch-Site": "same-origin"}
    cross_site = ({"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"})
    with client_from(live, 11) as c:
        sid, auth = new_session(c)
        document = json.dumps(exported(c, sid, auth)).encode()
        for headers in cross_site:
            # The multipart import a page on evil.example can send with a plain <form>.
            r = import_file(c, document, **headers)
            assert r.status_code == 403 and r.json()["code"] == "cross_site", (headers, r.text)
            # The form POST that used up the session slots.
            r = c.post("/ui/sessions", data={"seed": "4"}, headers=headers)
            assert r.status_code == 403 and r.json()["code"] == "cross_site", headers
            # A save without a token is refused before anything else looks at it.
            r = c.post(f"/api/sessions/{sid}/snapshots", json={"name": "x"}, headers=headers)
            assert r.status_code == 403 and r.json()["code"] == "cross_site", headers
            assert c.request("PATCH", "/api/snapshots/none", json={"name": "n"}, headers=headers).status_code == 403
            assert c.delete("/api/snapshots/none", headers=headers).status_code == 403
            # Reads are never refused: embeds and watch pages are read from other sites.
            assert c.get(f"/api/sessions/{sid}", headers=headers).status_code == 200
            assert c.get("/embed", headers=headers).status_code == 200
        # The same requests from the server's own page, or with the control token, work.
        assert import_file(c, document, **own).status_code == 201
        assert c.post("/ui/sessions", data={"seed": "4"}, headers=own).status_code == 201
        r = c.post(f"/api/sessions/{sid}/snapshots", json={"name": "mine"}, headers={"Origin": EVIL, **auth})
        assert r.status_code == 201, r.text
        assert c.post(f"/api/sessions/{sid}/pause", headers={"Sec-Fetch-Site": "cross-site", **auth}).status_code == 200


def test_snapshot_writes_are_rate_limited_per_client_address(live):
    with client_from(live, 12) as c, client_from(live, 13) as other:
        sid, auth = new_session(c)
        codes = [
            c.post(f"/api/sessions/{sid}/snapshots", json={"name": f"n{i}"}, headers=auth).status_code
            for i in range(WRITES_PER_MINUTE)
        ]
        assert codes == [201] * WRITES_PER_MINUTE
        refused = c.post(f"/api/sessions/{sid}/snapshots", json={"name": "one more"}, headers=auth)
        assert refused.status_code == 429
        assert (
            refused.json()["code"] == "limit_snapshot_writes" and refused.json()["params"]["max"] == WRITES_PER_MINUTE
        )
        assert "snapshot_writes_per_minute" in refused.json()["message"]
        document = c.get(f"/api/snapshots/{c.get('/api/snapshots').json()['snapshots'][0]['snapshot_id']}").content
        assert import_file(c, document).status_code == 429  # imports share the allowance
        r = c.post(f"/ui/sessions/{sid}/snapshots", data={"name": "page"}, headers=auth)
        assert r.status_code == 429
        # Another address has its own allowance; a bad file spends none of it.
        assert import_file(other, b'{"not": "a snapshot"}').status_code == 422
        assert [import_file(other, document).status_code for _ in range(WRITES_PER_MINUTE)] == [201] * WRITES_PER_MINUTE


def test_the_rate_limiter_forgets_the_oldest_address_past_its_cap():
    from app.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(60, max_clients=100, clock=lambda: now[0])
    for i in range(5000):
        assert limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100  # memory stays bounded under a flood of addresses
    assert [limiter.take("a") for _ in range(61)] == [True] * 60 + [False]
    now[0] += 1.0  # one a second comes back
    assert limiter.take("a") and not limiter.take("a")


def test_deleting_snapshots_gives_the_space_back(tmp_path):
    from app.snapshot_sqlite import SqliteSnapshotStore as SnapshotStore

    path = tmp_path / "s.sqlite3"
    with SnapshotStore(path) as store:
        ids = [store.save({"epoch": i, "pad": "w" * 400_000}, name=f"big {i}")["snapshot_id"] for i in range(12)]
    full = path.stat().st_size
    assert full > 12 * 400_000
    with SnapshotStore(path) as store:
        for snapshot_id in ids:
            assert store.delete(snapshot_id)
    assert path.stat().st_size < full / 10
    # A file made before auto_vacuum (mode NONE) is converted once, when much of it is free.
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA auto_vacuum=NONE")
    raw.execute("VACUUM")
    raw.close()
    with SnapshotStore(path) as store:
        ids = [store.save({"epoch": i, "pad": "w" * 400_000}, name=f"big {i}")["snapshot_id"] for i in range(12)]
        for snapshot_id in ids:
            store.delete(snapshot_id)
    assert path.stat().st_size > full * 0.9  # mode NONE kept it all
    with SnapshotStore(path):
        pass
    assert path.stat().st_size < full / 10


# --- huge numbers -----------------------------------------------------------------------------


def csv_of(points) -> str:
    return "x1,x2,label\n" + "\n".join(f"{x1},{x2},{label}" for x1, x2, label in points)


def test_huge_csv_coordinates_are_422_and_big_ones_train(live):
    with httpx.Client(base_url=live.url, timeout=30) as c:
        sid, auth = new_session(c)
        rows = [(1, 2, 0), (3, 4, 1), ("1e308", "1e308", 0), ("1e308", "1e308", 1), (5, 6, 0), (7, 8, 1)]
        r = c.post(f"/api/sessions/{sid}/upload", files={"file": ("d.csv", csv_of(rows))}, headers=auth)
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["code"] == "csv_out_of_range" and body["field"] == "file.line.4", body
        assert body["params"]["line"] == 4 and body["params"]["column"] == 1, body
        rows[2] = (1, "-2e6", 0)
        r = c.post(f"/api/sessions/{sid}/upload", files={"file": ("d.csv", csv_of(rows))}, headers=auth)
        assert r.json()["field"] == "file.line.4" and r.json()["params"]["column"] == 2, r.text

        # Coordinates of 1e5 are fine: rescaled to the plane, the session trains, and its data reads.
        rng = np.random.default_rng(0)
        big = [(f"{x:.6g}", f"{y:.6g}", int(x * y > 0)) for x, y in rng.uniform(-1e5, 1e5, (40, 2))]
        r = c.post(f"/api/sessions/{sid}/upload", files={"file": ("d.csv", csv_of(big))}, headers=auth)
        assert r.status_code == 200, r.text
        for _ in range(3):
            assert c.post(f"/api/sessions/{sid}/step", headers=auth).status_code == 200
        status = c.get(f"/api/sessions/{sid}").json()
        assert status["status"] != "diverged" and status["epoch"] == 3, status
        data = c.get(f"/api/sessions/{sid}/data")
        assert data.status_code == 200
        points = np.array(data.json()["train"]["x"] + data.json()["test"]["x"])
        assert np.isfinite(points).all() and np.abs(points).max() <= 6.0
        export = c.get(f"/api/sessions/{sid}/export/data.csv")
        assert export.status_code == 200 and len(export.text.splitlines()) == 41


def test_fit_to_plane_handles_the_float_extremes():
    from app.data.csv_upload import fit_to_plane

    for X in ([[1e308, 1e308], [-1e308, -1e308]], [[1.7e308, 0.0], [1.7e308, 1.0]], [[-1.79e308, 5.0], [1e308, -5]]):
        fitted = fit_to_plane(np.array(X))
        assert np.isfinite(fitted).all() and np.abs(fitted).max() <= 6.0, (X, fitted)


def test_a_huge_integer_anywhere_in_an_import_is_422(live):
    with client_from(live, 14) as c:
        sid, auth = new_session(c)
        document = exported(c, sid, auth)
        payload = document["payload"]
        # 5,000 digits: past Python's int-string limit, json.loads itself raises ValueError.
        text = json.dumps({**document, "payload": {**payload, "epoch": 123454321}})
        r = import_file(c, text.replace("123454321", "9" * 5000).encode())
        assert r.status_code == 422 and r.json()["field"] == "file", r.text
        assert r.json()["code"] == "snapshot_number_too_long"
        # 400 digits: parsed, but no float can hold it.
        huge = 10**400
        weights = [[[huge] + row[1:] for row in payload["weights"][0]], *payload["weights"][1:]]
        cases = {
            "weights": {**payload, "weights": weights},
            "history": {**payload, "history": [[1, huge, 0.5]]},
            "step": {**payload, "step": huge},
        }
        for part, broken in cases.items():
            r = import_file(c, json.dumps({**document, "payload": broken}).encode())
            assert r.status_code == 422, (part, r.text[:300])
            assert r.json()["field"] == f"snapshot.{part}", (part, r.json())


def test_imported_custom_data_is_bounded_like_uploads(live):
    with client_from(live, 15) as c:
        sid, auth = new_session(c)
        rows = [(i % 5 - 2, i % 3 - 1, i % 2) for i in range(12)]
        r = c.post(f"/api/sessions/{sid}/upload", files={"file": ("d.csv", csv_of(rows))}, headers=auth)
        assert r.status_code == 200, r.text
        document = exported(c, sid, auth)
        custom = document["payload"]["custom"]
        broken = {**custom, "x": [[1e300, 1e300], *custom["x"][1:]]}
        content = json.dumps({**document, "payload": {**document["payload"], "custom": broken}}).encode()
        r = import_file(c, content)
        assert r.status_code == 422 and r.json()["field"] == "snapshot.custom", r.text[:300]


# --- concurrent controls ----------------------------------------------------------------------


def test_thirty_concurrent_pairs_of_patches_lose_nothing(live):
    with httpx.Client(base_url=live.url, timeout=30) as a, httpx.Client(base_url=live.url, timeout=30) as b:
        sid, auth = new_session(a)
        lost, failed = [], []
        for i in range(30):
            lr, noise = round(0.001 * (i + 1), 6), round(0.01 * (i % 40 + 1), 4)
            barrier = threading.Barrier(2)

            def patch(c, body, barrier=barrier):
                barrier.wait(5)
                r = c.patch(f"/api/sessions/{sid}", json=body, headers=auth)
                if r.status_code != 200:
                    failed.append(r.status_code)

            threads = [
                threading.Thread(target=patch, args=(a, {"learning_rate": lr})),
                threading.Thread(target=patch, args=(b, {"noise": noise})),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            config = a.get(f"/api/sessions/{sid}").json()["config"]
            if config["learning_rate"] != lr or config["noise"] != noise:
                lost.append((i, config["learning_rate"], lr, config["noise"], noise))
    assert not failed and not lost, (failed, lost[:5])


def storm(live, seconds: float, threads: int = 4, max_requests: int = 400) -> Counter:
    """Mixed controls on two shared sessions from several threads: play/pause, dataset and
    learning-rate PATCHes, points, uploads and structure edits. Counts answers by status."""
    statuses: Counter = Counter()
    lock = threading.Lock()
    with httpx.Client(base_url=live.url, timeout=30) as c:
        sessions = [new_session(c, n_points=200) for _ in range(2)]
    upload = csv_of([(i % 7 - 3, i % 5 - 2, i % 2) for i in range(30)])
    datasets = ["circle", "xor", "gauss", "spiral"]
    deadline = time.monotonic() + seconds

    def worker(k: int) -> None:
        with httpx.Client(base_url=live.url, timeout=30) as c:
            for i in range(max_requests):
                if time.monotonic() > deadline:
                    return
                sid, auth = sessions[(i + k) % 2]
                base, op = f"/api/sessions/{sid}", (i * 7 + k) % 8
                if op == 0:
                    r = c.post(f"{base}/{'play' if i % 2 else 'pause'}", headers=auth)
                elif op == 1:
                    r = c.patch(base, json={"dataset": datasets[i % 4]}, headers=auth)
                elif op in (2, 3):
                    r = c.post(f"{base}/points", json={"x": [(i % 9) - 4, (k % 5) - 2], "label": i % 2}, headers=auth)
                elif op == 4:
                    r = c.post(f"{base}/upload", files={"file": ("d.csv", upload)}, headers=auth)
                elif op == 5:
                    edit = {"op": "add_unit" if i % 2 else "remove_unit", "layer": "0"}
                    r = c.post(f"/ui/sessions/{sid}/structure", data=edit, headers=auth)
                elif op == 6:
                    r = c.patch(base, json={"learning_rate": 0.01 + 0.001 * (i % 10)}, headers=auth)
                else:
                    r = c.get(f"{base}/data")
                with lock:
                    statuses[r.status_code] += 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 60)
    return statuses


def test_a_storm_of_mixed_controls_gives_no_server_error(live):
    statuses = storm(live, seconds=5)
    assert sum(statuses.values()) >= 40, statuses
    assert not {s: n for s, n in statuses.items() if s >= 500}, statuses
