"""A real browser walks through the app: log in, overview, history pages, log out.

Screenshots of each step land in test-artifacts/browser/ (git-ignored).
"""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from app.auth.routes import LOGIN_FAILED
from app.db_types import utcnow
from app.templating import utc_iso
from tests.conftest import PASSWORD, make_user
from tests.positions.helpers import snap, store

pytestmark = pytest.mark.browser

BTC_SNAPSHOTS = 250  # alternating between two accounts: three history pages (100, 100, 50)
ACCOUNTS = ("main", "hedge")
PAGE_SIZE = 100


@pytest.fixture
def seeded(live_server):
    """alice (a viewer), 250 BTC snapshots over two accounts and one ETH snapshot.

    Returns the BTC timestamps as the history page renders them (`<time datetime>`),
    newest first.
    """
    app = live_server.app
    make_user(app, "alice")
    now = utcnow().replace(microsecond=0)
    btc = [
        snap(
            account=ACCOUNTS[i % 2],
            asset="BTC",
            at=now - timedelta(seconds=30 * i),
            amount=f"{1 + i / 100:.2f}",
            price="50000.5",
        )
        for i in range(BTC_SNAPSHOTS)
    ]
    eth = [snap(account="main", asset="ETH", at=now, amount="12.5", price="3000")]
    result = store(app, btc + eth)
    assert result.inserted == BTC_SNAPSHOTS + 1
    return [utc_iso(s.timestamp) for s in btc]


def path_and_query(url: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(url)
    return parts.path, parse_qs(parts.query)


def log_in(page, username: str, password: str) -> None:
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def history_times(page) -> list[str]:
    """The UTC timestamps of the #history rows, top to bottom."""
    return page.locator("#history tbody tr time").evaluate_all(
        "els => els.map(e => e.getAttribute('datetime'))"
    )


def test_walkthrough_login_overview_history_pages_logout(
    live_server, seeded, browser_page, artifacts_dir
):
    page, base = browser_page, live_server.url

    # Anonymous: / sends the browser to the login page, remembering where it was going.
    page.goto(f"{base}/")
    path, query = path_and_query(page.url)
    assert (path, query) == ("/login", {"next": ["/"]})
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("[data-testid=current-user]")).to_have_count(0)
    page.screenshot(caret="initial", path=artifacts_dir / "01-login.png", full_page=True)

    # Log in: back to the overview.
    log_in(page, "alice", PASSWORD)
    expect(page).to_have_url(f"{base}/")
    expect(page.locator("[data-testid=current-user]")).to_have_text("alice")
    overview = page.locator("#overview")
    expect(overview).to_be_visible()
    rows = overview.locator("tbody tr")
    expect(rows).to_have_count(3)
    series = rows.evaluate_all(
        "trs => trs.map(tr => [tr.dataset.asset, tr.dataset.account, tr.className])"
    )
    assert series == [["BTC", "hedge", ""], ["BTC", "main", ""], ["ETH", "main", ""]]
    # Numbers as a trader reads them: the unit on amounts, separators and cents on notionals.
    expect(rows.nth(2).locator("td").nth(2)).to_have_text("12.5 ETH")
    expect(rows.nth(2).locator("td").nth(4)).to_have_text("37,500.00")
    page.screenshot(caret="initial", path=artifacts_dir / "02-overview.png", full_page=True)

    # History of BTC, newest first, one page of 100.
    overview.get_by_role("link", name="BTC", exact=True).first.click()
    expect(page).to_have_url(f"{base}/positions/BTC")
    expect(page.get_by_role("heading", name="BTC", exact=True)).to_be_visible()
    expect(page.locator("#history tbody tr")).to_have_count(PAGE_SIZE)
    first_page = history_times(page)
    assert first_page == seeded[:PAGE_SIZE]
    accounts = page.locator("#history tbody tr td:nth-child(2)").all_inner_texts()
    assert set(accounts) == set(ACCOUNTS)
    expect(page.locator("a[rel=first]")).to_have_count(0)
    page.screenshot(caret="initial", path=artifacts_dir / "03-history.png", full_page=True)

    # Older »: the next 100, all older than anything on the first page. The pager
    # sits above and below the table; use the one at the bottom, as a reader would.
    older = page.locator("a[rel=next]")
    expect(older).to_have_count(2)
    expect(older.last).to_have_text("Older »")
    older.last.click()
    path, query = path_and_query(page.url)
    assert path == "/positions/BTC"
    assert set(query) == {"cursor"}
    expect(page.locator("#history tbody tr")).to_have_count(PAGE_SIZE)
    second_page = history_times(page)
    assert second_page == seeded[PAGE_SIZE : 2 * PAGE_SIZE]
    assert not set(second_page) & set(first_page)
    assert max(second_page) < min(first_page)
    expect(page.locator("a[rel=first]").first).to_have_text("« Newest")
    expect(page.locator("a[rel=next]")).to_have_count(2)  # 50 more on page three
    page.screenshot(caret="initial", path=artifacts_dir / "04-history-page2.png", full_page=True)

    # Log out: the login page with a notice, and nothing private reachable any more.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{base}/login")
    expect(page.get_by_role("status")).to_contain_text("signed out")
    expect(page.locator("[data-testid=current-user]")).to_have_count(0)
    page.screenshot(caret="initial", path=artifacts_dir / "05-logged-out.png", full_page=True)

    page.goto(f"{base}/")
    path, query = path_and_query(page.url)
    assert (path, query) == ("/login", {"next": ["/"]})
    expect(page.locator("#overview")).to_have_count(0)


def test_wrong_password_shows_the_error_and_stays_on_the_login_page(
    live_server, seeded, browser_page, artifacts_dir
):
    page, base = browser_page, live_server.url
    page.goto(f"{base}/login")

    log_in(page, "alice", PASSWORD + " typo")

    assert urlsplit(page.url).path == "/login"
    expect(page.get_by_role("alert")).to_have_text(LOGIN_FAILED)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("[data-testid=current-user]")).to_have_count(0)
    page.screenshot(caret="initial", path=artifacts_dir / "06-login-failed.png", full_page=True)

    page.goto(f"{base}/")
    assert urlsplit(page.url).path == "/login"


class BrowserProblems:
    """Console errors and warnings (CSP violations are logged there) and uncaught errors."""

    def __init__(self, page):
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.messages.append(f"pageerror: {error}"))

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            where = message.location
            self.messages.append(
                f"console.{message.type} at {where.get('url')}:{where.get('lineNumber')}: "
                f"{message.text}"
            )


def test_overview_and_history_raise_no_csp_violations_or_js_errors(
    live_server, seeded, browser_page
):
    page, base = browser_page, live_server.url
    problems = BrowserProblems(page)
    page.goto(f"{base}/login")
    log_in(page, "alice", PASSWORD)
    expect(page.locator("#overview")).to_be_visible()

    for path in ("/", "/positions/BTC"):
        page.goto(f"{base}{path}", wait_until="networkidle")
        # The vendor script really ran (a missing or blocked file would leave no htmx).
        assert page.evaluate("typeof window.htmx") == "object", path
        font = page.evaluate("getComputedStyle(document.body).fontFamily")
        assert font.startswith("system-ui"), f"{path}: Pico CSS not applied ({font!r})"
    assert not problems.messages, "\n".join(problems.messages)


def test_the_console_listener_sees_a_csp_violation(live_server, seeded, browser_page):
    """Control for the test above: an inline script is refused, and we hear about it."""
    page, base = browser_page, live_server.url
    page.goto(f"{base}/login")
    problems = BrowserProblems(page)
    page.evaluate(
        """() => {
            const s = document.createElement('script');
            s.textContent = 'window.inlineRan = true';
            document.body.append(s);
        }"""
    )
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.inlineRan") is None
    assert any("Content Security Policy" in m for m in problems.messages), problems.messages
