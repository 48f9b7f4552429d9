"""Rules behind the page, in-process (issue 14): one rule for a dataset change, uploads
whose axes have very different ranges, the digits probe's first sample, the panels a
second page fetches, and the upload limit the data panel names."""

from __future__ import annotations

import numpy as np
import pytest

from app.settings import Settings


def status(client, sid) -> dict:
    return client.get(f"/api/sessions/{sid}").json()


def trained(client, make_session, epochs: int = 3, **config):
    sid, auth = make_session(seed=5, **config)
    for _ in range(epochs):
        assert client.post(f"/api/sessions/{sid}/step", headers=auth).status_code == 200
    assert status(client, sid)["epoch"] == epochs
    return sid, auth


def upload(client, sid, auth, text: str):
    return client.post(
        f"/api/sessions/{sid}/upload", files={"file": ("d.csv", text.encode(), "text/csv")}, headers=auth
    )


CSV = "x1,x2,label\n" + "".join(f"{i % 7 - 3},{(i * 3) % 5 - 2},{i % 2}\n" for i in range(40))


@pytest.mark.parametrize(
    "change",
    [{"dataset": "xor"}, {"dataset": "spiral"}, {"dataset": "gauss"}, {"dataset": "reg-plane"}, {"dataset": "digits"}],
)
def test_another_dataset_always_starts_the_network_afresh(client, make_session, change):
    """Between 2-D datasets the weights and the epoch used to carry over (XOR started from
    the trained circle weights); now every dataset change resets, like TensorFlow Playground."""
    sid, auth = trained(client, make_session)
    r = client.patch(f"/api/sessions/{sid}", json=change, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["reset"] is True and "network" in r.json()["rebuilt"]
    s = status(client, sid)
    assert (s["epoch"], s["step"], s["status"]) == (0, 0, "paused")
    # The same initial weights as a new session of that setup: nothing learned carried over.
    derived = {"problem"} | ({"classes"} if s["config"]["problem"] == "regression" else set())
    fresh, _ = make_session(**{k: v for k, v in s["config"].items() if k not in derived})
    assert client.get(f"/api/sessions/{sid}/model").json() == client.get(f"/api/sessions/{fresh}/model").json()


def test_class_count_and_uploads_are_other_datasets_too(client, make_session):
    sid, auth = trained(client, make_session, dataset="gauss", classes=2)
    r = client.patch(f"/api/sessions/{sid}", json={"classes": 3}, headers=auth)
    assert r.json()["reset"] is True and status(client, sid)["epoch"] == 0
    for _ in range(2):  # an upload, then another one over the first (dataset stays "custom")
        client.post(f"/api/sessions/{sid}/step", headers=auth)
        r = upload(client, sid, auth, CSV)
        assert r.status_code == 200, r.text
        assert r.json()["reset"] is True and status(client, sid)["epoch"] == 0


def test_the_same_dataset_resampled_or_edited_keeps_learning(client, make_session):
    """The rule's other half: noise, the split, Regenerate and points clicked in are the same
    dataset, so the network keeps what it learned (watch it adapt to a new point)."""
    sid, auth = trained(client, make_session, noise=0.1)
    model = client.get(f"/api/sessions/{sid}/model").json()
    assert client.patch(f"/api/sessions/{sid}", json={"noise": 0.3}, headers=auth).json()["reset"] is False
    assert client.patch(f"/api/sessions/{sid}", json={"train_fraction": 0.6}, headers=auth).json()["reset"] is False
    assert client.post(f"/api/sessions/{sid}/regenerate", headers=auth).json()["reset"] is False
    r = client.post(f"/api/sessions/{sid}/points", json={"x": [1.0, 1.0], "label": 1}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["reset"] is False and r.json()["config"]["dataset"] == "custom"
    assert status(client, sid)["epoch"] == 3
    assert client.get(f"/api/sessions/{sid}/model").json() == model


def test_a_csv_with_very_different_axis_ranges_fills_the_plane(client, make_session):
    """x1 in metres (0…1000) and x2 in kilometres (0…1): one common factor put every point
    on a line at x2 ≈ −6; each axis now fills the plane on its own."""
    sid, auth = make_session()
    rows = "".join(f"{i * 25},{(i % 5) / 4},{i % 2}\n" for i in range(41))
    assert upload(client, sid, auth, "x1,x2,label\n" + rows).status_code == 200
    data = client.get(f"/api/sessions/{sid}/data").json()
    x = np.array(data["train"]["x"] + data["test"]["x"])
    assert x.min(axis=0) == pytest.approx([-6, -6]) and x.max(axis=0) == pytest.approx([6, 6])
    # Ranges within a factor 10 keep one factor, so shapes keep their proportions.
    rows = "".join(f"{i - 20},{(i % 5) * 2 - 4},{i % 2}\n" for i in range(41))
    assert upload(client, sid, auth, "x1,x2,label\n" + rows).status_code == 200
    data = client.get(f"/api/sessions/{sid}/data").json()
    x = np.array(data["train"]["x"] + data["test"]["x"])
    assert x.max(axis=0) == pytest.approx([6, 6 * 4 / 20])


def test_the_digits_probe_starts_on_test_sample_one(client, make_session):
    """The page labels the probe "sample 1 of N" of the test set; the session's first probe
    was the first *training* sample, another digit."""
    sid, _ = make_session(dataset="digits", seed=2)
    test = client.get(f"/api/sessions/{sid}/data").json()["test"]
    assert status(client, sid)["probe"] == {"x": test["x"][0], "y": test["y"][0]}


def test_panels_of_a_session_follow_its_config(client, make_session):
    """A second page controlling the session fetches the panels when the config changes."""
    sid, auth = make_session()
    client.patch(f"/api/sessions/{sid}", json={"learning_rate": 0.1, "dataset": "xor"}, headers=auth)
    r = client.get(f"/ui/sessions/{sid}/panels")  # no token needed: the config is public
    assert r.status_code == 200
    assert '<option value="0.1" selected' in r.text
    assert 'id="ds-xor" value="xor" checked' in r.text
    assert client.get("/ui/sessions/nope/panels").status_code == 404


def test_the_data_panel_names_the_upload_limit(client):
    limit = Settings().max_upload_bytes
    assert f"Files up to {limit:,} bytes." in client.get("/?lang=en").text


def test_a_redrawn_network_is_the_reported_network_even_before_the_reply(client, make_session, in_process_app):
    """The frame announcing a new shape can reach a page before the worker's reply has
    updated the server's record: the redraw it fetches must draw the network that frame has,
    not the old one labelled with the new shape_version (the page would then paint frames of
    one shape onto a drawing of another)."""
    sid, auth = make_session(hidden_layers=[{"units": 4, "activation": "tanh"}])
    record = in_process_app.asgi.app.state.store.sessions[sid]
    before = record.config
    client.patch(f"/api/sessions/{sid}", json={"hidden_layers": [{"units": 1, "activation": "tanh"}]}, headers=auth)
    record.config = before  # as if the reply were still in the pipe behind the frame
    html = client.get(f"/ui/sessions/{sid}/network").text
    reported = status(client, sid)
    assert f'data-shape-version="{reported["shape_version"]}"' in html
    assert 'data-l="1" data-j="0"' in html and 'data-l="1" data-j="1"' not in html  # 1 neuron, not 4
