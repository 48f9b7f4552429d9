"""Presence in real Chromium (static/js/presence.js): a closed page's session ends, a reload
keeps it, an autoplay embed trains only while in view, readers share it and fork on a
change, and a full server gets a Retry banner instead of a dead page. One server (short
timers) and one browser for the module; waits poll for a state, nothing is timed."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import wait_for
from tests.support.live import start_server
from tests.support.sse import SseReader
from tests.support.waiting import wait_until

WAIT = 20.0
EMBED = "/embed?dataset=xor&seed=41&autoplay=1"
HOST = """<!doctype html><html><body style="margin:0">
<div style="height:100px"></div>
<iframe id="near" src="{near}" width="900" height="600"></iframe>
<div style="height:6000px"></div>
<iframe id="far" src="{far}" width="900" height="600"></iframe>
</body></html>"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = start_server(
        tmp_path_factory.mktemp("presence"),
        workers=1,
        max_sessions=4,
        release_grace_seconds=2.5,  # longer than the hidden pause, so a paused embed is still there to resume
        hidden_pause_seconds=1,
        unused_session_seconds=60,
        idle_pause_seconds=600,
    )
    yield live
    live.stop()


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def gone_reason(api: httpx.Client, sid: str) -> str | None:
    r = api.get(f"/api/sessions/{sid}")
    return r.json()["params"]["reason"] if r.status_code == 410 else None


def status(api: httpx.Client, sid: str) -> str | None:
    r = api.get(f"/api/sessions/{sid}")
    return r.json()["status"] if r.status_code == 200 else None


def page_session(page) -> str:
    wait_for(page, "new URL(location.href).searchParams.get('session')", WAIT)
    return page.evaluate("new URL(location.href).searchParams.get('session')")


def test_a_reload_keeps_the_session_and_closing_the_page_ends_it(page, api):
    page.goto("/?dataset=xor&seed=3")
    sid = page_session(page)
    page.click("#btn-play")
    assert wait_until(lambda: status(api, sid) == "running", WAIT)
    page.reload()  # pagehide releases it; the reloaded page takes the release back
    assert page_session(page) == sid
    wait_for(page, "document.getElementById('epoch').textContent !== '000,000'", WAIT)
    page.wait_for_timeout(4000)  # past the 2.5 s grace: still the same live session
    assert status(api, sid) == "running"
    page.close(run_before_unload=True)
    assert wait_until(lambda: gone_reason(api, sid) == "released", WAIT), api.get(f"/api/sessions/{sid}").text


def test_an_autoplay_embed_trains_only_in_view_and_readers_share_it(page, api, server):
    far = "/embed?dataset=xor&seed=42&autoplay=1"
    page.route(
        f"{server.url}/host.html",
        lambda route: route.fulfill(content_type="text/html", body=HOST.format(near=EMBED, far=far)),
    )
    page.goto("/host.html")
    join = {"content-type": "application/x-www-form-urlencoded"}
    near_id = api.post("/embed/join", content="dataset=xor&seed=41&autoplay=1", headers=join).json()["id"]
    far_id = api.post("/embed/join", content="dataset=xor&seed=42&autoplay=1", headers=join).json()["id"]
    assert wait_until(lambda: status(api, near_id) == "running", WAIT)
    assert status(api, far_id) == "paused" and api.get(f"/api/sessions/{far_id}").json()["epoch"] == 0  # not seen yet

    second = page.context.new_page()  # another reader of the same embed: the same session
    second.goto(EMBED)
    wait_for(second, "document.getElementById('epoch').textContent !== '000,000'", WAIT)
    assert api.get(f"/api/sessions/{near_id}").json()["watchers"] == 2
    second.close()

    page.evaluate("window.scrollTo(0, 3000)")  # both embeds out of view
    assert wait_until(lambda: status(api, near_id) == "paused", WAIT)
    page.evaluate("window.scrollTo(0, 0)")  # back in view: it plays on
    assert wait_until(lambda: status(api, near_id) == "running", WAIT)


def test_a_readers_first_change_forks_their_own_copy(page, api):
    page.goto(EMBED)
    wait_for(page, "document.getElementById('epoch').textContent !== '000,000'", WAIT)
    shared = api.post(
        "/embed/join",
        content="dataset=xor&seed=41&autoplay=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ).json()["id"]
    page.click("#btn-play")  # the reader pauses: that is a change, so it happens on their own copy
    own = page_session(page)
    assert own != shared
    assert wait_until(lambda: status(api, own) == "paused", WAIT)
    assert status(api, shared) in ("running", "paused") and api.get(f"/api/sessions/{own}").json()["epoch"] > 0
    wait_for(page, "document.getElementById('btn-play').dataset.state === 'paused'", WAIT)
    assert page.errors == []


def test_a_full_server_offers_retry_and_posts_no_literal_sid(page, api):
    made = []  # four watched sessions fill the server (making them evicts any unwatched one)
    for seed in range(4):
        body = api.post("/api/sessions", json={"seed": seed}).json()
        made.append((body["id"], {"Authorization": f"Bearer {body['control_token']}"}))
    readers = [SseReader(f"{api.base_url}/api/sessions/{sid}/events") for sid, _ in made]
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    try:
        for reader in readers:
            assert reader.next_frame(WAIT) is not None
        page.goto("/?lang=ja")
        wait_for(page, "document.getElementById('no-session') !== null", WAIT)
        assert "満員" in page.inner_text("#no-session") and page.inner_text("#no-session button") == "再試行"
        page.click("#btn-play")
        page.wait_for_timeout(300)
        assert not [u for u in posted if "{sid}" in u or "%7Bsid%7D" in u], posted
    finally:
        for reader in readers:
            reader.close()
        for sid, auth in made:
            api.delete(f"/api/sessions/{sid}", headers=auth)
    page.click("#no-session button")  # room again: Retry gives a working session
    assert status(api, page_session(page)) == "paused"
