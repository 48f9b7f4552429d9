"""Browser fixtures: Debian's Chromium driven by Playwright (executable_path, no download).

Without Chromium the browser tests skip with a loud message on a developer machine, and
fail in CI (CI=true), where .ci/run installs Chromium first.
"""

from __future__ import annotations

import os

import pytest

from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.waiting import wait_until


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        message = (
            "\n" + "!" * 78 + "\n  BROWSER TESTS SKIPPED: no Chromium found (apt-get install chromium).\n" + "!" * 78
        )
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing in CI: browser tests must not skip" + message)
        print(message)
        pytest.skip("no Chromium on this machine")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


def wait_for(page, expression: str, timeout: float = 10.0) -> None:
    """Poll a JS expression until it is truthy. Playwright's own wait_for_function compiles
    its predicate with eval, which our CSP forbids; page.evaluate goes through the
    DevTools protocol instead, so the page keeps its real CSP during tests."""
    if not wait_until(lambda: page.evaluate(expression), timeout):
        raise AssertionError(f"timed out after {timeout} s waiting for: {expression}")


class PageErrors(list):
    """Console errors and uncaught exceptions collected from a page."""


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=server.url)
    pg = context.new_page()
    errors = PageErrors()
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e} {e.stack}"))
    pg.on("console", lambda m: errors.append(f"console.error: {m.text}") if m.type == "error" else None)
    pg.errors = errors
    yield pg
    context.close()
