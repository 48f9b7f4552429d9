"""Take the screenshots in docs/screenshots/ by driving the real page in headless Chromium.

Run: .venv/bin/python docs/make_screenshots.py   (starts its own server on a free port)
"""

from __future__ import annotations

import http.server
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the shared server, browser and wait helpers in tests/support

from tests.support.browser import CHROMIUM_ARGS, chromium_path  # noqa: E402
from tests.support.live import LiveServer, free_port  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
SIZES = {"laptop": (1280, 800), "projector": (1920, 1080)}


def wait(page, expression: str, timeout: float = 20.0) -> None:
    if not wait_until(lambda: page.evaluate(expression), timeout):
        raise TimeoutError(expression)


def epoch(page) -> int:
    return int(page.locator("#epoch").inner_text().replace(",", ""))


def open_page(browser, url: str, size: tuple[int, int], **kw):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, **kw)
    page = context.new_page()
    page.goto(url)
    wait(page, "/^[0-9]/.test(document.querySelector('#loss-train')?.textContent || '')")
    return context, page


def train(page, epochs: int) -> None:
    page.locator("#btn-play").click()
    wait(page, f"parseInt(document.querySelector('#epoch').textContent.replace(/,/g, '')) >= {epochs}", 60)
    page.keyboard.press("Space")
    wait(page, "document.querySelector('#btn-play').dataset.state === 'paused'")


def shot(page, name: str) -> None:
    time.sleep(0.4)  # let the last frame paint
    page.screenshot(path=str(OUT / f"{name}.png"))
    print("wrote", OUT / f"{name}.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wiki_dir = Path(tmp) / "wiki"
        wiki_dir.mkdir()
        wiki_port = free_port()
        wiki_url = f"http://127.0.0.1:{wiki_port}"
        handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(wiki_dir))  # noqa: E731
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", wiki_port), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        server = LiveServer(Path(tmp), embed_origins=f"'self' {wiki_url}").start()
        url = server.url
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
                scenes = [
                    ("playground", "/?seed=2", 300),
                    ("seed-figure", "/?preset=seed&seed=1", 40),
                    (
                        "spiral-3-classes",
                        "/?dataset=spiral&classes=3&hidden=8:tanh,8:tanh,8:tanh,8:tanh&optimizer=adam"
                        "&learning_rate=0.003&epochs_per_frame=10&seed=3",
                        1500,
                    ),
                    (
                        "regression",
                        "/?dataset=reg-gauss&hidden=8:tanh,8:tanh&optimizer=adam&learning_rate=0.01&seed=4",
                        300,
                    ),
                ]
                for name, query, epochs in scenes:
                    for size in SIZES.values():
                        context, page = open_page(browser, url + query, size)
                        train(page, epochs)
                        shot(page, f"{name}-{size[0]}x{size[1]}")
                        context.close()

                context, page = open_page(browser, url + "/?present=1&seed=2", (1280, 720))
                train(page, 200)
                shot(page, "presentation-1280x720")
                context.close()
                context, page = open_page(browser, url + "/?present=1&seed=2", SIZES["projector"])
                train(page, 200)
                shot(page, "presentation-1920x1080")
                sid = page.url.split("session=")[1].split("&")[0]
                for width, height in ((390, 844), (844, 390)):  # a student's phone, upright and on its side
                    phone = browser.new_context(
                        viewport={"width": width, "height": height},
                        device_scale_factor=2,
                        is_mobile=True,
                        has_touch=True,
                    )
                    watch = phone.new_page()
                    watch.goto(f"{url}/s/{sid}")
                    wait(watch, "/^[0-9]/.test(document.querySelector('#loss-train').textContent)")
                    time.sleep(0.5)
                    watch.screenshot(path=str(OUT / f"watch-phone-{width}x{height}.png"))
                    print(f"wrote watch-phone-{width}x{height}.png")
                    phone.close()
                page.locator("#btn-present").click()
                page.locator("#btn-share").click()
                wait(
                    page,
                    "document.querySelector('#share-qr').complete && document.querySelector('#share-qr').naturalWidth > 0",
                )
                shot(page, "share-dialog-1920x1080")
                context.close()

                for size in SIZES.values():
                    context, page = open_page(browser, url + "/?lang=ja&seed=2", size)
                    train(page, 150)
                    shot(page, f"japanese-{size[0]}x{size[1]}")
                    context.close()
                context, page = open_page(browser, url + "/?lang=ja&present=1&preset=seed&seed=1", SIZES["projector"])
                train(page, 20)
                shot(page, "japanese-presentation-1920x1080")
                context.close()

                # A deep network scrolls instead of shrinking; vanishing gradients in a deep sigmoid network.
                context, page = open_page(browser, url + "/?seed=2&hidden=" + ",".join(["4:tanh"] * 8), SIZES["laptop"])
                train(page, 50)
                shot(page, "deep-8-layers-1280x800")
                context.close()
                context, page = open_page(
                    browser, url + "/?seed=1&hidden=" + ",".join(["4:sigmoid"] * 6), SIZES["laptop"]
                )
                page.get_by_label("Show gradients (backprop)").check()
                wait(page, "document.querySelector('#network').classList.contains('backprop')")
                shot(page, "vanishing-gradients-1280x800")
                context.close()

                # Embeds at the size Share suggests and smaller, each laying itself out for its size.
                for width, height in ((1000, 640), (800, 500), (700, 450), (480, 640)):
                    context, page = open_page(browser, url + "/embed?seed=2", (width, height))
                    train(page, 150)
                    shot(page, f"embed-{width}x{height}")
                    context.close()

                # Teaching views.
                context, page = open_page(browser, url + "/?seed=2", SIZES["laptop"])
                train(page, 60)
                page.get_by_role("button", name="Inspect Hidden layer 1, neuron 2").click()
                shot(page, "inspector-hidden-1280x800")
                page.keyboard.press("Escape")  # it opened on the right, over the output and loss layers
                page.get_by_role("button", name="Inspect Output layer, class 1").click(position={"x": 8, "y": 8})
                shot(page, "inspector-softmax-1280x800")
                page.get_by_role("button", name="Inspect the loss layer").click()
                shot(page, "inspector-loss-1280x800")
                page.locator("#inspector-close").click()
                page.get_by_role("button", name="Forward pass, step by step").click()
                for k in range(5):
                    shot(page, f"forward-{k + 1}-1280x800")
                    page.keyboard.press("ArrowRight")
                page.keyboard.press("Escape")
                page.get_by_label("Show gradients (backprop)").check()
                wait(page, "document.querySelector('#network').classList.contains('backprop')")
                shot(page, "backprop-1280x800")
                page.get_by_label("Show gradients (backprop)").uncheck()
                page.locator("#scrub").fill("10")
                wait(page, "!document.querySelector('#viewing').hidden")
                shot(page, "timeline-1280x800")
                context.close()

                context, page = open_page(browser, url + "/?preset=seed&seed=1", SIZES["laptop"])
                train(page, 30)
                page.locator("canvas.cells").nth(0).click(position={"x": 10, "y": 100})  # a compact layer's cell
                shot(page, "inspector-seed-figure-1280x800")
                context.close()

                # A wiki page on another origin embedding a snapshot.
                made = httpx.post(
                    url + "/api/sessions",
                    json={"dataset": "xor", "seed": 5, "hidden_layers": [{"units": 6, "activation": "relu"}]},
                ).json()
                auth = {"Authorization": f"Bearer {made['control_token']}"}
                for _ in range(150):
                    httpx.post(f"{url}/api/sessions/{made['id']}/step", headers=auth)
                snap = httpx.post(
                    f"{url}/api/sessions/{made['id']}/snapshots", json={"name": "xor, trained"}, headers=auth
                ).json()
                (wiki_dir / "page.html").write_text(
                    "<!doctype html><meta charset=utf-8><title>Team wiki</title>"
                    "<body style='font-family:sans-serif;margin:2rem;background:#fafafa'>"
                    "<h1>Week 3: what a hidden layer does</h1><p>Press play and watch the XOR boundary form.</p>"
                    f"<iframe src='{url}/embed/snapshot/{snap['snapshot_id']}?hide=data,hyper' width='1200' height='620' "
                    "style='border:1px solid #ccc;border-radius:8px'></iframe></body>"
                )
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.goto(f"{wiki_url}/page.html")
                frame = None
                for _ in range(200):
                    frame = next((f for f in page.frames if "/embed/" in f.url), None)
                    if frame and frame.evaluate(
                        "/^[0-9]/.test(document.querySelector('#loss-train')?.textContent || '')"
                    ):
                        break
                    time.sleep(0.05)
                shot(page, "embed-in-wiki-1280x800")
                context.close()
                browser.close()
        finally:
            server.stop()
            httpd.shutdown()


if __name__ == "__main__":
    main()
