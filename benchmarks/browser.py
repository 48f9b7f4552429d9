"""Browser figures (target 5): how long the page takes to apply one frame, in headless
Debian Chromium driven by Playwright, for the 6×8 tanh spiral preset, the seed figure
(digits 64→128→64→10) and the default page, at 1280×800 and 1920×1080.

For each page: open it with ?debug=1, wait for the first frame, press Play, let it run
~10 s, and read the Performance API measures "mlp:apply" (the time spent applying one
frame to the page: network drawing, thumbnails, output plot, loss chart; heatmap decoding
happens before, off the paint path) and the ?debug=1 overlay (frames received, decode
time, bytes per frame). A screenshot of each page, overlay included, goes to a temp dir.
The script starts its own server on a free loopback port and stops it at the end.

Run: .venv/bin/python benchmarks/browser.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
from support import LiveServer, Samples, row, verdict, wait_until

from tests.support.browser import CHROMIUM_ARGS, chromium_path

CHROMIUM = chromium_path() or "/usr/bin/chromium"
PAGES = [
    ("spiral preset (6×8 tanh)", "/?preset=spiral&debug=1", True),
    ("seed preset (digits 64-128-64-10)", "/?preset=seed&debug=1", True),
    ("default page (2-4-2-2)", "/?debug=1", False),
]
VIEWPORTS = [(1280, 800), (1920, 1080)]

READ_MEASURES = """() => performance.getEntriesByName("mlp:apply").map(e => [e.startTime, e.duration])"""
OVERLAY = """() => { const o = document.querySelector('.debug-overlay'); return o ? o.textContent : ''; }"""


def overlay_numbers(text: str) -> dict:
    out = {}
    for key, pattern in (
        ("fps", r"frames/s received\s+([\d.]+)"),
        ("apply", r"apply ms \(median\)\s+([\d.]+|NaN)"),
        ("decode", r"decode ms \(median\)\s+([\d.]+|NaN)"),
        ("bytes", r"bytes per frame\s+([\d,]+)"),
        ("total", r"frames total\s+(\d+)"),
    ):
        m = re.search(pattern, text)
        if m:
            out[key] = float(m.group(1).replace(",", "")) if m.group(1) != "NaN" else float("nan")
    return out


def run_page(browser, base_url: str, path: str, viewport: tuple[int, int], seconds: float, shots: Path) -> dict:
    w, h = viewport
    context = browser.new_context(viewport={"width": w, "height": h}, base_url=base_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console.error: {m.text}") if m.type == "error" else None)
    sid = token = None
    try:
        page.goto(path)
        play = page.get_by_role("button", name="Play", exact=True)
        play.wait_for(state="visible", timeout=20_000)
        # page.evaluate, not wait_for_function: our CSP forbids the eval that one needs.
        if not wait_until(
            lambda: page.evaluate(
                "(() => { const o = document.querySelector('.debug-overlay');"
                " return !!o && /frames total\\s+[1-9]/.test(o.textContent); })()"
            ),
            20,
            interval=0.1,
        ):
            raise RuntimeError(f"{path}: no frame within 20 s ({errors})")
        sid = page.evaluate("new URLSearchParams(location.search).get('session')")
        token = page.evaluate(f"sessionStorage.getItem('mlp:token:{sid}')") if sid else None
        play.click()
        seen: dict[float, float] = {}
        time.sleep(1.0)  # the first second after Play: the stream speeds up, the chart grows
        t0 = page.evaluate("performance.now()")
        o0 = overlay_numbers(page.evaluate(OVERLAY))
        end = time.monotonic() + seconds
        while time.monotonic() < end:  # the page keeps at most 500 measures: collect every second
            time.sleep(1.0)
            for start, dur in page.evaluate(READ_MEASURES):
                if start >= t0:
                    seen[start] = dur
        t1 = page.evaluate("performance.now()")
        time.sleep(0.6)  # the overlay refreshes twice a second
        o1 = overlay_numbers(page.evaluate(OVERLAY))
        for start, dur in page.evaluate(READ_MEASURES):
            if t0 <= start <= t1:
                seen[start] = dur
        shot = shots / f"{path.strip('/?').replace('&', '_').replace('=', '-') or 'default'}_{w}x{h}.png"
        page.screenshot(path=str(shot))
        durations = Samples("ms", list(seen.values()))
        span = (t1 - t0) / 1000
        return {
            "apply_median": durations.median,
            "apply_p90": durations.stat("p90"),
            "apply_max": durations.stat("max"),
            "applied_per_s": len(durations) / span,
            "received_per_s": (o1.get("total", 0) - o0.get("total", 0)) / span,
            "decode": o1.get("decode", float("nan")),
            "bytes": o1.get("bytes", 0),
            "shot": shot,
            "errors": errors,
            "n": len(durations),
        }
    finally:
        context.close()  # first: the page would report the deleted session's 410 as a console error
        if sid and token:  # end the session now instead of leaving it training for nobody
            try:
                httpx.delete(f"{base_url}/api/sessions/{sid}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            except httpx.HTTPError:
                pass


def main() -> None:
    ap = argparse.ArgumentParser(description="page apply time per frame, headless Chromium")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from playwright.sync_api import sync_playwright

    shots = Path(tempfile.mkdtemp(prefix="mlp-browser-shots-"))
    print(
        f"MLP Playground browser figures, {time.strftime('%Y-%m-%d %H:%M')}, headless {CHROMIUM}, "
        f"{args.seconds:.0f} s of play per page; load average {__import__('os').getloadavg()[0]:.2f}"
    )
    results = []
    with LiveServer(idle_pause_seconds=5) as srv, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            print(f"  Chromium {browser.version}")
            for name, path, targeted in PAGES:
                for vp in VIEWPORTS:
                    r = run_page(browser, srv.url, path, vp, args.seconds, shots)
                    results.append((name, vp, targeted, r))
                    print(f"\n{name}, {vp[0]}×{vp[1]}  ({path})")
                    row(
                        "apply ms per frame: median / p90 / max",
                        f"{r['apply_median']:.2f} / {r['apply_p90']:.2f} / {r['apply_max']:.1f}",
                        f"{r['n']} frames applied",
                    )
                    row(
                        "frames/s received / applied",
                        f"{r['received_per_s']:.1f} / {r['applied_per_s']:.1f}",
                        "the page asks for fps=30",
                    )
                    row(
                        "heatmap decode ms (median, overlay)",
                        f"{r['decode']:.2f}" if r["decode"] == r["decode"] else "-",
                        "" if r["decode"] == r["decode"] else "no heatmaps (64-pixel inputs)",
                    )
                    row("bytes per frame (last frame)", f"{r['bytes']:,.0f} B")
                    row("page errors", f"{len(r['errors'])}", "; ".join(r["errors"][:2]))
                    row("screenshot", str(r["shot"]))
        finally:
            browser.close()
    srv.cleanup()
    print("\nSummary: median apply ms (target ≤ 8 ms for the spiral and seed presets)")
    ok = True
    for name, vp, targeted, r in results:
        met = r["apply_median"] <= 8.0
        ok = ok and (met or not targeted)
        row(f"{name} {vp[0]}×{vp[1]}", f"{r['apply_median']:.2f} ms", verdict(met) if targeted else "(no target)")
    row("target 5: median apply ≤ 8 ms (6×8 network and seed preset)", verdict(ok))
    print(f"  screenshots in {shots}")


if __name__ == "__main__":
    main()
