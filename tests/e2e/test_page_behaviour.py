"""How the playground and watch pages behave in Chromium (issue 14): a link without its
token, the digits probe's label, the watch page's setup line, two tabs on one session,
shortcuts after a click, fast input, the dataset rule's toast, a capped speed, uploads."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_full_playground import session_id
from tests.e2e.test_playground import epoch, open_playground
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

PAINTED = (
    "document.querySelector('path.link') && document.querySelector('path.link').getAttribute('stroke') !== '#c4c9d0'"
)
LOSS_SHOWN = "/^[0-9]/.test(document.querySelector('#loss-train').textContent)"


def config(server, sid) -> dict:
    return httpx.get(f"{server.url}/api/sessions/{sid}").json()["config"]


def new_page(browser, server, width=1280, height=800):
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=server.url)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e} {e.stack}"))
    return context, page


def test_a_link_without_its_token_offers_watch_or_copy_and_always_paints(browser, server, page):
    """The bug: another browser opening /?session=<id> silently started a new session whose
    drawing stayed blank (the server drew the linked session's shape, frames had another)."""
    open_playground(page)
    page.get_by_role("button", name="Add a neuron to hidden layer 1").click()  # shape_version 1
    wait_for(page, "document.querySelectorAll('.column[data-layer=\"1\"] g.node').length === 5")
    sid = session_id(page)
    context, other = new_page(browser, server)
    try:
        other.goto(page.url)  # the teacher's address bar, in another browser
        dialog = other.locator("#foreign-dialog")
        dialog.wait_for(state="visible")
        assert "someone else" in dialog.text_content()
        assert other.locator("#foreign-watch").get_attribute("href").startswith(f"/s/{sid}?")
        # Behind the dialog, the linked session is drawn live: never a blank page.
        wait_for(other, PAINTED)
        wait_for(other, LOSS_SHOWN)
        other.keyboard.press("Escape")  # a choice is needed: Escape does not leave a dead page
        assert dialog.is_visible()
        other.locator("#foreign-copy").click()
        other.wait_for_url(re.compile(r"session=(?!" + sid + r")"), timeout=10_000)
        copy = session_id(other)
        other.locator("#foreign-dialog").wait_for(state="hidden", timeout=10_000)  # the copy's page holds its token
        wait_for(other, PAINTED)
        wait_for(other, LOSS_SHOWN)
        assert config(server, copy)["hidden_layers"] == config(server, sid)["hidden_layers"]
        assert epoch(other) == 0
        # The copy is this tab's own: it can train it.
        other.locator("#btn-step").click()
        wait_for(other, "document.querySelector('#epoch').textContent.trim() === '000,001'")
        # "Watch it" leads to the watch page of the linked session.
        other.goto(page.url)
        other.locator("#foreign-watch").click()
        other.wait_for_url(re.compile(rf"/s/{sid}\?"))
        wait_for(other, PAINTED)
        assert other.errors == []
    finally:
        context.close()


def test_a_drawing_of_another_shape_repaints_itself(page):
    """The never-blank guard: when the drawing is of a newer shape than every frame that
    arrives (a paused session sends no more), the page fetches the session's own drawing."""
    open_playground(page)
    # A drawing of shape 7 swapped in (as htmx swaps one), while the session is at shape 0.
    page.evaluate("""() => {
        const old = document.querySelector('#network');
        const drawn = old.cloneNode(true);
        drawn.dataset.shapeVersion = '7';
        old.replaceWith(drawn);
        document.body.dispatchEvent(new CustomEvent('htmx:afterSwap', { detail: { target: drawn } }));
    }""")
    page.locator("#btn-step").click()  # a frame of shape_version 0; the old view ignored it
    wait_for(page, "document.querySelector('#network').dataset.shapeVersion === '0'")
    wait_for(page, PAINTED)
    assert page.errors == []


def test_the_digit_probe_label_names_the_sample_the_network_shows(browser, server, page):
    open_playground(page, "?preset=seed")
    sid = session_id(page)
    test = httpx.get(f"{server.url}/api/sessions/{sid}/data").json()["test"]

    def shown_sample(pg) -> int:
        wait_for(pg, "/^sample [0-9]+ of/.test(document.querySelector('#sample-label').textContent)")
        text = pg.locator("#sample-label").text_content()
        n, y = re.match(r"sample (\d+) of \d+ \(class (\d+)\)", text).groups()
        assert int(y) == test["y"][int(n) - 1]
        return int(n) - 1

    probe = httpx.get(f"{server.url}/api/sessions/{sid}").json()["probe"]["x"]
    assert test["x"][shown_sample(page)] == probe  # before ◀ or ▶ too
    # The pad beside the label shows that digit (the pixels the network gets).
    pad = page.evaluate(
        "Array.from(document.querySelector('#digit-pad').getContext('2d').getImageData(0, 0, 8, 8).data)"
    )
    assert [a / 255 for a in pad[3::4]] == pytest.approx(probe, abs=0.01)
    page.locator("#sample-next").click()
    page.locator("#sample-next").click()
    wait_for(page, "document.querySelector('#sample-label').textContent.startsWith('sample 3 of')")
    # A watcher (and a reload) names the same sample as the session's probe.
    context, watcher = new_page(browser, server)
    try:
        watcher.goto(f"/s/{sid}")
        wait_for(watcher, "document.querySelector('#sample-label').textContent.startsWith('sample 3 of')")
        probe = httpx.get(f"{server.url}/api/sessions/{sid}").json()["probe"]["x"]
        assert test["x"][shown_sample(watcher)] == probe
    finally:
        context.close()
    assert page.errors == []


def test_the_watch_page_says_what_is_trained_and_follows_the_teacher(browser, server, page):
    open_playground(page, "?learning_rate=0.03&batch_size=10&optimizer=sgd&regularization=none")
    sid = session_id(page)
    context, watcher = new_page(browser, server, 390, 844)
    try:
        watcher.goto(f"/s/{sid}")
        text = "document.querySelector('#watch-setup-text').textContent"
        wait_for(watcher, f"{text}.includes('Layers')")
        shown = watcher.locator("#watch-setup-text").text_content()
        for part in (
            "Data: Circle",
            "Learning rate: 0.03",
            "Optimizer: SGD",
            "Regularization: None",
            "Batch size: 10",
            "Layers: 2 → 4 Tanh → 2 Tanh → 2 Softmax",
        ):
            assert part in shown, shown
        page.select_option("#f-learning_rate", "0.1")
        page.select_option("#f-regularization", "l2")
        page.locator("label.dataset-choice:has(#ds-xor)").click()
        page.get_by_role("button", name="Add a neuron to hidden layer 1").click()
        wait_for(watcher, f"{text}.includes('Data: Exclusive or') && {text}.includes('Learning rate: 0.1')", timeout=15)
        wait_for(watcher, f"{text}.includes('Regularization: L2') && {text}.includes('→ 5 Tanh →')", timeout=15)
        assert watcher.errors == []
    finally:
        context.close()


def test_two_tabs_controlling_one_session_show_the_same_settings(browser, server, page):
    open_playground(page)
    sid = session_id(page)
    token = page.evaluate(f"sessionStorage.getItem('mlp:token:{sid}')")
    second = page.context.new_page()  # a duplicated tab: same session, same token
    second.goto("/?lang=en")
    second.evaluate(f"sessionStorage.setItem('mlp:token:{sid}', '{token}')")
    second.goto(page.url)
    wait_for(second, LOSS_SHOWN)
    assert second.locator("#foreign-dialog").is_hidden()
    page.select_option("#f-learning_rate", "0.3")
    page.select_option("#f-optimizer", "adam")
    page.locator("label.dataset-choice:has(#ds-spiral)").click()
    page.locator("#f-noise").fill("0.3")  # input and change, as a drag of the slider
    wait_for(page, "document.querySelector('#f-noise').value === '0.3'")
    wait_for(
        second,
        "document.querySelector('#f-learning_rate').value === '0.3' && document.querySelector('#f-optimizer').value === 'adam'"
        " && document.querySelector('#ds-spiral').checked && document.querySelector('#f-noise').value === '0.3'",
        timeout=15,
    )
    # The other way round too, and a control of the second tab then acts on the session.
    second.select_option("#f-batch_size", "32")
    wait_for(page, "document.querySelector('#f-batch_size').value === '32'", timeout=15)
    assert config(server, sid)["batch_size"] == 32
    second.close()
    assert page.errors == []


def test_a_change_right_after_an_answer_redraws_the_settings_is_sent(server, page):
    """An answer swaps the settings in anew; a change made on the new control before the swap
    settled (a held arrow key repeats every ~30 ms) was dropped with htmx's 20 ms settle delay:
    the page showed the new value and the session never got it."""
    open_playground(page)
    sid = session_id(page)
    page.evaluate(
        """document.body.addEventListener("htmx:oobAfterSwap", (ev) => {
             if (ev.detail.target?.id !== "hyper") return;
             setTimeout(() => {  // the next task: after the swap, within htmx's old settle delay
               const select = document.querySelector("#f-optimizer");
               select.value = "adam";
               select.dispatchEvent(new Event("change", { bubbles: true }));
             }, 0);
           }, { once: true })"""
    )
    page.select_option("#f-learning_rate", "0.3")
    assert wait_until(lambda: config(server, sid)["optimizer"] == "adam", 10), config(server, sid)
    assert config(server, sid)["learning_rate"] == 0.3
    wait_for(page, "document.querySelector('#f-optimizer').value === 'adam'")
    assert page.errors == []


@pytest.mark.parametrize(
    "select, redrawn, event",
    [("#f-learning_rate", "hyper", "htmx:oobAfterSwap"), ("#f-activation-1", "network", "htmx:afterSwap")],
    ids=["learning-rate", "activation"],
)
def test_a_select_stepped_while_answers_arrive_ends_where_the_user_stepped(server, page, select, redrawn, event):
    """Three steps on a select, the third made as the first answer redraws it (a held arrow key
    does this): the session ends three steps on. The answer used to show the first step's value
    while the second still waited, and the third step went on from it: two steps, not three.
    The learning rate comes back in the settings (out of band), an activation in the network."""
    open_playground(page)
    sid = session_id(page)
    options = page.evaluate(f"[...document.querySelector('{select}').options].map((o) => o.value)")
    start = page.evaluate(f"document.querySelector('{select}').selectedIndex")
    way = 1 if start + 3 < len(options) else -1
    expected = options[start + 3 * way]
    page.evaluate(
        """([select, redrawn, event, way]) => {
             const step = () => {  // what an arrow key does on a closed select
               const field = document.querySelector(select);
               field.selectedIndex += way;
               field.dispatchEvent(new Event("change", { bubbles: true }));
             };
             const third = (ev) => {
               if (ev.target.id !== redrawn) return;
               document.body.removeEventListener(event, third);
               setTimeout(step, 0);  // on the redrawn select, once htmx has bound it
             };
             document.body.addEventListener(event, third);
             step();
             step();  // waits in the page's queue while the first is answered
           }""",
        [select, redrawn, event, way],
    )

    def reached() -> bool:
        cfg = config(server, sid)
        if redrawn == "hyper":
            return cfg["learning_rate"] == float(expected)
        return cfg["hidden_layers"][0]["activation"] == expected

    assert wait_until(reached, 10), (config(server, sid), expected)
    wait_for(page, f"document.querySelector('{select}').value === {expected!r}")
    assert page.errors == []


def test_shortcuts_work_after_clicking_a_control(page):
    open_playground(page)
    playing = "document.querySelector('#btn-play').dataset.state === 'running'"
    paused = "document.querySelector('#btn-play').dataset.state === 'paused'"
    # A slider keeps the focus after a click: Space still plays, → still steps.
    page.locator("#f-train_fraction").click()
    assert page.evaluate("document.activeElement.id") == "f-train_fraction"
    page.keyboard.press(" ")
    wait_for(page, playing)
    page.keyboard.press(" ")
    wait_for(page, paused)
    # A checkbox: Space plays instead of ticking it; P toggles Present.
    page.locator("#toggle-captions").click()
    captions = page.locator("#toggle-captions").is_checked()
    page.keyboard.press("p")
    assert page.evaluate("document.body.classList.contains('present')")
    page.keyboard.press("p")
    page.keyboard.press(" ")
    wait_for(page, playing)
    page.keyboard.press(" ")
    wait_for(page, paused)
    assert page.locator("#toggle-captions").is_checked() == captions
    # A select: P works, and the select keeps its arrow keys (they change its value, not train).
    before = epoch(page)
    page.locator("#f-init").focus()
    page.keyboard.press("p")
    assert page.evaluate("document.body.classList.contains('present')")
    page.keyboard.press("p")
    page.locator("#f-init").focus()  # Present mode hid it, and a hidden control loses the focus
    value = page.locator("#f-init").input_value()
    page.keyboard.press("ArrowDown")
    wait_for(page, f"document.querySelector('#f-init') && document.querySelector('#f-init').value !== '{value}'")
    assert epoch(page) == before
    # A text field keeps every key.
    page.locator("#btn-saved").click()
    page.locator("#snap-dialog form.snap-save input[name=name]").fill("p p")
    assert not page.evaluate("document.body.classList.contains('present')")
    assert page.errors == []


def test_fast_clicks_and_key_presses_are_all_carried_out(server, page):
    """15 fast clicks on "+" add 15 neurons and 50 presses of → train 50 epochs: htmx kept
    only the last request made while one was out, so 8 of 15 and 22 of 50 got through."""
    open_playground(page)
    sid = session_id(page)
    page.evaluate("""() => {
        for (let k = 0; k < 15; k++) document.querySelector('button[aria-label="Add a neuron to hidden layer 1"]').click();
    }""")
    units = "document.querySelector('button[aria-label=\"Add a neuron to hidden layer 1\"]').parentElement.querySelector('.mono')"
    wait_for(page, f"{units}.textContent.trim() === '19'", timeout=30)
    assert config(server, sid)["hidden_layers"][0]["units"] == 19
    page.locator("body").click(position={"x": 5, "y": 790})
    for _ in range(50):
        page.keyboard.press("ArrowRight")
    wait_for(page, "document.querySelector('#epoch').textContent.trim() === '000,050'", timeout=30)
    assert httpx.get(f"{server.url}/api/sessions/{sid}").json()["epoch"] == 50
    assert page.errors == []


def test_a_dataset_change_starts_afresh_and_says_why(page):
    open_playground(page)
    for k in range(3):
        page.locator("#btn-step").click()
        wait_for(page, f"document.querySelector('#epoch').textContent.trim() === '000,00{k + 1}'")
    page.locator("label.dataset-choice:has(#ds-xor)").click()
    wait_for(page, "document.querySelector('#epoch').textContent.trim() === '000,000'")
    toast = page.locator("#toast")
    toast.wait_for(state="visible")
    assert "A new dataset starts a new network, as in TensorFlow Playground" in toast.text_content()
    assert page.errors == []


def test_a_capped_speed_shows_the_rate_reached(page):
    open_playground(page, "?hidden=64:tanh,64:tanh,64:tanh&n_points=1000&batch_size=1")
    reached = page.locator("#speed-reached")
    assert reached.is_hidden()
    page.select_option("#f-epochs_per_frame", "1000")
    wait_for(page, "document.querySelector('#f-epochs_per_frame').value === '1000'")
    page.locator("#btn-play").click()
    reached.wait_for(state="visible", timeout=15_000)
    n = float(re.search(r"≈ ([0-9.]+)", reached.text_content()).group(1))
    assert 0 < n < 1000
    page.locator("#btn-play").click()
    assert page.errors == []


def test_upload_errors_name_one_limit_and_forget_the_rejected_file(page, tmp_path):
    open_playground(page)
    name = page.locator("#data-panel .file-name")
    big = tmp_path / "big.csv"
    big.write_text("x1,x2,label\n" + "1.000000,2.000000,0\n" * 130_000)  # 2.6 MB: past the body limit too
    page.locator("#csv-file").set_input_files(str(big))
    toast = page.locator("#toast")
    toast.wait_for(state="visible")
    assert toast.text_content() == "The file is larger than the limit of 1,000,000 bytes."
    assert "Files up to 1,000,000 bytes." in page.locator("#data-panel .hint").text_content()
    wait_for(page, "document.querySelector('#data-panel .file-name').textContent === 'No file chosen'")
    bad = tmp_path / "bad.csv"
    bad.write_text("x1,x2,label\n1,2,0\n1,oops,1\n")
    page.locator("#csv-file").set_input_files(str(bad))
    wait_for(page, "document.querySelector('#toast').textContent.includes('Line 3')")
    assert name.text_content() == "No file chosen"
    assert [e for e in page.errors if e.startswith("pageerror")] == []  # the 413 and 422 are logged
