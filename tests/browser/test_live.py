"""Live pages in a real browser: overview, alerts and badge refresh themselves.

Each test also listens for console errors and CSP violations; the pages must
raise none while they refresh.
"""

import threading
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app.auth import sessions
from app.auth.models import Role, User
from app.db_types import utcnow
from app.extensions import db
from tests.alerts.helpers import add_rule
from tests.browser.test_walkthrough import log_in
from tests.conftest import PASSWORD, make_user
from tests.positions.helpers import snap, store

pytestmark = pytest.mark.browser

REFRESH_SECONDS = 1
# Counts the live refreshes live.js fires (one event per live part and tick),
# synchronously: no network timing involved.
COUNT_LIVE_REFRESHES = """() => {
    window.__liveRefreshes = 0;
    document.addEventListener('live-refresh', () => { window.__liveRefreshes += 1; });
}"""
COUNT_OVERVIEW_SWAPS = """() => {
    window.__overviewSwaps = 0;
    document.addEventListener('htmx:afterSwap', (e) => {
        if (e.target.id === 'overview-live') window.__overviewSwaps += 1;
    });
}"""
# Runs before any page script; Playwright injects it outside the page's CSP.
REPORT_CSP_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) => {
    const where = `${e.sourceFile}:${e.lineNumber}`;
    window.reportCspViolation(`${e.violatedDirective} blocked ${e.blockedURI} (${where})`);
});
"""


class Problems:
    """Console errors, uncaught exceptions and CSP violations seen by one page."""

    def __init__(self, page):
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.messages.append(f"pageerror: {error}"))
        page.expose_function(
            "reportCspViolation", lambda text: self.messages.append(f"csp: {text}")
        )
        page.add_init_script(REPORT_CSP_VIOLATIONS)

    def _console(self, message) -> None:
        if message.type == "error":
            self.messages.append(f"console.error: {message.text}")

    def assert_none(self) -> None:
        assert not self.messages, "\n".join(self.messages)


@pytest.fixture
def live_app(live_server):
    """The live server refreshing every second, with alice (viewer) and olivia (operator)."""
    app = live_server.app
    app.config["LIVE_REFRESH_SECONDS"] = REFRESH_SECONDS
    make_user(app, "alice")
    make_user(app, "olivia", role=Role.OPERATOR)
    now = utcnow()
    store(
        app,
        [
            snap(asset="BTC", at=now - timedelta(seconds=20), amount="1.5", price="50000"),
            snap(asset="ETH", at=now - timedelta(seconds=20), amount="10", price="3000"),
            snap(account="hedge", asset="OLD", at=now - timedelta(hours=1), amount="7"),
        ],
    )
    return app


def signed_in(open_page, base, username="alice", **context):
    page = open_page(**context)
    problems = Problems(page)
    page.goto(f"{base}/login")
    log_in(page, username, PASSWORD)
    expect(page.locator("[data-testid=current-user]")).to_have_text(username)
    return page, problems


def ingest_in_background(app, snapshots) -> None:
    """Store snapshots through the real write path, from a thread of their own."""
    failures = []

    def run():
        try:
            store(app, snapshots)
        except Exception as exc:  # reported below: a thread's exception is otherwise lost
            failures.append(exc)

    thread = threading.Thread(target=run, name="background-ingest")
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and not failures, failures


def mark_document(page) -> None:
    page.evaluate("() => { window.__sameDocument = true; }")


def same_document(page) -> bool:
    return page.evaluate("() => window.__sameDocument === true")


def test_overview_shows_a_new_snapshot_by_itself_and_highlights_the_row(
    live_app, live_server, open_page
):
    # A short window, so the page scrolls and we can see the scroll position kept.
    page, problems = signed_in(open_page, live_server.url, viewport={"width": 900, "height": 300})
    btc = page.locator("#overview tr[data-asset=BTC]")
    expect(btc.locator("td").nth(2)).to_have_text("1.5 BTC")
    expect(page.locator("#overview tr[data-asset=OLD]")).to_have_class("stale")
    page.evaluate("() => window.scrollTo(0, 120)")
    scrolled = page.evaluate("() => window.scrollY")
    assert scrolled > 0
    mark_document(page)
    refreshes = []
    page.on(
        "request",
        lambda r: refreshes.append(r.headers) if r.headers.get("hx-request") else None,
    )

    ingest_in_background(
        live_app,
        [
            snap(asset="BTC", at=utcnow(), amount="2.75", price="51000"),
            snap(asset="SOL", at=utcnow(), amount="300", price="150"),
        ],
    )

    expect(btc.locator("td").nth(2)).to_have_text("2.75 BTC", timeout=10_000)
    expect(btc.locator("td").nth(4)).to_have_text("140,250.00")
    expect(page.locator("#overview tr[data-asset=SOL]")).to_have_count(1)
    page.wait_for_function(
        "() => document.querySelector('#overview tr.changed[data-asset=BTC]') !== null"
    )
    # Rows that did not change are not highlighted; stale rows stay marked.
    expect(page.locator("#overview tr[data-asset=ETH]")).not_to_have_class("changed")
    expect(page.locator("#overview tr[data-asset=OLD]")).to_have_class("stale")
    assert same_document(page), "the page was reloaded instead of refreshing its table"
    assert page.evaluate("() => window.scrollY") == scrolled
    # Refreshes say they are not the person at the screen (the idle limit still runs).
    assert refreshes
    assert all(h.get("x-background-refresh") == "1" for h in refreshes)
    problems.assert_none()


def test_alerts_list_badge_and_tab_title_update_by_themselves(live_app, live_server, open_page):
    add_rule(live_app, "BTC over 2", "2", severity="critical")
    page, problems = signed_in(open_page, live_server.url, username="olivia")
    page.goto(f"{live_server.url}/alerts/")
    expect(page.get_by_text("Nothing is firing or pending")).to_be_visible()
    expect(page.locator("[data-testid=firing-count]")).to_have_count(0)
    assert page.title().startswith("Alerts")
    mark_document(page)

    ingest_in_background(live_app, [snap(asset="BTC", at=utcnow(), amount="2.5")])

    row = page.locator("#alerts tbody tr")
    expect(row).to_have_count(1, timeout=10_000)
    expect(row).to_contain_text("BTC over 2")
    expect(row).to_contain_text("2.5")
    expect(page.locator("[data-testid=firing-count]")).to_have_text("1")
    expect(page).to_have_title("(1) Alerts · TradingMonitor")
    assert same_document(page)

    # The count also drops by itself once the position is back under the limit.
    ingest_in_background(live_app, [snap(asset="BTC", at=utcnow(), amount="1")])
    expect(page.locator("[data-testid=firing-count]")).to_have_count(0, timeout=10_000)
    expect(page).to_have_title("Alerts · TradingMonitor")
    assert same_document(page)
    problems.assert_none()


def set_visibility(page, state: str) -> None:
    """Make the page believe its tab was hidden or shown, as a browser tab switch would."""
    page.evaluate(
        """(state) => {
            Object.defineProperty(document, 'visibilityState', {value: state, configurable: true});
            document.dispatchEvent(new Event('visibilitychange'));
        }""",
        state,
    )


def test_refresh_pauses_while_the_tab_is_hidden_and_resumes_when_shown(
    live_app, live_server, open_page
):
    page, problems = signed_in(open_page, live_server.url)
    # A fake clock: intervals fire when the test says so, not when the machine is ready.
    page.clock.install()
    page.goto(f"{live_server.url}/")
    expect(page.locator("#overview")).to_be_visible()
    page.evaluate(COUNT_LIVE_REFRESHES)
    ms = REFRESH_SECONDS * 1000

    for _ in range(3):
        page.clock.run_for(ms)
    visible_count = page.evaluate("() => window.__liveRefreshes")
    assert visible_count >= 3 * 2  # the table and the badge, three times

    set_visibility(page, "hidden")
    page.evaluate("() => { window.__liveRefreshes = 0; }")
    page.clock.run_for(10 * ms)
    assert page.evaluate("() => window.__liveRefreshes") == 0

    set_visibility(page, "visible")
    # Back in view: fresh numbers at once, without waiting for the next tick.
    assert page.evaluate("() => window.__liveRefreshes") == 2
    page.clock.run_for(ms)
    assert page.evaluate("() => window.__liveRefreshes") >= 4
    problems.assert_none()


def test_an_ended_session_shows_a_notice_instead_of_the_login_page(
    live_app, live_server, open_page
):
    page, _ = signed_in(open_page, live_server.url)
    expect(page.locator("#overview tbody tr")).to_have_count(3)
    with live_app.app_context():
        user = db.session.execute(db.select(User).filter_by(username="alice")).scalar_one()
        sessions.revoke_all(user, "test")
        db.session.commit()

    notice = page.locator("#live-notice")
    expect(notice).to_be_visible(timeout=10_000)
    expect(notice).to_contain_text("Signed out — reload")
    expect(notice.get_by_role("button", name="Reload")).to_be_visible()
    # The table keeps its last numbers; nothing of the login page was swapped in.
    expect(page.locator("#overview tbody tr")).to_have_count(3)
    expect(page.locator("input[name=password]")).to_have_count(0)

    notice.get_by_role("button", name="Reload").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_a_401_from_a_refresh_also_shows_the_notice(live_app, live_server, open_page):
    page, _ = signed_in(open_page, live_server.url)
    page.route(
        "**/alerts/badge*",
        lambda route: route.fulfill(status=401, body='{"error": "unauthorized"}'),
    )
    expect(page.locator("#live-notice")).to_contain_text("Signed out", timeout=10_000)
    expect(page.locator("#overview tbody tr")).to_have_count(3)


def test_overview_draws_sparklines_from_the_series_endpoint_once_per_interval(
    live_app, live_server, open_page
):
    page = open_page()
    problems = Problems(page)
    now = int(utcnow().timestamp())
    series = {
        "series": [
            {
                "account": "main",
                "asset": "BTC",
                "points": [[now - 3600 * h, str(1 + h % 3)] for h in range(24, -1, -1)],
            },
            {"account": "main", "asset": "ETH", "points": [[now, "10"]]},
        ]
    }
    asked = []

    def answer(route):
        asked.append(route.request.url)
        route.fulfill(json=series)

    page.route("**/overview/sparklines*", answer)
    page.goto(f"{live_server.url}/login?next=/account")
    log_in(page, "alice", PASSWORD)
    page.clock.install()
    page.goto(f"{live_server.url}/")

    btc = page.locator("#overview tr[data-asset=BTC] td.spark svg")
    expect(btc).to_have_count(1)
    points = btc.locator("polyline").get_attribute("points")
    assert len(points.split()) == 25
    assert "25 snapshots, from 1 to 1" in btc.get_attribute("aria-label")
    expect(page.locator("#overview tr[data-asset=ETH] td.spark svg polyline")).to_have_count(1)
    # No series for the row: an empty cell, not an error.
    expect(page.locator("#overview tr[data-asset=OLD] td.spark svg")).to_have_count(0)
    assert len(asked) == 1

    # Each live refresh redraws; the series are fetched at most once per interval.
    page.evaluate(COUNT_OVERVIEW_SWAPS)
    for swaps in range(1, 4):
        page.clock.run_for(REFRESH_SECONDS * 1000)
        page.wait_for_function(f"() => window.__overviewSwaps >= {swaps}")
        expect(btc).to_have_count(1)
    assert 1 < len(asked) <= 1 + page.evaluate("() => window.__overviewSwaps")
    # Refreshes within one interval (the clock stands still) reuse the last series.
    # A fetch the last interval started may still be on its way (route handlers run
    # only while Playwright is called): let the count settle first.
    settled = -1
    while settled != len(asked):
        settled = len(asked)
        page.wait_for_timeout(500)
    fetched = len(asked)
    page.evaluate("() => htmx.trigger('#overview-live', 'live-refresh')")
    page.wait_for_function("() => window.__overviewSwaps >= 4")
    page.evaluate("() => htmx.trigger('#overview-live', 'live-refresh')")
    page.wait_for_function("() => window.__overviewSwaps >= 5")
    expect(btc).to_have_count(1)
    assert len(asked) == fetched
    problems.assert_none()


def test_dark_theme_follows_the_system_and_the_switch_overrides_it(live_server, open_page):
    base = live_server.url
    dark = open_page(color_scheme="dark")
    dark.goto(f"{base}/login")
    assert background_luminance(dark) < 0.1

    light = open_page(color_scheme="light")
    problems = Problems(light)
    light.goto(f"{base}/login")
    assert background_luminance(light) > 0.9
    switch = light.locator("#theme-switch")
    expect(switch).to_have_text("Theme: auto")

    switch.click()
    expect(light.locator("html")).to_have_attribute("data-theme", "dark")
    expect(switch).to_have_text("Theme: dark")
    assert background_luminance(light) < 0.1
    # Stored: the next page starts dark, set by the blocking script in <head>.
    light.reload()
    expect(light.locator("html")).to_have_attribute("data-theme", "dark")
    assert background_luminance(light) < 0.1
    blocking = light.evaluate(
        """() => [...document.head.querySelectorAll('script[src*="js/theme.js"]')]
                 .map(s => s.defer || s.async)"""
    )
    assert blocking == [False]

    light.locator("#theme-switch").click()
    expect(light.locator("html")).to_have_attribute("data-theme", "light")
    light.locator("#theme-switch").click()
    expect(light.locator("html")).not_to_have_attribute("data-theme", "light")
    expect(light.locator("#theme-switch")).to_have_text("Theme: auto")
    assert light.evaluate("() => localStorage.getItem('tm-theme')") is None
    problems.assert_none()


def background_luminance(page) -> float:
    """Relative luminance (0 black … 1 white) of the page background."""
    return page.evaluate(
        """() => {
            const [r, g, b] = getComputedStyle(document.documentElement).backgroundColor
                .match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
            const lin = (c) => {
                c /= 255;
                return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
            };
            return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
        }"""
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_overview_and_alerts_fit_a_375_px_phone_without_sideways_page_scroll(
    live_app, live_server, open_page, scheme
):
    add_rule(live_app, "BTC over 2", "2", severity="critical")
    store(
        live_app,
        [
            snap(account="a-rather-long-account-name", asset="BTC", at=utcnow(), amount="12.5"),
            snap(account="hedge", asset="VERYLONGASSETNAME-PERP-2027", at=utcnow(), amount="1"),
        ],
    )
    page, problems = signed_in(
        open_page,
        live_server.url,
        username="olivia",
        viewport={"width": 375, "height": 740},
        color_scheme=scheme,
    )
    for path, table in (("/", "#overview"), ("/alerts/", "#alerts")):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator(table)).to_be_visible()
        widths = page.evaluate(
            """() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,
                     document.querySelector('header nav').getBoundingClientRect().right]"""
        )
        scroll_width, client_width, nav_right = widths
        assert client_width == 375
        wide = page.evaluate(
            """() => [...document.querySelectorAll('body *')]
                 .filter((e) => !e.closest('.table-scroll'))
                 .filter((e) => e.getBoundingClientRect().right > 376)
                 .map((e) => e.tagName + '.' + e.className + '#' + e.id)"""
        )
        assert scroll_width <= client_width, f"{path} scrolls sideways: {widths} {wide}"
        assert nav_right <= client_width, f"{path}: the navigation overflows: {widths}"
    problems.assert_none()


def test_times_follow_the_browsers_timezone_and_the_utc_toggle(live_app, live_server, open_page):
    page, problems = signed_in(open_page, live_server.url, timezone_id="Asia/Tokyo")
    # The first page reports the zone and reloads once to show it.
    zone = page.locator("[data-testid=display-timezone]")
    expect(zone).to_have_text("Asia/Tokyo")
    with live_app.app_context():
        user = db.session.execute(db.select(User).filter_by(username="alice")).scalar_one()
        assert (user.timezone, user.timezone_chosen) == ("Asia/Tokyo", False)
    when = page.locator("#overview tr[data-asset=BTC] td").nth(5)
    expect(when).to_contain_text("JST")
    utc_title = when.get_attribute("title")
    assert utc_title.endswith("Z")

    page.get_by_role("button", name="UTC").click()
    expect(zone).to_have_text("UTC")
    expect(when).to_contain_text(" UTC")
    assert when.get_attribute("title") == utc_title
    expect(page.get_by_role("button", name="UTC")).to_have_attribute("aria-pressed", "true")
    # The live refresh keeps showing UTC.
    mark_document(page)
    ingest_in_background(live_app, [snap(asset="BTC", at=utcnow(), amount="3")])
    expect(page.locator("#overview tr[data-asset=BTC] td").nth(2)).to_have_text(
        "3 BTC", timeout=10_000
    )
    expect(when).to_contain_text(" UTC")
    assert same_document(page)

    page.get_by_role("button", name="UTC").click()
    expect(zone).to_have_text("Asia/Tokyo")
    expect(when).to_contain_text("JST")
    problems.assert_none()


CONTRAST = """(selectors) => {
    const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
    const background = (element) => {
        for (let e = element; e; e = e.parentElement) {
            const c = rgb(getComputedStyle(e).backgroundColor);
            if (c.length < 4 || c[3] > 0.5) return c;
        }
        return rgb(getComputedStyle(document.documentElement).backgroundColor);
    };
    const lum = ([r, g, b]) => [r, g, b].map((c) => {
        c /= 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    }).reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
    const out = [];
    for (const selector of selectors) {
        for (const element of document.querySelectorAll(selector)) {
            const a = lum(rgb(getComputedStyle(element).color));
            const b = lum(background(element));
            const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            out.push([selector, element.textContent.trim().slice(0, 30), ratio]);
        }
    }
    return out;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_is_sufficient_and_focus_is_visible_in_both_themes(
    live_app, live_server, open_page, scheme
):
    add_rule(live_app, "BTC over 2", "2", severity="critical")
    store(live_app, [snap(asset="BTC", at=utcnow(), amount="12.5")])
    page, problems = signed_in(open_page, live_server.url, username="olivia", color_scheme=scheme)
    for path in ("/", "/alerts/"):
        page.goto(f"{live_server.url}{path}")
        selectors = ["td", "th", "h1", "p", "nav a", "nav button", ".badge", ".muted", "small"]
        ratios = page.evaluate(CONTRAST, selectors)
        assert len(ratios) > 20
        low = [r for r in ratios if r[2] < 4.5]
        assert not low, f"{scheme} {path}: contrast below 4.5:1: {low}"

    # Every control is labelled, and keyboard focus is drawn.
    unlabelled = page.evaluate(
        """(controls) => [...document.querySelectorAll(controls)]
             .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                            && !e.textContent.trim() && !e.value)
             .map((e) => e.outerHTML)""",
        "input:not([type=hidden]), select, textarea, button",
    )
    assert not unlabelled
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate(
        """() => {
            const e = document.activeElement;
            return [e.tagName, getComputedStyle(e).outlineStyle];
        }"""
    )
    assert outline[0] in ("A", "BUTTON") and outline[1] != "none", outline
    problems.assert_none()
