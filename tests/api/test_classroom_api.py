"""Watch pages, share links, embeds, snapshots (incl. a real restart) and language choice."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.live import start_server


def test_watch_page_has_no_token_and_the_qr_code_encodes_the_watch_link(client, make_session):
    sid, auth = make_session(seed=3)
    token = auth["Authorization"].split()[1]
    page = client.get(f"/s/{sid}")
    assert page.status_code == 200 and "<svg" in page.text
    assert token not in page.text
    qr = client.get(f"/s/{sid}/qr.svg")
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml")
    assert qr.text.startswith("<svg") and "path" in qr.text
    assert client.get("/s/nope/qr.svg").status_code == 404


def test_share_info(client, make_session):
    sid, _ = make_session(seed=4, dataset="xor")
    info = client.get(f"/api/sessions/{sid}/share").json()
    base = str(client.base_url).rstrip("/")  # links are built from the address the request came to
    assert info["watch_url"] == f"{base}/s/{sid}"
    assert info["config_url"].startswith(f"{base}/?") and "dataset=xor" in info["config_url"]
    assert "seed=4" in info["config_url"]
    assert info["embed_html"].startswith('<iframe src="') and "/embed?" in info["embed_html"]
    assert info["reachable"] is False  # the app is set to bind 127.0.0.1 (the default HOST)
    assert info["watchers"] == 0


def test_config_url_reproduces_data_and_initial_weights(client, make_session):
    sid, _ = make_session(seed=11, dataset="spiral", noise=0.1)
    info = client.get(f"/api/sessions/{sid}/share").json()
    query = info["config_url"].split("?", 1)[1]
    # The page creates its session from the same query the link carries.
    r = client.post("/ui/sessions", content=query, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 201
    other = r.json()["id"]
    try:
        assert client.get(f"/api/sessions/{other}/data").json() == client.get(f"/api/sessions/{sid}/data").json()
        assert client.get(f"/api/sessions/{other}/model").json() == client.get(f"/api/sessions/{sid}/model").json()
    finally:
        client.delete(f"/api/sessions/{other}", headers={"Authorization": f"Bearer {r.json()['control_token']}"})


def test_embed_pages(client):
    r = client.get("/embed?dataset=xor&hide=data,hyper&autoplay=1")
    assert r.status_code == 200
    assert 'class="embed hide-data hide-hyper"' in r.text
    assert 'data-autoplay="1"' in r.text
    bad = client.get("/embed?hide=everything")
    assert bad.status_code == 422 and bad.json()["field"] == "hide"
    assert "frame-ancestors 'self'" in r.headers["content-security-policy"]


def test_language_choice(client):
    assert '<html lang="ja">' in client.get("/?lang=ja").text
    assert '<html lang="ja">' in client.get("/", headers={"Accept-Language": "ja-JP,ja;q=0.9"}).text
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "de, en;q=0.5"}).text
    assert "入力層" in client.get("/?lang=ja").text
    assert "Input layer" in client.get("/?lang=en", headers={"Accept-Language": "ja"}).text


def test_exports(client, make_session, tmp_path):
    sid, auth = make_session(seed=5)
    client.post(f"/api/sessions/{sid}/step", headers=auth)
    model = client.get(f"/api/sessions/{sid}/export/model.py")
    assert model.status_code == 200 and "attachment" in model.headers["content-disposition"]
    data = client.get(f"/api/sessions/{sid}/export/data.csv")
    assert data.text.splitlines()[0] == "x1,x2,label,split"
    assert len(data.text.splitlines()) == 501


def snapshot_round_trip(client, make_session):
    sid, auth = make_session(seed=6, hidden_layers=[{"units": 3, "activation": "relu"}])
    for _ in range(3):
        client.post(f"/api/sessions/{sid}/step", headers=auth)
    saved = client.post(f"/api/sessions/{sid}/snapshots", json={"name": "<b>three</b>"}, headers=auth)
    assert saved.status_code == 201
    return sid, saved.json()


def test_snapshots_save_list_rename_load_delete(client, make_session):
    sid, meta = snapshot_round_trip(client, make_session)
    snap_id = meta["snapshot_id"]
    assert len(snap_id) >= 22 and meta["epoch"] == 3
    assert client.post(f"/api/sessions/{sid}/snapshots", json={}).status_code == 401
    listed = client.get("/api/snapshots").json()["snapshots"]
    assert snap_id in [s["snapshot_id"] for s in listed]
    stored = client.get(f"/api/snapshots/{snap_id}").json()
    assert stored["payload"]["epoch"] == 3 and len(stored["payload"]["history"]) == 4
    assert client.patch(f"/api/snapshots/{snap_id}", json={"name": "renamed"}).json()["name"] == "renamed"
    # A session from the snapshot has the same weights and the same data.
    r = client.post("/api/sessions", json={"snapshot": snap_id})
    assert r.status_code == 201
    copy = r.json()
    try:
        assert client.get(f"/api/sessions/{copy['id']}/model").json() == client.get(f"/api/sessions/{sid}/model").json()
        assert client.get(f"/api/sessions/{copy['id']}/data").json() == client.get(f"/api/sessions/{sid}/data").json()
        assert client.get(f"/api/sessions/{copy['id']}").json()["epoch"] == 3
    finally:
        client.delete(f"/api/sessions/{copy['id']}", headers={"Authorization": f"Bearer {copy['control_token']}"})
    mixed = client.post("/api/sessions", json={"snapshot": snap_id, "seed": 1})
    assert mixed.status_code == 422 and mixed.json()["field"] == "snapshot"
    assert client.delete(f"/api/snapshots/{snap_id}").status_code == 204
    assert client.get(f"/api/snapshots/{snap_id}").status_code == 404
    assert client.post("/api/sessions", json={"snapshot": snap_id}).status_code == 404


def test_snapshot_embed_page(client, make_session):
    _, meta = snapshot_round_trip(client, make_session)
    page = client.get(f"/embed/snapshot/{meta['snapshot_id']}")
    assert page.status_code == 200 and f'data-snapshot="{meta["snapshot_id"]}"' in page.text
    assert client.get("/embed/snapshot/nope").status_code == 404


def test_snapshot_export_import_and_bad_files(client, make_session):
    _, meta = snapshot_round_trip(client, make_session)
    exported = client.get(f"/api/snapshots/{meta['snapshot_id']}").content
    imported = client.post("/api/snapshots/import", files={"file": ("s.json", exported, "application/json")})
    assert imported.status_code == 201 and imported.json()["snapshot_id"] != meta["snapshot_id"]
    assert imported.json()["name"] == "<b>three</b>"
    payload = json.loads(exported)["payload"]
    bad_cases = {
        "not json": (b"{nope", "file"),
        "weights missing": (json.dumps({**payload, "weights": []}).encode(), "snapshot.weights"),
        "wrong shape": (json.dumps({**payload, "weights": [[[1.0]], [[1.0]]]}).encode(), "snapshot.weights"),
        "bad config": (json.dumps({**payload, "config": {"hidden_layers": "x"}}).encode(), "snapshot.config"),
        "too many units": (
            json.dumps(
                {**payload, "config": {**payload["config"], "hidden_layers": [{"units": 9999, "activation": "relu"}]}}
            ).encode(),
            "hidden_layers.0.units",
        ),
        # Each of these was stored once and then made opening the snapshot a 500.
        "unknown config field": (
            json.dumps({**payload, "config": {**payload["config"], "colour": "red"}}).encode(),
            "snapshot.config",
        ),
        "unknown activation": (
            json.dumps(
                {**payload, "config": {**payload["config"], "hidden_layers": [{"units": 4, "activation": "wobble"}]}}
            ).encode(),
            "snapshot.config",
        ),
        "epoch past 2^53": (json.dumps({**payload, "epoch": 2**60}).encode(), "snapshot.epoch"),
        "history rows": (json.dumps({**payload, "history": [[1, "low", None]]}).encode(), "snapshot.history"),
    }
    for name, (content, field) in bad_cases.items():
        r = client.post("/api/snapshots/import", files={"file": ("s.json", content, "application/json")})
        assert r.status_code == 422, name
        assert r.json()["field"] == field, name


CSV = "x1,x2,label\n" + "\n".join(f"{(i % 9) - 4},{(i * 7 % 11) - 5},{i % 3}" for i in range(60))


def test_custom_data_snapshot_imports_and_opens_and_bad_custom_data_is_422(client, make_session):
    sid, auth = make_session(seed=5)
    r = client.post(f"/api/sessions/{sid}/upload", files={"file": ("d.csv", CSV, "text/csv")}, headers=auth)
    assert r.status_code == 200 and r.json()["config"]["classes"] == 3, r.text[:300]
    saved = client.post(f"/api/sessions/{sid}/snapshots", json={"name": "mine"}, headers=auth).json()
    exported = client.get(f"/api/snapshots/{saved['snapshot_id']}").content
    imported = client.post("/api/snapshots/import", files={"file": ("s.json", exported, "application/json")})
    assert imported.status_code == 201, imported.text[:300]
    opened = client.post("/api/sessions", json={"snapshot": imported.json()["snapshot_id"]})
    assert opened.status_code == 201, opened.text[:300]
    new = opened.json()["id"]
    assert client.get(f"/api/sessions/{new}/data").json() == client.get(f"/api/sessions/{sid}/data").json()
    client.delete(f"/api/sessions/{new}", headers={"Authorization": f"Bearer {opened.json()['control_token']}"})

    payload = json.loads(exported)["payload"]
    custom = payload["custom"]
    n = len(custom["x"])
    bad = {
        "label past the classes": {**custom, "y": [3] + custom["y"][1:]},
        "fractional label": {**custom, "y": [0.5] + custom["y"][1:]},
        "no test point": {**custom, "is_train": [True] * n},
        "fewer points than n_points": {k: v[:-1] for k, v in custom.items()},
        "not numbers": {**custom, "x": [["a", "b"]] * n},
    }
    for name, broken in bad.items():
        content = json.dumps({**payload, "custom": broken}).encode()
        r = client.post("/api/snapshots/import", files={"file": ("s.json", content, "application/json")})
        assert r.status_code == 422, (name, r.text[:300])
        assert r.json()["field"] == "snapshot.custom", (name, r.json())


def test_snapshots_survive_a_server_restart(tmp_path):
    first = start_server(tmp_path, workers=1)
    try:
        with httpx.Client(base_url=first.url, timeout=30) as c:
            made = c.post("/api/sessions", json={"seed": 9}).json()
            auth = {"Authorization": f"Bearer {made['control_token']}"}
            c.post(f"/api/sessions/{made['id']}/step", headers=auth)
            weights = c.get(f"/api/sessions/{made['id']}/model").json()
            snap = c.post(f"/api/sessions/{made['id']}/snapshots", json={"name": "before restart"}, headers=auth).json()
    finally:
        assert first.stop() < 5.0  # Ctrl-C ends it promptly
    second = start_server(tmp_path, workers=1)  # same DB_PATH under tmp_path
    try:
        with httpx.Client(base_url=second.url, timeout=30) as c:
            assert c.get(f"/api/sessions/{made['id']}").status_code == 404  # sessions are in memory
            restored = c.post("/api/sessions", json={"snapshot": snap["snapshot_id"]}).json()
            assert c.get(f"/api/sessions/{restored['id']}/model").json() == weights
    finally:
        second.stop()


def test_a_corrupt_database_stops_the_start_with_a_clear_message(tmp_path):
    db = tmp_path / "snapshots.sqlite3"
    db.write_bytes(b"this is not a database" * 10)
    before = db.read_bytes()
    with pytest.raises(RuntimeError, match="not an MLP Playground snapshot database"):
        start_server(tmp_path, workers=1)
    assert db.read_bytes() == before  # nothing lost, nothing overwritten
