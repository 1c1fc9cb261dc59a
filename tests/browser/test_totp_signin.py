"""In Chromium: set up a second factor on the account page, then sign in with its code.

The server's second-factor clock is frozen (the live server runs in this process),
so the codes typed are the ones of a known moment.
"""

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from playwright.sync_api import expect

from tests.browser.test_accessibility import (
    AXE_SCRIPT,
    FAILING_IMPACTS,
    axe_violations,
    describe,
)
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.browser

START = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.fixture
def clock(monkeypatch):
    now = {"at": START}
    monkeypatch.setattr("app.auth.totp.utcnow", lambda: now["at"])
    return now


@pytest.fixture
def page(live_server, browser_page):
    make_user(live_server.app, "alice")
    problems = []
    browser_page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    browser_page.on("pageerror", lambda e: problems.append(str(e)))
    browser_page.add_init_script(WATCH_CSP)
    browser_page.problems = problems
    browser_page.base = live_server.url
    return browser_page


def log_in(page, password=PASSWORD):
    page.goto(f"{page.base}/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def assert_clean(page):
    assert page.problems == []
    assert page.evaluate("window.__cspViolations") == []


def enrol(page, clock) -> tuple[str, list[str]]:
    """Log in and set up the factor on the account page; return its secret and recovery codes."""
    log_in(page)
    page.goto(f"{page.base}/account")
    section = page.locator("#second-factor")
    section.get_by_label("Current password").fill(PASSWORD)
    section.get_by_role("button", name="Set up a second factor").click()
    page.wait_for_load_state()
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    # Drawn, not blocked: the CSP allows data: images.
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    secret = page.get_by_test_id("second-factor-secret").inner_text().strip()
    page.locator("#second-factor").get_by_label("Code").fill(pyotp.TOTP(secret).at(clock["at"]))
    page.get_by_role("button", name="Switch on").click()
    page.wait_for_load_state()
    codes = page.get_by_test_id("recovery-codes").inner_text().split()
    assert len(codes) == 10
    expect(page.get_by_test_id("second-factor-status")).to_contain_text("On since")
    assert_clean(page)
    return secret, codes


def sign_out(page):
    page.get_by_role("button", name="Log out").click()
    page.wait_for_load_state()


def test_enrol_then_sign_in_with_the_code(page, clock, artifacts_dir):
    secret, _ = enrol(page, clock)
    page.screenshot(path=artifacts_dir / "totp-enrolled.png", caret="initial")
    sign_out(page)

    log_in(page)
    assert page.url == f"{page.base}/login/code"
    expect(page.get_by_role("heading", name="Second factor")).to_be_visible()
    page.screenshot(path=artifacts_dir / "totp-code-page.png", caret="initial")
    # Half logged in: the overview still sends the browser to the login page.
    page.goto(f"{page.base}/")
    assert page.url.startswith(f"{page.base}/login?next=")

    page.goto(f"{page.base}/login/code")
    # The code the enrolment used is spent; the next one signs in.
    page.get_by_label("Code").fill(pyotp.TOTP(secret).at(clock["at"]))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()
    expect(page.get_by_text("That code is not valid.")).to_be_visible()
    clock["at"] += timedelta(seconds=30)
    page.get_by_label("Code").fill(pyotp.TOTP(secret).at(clock["at"]))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()
    assert page.url == f"{page.base}/"
    page.goto(f"{page.base}/account")
    expect(page.get_by_role("heading", name="Active sessions")).to_be_visible()
    assert_clean(page)


def test_sign_in_with_a_recovery_code(page, clock):
    _, codes = enrol(page, clock)
    sign_out(page)
    log_in(page)
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()
    assert page.url == f"{page.base}/"
    expect(page.get_by_text("Signed in with a recovery code; 9 left.")).to_be_visible()
    assert_clean(page)


def serious_violations(page) -> list[str]:
    if not AXE_SCRIPT.exists():
        pytest.skip("axe-core is missing: run `make assets`")
    found = axe_violations(page, AXE_SCRIPT.read_text(encoding="utf-8"))
    return [describe(v) for v in found if v["impact"] in FAILING_IMPACTS]


def test_the_set_up_and_code_pages_pass_axe(page, clock):
    log_in(page)
    page.goto(f"{page.base}/account")
    section = page.locator("#second-factor")
    section.get_by_label("Current password").fill(PASSWORD)
    section.get_by_role("button", name="Set up a second factor").click()
    page.wait_for_load_state()
    assert serious_violations(page) == []  # the QR code, secret and code field
    secret = page.get_by_test_id("second-factor-secret").inner_text().strip()
    page.locator("#second-factor").get_by_label("Code").fill(pyotp.TOTP(secret).at(clock["at"]))
    page.get_by_role("button", name="Switch on").click()
    page.wait_for_load_state()
    assert serious_violations(page) == []  # the recovery codes
    sign_out(page)
    log_in(page)
    assert serious_violations(page) == []  # the code page
