"""Sessions that end with their page, pause when nobody looks, and embeds shared by their
readers (app/lifecycle.py, app/broadcast.py), through the API of one live server with short
timers. Waits poll for a state (wait_until); no assertion is about how long anything took."""

from __future__ import annotations

import time

import httpx
import pytest

from app.i18n import catalog
from tests.support.live import start_server
from tests.support.sse import SseReader
from tests.support.waiting import wait_until

GRACE, UNUSED, HIDDEN = 1.0, 3.0, 1.0
WAIT = 20.0  # generous bound for a state to be reached on a loaded 2-core machine


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_server(
        tmp_path_factory.mktemp("lifecycle"),
        workers=1,
        max_sessions=4,
        release_grace_seconds=GRACE,
        unused_session_seconds=UNUSED,
        hidden_pause_seconds=HIDDEN,
        idle_pause_seconds=600,
    )
    yield server
    server.stop()


@pytest.fixture
def c(live):
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


def make(c: httpx.Client, **config) -> tuple[str, dict]:
    r = c.post("/api/sessions", json=config)
    assert r.status_code == 201, r.text
    return r.json()["id"], {"Authorization": f"Bearer {r.json()['control_token']}"}


def gone_reason(c: httpx.Client, sid: str) -> str | None:
    r = c.get(f"/api/sessions/{sid}")
    return r.json()["params"]["reason"] if r.status_code == 410 else None


def status(c: httpx.Client, sid: str) -> str:
    return c.get(f"/api/sessions/{sid}").json()["status"]


def wait_empty(c: httpx.Client) -> None:
    assert wait_until(lambda: c.get("/api/stats").json()["sessions"] == 0, WAIT), c.get("/api/stats").json()


def test_a_released_session_ends_after_the_grace_and_a_reload_keeps_it(c):
    closed, reloaded = make(c, seed=1), make(c, seed=2)
    for sid, auth in (closed, reloaded):
        assert c.post(f"/api/sessions/{sid}/play", headers=auth).status_code == 200  # used: no TTL shortcut
        assert c.post(f"/api/sessions/{sid}/release", headers=auth).status_code == 204
    assert c.delete(f"/api/sessions/{reloaded[0]}/release", headers=reloaded[1]).status_code == 204  # reloaded
    assert wait_until(lambda: gone_reason(c, closed[0]) == "released", WAIT), c.get(f"/api/sessions/{closed[0]}").text
    time.sleep(GRACE * 2)  # well past the grace: the taken-back release did not end it
    assert c.get(f"/api/sessions/{reloaded[0]}").status_code == 200
    c.delete(f"/api/sessions/{reloaded[0]}", headers=reloaded[1])


def test_release_needs_the_control_token(c):
    sid, auth = make(c, seed=3)
    assert c.post(f"/api/sessions/{sid}/release").json()["code"] == "auth_missing"
    wrong = c.post(f"/api/sessions/{sid}/release", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["code"] == "auth_wrong"
    c.delete(f"/api/sessions/{sid}", headers=auth)


def test_a_session_nobody_used_ends_and_a_used_one_stays(c):
    unused, used = make(c, seed=4), make(c, seed=5)
    assert c.post(f"/api/sessions/{used[0]}/step", headers=used[1]).status_code == 200
    with SseReader(f"{c.base_url}/api/sessions/{unused[0]}/events") as reader:  # a page view, then its tab closes
        assert reader.next_frame(WAIT) is not None
    assert wait_until(lambda: gone_reason(c, unused[0]) == "unused", WAIT)
    assert c.get(f"/api/sessions/{used[0]}").status_code == 200  # SESSION_TTL_SECONDS still holds for it
    c.delete(f"/api/sessions/{used[0]}", headers=used[1])


def test_at_the_limit_the_least_recently_active_unwatched_session_makes_room(c):
    wait_empty(c)
    made = [make(c, seed=10 + i) for i in range(4)]
    for sid, auth in made[1:2] + made[:1] + made[2:]:  # used; made[1] is the least recently active
        c.post(f"/api/sessions/{sid}/step", headers=auth)
    with SseReader(f"{c.base_url}/api/sessions/{made[0][0]}/events") as watched:
        assert watched.next_frame(WAIT) is not None
        newcomer = make(c, seed=20)
        assert gone_reason(c, made[1][0]) == "evicted"  # the least recently active, unwatched
        assert c.get(f"/api/sessions/{made[0][0]}").status_code == 200  # watched: never evicted
        made[1] = newcomer
        readers = [SseReader(f"{c.base_url}/api/sessions/{sid}/events") for sid, _ in made[1:]]
        try:
            for reader in readers:
                assert reader.next_frame(WAIT) is not None
            for lang in ("en", "ja"):  # every session watched: refused, in the reader's language
                full = c.post("/api/sessions", json={"seed": 30}, headers={"Accept-Language": lang})
                assert full.status_code == 429 and full.json()["code"] == "limit_sessions", full.text
                assert "{max}" in catalog(lang)["error.limit_sessions"] and full.json()["params"] == {"max": 4}
        finally:
            for reader in readers:
                reader.close()
    for sid, auth in made:
        c.delete(f"/api/sessions/{sid}", headers=auth)


def test_nobody_looking_pauses_and_a_returning_viewer_resumes(c):
    sid, auth = make(c, seed=6)
    url = f"{c.base_url}/api/sessions/{sid}/events"
    with SseReader(url) as page:
        assert page.next_frame(WAIT) is not None
        assert c.post(f"/api/sessions/{sid}/play", headers=auth).json()["status"] == "running"
    # The page hid (its stream closed): paused after the grace, nothing lost.
    assert wait_until(lambda: status(c, sid) == "paused", WAIT)
    epoch = c.get(f"/api/sessions/{sid}").json()["epoch"]
    assert epoch > 0
    with SseReader(url) as page:  # visible again: it plays on from where it was
        assert wait_until(lambda: status(c, sid) == "running", WAIT)
        assert page.wait_frame(lambda f: f["epoch"] > epoch, time.monotonic(), WAIT) is not None
    c.delete(f"/api/sessions/{sid}", headers=auth)


def test_a_classroom_watcher_keeps_the_teachers_session_running(c):
    sid, auth = make(c, seed=7)
    assert c.post(f"/api/sessions/{sid}/play", headers=auth).json()["status"] == "running"
    with SseReader(f"{c.base_url}/api/sessions/{sid}/events") as student:  # the teacher's page is hidden
        assert student.next_frame(WAIT) is not None
        time.sleep(HIDDEN * 3)  # well past the hidden grace
        assert status(c, sid) == "running"
    c.delete(f"/api/sessions/{sid}", headers=auth)


def join(c: httpx.Client, query: str, autoplay: str = "1") -> dict:
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = c.post("/embed/join", content=f"{query}&autoplay={autoplay}", headers=form)
    assert r.status_code == 200, r.text
    return r.json()


def test_readers_of_one_embed_share_a_session_that_starts_when_seen_and_forks_on_change(c):
    wait_empty(c)
    readers = [join(c, "dataset=xor&seed=5&lang=ja") for _ in range(5)]
    assert len({r["id"] for r in readers}) == 1 and "control_token" not in readers[0]
    sid = readers[0]["id"]
    assert join(c, "dataset=xor&seed=6")["id"] != sid  # another seed, another setup
    seedless = join(c, "dataset=circle")["id"]
    assert join(c, "dataset=circle")["id"] == seedless  # no seed named: the first reader's seed serves all
    assert c.get("/api/stats").json()["sessions"] == 3
    assert status(c, sid) == "paused"  # autoplay starts only when a reader looks
    with SseReader(f"{c.base_url}/api/sessions/{sid}/events") as reader:
        assert wait_until(lambda: status(c, sid) == "running", WAIT)
        seen = reader.wait_frame(lambda f: f["epoch"] > 0, time.monotonic(), WAIT)
        assert seen is not None
        fork = c.post(f"/embed/{sid}/fork")
        assert fork.status_code == 201, fork.text
        own, auth = fork.json()["id"], {"Authorization": f"Bearer {fork.json()['control_token']}"}
        copy = c.get(f"/api/sessions/{own}").json()
        assert copy["status"] == "running" and copy["epoch"] >= seen[1]["epoch"]  # from the same weights and epoch
        assert copy["config"] == c.get(f"/api/sessions/{sid}").json()["config"]
        assert c.patch(f"/api/sessions/{own}", json={"learning_rate": 0.01}, headers=auth).status_code == 200
        assert c.get(f"/api/sessions/{sid}").json()["config"]["learning_rate"] != 0.01  # the others' is untouched
        refused = c.post(f"/embed/{own}/fork")
        assert refused.status_code == 409 and refused.json()["code"] == "not_broadcast"
        assert all("error.not_broadcast" in catalog(lang) for lang in ("en", "ja"))
    # Nobody watches the broadcast any more: it ends like a closed page's session.
    assert wait_until(lambda: gone_reason(c, sid) == "released", WAIT)
    assert join(c, "dataset=xor&seed=5")["id"] != sid  # the next reader starts a new one
    c.delete(f"/api/sessions/{own}", headers=auth)


def test_readers_of_one_snapshot_embed_share_a_session(c):
    sid, auth = make(c, seed=8)
    c.post(f"/api/sessions/{sid}/step", headers=auth)
    snap = c.post(f"/api/sessions/{sid}/snapshots", headers=auth).json()["snapshot_id"]
    c.delete(f"/api/sessions/{sid}", headers=auth)
    first, second = join(c, f"snapshot={snap}", "0"), join(c, f"snapshot={snap}", "0")
    assert first["id"] == second["id"] and c.get(f"/api/sessions/{first['id']}").json()["epoch"] == 1
