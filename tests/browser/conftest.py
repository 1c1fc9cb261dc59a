"""Browser fixtures: a live server on a real socket, and Debian's Chromium via Playwright.

Playwright never downloads a browser here (`playwright install` cannot reach the net):
it drives the system Chromium through `executable_path`.

Screenshots pass caret="initial": to hide the text caret Playwright would insert a
<style> element, which our CSP refuses, and the tests fail on CSP violations.
"""

import os
import shutil
from pathlib import Path

import pytest

DEBIAN_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Playwright's own timeouts (ms): generous for a cold Chromium, short enough to fail fast.
TIMEOUT_MS = 15_000

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, or skip (fail when REQUIRE_BROWSER=1)."""
    path = DEBIAN_CHROMIUM if os.access(DEBIAN_CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        message = "browser tests need Debian's chromium (apt-get install chromium)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    return path


# The browser's timezone is pinned: pages follow it until a user picks one, and
# the host's own zone must not change what a test sees.
DEFAULT_CONTEXT = {"viewport": {"width": 1280, "height": 800}, "timezone_id": "UTC"}


@pytest.fixture
def open_page(chromium_path):
    """Open pages in fresh contexts, each with its own options (viewport, color_scheme, …)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        contexts = []

        def open_(**options):
            context = browser.new_context(**{**DEFAULT_CONTEXT, **options})
            context.set_default_timeout(TIMEOUT_MS)
            contexts.append(context)
            return context.new_page()

        try:
            yield open_
        finally:
            for context in contexts:
                context.close()
            browser.close()


@pytest.fixture
def browser_page(open_page):
    """A fresh Chromium page (own context: no cookies shared between tests)."""
    return open_page()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """test-artifacts/browser/ under the project root (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
