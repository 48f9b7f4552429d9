"""Readable from the back row (issue 14), measured in Chromium with getBoundingClientRect:

- the network drawing keeps text ≥ 12 px on a laptop, ≥ 18 px in presentation mode, and
  touch targets ≥ 24 px (44 px on a phone), by laying out differently: a deep network
  scrolls, a phone held upright gets the drawing top to bottom;
- presentation mode at 1280×720 keeps the learning rate and the preset menu and fits the
  network, plot, loss and captions on the screen;
- an embed shows the network, plot and loss (unless hidden) in its own viewport at every
  size Share suggests or a wiki might use, for every `hide` value;
- the gradient view's widths are on one scale: vanishing gradients look thin;
- the smaller readability defects of item 12.

One browser and one server for the module (the session fixtures); each view is one page.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from app.routes.classroom import HIDEABLE
from tests.e2e.conftest import wait_for
from tests.e2e.test_playground import open_playground

pytestmark = pytest.mark.e2e

# Rendered sizes, in CSS pixels, of the drawing's visible text and of its controls.
MEASURE = """() => {
  const shown = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const texts = [];
  for (const el of document.querySelectorAll("#network svg text, #network svg tspan")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.nodeValue.trim());
    if (!own || !shown(el)) continue;
    texts.push([el.textContent.trim(), parseFloat(getComputedStyle(el).fontSize) * el.closest("svg").getScreenCTM().a]);
  }
  for (const el of document.querySelectorAll("#network .col-ctl span, #network .col-ctl select, #network .net-head .count, #network .presets .caption, #network .presets select")) {
    if (!shown(el)) continue;
    const svg = el.closest("svg");
    texts.push([el.textContent.trim().slice(0, 20), parseFloat(getComputedStyle(el).fontSize) * (svg ? svg.getScreenCTM().a : 1)]);
  }
  const targets = [];
  for (const el of document.querySelectorAll("#network button, #network select, #network [role=button]")) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    targets.push([el.getAttribute("aria-label") || el.textContent.trim(), Math.min(r.width, r.height)]);
  }
  const svg = document.querySelector("#net-svg");
  return { texts, targets, variant: svg.dataset.variant,
           values: [...svg.querySelectorAll(".col-hidden .node-val")].filter(shown).length };
}"""


def box(page, selector: str) -> dict:
    return page.evaluate(
        f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
        " return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height}; })()"
    )


def settle(page) -> None:
    """Two animation frames: the drawing refits on resize in the next one."""
    page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def smallest(sizes: list) -> tuple:
    return min(sizes, key=lambda s: s[1])


def new_page(browser, server, width: int, height: int, **kw):
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=server.url, **kw)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e} {e.stack}"))
    return context, page


# --- item 3: minimum sizes, met by laying out differently ------------------------------------


def test_eight_hidden_layers_on_a_laptop_scroll_instead_of_shrinking(page):
    open_playground(page, "?hidden=" + ",".join(["4:tanh"] * 8))
    settle(page)
    m = page.evaluate(MEASURE)
    assert smallest(m["texts"])[1] >= 12 - 0.05, smallest(m["texts"])
    assert smallest(m["targets"])[1] >= 24 - 0.05, smallest(m["targets"])
    # The drawing is wider than its panel, which scrolls sideways to it.
    scroller = page.evaluate(
        "(() => { const b = document.querySelector('.net-box'); return [b.scrollWidth, b.clientWidth]; })()"
    )
    assert scroller[0] > scroller[1]


def test_present_mode_at_1280x720_is_large_and_fits_one_screen(browser, server):
    context, page = new_page(browser, server, 1280, 720)
    try:
        open_playground(page, "?present=1")
        settle(page)
        m = page.evaluate(MEASURE)
        assert smallest(m["texts"])[1] >= 18 - 0.05, smallest(m["texts"])
        assert smallest(m["targets"])[1] >= 24 - 0.05, smallest(m["targets"])
        assert m["values"] == 6  # every hidden neuron's value, large enough to read
        # Item 5: the controls a teacher demonstrates with stay ...
        for control in ("#f-learning_rate", "#f-preset"):
            assert page.locator(control).is_visible()
            r = box(page, control)
            assert r["bottom"] <= 720 and r["right"] <= 1280
        # ... and the network, plot, loss and captions are all on the one screen.
        for part in ("#net-svg", "#boundary", "#loss-chart", "#captions"):
            r = box(page, part)
            assert r["height"] > 40 and r["top"] >= 0 and r["bottom"] <= 720 and r["right"] <= 1280, (part, r)
        assert page.evaluate("document.documentElement.scrollHeight") <= 720
        caption = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#captions li')).fontSize)")
        assert caption >= 18
        assert page.errors == []
    finally:
        context.close()


def test_a_phone_held_upright_gets_the_drawing_top_to_bottom(browser, server, make_session):
    sid, _ = make_session()
    context, page = new_page(browser, server, 390, 844, is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        page.goto(f"/s/{sid}")
        wait_for(page, "/^[0-9]/.test(document.querySelector('#loss-train').textContent)")
        settle(page)
        m = page.evaluate(MEASURE)
        assert m["variant"] == "vertical"
        assert smallest(m["texts"])[1] >= 12 - 0.05, smallest(m["texts"])
        assert smallest(m["targets"])[1] >= 44, smallest(m["targets"])
        drawing = box(page, "#net-svg")
        assert drawing["left"] >= 0 and drawing["right"] <= 390  # no sideways scrolling on a phone
        # Turned on its side, the drawing runs left to right again and takes the width.
        page.set_viewport_size({"width": 844, "height": 390})
        settle(page)
        wait_for(page, "document.querySelector('#net-svg').dataset.variant !== 'vertical'")
        assert box(page, "#net-svg")["width"] > 0.8 * 844 - 80
    finally:
        context.close()


# --- item 4: embeds lay themselves out for their own size --------------------------------------

SIZES = [(1000, 640), (800, 500), (700, 450), (480, 640)]
# The training settings in the top bar, as its partial lists them.
HYPER_PARTIAL = Path(__file__).resolve().parents[2] / "templates" / "partials" / "_hyper.html"
HYPER_FIELDS = re.findall(r'(?:select|slider)_field\("(\w+)"', HYPER_PARTIAL.read_text())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_an_embed_shows_network_plot_and_loss_at_every_hide_value(browser, server, size):
    width, height = size
    context, page = new_page(browser, server, width, height)
    try:
        page.goto("/embed?seed=2")
        wait_for(page, "/^[0-9]/.test(document.querySelector('#loss-train').textContent)")
        settled = page.evaluate("document.body.className")
        baseline = None
        # The server's only doing for ?hide= is the body's classes (app/routes/classroom.py):
        # each value is tried on one page by setting them as the server would.
        for hide in ["", *HIDEABLE]:
            page.evaluate(f"document.body.className = {(settled + (' hide-' + hide if hide else '')).strip()!r}")
            settle(page)
            settle(page)
            parts = ["#net-svg"]
            if hide not in ("output", "plot"):
                parts.append("#boundary")
            if hide not in ("output", "chart"):
                parts.append("#loss-chart")
            for part in parts:
                r = box(page, part if part != "#net-svg" else ".net-box, #net-svg")
                assert r["height"] >= 60 and r["width"] >= 60, (hide, part, r)
                assert r["left"] >= 0 and r["top"] >= 0 and r["right"] <= width + 0.5 and r["bottom"] <= height + 0.5, (
                    hide,
                    part,
                    r,
                )
            net = box(page, ".net-box, #net-svg")
            if not hide:
                baseline = net
                if width >= 800:  # side by side when there is width
                    assert (
                        box(page, "#boundary")["left"] >= net["right"]
                        and box(page, "#loss-chart")["left"] >= net["right"]
                    )
            if hide == "output":  # what is hidden gives its room to the rest: beside it, or under it
                grown = net["width"] - baseline["width"] if width > 600 else net["height"] - baseline["height"]
                assert grown >= 100, (net, baseline)
            if hide == "data" and width > 900:
                assert net["width"] >= baseline["width"] + 100
        assert page.errors == []
    finally:
        context.close()


# The top bar's controls as shown, and the box they are seen through (the bar's, within the window).
TOPBAR = """() => {
  const bar = document.querySelector(".topbar");
  if (getComputedStyle(bar).display === "none") return null;
  const b = bar.getBoundingClientRect();
  const edge = { left: Math.max(b.left, 0), right: Math.min(b.left + bar.clientWidth, innerWidth),
                 top: Math.max(b.top, 0), bottom: Math.min(b.top + bar.clientHeight, innerHeight) };
  const controls = [];
  for (const el of bar.querySelectorAll("button, select, input, a, output")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || el.closest(":popover-open")) continue; // hidden, or over the page
    controls.push({ id: el.id || el.textContent.trim(), left: r.left, right: r.right, top: r.top, bottom: r.bottom });
  }
  return { edge, controls };
}"""

# The focused control's box, and whether it is one of the training settings.
FOCUSED = """() => {
  const el = document.activeElement, r = el.getBoundingClientRect();
  return { id: el.id, setting: !!el.closest("#hyper"), toggle: el.hasAttribute("popovertarget"),
           left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height };
}"""

# The network's scroll box, its drawing's loss box and its panel, and the scroll fade's widths.
NET_BOX = """() => {
  const box = document.querySelector(".net-box"), cs = getComputedStyle(box);
  const b = box.getBoundingClientRect(), loss = document.querySelector("#net-svg .loss-box rect").getBoundingClientRect();
  const panel = document.querySelector(".network-panel").getBoundingClientRect();
  return { visible: { left: b.left + box.clientLeft, top: b.top + box.clientTop,
                      right: b.left + box.clientLeft + box.clientWidth, bottom: b.top + box.clientTop + box.clientHeight },
           loss: { left: loss.left, top: loss.top, right: loss.right, bottom: loss.bottom },
           panel: { left: panel.left, top: panel.top, right: panel.right, bottom: panel.bottom },
           scrolls: [box.scrollWidth > box.clientWidth, box.scrollHeight > box.clientHeight],
           fade: ["--net-fade-r", "--net-fade-b"].map((p) => parseFloat(cs.getPropertyValue(p)) || 0) };
}"""


def inside(inner: dict, outer: dict, slack: float = 0.5) -> bool:
    return (
        inner["left"] >= outer["left"] - slack
        and inner["right"] <= outer["right"] + slack
        and inner["top"] >= outer["top"] - slack
        and inner["bottom"] <= outer["bottom"] + slack
    )


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_an_embed_cuts_no_top_bar_control_and_shows_or_signals_the_whole_network(browser, server, size):
    """Item 4, the embed's chrome: a control cut in half by the top bar's edge looks broken, so
    none is, at any size or ?hide= value; every training setting is reached with Tab (through
    the "Training settings" button where the bar has no room for them) and is whole when it
    has the focus. At 700×450 a two-layer network is whole, loss box included; a network that
    does not fit scrolls, and its edge fades where there is more to see. Text stays ≥ 12 px."""
    width, height = size
    context, page = new_page(browser, server, width, height)
    try:
        page.goto("/embed?seed=2")
        wait_for(page, "/^[0-9]/.test(document.querySelector('#loss-train').textContent)")
        settle(page)
        settled = page.evaluate("document.body.className")
        for hide in ["", *HIDEABLE]:
            page.evaluate(f"document.body.className = {(settled + (' hide-' + hide if hide else '')).strip()!r}")
            settle(page)
            bar = page.evaluate(TOPBAR)
            if hide == "header":
                assert bar is None
                continue
            assert bar["controls"], hide
            for control in bar["controls"]:
                assert inside(control, bar["edge"]), (hide, control, bar["edge"])
        page.evaluate(f"document.body.className = {settled!r}")
        settle(page)

        # Tab from Play through the top bar: every setting, each whole and in the window.
        page.focus("#btn-play")
        reached = set()
        for _ in range(20):
            page.keyboard.press("Tab")
            f = page.evaluate(FOCUSED)
            if f["toggle"]:
                page.keyboard.press("Enter")  # opens the settings panel; Tab goes on into it
                continue
            if not f["setting"]:
                if reached:
                    break
                continue
            assert f["width"] > 0 and inside(f, {"left": 0, "top": 0, "right": width, "bottom": height}), f
            reached.add(f["id"])
        assert reached == {f"f-{name}" for name in HYPER_FIELDS}, reached
        # Tab past the last setting: focus has left the settings panel, and the panel closed.
        is_open = "document.querySelector('#hyper-pop')?.matches(':popover-open') ?? false"
        assert not page.evaluate(is_open)
        if page.locator("#btn-hyper").is_visible():  # and back: Shift+Tab past its button closes it too
            page.focus("#btn-hyper")
            page.keyboard.press("Enter")
            wait_for(page, is_open)
            page.keyboard.press("Shift+Tab")
            assert not page.evaluate(is_open), page.evaluate("document.activeElement.id")
        page.keyboard.press("Escape")
        settle(page)

        net = page.evaluate(NET_BOX)
        if size == (700, 450):
            assert net["scrolls"] == [False, False], net
            assert inside(net["loss"], net["visible"]) and inside(net["loss"], net["panel"]), net
        for axis, scrolls in enumerate(net["scrolls"]):  # a fade only where there is more to see
            assert (net["fade"][axis] > 10) if scrolls else (net["fade"][axis] == 0), net
        m = page.evaluate(MEASURE)
        assert smallest(m["texts"])[1] >= 12 - 0.05, smallest(m["texts"])
        assert smallest(m["targets"])[1] >= 24 - 0.05, smallest(m["targets"])
        assert page.errors == []
    finally:
        context.close()


def test_hide_data_from_the_url_gives_the_network_the_room(browser, server):
    context, page = new_page(browser, server, 1000, 640)
    try:
        page.goto("/embed?seed=2&hide=data")
        wait_for(page, "/^[0-9]/.test(document.querySelector('#loss-train').textContent)")
        settle(page)
        net, plot = box(page, ".net-box, #net-svg"), box(page, "#boundary")
        assert net["left"] < 40 and plot["left"] >= net["right"] and plot["right"] <= 1000  # no empty column
    finally:
        context.close()


# --- item 9: one gradient scale a learner can trust --------------------------------------------


def test_vanishing_gradients_in_a_deep_sigmoid_network_look_thin(page):
    open_playground(page, "?seed=1&hidden=" + ",".join(["4:sigmoid"] * 6))
    page.get_by_label("Show gradients (backprop)").check()
    wait_for(page, "document.querySelector('#network').classList.contains('backprop')")
    widths = """(l) => { const w = [...document.querySelectorAll(`#net-svg path.link[data-l="${l}"]`)]
                   .map((p) => parseFloat(p.getAttribute('stroke-width')) * p.getScreenCTM().a);
                 return w.reduce((a, b) => a + b, 0) / w.length; }"""
    wait_for(page, f"({widths})(6) > 1")
    first, last = page.evaluate(f"({widths})(0)"), page.evaluate(f"({widths})(6)")
    # Sigmoid's slope is at most ¼: six layers in, the gradients are thousands of times smaller,
    # and their links look it (per-layer scaling drew both about as thick).
    assert first < last / 3, (first, last)
    keys = page.locator(".grad-scale-keys text").all_text_contents()
    assert keys[0] == "10⁻⁵" and keys[-1] == "1" and "10⁻³" in keys  # the key shows magnitudes
    assert page.locator(".grad-scale").is_visible()


# --- item 12: the smaller ones ----------------------------------------------------------------


def test_japanese_labels_stay_whole(page):
    open_playground(page, "?lang=ja")
    caption = page.evaluate(
        "(() => { const el = document.querySelector('.presets .caption');"
        " return [el.getBoundingClientRect().height, parseFloat(getComputedStyle(el).lineHeight) || 1.5 * parseFloat(getComputedStyle(el).fontSize)]; })()"
    )
    assert caption[0] < 1.5 * caption[1]  # "プリセット" on one line
    overflow = page.evaluate(
        """[...document.querySelectorAll('.dataset-choice')].map((tile) => {
             const t = tile.getBoundingClientRect(), s = tile.querySelector('span:last-child').getBoundingClientRect();
             return [tile.textContent.trim(), s.right - t.right + 1, tile.scrollWidth - tile.clientWidth]; })"""
    )
    assert [o for o in overflow if o[1] > 0 or o[2] > 0] == []  # "排他的論理和" inside its tile


def test_a_tooltip_never_covers_the_inspector(page):
    open_playground(page, "?seed=2")
    page.get_by_role("button", name="Inspect Hidden layer 1, neuron 1").click()
    inspector = box(page, "#inspector")
    # A point on a link just left of the inspector (it opened on the right): the tip would land on it.
    point = page.evaluate(
        """(edge) => { for (const p of document.querySelectorAll('#net-svg path.link')) {
             const len = p.getTotalLength(), m = p.getScreenCTM();
             for (let s = 0; s <= len; s += 2) {
               const q = p.getPointAtLength(s), x = m.a * q.x + m.e, y = m.d * q.y + m.f;
               if (x > edge - 30 && x < edge - 8 && document.elementFromPoint(x, y) === p) return [x, y];
             } } return null; }""",
        inspector["left"],
    )
    assert point is not None
    page.mouse.move(*point)
    settle(page)
    tip = box(page, ".net-tip")
    visible = page.evaluate("!document.querySelector('.net-tip').hidden")
    overlaps = (
        tip["left"] < inspector["right"] and inspector["left"] < tip["right"] and tip["top"] < inspector["bottom"]
    )
    assert not (visible and overlaps and inspector["top"] < tip["bottom"]), (tip, inspector)
    assert visible  # and it still shows, beside the pointer


def test_the_class_number_on_an_output_neuron_is_visible_in_the_dark_theme(browser, server):
    context, page = new_page(browser, server, 1280, 800)
    try:
        page.add_init_script("localStorage.setItem('mlp:theme', 'dark')")
        open_playground(page, "?seed=2")
        node = page.locator("#net-svg .col-output g.node").nth(1)  # class 1, the blue one
        clip = node.locator("rect.frame").bounding_box()
        with_label = base64.b64encode(page.screenshot(clip=clip)).decode()
        page.evaluate(
            "document.querySelectorAll('#net-svg .class-name').forEach((t) => t.style.setProperty('visibility', 'hidden'))"
        )
        without = base64.b64encode(page.screenshot(clip=clip)).decode()
        # The largest change in luminance the glyph makes against what is under it.
        contrast = page.evaluate(
            """async ([a, b]) => {
                 const pixels = async (b64) => {
                   const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
                   const img = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
                   const c = new OffscreenCanvas(img.width, img.height), ctx = c.getContext('2d');
                   ctx.drawImage(img, 0, 0); return ctx.getImageData(0, 0, img.width, img.height).data; };
                 const [p, q] = [await pixels(a), await pixels(b)];
                 const lum = (d, k) => 0.2126 * d[k] + 0.7152 * d[k + 1] + 0.0722 * d[k + 2];
                 let best = 0;
                 for (let k = 0; k < p.length; k += 4) best = Math.max(best, Math.abs(lum(p, k) - lum(q, k)));
                 return best; }""",
            [with_label, without],
        )
        assert contrast >= 120, contrast
    finally:
        context.close()


def test_input_weight_matrix_rows_line_up_with_their_features(page):
    open_playground(page, "?hidden=" + ",".join(["256:relu"] * 8))
    settle(page)
    rows = page.evaluate(
        """[...document.querySelectorAll('#net-svg canvas.wmatrix[data-l="0"]')].map((c) => {
             const r = c.getBoundingClientRect(); return (r.top + r.bottom) / 2; })"""
    )
    nodes = page.evaluate(
        """[...document.querySelectorAll('#net-svg g.node.feature:not(.inactive) rect.frame')].map((f) => {
             const r = f.getBoundingClientRect(); return (r.top + r.bottom) / 2; })"""
    )
    assert len(rows) == len(nodes) == 2  # one strip a feature, level with X₁ and X₂
    assert rows == pytest.approx(nodes, abs=1.5)


def test_the_timeline_stays_on_one_line_as_epochs_grow(page):
    open_playground(page, "?seed=2")
    # The label as it reads after a million epochs (teach.epoch_n).
    page.evaluate("document.querySelector('#scrub-epoch').textContent = 'epoch 1000000'")
    settle(page)
    tops = page.evaluate(
        "[...document.querySelectorAll('.timeline > *')].filter((e) => e.getBoundingClientRect().width > 0)"
        ".map((e) => { const r = e.getBoundingClientRect(); return [e.id || e.tagName, (r.top + r.bottom) / 2, r.height]; })"
    )
    centres = [t[1] for t in tops]
    assert max(centres) - min(centres) < 8, tops  # "Rewind to the start" on the same line
    rewind = [t for t in tops if t[0] == "btn-rewind"][0]
    assert rewind[2] < 40  # and on one line of its own


def test_the_plot_and_the_loss_chart_have_ticks_and_a_colour_key(page):
    open_playground(page, "?seed=2")
    ticks = page.locator(".plot .axis-x .tick").all_text_contents()
    assert ticks[0] == "−6" and ticks[-1] == "6" and len(ticks) == 5
    assert page.locator(".plot .axis-y .tick").count() == 5
    size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.plot .axis-x .tick')).fontSize)")
    assert size >= 12
    assert page.locator("#plot-legend").inner_text().split() == ["class", "0", "class", "1"]
    page.locator("#btn-play").click()  # a few points on the loss chart
    wait_for(page, "parseInt(document.querySelector('#epoch').textContent.replace(/,/g, '')) >= 3")
    page.locator("#btn-play").click()
    # The loss chart draws at its displayed size, with tick labels in its left margin.
    chart = page.evaluate(
        """(() => { const c = document.querySelector('#loss-chart'), r = window.devicePixelRatio;
             const d = c.getContext('2d').getImageData(0, 0, Math.round(30 * r), c.height).data;
             let ink = 0; for (let k = 3; k < d.length; k += 4) ink += d[k] > 0;
             return [c.width, Math.round(c.clientWidth * r), ink]; })()"""
    )
    assert chart[0] == chart[1] and chart[2] > 20, chart
