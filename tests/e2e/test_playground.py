"""The playground page in real Chromium, as a learner uses it."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e


def epoch(page) -> int:
    return int(page.locator("#epoch").inner_text().replace(",", ""))


def open_playground(page, query: str = ""):
    page.goto("/" + query)
    # The page creates its own session and rewrites the URL to carry its id.
    page.wait_for_url(re.compile(r"session="), timeout=10_000)
    # The first frame has been drawn once the loss figure is a number.
    wait_for(page, "/^[0-9]/.test(document.querySelector('#loss-train').textContent)")


def test_page_draws_the_default_network(page):
    open_playground(page)
    svg = page.locator("#net-svg")
    assert svg.count() == 1
    titles = page.locator(".col-title").all_text_contents()
    assert titles == ["Input layer", "Hidden layer 1", "Hidden layer 2", "Output layer", "Loss layer"]
    subs = page.locator(".col-sub").all_text_contents()
    assert subs == ["2 neurons", "4 neurons", "Tanh", "2 neurons", "Tanh", "2 neurons", "Softmax", "cross-entropy loss"]
    assert page.locator('.column[data-layer="1"] g.node').count() == 4
    # Links: 2·4 + 4·2 + 2·2 weights, each drawn.
    assert page.locator("path.link").count() == 20
    # The first frame paints the links: colour from the weight's sign, width from its size,
    # and that is what is rendered (no stylesheet rule may override the attributes).
    wait_for(page, "document.querySelector('path.link').getAttribute('stroke') !== '#c4c9d0'")
    rendered = page.evaluate("""[...document.querySelectorAll('path.link')].map(p => {
        const cs = getComputedStyle(p);
        return [p.getAttribute('stroke').replace(/ /g, ''), cs.stroke.replace(/ /g, ''),
                parseFloat(p.getAttribute('stroke-width')), parseFloat(cs.strokeWidth)];
    })""")
    for attr_colour, colour, attr_width, width in rendered:
        assert colour == attr_colour and width == pytest.approx(attr_width, abs=0.01)
    assert len({w for *_, w in rendered}) > 5  # widths differ with |w|
    assert page.errors == []


def test_play_makes_the_epoch_climb_and_pause_stops_it(page):
    open_playground(page)
    page.get_by_role("button", name="Play", exact=True).click()
    wait_for(page, "parseInt(document.querySelector('#epoch').textContent.replace(/,/g, '')) >= 20", timeout=15)
    assert page.locator("#btn-play").get_attribute("data-state") == "running"
    page.keyboard.press("Space")  # the pause shortcut
    wait_for(page, "document.querySelector('#btn-play').dataset.state === 'paused'")
    stopped = epoch(page)
    page.wait_for_timeout(600)
    assert epoch(page) == stopped
    loss = page.locator("#loss-test").inner_text()
    assert re.fullmatch(r"\d+\.\d{3}", loss)
    assert page.errors == []


def test_step_trains_exactly_one_epoch(page):
    open_playground(page)
    page.get_by_role("button", name="Step", exact=True).click()
    wait_for(page, "document.querySelector('#epoch').textContent.trim() === '000,001'")
    page.keyboard.press("ArrowRight")
    wait_for(page, "document.querySelector('#epoch').textContent.trim() === '000,002'")
    assert page.errors == []


def test_adding_a_neuron_adds_a_circle_while_training_goes_on(page):
    open_playground(page)
    page.get_by_role("button", name="Play", exact=True).click()
    wait_for(page, "parseInt(document.querySelector('#epoch').textContent.replace(/,/g, '')) >= 5")
    page.get_by_role("button", name="Add a neuron to hidden layer 1").click()
    wait_for(page, "document.querySelectorAll('.column[data-layer=\"1\"] g.node').length === 5")
    assert page.locator("path.link").count() == 2 * 5 + 5 * 2 + 2 * 2
    before = epoch(page)
    wait_for(page, f"parseInt(document.querySelector('#epoch').textContent.replace(/,/g, '')) > {before + 5}")
    assert page.locator("#btn-play").get_attribute("data-state") == "running"
    assert page.errors == []


def test_removing_a_layer_and_switching_to_relu_keep_training(page):
    open_playground(page)
    page.get_by_role("button", name="Play", exact=True).click()
    page.get_by_role("button", name="Remove the last hidden layer").click()
    wait_for(page, "document.querySelectorAll('.col-title').length === 4")
    page.get_by_label("Activation function of hidden layer 1").select_option("relu")
    wait_for(page, "document.querySelector('.column[data-layer=\"1\"] .col-sub.act').textContent === 'ReLU'")
    before = epoch(page)
    wait_for(page, f"parseInt(document.querySelector('#epoch').textContent.replace(/,/g, '')) > {before + 5}")
    # The frames now describe a relu layer and the drawing follows them.
    wait_for(page, "document.querySelectorAll('.column[data-layer=\"1\"] g.node .node-val')[0].textContent !== ''")
    assert page.errors == []


def test_toggling_an_input_feature(page):
    open_playground(page)
    feature = page.get_by_role("button", name="Use X₁² as an input")
    assert feature.get_attribute("aria-pressed") == "false"
    feature.focus()
    page.keyboard.press("Enter")
    wait_for(page, "document.querySelectorAll('.col-sub')[0].textContent.startsWith('3 neurons')")
    assert page.get_by_role("button", name="Use X₁² as an input").get_attribute("aria-pressed") == "true"
    assert page.errors == []
