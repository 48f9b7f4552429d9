"""Teaching views in Chromium: inspector, forward pass, backprop view, timeline, captions."""

from __future__ import annotations

import math
import time

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_classroom import shots  # noqa: F401  (fixture)
from tests.e2e.test_full_playground import session_id
from tests.e2e.test_playground import epoch, open_playground

pytestmark = pytest.mark.e2e


def test_inspector_shows_a_neurons_maths_matching_numpy(page, server, shots):  # noqa: F811
    open_playground(page)
    sid = session_id(page)
    page.get_by_role("button", name="Step", exact=True).click()
    wait_for(page, "document.querySelector('#epoch').textContent.trim() === '000,001'")
    page.get_by_role("button", name="Inspect Hidden layer 1, neuron 3").click()
    assert page.locator("#inspector-title").text_content() == "Hidden layer 1, neuron 3"
    z_shown = float(page.locator(".eq.z .eq-value").text_content())
    a_shown = float(page.locator(".eq.a .eq-value").text_content())
    model = httpx.get(f"{server.url}/api/sessions/{sid}/model").json()
    probe = np.array(httpx.get(f"{server.url}/api/sessions/{sid}").json()["probe"]["x"])
    W, b = np.array(model["layers"][0]["weights"]), np.array(model["layers"][0]["biases"])
    z = probe @ W[:, 2] + b[2]
    assert z_shown == pytest.approx(z, abs=1e-3)
    assert a_shown == pytest.approx(math.tanh(z), abs=1e-3)
    assert page.locator("#inspector-plot circle.point").count() == 1  # (z, a) marked on f
    page.screenshot(path=str(shots / "inspector-hidden.png"))
    # The inspector opened on the right, away from hidden layer 1, over the loss layer: close it first.
    page.keyboard.press("Escape")
    assert page.locator("#inspector").is_hidden()
    # A classifier's output neurons are its classes, numbered from 0 as the drawing shows them.
    page.get_by_role("button", name="Inspect Output layer, class 0").click()
    assert page.locator("#inspector-title").text_content() == "Output layer, class 0"
    assert page.locator('#network .net-box .col-output .node[data-j="0"] .class-name').first.text_content() == "0"
    page.keyboard.press("Escape")
    # The loss layer: −log p(true class) for the probe.
    page.get_by_role("button", name="Inspect the loss layer").click()
    assert page.locator("#inspector-title").text_content() == "Loss layer"
    assert "−log p(y)" in page.locator("#inspector-maths").text_content()
    loss_shown = float(page.locator(".eq.loss .eq-value").text_content())
    status = httpx.get(f"{server.url}/api/sessions/{sid}").json()
    acts = probe
    for layer in model["layers"][:-1]:
        acts = np.tanh(acts @ np.array(layer["weights"]) + np.array(layer["biases"]))
    out = acts @ np.array(model["layers"][-1]["weights"]) + np.array(model["layers"][-1]["biases"])
    p = np.exp(out - out.max()) / np.exp(out - out.max()).sum()
    assert loss_shown == pytest.approx(-np.log(p[status["probe"]["y"]]), abs=1e-3)
    page.screenshot(path=str(shots / "inspector-loss.png"))
    # It follows training live.
    page.get_by_role("button", name="Step", exact=True).click()
    wait_for(page, f"parseFloat(document.querySelector('.eq.loss .eq-value').textContent) !== {loss_shown}")
    page.locator("#inspector-close").click()
    assert page.locator("#inspector").is_hidden()
    assert page.errors == []


def test_forward_pass_runs_to_the_end_by_keyboard(page, shots):  # noqa: F811
    open_playground(page)
    page.get_by_role("button", name="Forward pass, step by step").click()
    stages = []
    for k in range(5):
        stages.append(page.locator("#forward-caption").text_content())
        lit = page.locator("g.column.lit")
        assert lit.count() == 1
        page.screenshot(path=str(shots / f"forward-{k + 1}.png"))
        if k < 4:
            page.keyboard.press("ArrowRight")  # steps the pass, not training
    assert stages[0].startswith("Input layer") and stages[1].startswith("Hidden layer 1")
    assert stages[3].startswith("Output layer") and "softmax" in stages[3]
    assert stages[4].startswith("Loss layer") and "cross-entropy" in stages[4]
    assert page.locator("#fwd-stage").text_content() == "5 / 5"
    assert epoch(page) == 0  # → moved the pass, it did not train
    page.keyboard.press("ArrowLeft")
    assert page.locator("#fwd-stage").text_content() == "4 / 5"
    page.keyboard.press("Escape")
    assert page.locator("#forward-box").is_hidden() and page.locator("g.column.lit").count() == 0
    assert page.errors == []


def test_backprop_view_colours_links_by_gradient(page, shots):  # noqa: F811
    open_playground(page)
    page.get_by_role("button", name="Step", exact=True).click()
    wait_for(page, "document.querySelector('#epoch').textContent.trim() === '000,001'")
    before = page.evaluate("[...document.querySelectorAll('path.link')].map(p => p.getAttribute('stroke-width'))")
    page.get_by_label("Show gradients (backprop)").check()
    wait_for(page, "document.querySelector('#network').classList.contains('backprop')")
    assert page.locator(".grad-scale").is_visible()  # the key of the gradients' log scale (issue 14)
    after = page.evaluate("[...document.querySelectorAll('path.link')].map(p => p.getAttribute('stroke-width'))")
    assert after != before  # now sized by |∂loss/∂w|, not |w|
    page.screenshot(path=str(shots / "backprop.png"))
    page.get_by_label("Show gradients (backprop)").uncheck()
    wait_for(page, "!document.querySelector('#network').classList.contains('backprop')")
    assert page.errors == []


def test_timeline_scrub_resume_and_rewind(page, server, shots):  # noqa: F811
    open_playground(page)
    sid = session_id(page)
    for k in range(1, 7):
        page.get_by_role("button", name="Step", exact=True).click()
        wait_for(page, f"document.querySelector('#epoch').textContent.trim() === '000,00{k}'")
    wait_for(page, "document.querySelector('#scrub').max === '6'")
    page.locator("#scrub").fill("2")  # drag to epoch 2
    wait_for(
        page,
        "!document.querySelector('#viewing').hidden && document.querySelector('#epoch').textContent.trim() === '000,002'",
    )
    assert "epoch 2" in page.locator("#viewing").text_content()
    assert httpx.get(f"{server.url}/api/sessions/{sid}").json()["epoch"] == 6  # only viewing
    page.screenshot(path=str(shots / "timeline-viewing.png"))
    # Back to live: the slider goes back to the end with the view.
    page.locator("#btn-live").click()
    wait_for(page, "document.querySelector('#viewing').hidden")
    wait_for(
        page,
        "document.querySelector('#scrub').value === '6' && document.querySelector('#scrub-epoch').textContent.includes('6')",
    )
    page.locator("#scrub").fill("2")
    wait_for(
        page,
        "!document.querySelector('#viewing').hidden && document.querySelector('#epoch').textContent.trim() === '000,002'",
    )
    assert page.locator("#scrub").input_value() == "2" and "2" in page.locator("#scrub-epoch").text_content()
    page.get_by_role("button", name="Resume from here").click()
    wait_for(page, "document.querySelector('#viewing').hidden")
    assert httpx.get(f"{server.url}/api/sessions/{sid}").json()["epoch"] == 2
    page.get_by_role("button", name="Rewind to the start").click()
    wait_for(page, "document.querySelector('#epoch').textContent.trim() === '000,000'")
    # Scrubbing while it trains: the view pauses on the checkpoint and the slider stays there.
    page.locator("#btn-play").click()
    wait_for(page, "+document.querySelector('#scrub').max >= 12", timeout=20)
    page.locator("#scrub").fill("3")
    wait_for(page, "!document.querySelector('#viewing').hidden")
    time.sleep(0.5)  # frames that were on their way must not move it
    viewed = page.locator("#viewing").get_attribute("data-epoch")
    assert page.locator("#scrub").input_value() == "3" and viewed == "3", viewed
    assert page.locator("#scrub-epoch").text_content().strip().endswith("3")
    assert page.errors == []


def test_captions_can_be_hidden_and_show_in_presentation_mode(page):
    open_playground(page, "?lang=ja")
    assert "線型変換" in page.locator("#captions").text_content()
    page.get_by_label("説明").uncheck()
    assert page.locator("#captions").is_hidden()
    page.locator("#btn-present").click()
    assert page.locator("#captions").is_visible()
    assert page.errors == []


def test_captions_follow_the_problem_on_the_page_and_for_watchers(browser, server, page):
    open_playground(page)
    sid = session_id(page)
    watcher = browser.new_context(base_url=server.url).new_page()
    watcher.goto(f"/s/{sid}")
    wait_for(watcher, "/^[0-9]/.test(document.querySelector('#loss-train').textContent)")
    for p in (page, watcher):
        assert "cross-entropy" in p.locator("#captions").text_content()
    page.locator("label:has(#ds-reg-plane)").click()  # classification → regression
    # The network restarts (another kind of output) and the page says so.
    wait_for(
        page, "!document.querySelector('#toast').hidden && document.querySelector('#toast').dataset.kind === 'info'"
    )
    assert "epoch 0" in page.locator("#toast").inner_text()
    for p in (page, watcher):
        wait_for(p, "document.querySelector('#captions').textContent.includes('squared error')")
        assert "softmax" not in p.locator("#captions").text_content()
    # The redrawn network shows its numbers at once, although the paused session sends no more frames.
    structure = page.evaluate("document.querySelector('#network').dataset.shapeVersion")
    for p in (page, watcher):
        wait_for(p, f"document.querySelector('#network').dataset.shapeVersion === '{structure}'")
        wait_for(p, "/^[0-9]/.test(document.querySelector('#loss-layer-value').textContent)")
        assert p.evaluate("[...document.querySelectorAll('.node-val')].filter(t => t.textContent.trim()).length") > 4
    watcher.context.close()
    assert page.errors == []


def test_digits_probe_by_sample_and_by_drawing(page, server):
    open_playground(page, "?preset=seed")
    sid = session_id(page)
    assert page.locator(".plot-area").is_hidden() and page.locator(".digit-probe").is_visible()
    wait_for(page, "document.querySelector('#sample-label').textContent.startsWith('sample 1 of')")
    page.locator("#sample-next").click()
    test = httpx.get(f"{server.url}/api/sessions/{sid}/data").json()["test"]
    wait_for(page, "document.querySelector('#sample-label').textContent.startsWith('sample 2 of')")
    for _ in range(50):
        probe = httpx.get(f"{server.url}/api/sessions/{sid}").json()["probe"]
        if probe["x"] == test["x"][1]:
            break
        page.wait_for_timeout(100)
    assert probe == {"x": test["x"][1], "y": test["y"][1]}
    # Draw a vertical stroke in column 4: those pixels light up, the rest stay dark.
    box = page.locator("#digit-pad").bounding_box()
    cell = box["width"] / 8
    page.mouse.move(box["x"] + 4.5 * cell, box["y"] + 1.5 * cell)
    page.mouse.down()
    page.mouse.move(box["x"] + 4.5 * cell, box["y"] + 6.5 * cell, steps=12)
    page.mouse.up()
    for _ in range(50):
        probe = httpx.get(f"{server.url}/api/sessions/{sid}").json()["probe"]
        if probe["y"] == 0 and probe["x"] != test["x"][1]:
            break
        page.wait_for_timeout(100)
    lit = {k for k, v in enumerate(probe["x"]) if v > 0}
    assert lit == {row * 8 + 4 for row in range(1, 7)}
    assert probe["y"] == 0  # the label chosen beside the pad
    assert page.errors == []
