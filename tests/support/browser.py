"""Debian's Chromium for Playwright: where it is and how to start it here (no downloads).

The tests (tests/e2e), the browser benchmark and the screenshot script launch it the same way.
"""

from __future__ import annotations

import os
import shutil

# Headless as root in a sandbox with a closed network: no sandbox, no GPU, and none of the
# background connections Chromium would otherwise attempt at every start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """$CHROMIUM, Debian's /usr/bin/chromium, or whatever `chromium` is on PATH; None if none."""
    for candidate in (
        os.environ.get("CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.path.exists(candidate):
            return candidate
    return None
