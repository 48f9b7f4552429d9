"""The full playground in Chromium: editing data, CSV upload, weight edits, presets, divergence."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_playground import epoch, open_playground

pytestmark = pytest.mark.e2e


def session_id(page) -> str:
    return re.search(r"session=([^&]+)", page.url).group(1)


def n_points(server, sid) -> int:
    data = httpx.get(f"{server.url}/api/sessions/{sid}/data").json()
    return len(data["train"]["y"]) + len(data["test"]["y"])


def test_clicking_the_plot_adds_and_removes_points(page, server):
    open_playground(page)
    sid = session_id(page)
    assert n_points(server, sid) == 500
    page.get_by_label("adds a point").check()
    plot = page.locator("#boundary")
    plot.click(position={"x": 40, "y": 40})
    wait_for(page, "document.querySelector('#ds-custom') !== null")
    assert n_points(server, sid) == 501
    plot.click(position={"x": 60, "y": 40}, modifiers=["Shift"])  # the other class
    wait_for(page, "document.querySelector('.dataset-choice.custom').textContent.includes('502')")
    data = httpx.get(f"{server.url}/api/sessions/{sid}/data").json()
    assert sorted(data["train"]["y"][-2:]) == [0, 1]  # class 0 by default, Shift-click class 1
    page.get_by_label("removes the nearest point").check()
    plot.click(position={"x": 60, "y": 40})
    wait_for(page, "document.querySelector('.dataset-choice.custom').textContent.includes('501')")
    assert n_points(server, sid) == 501
    assert page.errors == []


def test_csv_upload_replaces_the_data_and_a_bad_file_names_the_line(page, server, tmp_path):
    open_playground(page)
    sid = session_id(page)
    good = tmp_path / "three.csv"
    rows = ["x1,x2,label"] + [f"{x},{y},{'abc'[(x + y) % 3]}" for x in range(-4, 5) for y in range(-4, 5)]
    good.write_text("\n".join(rows))
    page.set_input_files("#csv-file", str(good))
    wait_for(page, "document.querySelector('#ds-custom') !== null")
    wait_for(page, "document.querySelectorAll('.column[data-layer=\"3\"] g.node').length === 3")  # 3 classes
    assert n_points(server, sid) == 81
    bad = tmp_path / "bad.csv"
    bad.write_text("x1,x2,label\n1,2,a\n3,4,b\n5,oops,a\n6,7,b\n")
    page.set_input_files("#csv-file", str(bad))
    # The error, not the good upload's "new dataset" note that may still be showing.
    wait_for(
        page, "!document.querySelector('#toast').hidden && document.querySelector('#toast').dataset.kind === 'error'"
    )
    # Rejected: the old data stays, so the picker no longer names the rejected file.
    assert page.locator(".upload .file-name").inner_text() == "No file chosen"
    message = page.locator("#toast").inner_text()
    assert "line 4" in message.lower() and "oops" in message
    assert n_points(server, sid) == 81  # nothing lost
    assert [e for e in page.errors if "422" not in e] == []  # the 422 itself is the expected answer


def test_clicking_a_link_edits_its_weight_live(page, server):
    open_playground(page)
    sid = session_id(page)
    # A point on this link's curve, a third of the way along, in page coordinates.
    x, y = page.evaluate("""() => {
        const path = document.querySelector('path.link[data-l="0"][data-i="1"][data-j="2"]');
        const p = path.getPointAtLength(path.getTotalLength() / 3);
        const m = path.getScreenCTM();
        return [p.x * m.a + p.y * m.c + m.e, p.x * m.b + p.y * m.d + m.f];
    }""")
    assert page.evaluate(f"document.elementFromPoint({x}, {y}).dataset.j") == "2"
    page.mouse.click(x, y)
    editor = page.get_by_label("New value for this weight")
    editor.fill("-2.5")
    editor.press("Enter")
    for _ in range(50):
        model = httpx.get(f"{server.url}/api/sessions/{sid}/model").json()
        if model["layers"][0]["weights"][1][2] == -2.5:
            break
        page.wait_for_timeout(100)
    assert model["layers"][0]["weights"][1][2] == -2.5
    # The frame carries the new value to the drawing: the link turns orange (negative).
    wait_for(
        page,
        "document.querySelector('path.link[data-l=\"0\"][data-i=\"1\"][data-j=\"2\"]').getAttribute('stroke').startsWith('rgb(245')",
    )
    assert page.errors == []


def test_seed_figure_preset_learns_digits(page):
    open_playground(page, "?preset=seed")
    titles = page.locator(".col-title").all_text_contents()
    assert titles == ["Input layer", "Hidden layer 1", "Hidden layer 2", "Output layer", "Loss layer"]
    subs = page.locator(".col-sub").all_text_contents()
    assert subs == [
        "64 neurons",
        "128 neurons",
        "ReLU",
        "64 neurons",
        "ReLU",
        "10 neurons",
        "Softmax",
        "cross-entropy loss",
    ]
    assert page.locator("canvas.digit").count() == 1
    page.get_by_role("button", name="Play", exact=True).click()
    wait_for(page, "parseFloat(document.querySelector('#acc-test').textContent) >= 90", timeout=30)
    assert page.locator(".confusion-area").is_visible()
    assert page.locator("#confusion td").count() == 100
    assert page.errors == []


def test_divergence_pauses_and_explains(page):
    open_playground(page, "?hidden=8:linear,8:linear&learning_rate=3")  # diverges in its first epoch
    page.get_by_role("button", name="Play", exact=True).click()
    wait_for(page, "!document.querySelector('#diverged').hidden", timeout=20)
    banner = page.locator("#diverged").inner_text()
    assert "learning rate" in banner
    assert page.locator("#btn-play").get_attribute("data-state") == "paused"
    page.get_by_role("button", name="Lower the learning rate and reset").click()
    wait_for(page, "document.querySelector('#diverged').hidden")
    # The reset frame and the answer carrying the lowered rate's panel arrive in either order.
    wait_for(page, "document.querySelector('#f-learning_rate').value === '0.3'")
    assert epoch(page) == 0
    assert page.errors == []


def test_inspector_edits_a_bias_live(page, server):
    open_playground(page)
    sid = session_id(page)
    page.get_by_role("button", name="Inspect Hidden layer 2, neuron 1").click()
    field = page.locator(".bias-edit input")
    field.fill("1.25")
    page.locator(".bias-edit button").click()
    for _ in range(50):
        if httpx.get(f"{server.url}/api/sessions/{sid}/model").json()["layers"][1]["biases"][0] == 1.25:
            break
        page.wait_for_timeout(100)
    assert httpx.get(f"{server.url}/api/sessions/{sid}/model").json()["layers"][1]["biases"][0] == 1.25
    wait_for(page, "document.querySelector('.bias-edit input').value === '1.2500'")  # the frame came back
    assert page.errors == []


def test_figure_export_as_svg_and_png(page):
    open_playground(page)
    page.locator("#btn-share").click()
    with page.expect_download() as svg_download:
        page.locator("#export-svg").click()
    svg = Path(svg_download.value.path()).read_text(encoding="utf-8")
    assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert svg.count("<image") >= 8  # the heatmap thumbnails became images
    assert "<foreignObject" not in svg and "Hidden layer 1" in svg
    with page.expect_download() as png_download:
        page.locator("#export-png").click()
    data = Path(png_download.value.path()).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert page.errors == []


def test_hover_preview_and_plot_switches(page):
    open_playground(page)
    pixels = "Array.from(document.querySelector('#boundary').getContext('2d').getImageData(0, 0, 600, 600).data.slice(0, 600 * 40 * 4)).join()"
    before = page.evaluate(pixels)
    page.locator('.column[data-layer="1"] g.node[data-j="0"]').hover()
    wait_for(page, "!document.querySelector('#plot-caption').hidden")
    assert page.locator("#plot-caption").text_content() == "Hidden layer 1, neuron 1"
    assert page.evaluate(pixels) != before  # the neuron's map, large
    # An output neuron of a classifier is its class, numbered as the drawing labels it.
    page.locator(".col-output g.node[data-j='1']").first.hover()
    wait_for(page, "document.querySelector('#plot-caption').textContent === 'Output layer, class 1'")
    page.mouse.move(5, 790)
    wait_for(page, "document.querySelector('#plot-caption').hidden")
    full = "document.querySelector('#boundary').getContext('2d').getImageData(0, 0, 600, 600).data.join()"
    plain = page.evaluate(full)
    page.get_by_label("Show test data").check()
    assert page.evaluate(full) != plain  # test points drawn too
    page.get_by_label("Discretize output").check()
    assert page.evaluate(full) != plain
    assert page.errors == []
