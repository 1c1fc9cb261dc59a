"""Every page on a desk's laptop (1366 by 768) and a phone (390 by 844), light and dark:
nothing makes the page scroll sideways, and each page's main action is on screen,
reachable without scrolling a table sideways, and clickable.

The pages are listed by endpoint; a page whose endpoint is not in the app's URL map
fails here, so a page that goes missing (or was never built) cannot pass unseen.
Screenshots of every page at every size land in test-artifacts/browser/layout/.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from flask import url_for
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

from app.db_types import utcnow

pytestmark = pytest.mark.browser

DESK = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
SIZES = {"desk": DESK, "phone": PHONE}
SCHEMES = ("light", "dark")


@dataclass(frozen=True)
class Screen:
    """A page a user can reach, and what they come to it for."""

    name: str
    endpoint: str
    # The main actions: (what it is, how to find it). Each must be visible and clickable.
    actions: tuple[tuple[str, Callable[[Page], Locator]], ...]
    args: Callable[[dict], dict] = field(default=lambda ids: {})
    anonymous: bool = False
    fixed_path: str | None = None  # a page no endpoint serves (an error page)

    def path(self, desk) -> str:
        if self.fixed_path:
            return self.fixed_path
        with desk.app.test_request_context():
            return url_for(self.endpoint, **self.args(desk.ids))


def button(name: str, within: str = "main") -> Callable[[Page], Locator]:
    return lambda page: page.locator(within).get_by_role("button", name=name, exact=True).first


def link(name: str, within: str = "main") -> Callable[[Page], Locator]:
    return lambda page: page.locator(within).get_by_role("link", name=name, exact=True).first


def css(selector: str) -> Callable[[Page], Locator]:
    return lambda page: page.locator(selector).first


SCREENS = [
    Screen(
        "overview",
        "positions.overview",
        # Table on a desk, cards on a phone: whichever shows, its BTC row opens the history.
        (("the BTC row's history link", css("#overview-live a[href$='/positions/BTC']:visible")),),
    ),
    Screen(
        "history",
        "positions.history",
        (("the chart", css("#chart")), ("the history filter", button("Filter"))),
        args=lambda ids: {"asset": "BTC"},
    ),
    Screen(
        "limits",
        "limits.index",
        (("the nearest limit's rule link", css("main a[href*='/alerts/rules/']:visible")),),
    ),
    Screen("value", "value.index", (("the value chart", css("main .chart:visible")),)),
    Screen(
        "recon",
        "recon.index",
        (("the break's detail link", css("#recon-live a[href$='/BTC']:visible")),),
    ),
    Screen(
        "recon detail",
        "recon.detail",
        (("the chart", css("#chart")), ("the CSV download", link("Download the history as CSV"))),
        args=lambda ids: {"recon_id": ids["recon"], "asset": "BTC"},
    ),
    Screen(
        "recon definitions",
        "recon_definitions.index",
        (("New reconciliation", link("New reconciliation")),),
    ),
    Screen(
        "edit recon",
        "recon_definitions.edit",
        (("Save reconciliation", button("Save reconciliation")),),
        args=lambda ids: {"recon_id": ids["recon"]},
    ),
    Screen("alerts", "alerts.index", (("Acknowledge", button("Acknowledge", "#alerts-live")),)),
    Screen(
        "alert",
        "alerts.detail",
        (("the rule link", css("main a[href*='/alerts/rules/']:visible")),),
        args=lambda ids: {"alert_id": ids["alert"]},
    ),
    Screen("alerts history", "alerts.history", (("Filter", button("Filter")),)),
    Screen("rules", "alert_rules.rules", (("New rule", css("main a[href$='/rules/new']")),)),
    Screen("new rule", "alert_rules.edit_rule", (("Save rule", css("button[value=save]")),)),
    Screen(
        "edit rule",
        "alert_rules.edit_rule",
        (("Save rule", css("button[value=save]")),),
        args=lambda ids: {"rule_id": ids["rule"]},
    ),
    Screen(
        "channels",
        "alert_channels.channels",
        (
            ("a channel's Delete", button("Delete", "#channels")),
            ("Add channel", css("main form input[type=submit][value='Add channel']")),
        ),
    ),
    Screen("silences", "alerts.silences", (("End now", button("End now", "#silences")),)),
    Screen("account", "account.index", (("Change password", button("Change password")),)),
    Screen(
        "users",
        "admin.user_list",
        (("a user link", link("ada", "#users")), ("Create user", button("Create user"))),
    ),
    Screen(
        "user",
        "admin.user_detail",
        (("Change role", button("Change role")), ("Reset password", button("Reset password"))),
        args=lambda ids: {"user_id": ids["operator"]},
    ),
    Screen("sign-in policy", "sign_in_policy.show", (("Save policy", button("Save policy")),)),
    Screen("audit", "admin.audit", (("Filter", button("Filter")),)),
    Screen("API docs", "api_docs.api_docs", (("the first operation", css("main article")),)),
    Screen("login", "auth.login", (("Log in", button("Log in")),), anonymous=True),
    Screen(
        "not found",
        "positions.overview",
        (("Back to the overview", link("Back to the overview")),),
        fixed_path="/no-such-page",
    ),
]

# What stays reachable in the navigation on every page, phone included.
NAV_CONTROLS = (
    ("the UTC toggle", css("[data-testid=utc-toggle]")),
    ("the theme switch", css("[data-testid=theme-switch]")),
    ("Log out", button("Log out", "header")),
)

OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [...document.body.querySelectorAll('*')].filter(e => {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.right <= width + 0.5) return false;
    const parent = e.parentElement.getBoundingClientRect();
    return parent.right <= width + 0.5;  // the outermost overflowing element only
  });
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (typeof e.className === 'string' && e.className ? '.' + e.className.replace(/ +/g, '.') : '');
  const right = e => Math.round(e.getBoundingClientRect().right);
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width,
          wide: wide.slice(0, 6).map(e => name(e) + ' right=' + right(e))};
}"""

# Boxes that hide part of their content sideways (a table in a .table-scroll box wider
# than the box): the page does not scroll, but columns are cut off until one scrolls
# the box. Ellipsis-truncated text is meant to be cut and is left out.
CUT_OFF_INSIDE = """() => {
  const cut = [];
  for (const e of document.body.querySelectorAll('*')) {
    const style = getComputedStyle(e);
    if (!['auto', 'scroll', 'hidden'].includes(style.overflowX)) continue;
    // Ellipsis text is cut on purpose; a 1 px box is screen-reader-only (visually hidden).
    if (style.textOverflow === 'ellipsis' || e.clientWidth < 2 || e.clientHeight < 2) continue;
    if (e.closest('.chart, [hidden]')) continue;  // uPlot's own boxes
    if (e.scrollWidth > e.clientWidth + 1) {
      const inner = e.querySelector('table[id]') || e.firstElementChild;
      const name = inner && inner.id ? '#' + inner.id : e.tagName + '.' + e.className;
      cut.push(name + ' ' + e.scrollWidth + ' px in ' + e.clientWidth);
    }
  }
  return cut;
}"""

# The nearest ancestor scrolled sideways to show the element: an action must not need it.
SCROLLED_ANCESTOR = """e => {
  for (let n = e.parentElement; n; n = n.parentElement) {
    if (n.scrollLeft > 0) return n.tagName + '.' + n.className + ' by ' + n.scrollLeft;
  }
  return null;
}"""


def reachable_problem(page: Page, what: str, locator: Locator) -> str | None:
    """Why `locator` is not a visible, clickable thing on screen; None when it is."""
    try:
        expect(locator).to_be_visible(timeout=5_000)
    except AssertionError:
        return f"{what} is not visible"
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    width, height = page.evaluate("[window.innerWidth, window.innerHeight]")
    if box is None:
        return f"{what} has no box"
    if box["x"] < 0 or box["x"] + box["width"] > width + 0.5:
        right = box["x"] + box["width"]
        return f"{what} is cut off sideways: x={box['x']:.0f}..{right:.0f} of {width}"
    if box["y"] + box["height"] <= 0 or box["y"] >= height:
        return f"{what} is not in the viewport after scrolling to it: y={box['y']:.0f} of {height}"
    scrolled = locator.evaluate(SCROLLED_ANCESTOR)
    if scrolled:
        return f"{what} needs sideways scrolling inside {scrolled}"
    try:
        locator.click(trial=True, timeout=5_000)
    except PlaywrightError as exc:  # its first line says what covered the element
        return f"{what} cannot be clicked: {str(exc).splitlines()[0]}"
    return None


# The title sits right under the bar (it used to sit under a band of empty space): its
# top edge at most this far down the first screen. The phone's bar wraps onto 3 lines.
TITLE_TOP_MAX = {"desk": 120, "phone": 170}


def layout_problems(page: Page, screen: Screen, size: str) -> list[str]:
    problems = []
    title_top, most = page.locator("main h1").first.bounding_box()["y"], TITLE_TOP_MAX[size]
    if title_top > most:
        problems.append(f"the title starts {title_top:.0f} px down (at most {most})")
    overflow = page.evaluate(OVERFLOW)
    if overflow["scrollWidth"] > overflow["innerWidth"]:
        problems.append(
            f"scrolls sideways: {overflow['scrollWidth']} px wide in {overflow['innerWidth']}"
            f" (overflowing: {', '.join(overflow['wide']) or 'unknown'})"
        )
    for cut in page.evaluate(CUT_OFF_INSIDE):
        problems.append(f"cut off sideways inside its box: {cut}")
    checks = screen.actions if screen.anonymous else screen.actions + NAV_CONTROLS
    for what, find in checks:
        problem = reachable_problem(page, what, find(page))
        if problem:
            problems.append(problem)
    return problems


@pytest.fixture(scope="module")
def layout_dir(artifacts_dir):
    path = artifacts_dir / "layout"
    path.mkdir(exist_ok=True)
    return path


def open_screen(open_page, desk, screen: Screen, size: str, scheme: str) -> Page:
    if not desk.has_endpoint(screen.endpoint):
        pytest.fail(f"the {screen.name} page ({screen.endpoint}) is not in the URL map")
    options = {"viewport": SIZES[size], "color_scheme": scheme}
    if not screen.anonymous:
        options["storage_state"] = desk.storage_state
    page = open_page(**options)
    page.goto(desk.url + screen.path(desk), wait_until="networkidle")
    return page


def screen_params() -> list:
    """SCREENS as test parameters, named after the pages."""
    return [pytest.param(screen, id=screen.name.replace(" ", "-")) for screen in SCREENS]


@pytest.mark.parametrize("screen", screen_params())
def test_page_fits_desk_and_phone_in_light_and_dark(open_page, desk, layout_dir, screen):
    problems = []
    for size in SIZES:
        for scheme in SCHEMES:
            page = open_screen(open_page, desk, screen, size, scheme)
            expect(page.locator("main h1").first).to_be_visible()
            stem = f"{screen.name.replace(' ', '-')}-{size}-{scheme}"
            page.screenshot(caret="initial", path=layout_dir / f"{stem}.png")
            problems += [f"{size} {scheme}: {p}" for p in layout_problems(page, screen, size)]
            page.context.close()
    assert not problems, f"{screen.name} ({screen.path(desk)}):\n" + "\n".join(problems)


LINES_OF_TEXT = """td => { const r = document.createRange(); r.selectNodeContents(td);
  return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }"""


@pytest.mark.parametrize("size", SIZES)
def test_audit_log_filters_on_iso_dates_and_shows_times_on_one_line(open_page, desk, size):
    page = open_page(viewport=SIZES[size], storage_state=desk.storage_state)
    page.goto(f"{desk.url}/admin/audit")
    since = page.get_by_label("From")
    # Text, not a datetime-local picker (Chromium draws that as mm/dd/yyyy).
    expect(since).to_have_attribute("type", "text")
    expect(since).to_have_attribute("placeholder", "yyyy-mm-dd hh:mm")
    times = page.locator("#audit-log td.time")
    texts = times.all_inner_texts()
    assert len(texts) >= 8
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", t) for t in texts), texts
    assert [times.nth(i).evaluate(LINES_OF_TEXT) for i in range(len(texts))] == [1] * len(texts)

    tomorrow = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%d")
    since.fill(tomorrow)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit-log tbody")).to_have_text("No events match.")
    expect(page.get_by_label("From")).to_have_value(tomorrow)

    an_hour_ago = (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    page.get_by_label("From").fill(an_hour_ago)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit-log td.time")).to_have_count(len(texts))
