"""The seed course in real Chromium, in English and Japanese: each step from its stable URL
onwards through Next, its highlight on the page, an exercise met through the controls, and
screenshots of every step at 1280×800 and in Present mode at 1280×720 (docs/screenshots/lessons)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.lessons import lessons
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e


# network.js's fit() fails when no drawing variant fits a narrow box (reported; not this module's):
# the playground beside the panel is narrower, so these tests meet it. Every other error fails.
def errors(page) -> list[str]:
    return list(page.errors)


SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "lessons"
STEPS = [s.id for s in lessons()["seed"].steps]


def open_step(page, lesson: str, step: str, query: str):
    page.goto(f"/learn/{lesson}/{step}?{query}")
    page.wait_for_url(re.compile(r"session="), timeout=15_000)
    wait_for(page, "!document.querySelector('#lesson-panel').hidden && !document.querySelector('#lesson-step').hidden")
    wait_for(page, "/^[0-9]/.test(document.querySelector('#loss-train').textContent)", timeout=20)


def on_step(page, index: int, title: str):
    wait_for(page, f"document.querySelector('#lesson-step-title').textContent === {title!r}")
    wait_for(page, f"location.pathname === '/learn/seed/{STEPS[index]}'")
    # The step's setup has reached the page (the drawing is redrawn) and its highlight is on it.
    wait_for(page, "document.querySelectorAll('.lesson-highlight').length > 0", timeout=15)
    wait_for(page, "/^[0-9]/.test(document.querySelector('#loss-train').textContent)", timeout=20)
    # The server's first check of the step has arrived (the goal no longer reads "now –").
    wait_for(page, "!document.querySelector('#lesson-checks .value').textContent.includes('–')", timeout=15)


def walk(page, lang: str, size: str, present: bool):
    seed = page.request.get(f"/api/lessons/seed?lang={lang}").json()
    query = f"lang={lang}" + ("&present=1" if present else "")
    open_step(page, "seed", STEPS[0], query)
    SHOTS.mkdir(parents=True, exist_ok=True)
    prefix = f"{'present-' if present else ''}{lang}"
    for k, step in enumerate(seed["steps"]):
        on_step(page, k, step["title"])
        assert page.locator("#lesson-count").inner_text() == seed_count(lang, k + 1, len(STEPS))
        page.wait_for_timeout(400)  # the highlight's first pulse and the newest frame painted
        page.screenshot(path=str(SHOTS / f"{prefix}-{k + 1:02d}-{step['id']}-{size}.png"))
        if k + 1 < len(STEPS):
            if k % 2:
                page.keyboard.press("]")  # the keyboard, every other step
            else:
                page.locator("#lesson-next").click()
    assert errors(page) == []


def seed_count(lang: str, n: int, total: int) -> str:
    return f"ステップ {n} / {total}" if lang == "ja" else f"Step {n} of {total}"


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_walk_the_seed_course(page, lang):
    walk(page, lang, "1280x800", present=False)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_walk_the_seed_course_in_present_mode(browser, server, lang):
    context = browser.new_context(viewport={"width": 1280, "height": 720}, base_url=server.url)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e} {e.stack}"))
    try:
        walk(page, lang, "1280x720", present=True)
        # Readable from the back row: the step's text is at least 22 px.
        assert page.evaluate("parseFloat(getComputedStyle(document.querySelector('#lesson-text')).fontSize)") >= 22
    finally:
        context.close()


def test_an_exercise_met_through_the_controls_and_kept_in_local_storage(page):
    open_step(page, "seed", "layers", "lang=en")
    assert page.locator("#lesson-met").is_hidden()
    assert page.locator(".lesson-highlight").count() >= 4  # three layer columns and the layer buttons
    # The hint on request, never the answer's work: the page stays as the learner left it.
    page.locator("#lesson-hint-btn").click()
    assert "+" in page.locator("#lesson-hint").inner_text()
    assert page.locator("#lesson-hint-btn").is_hidden()
    page.get_by_role("button", name="Add a hidden layer").first.click()
    wait_for(page, "!document.querySelector('#lesson-met').hidden", timeout=15)
    assert "Three hidden layers" in page.locator("#lesson-done").inner_text()
    # Met: the closing words take the hint's place; the check reads as the page does.
    assert page.locator("#lesson-hint").is_hidden() and page.locator("#lesson-hint-btn").is_hidden()
    assert page.locator("#lesson-checks .value").first.inner_text() == "now 3 · goal 3"
    done = page.evaluate("JSON.parse(localStorage.getItem('mlp:lessons')).seed.done")
    assert done == ["layers"]
    # Closing the panel gives the playground its width back; the header button opens it again.
    page.locator("#lesson-close").click()
    assert page.locator("#lesson-panel").is_hidden() and page.locator(".lesson-highlight").count() == 0
    page.locator("#btn-lessons").click()
    wait_for(page, "document.querySelector('#lesson-step-title').textContent.startsWith('Input')")
    assert errors(page) == []


def units(page) -> list[int]:
    sid = re.search(r"session=([\w-]+)", page.url).group(1)
    return [h["units"] for h in page.request.get(f"/api/sessions/{sid}").json()["config"]["hidden_layers"]]


def test_neuron_buttons_of_the_narrowed_drawing_work(page):
    # Beside the panel the network box is narrow, and network.js swaps in its vertical drawing
    # from a <template>: its +/− buttons sent nothing until htmx processed them.
    open_step(page, "seed", "deeper", "lang=en")
    wait_for(page, "document.querySelector('#network .net-box svg').dataset.variant === 'vertical'")
    assert units(page) == [4]
    page.get_by_role("button", name="Add a neuron to hidden layer 1").click()
    wait_for(page, "document.querySelector('#network')?.textContent.includes('5 neurons')", timeout=15)
    assert units(page) == [5]
    # The inspector beside the panel: the maths gets the inspector's width, not one character a line.
    page.locator('#network .net-box .node[data-l="1"][data-j="0"]').first.click()
    wait_for(page, "document.querySelector('#inspector .maths')?.getBoundingClientRect().width > 250")
    assert errors(page) == []


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_present_with_the_panel_shows_the_whole_network(browser, server, size):
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=server.url)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e} {e.stack}"))
    try:
        open_step(page, "seed", "softmax", "lang=en&present=1")
        wait_for(page, "document.body.classList.contains('present')")
        box = "document.querySelector('#network .net-box')"
        # No sideways scrolling: the loss layer is in view (at 1280×720 it was cut off), and the
        # drawing has room (it had 257 px of height under the captions).
        wait_for(page, f"{box}.scrollWidth <= {box}.clientWidth + 1 && {box}.clientHeight >= 0.6 * innerHeight - 150")
        loss = page.locator("#network .net-box .loss-box").first.bounding_box()
        panel = page.locator("#lesson-panel").bounding_box()
        assert loss and panel and loss["x"] + loss["width"] <= panel["x"]
        # Back/Next stay in view at the panel's foot.
        nav = page.locator("#lesson-next").bounding_box()
        assert nav and nav["y"] + nav["height"] <= height
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"present-en-06-softmax-{width}x{height}-layout.png"))
        assert errors(page) == []
    finally:
        context.close()
