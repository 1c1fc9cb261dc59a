"""The limits and value pages in a real browser, on a laptop and a phone, light and dark.

Screenshots land in test-artifacts/browser/ (git-ignored).
"""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from app.alerts.models import AlertRule, RuleKind
from app.db_types import utcnow
from app.extensions import db
from tests.conftest import PASSWORD, make_user
from tests.positions.helpers import snap, store

pytestmark = pytest.mark.browser

SCREENS = {"laptop": (1366, 768), "phone": (390, 844)}
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.fixture
def seeded(live_server):
    """alice (viewer); three accounts over two days, one price missing; limits near breach."""
    app = live_server.app
    make_user(app, "alice")
    now = (utcnow() - timedelta(seconds=30)).replace(microsecond=0)
    snapshots = []
    for step in range(48):
        at = now - timedelta(hours=step)
        snapshots += [
            snap(
                "main-trading-account", "BTC", at=at, amount=f"{3 + step % 5}.125", price="64210.5"
            ),
            snap("hedge", "BTC", at=at, amount=f"-{1 + step % 3}.5", price="64100"),
            snap("main-trading-account", "ETH", at=at, amount="120.123456", price="3105.25"),
        ]
    snapshots.append(snap("ops", "DOGE", at=now, amount="100000", price=None))
    store(app, snapshots)
    with app.app_context():
        db.session.add_all(
            [
                AlertRule(
                    name="BTC long limit with a fairly long descriptive name",
                    kind=RuleKind.POSITION_ABOVE,
                    asset="BTC",
                    threshold=Decimal("4"),
                    clear_threshold=Decimal("3.5"),
                ),
                AlertRule(
                    name="Hedge short",
                    kind=RuleKind.POSITION_BELOW,
                    account="hedge",
                    threshold=Decimal("-10"),
                ),
                AlertRule(
                    name="Notional cap", kind=RuleKind.NOTIONAL_ABOVE, threshold=Decimal("1000000")
                ),
                AlertRule(
                    name="Gross exposure",
                    kind=RuleKind.GROSS_EXPOSURE_ABOVE,
                    threshold=Decimal("2500000"),
                ),
            ]
        )
        db.session.commit()
    return {"now": now}


def open_as_alice(open_page, live_server, path, screen, scheme):
    width, height = SCREENS[screen]
    page = open_page(viewport={"width": width, "height": height}, color_scheme=scheme)
    page.add_init_script(WATCH_CSP)
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    page.goto(f"{live_server.url}/login?next={path}")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}{path}")
    return page


def wait_for_value_chart(page):
    """Wait until the value chart has settled; null-safe while a new page loads."""
    page.wait_for_function(
        "() => { const el = document.getElementById('value-chart');"
        " return el !== null && ['ready', 'empty', 'error'].includes(el.dataset.state); }"
    )


def assert_fits_the_screen(page):
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.problems == []
    assert page.evaluate("window.__cspViolations") == []


def assert_on_screen(page, locator):
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    width = page.viewport_size["width"]
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_limits_page_fits_and_shows_the_nearest_breach_first(
    open_page, live_server, seeded, screen, scheme, artifacts_dir
):
    page = open_as_alice(open_page, live_server, "/limits", screen, scheme)
    rows = page.locator("#limits tbody tr")
    # Hedge's short is 3.5 of 10; main's BTC 3.125 of 4 (78 %) is nearest to breach.
    first = rows.first
    assert first.get_attribute("data-series") == "main-trading-account/BTC"
    assert_on_screen(page, first)
    assert_on_screen(page, first.locator("meter"))
    expect(first).to_contain_text("78.1 %")
    expect(first.get_by_role("link", name="BTC", exact=True)).to_be_visible()
    assert_on_screen(page, page.get_by_role("heading", name="Limits"))
    # The DOGE position has no price: no notional to compare, said so.
    expect(page.locator("#limits")).to_contain_text("no price")
    page.screenshot(caret="initial", path=artifacts_dir / f"limits-{screen}-{scheme}.png")
    assert_fits_the_screen(page)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_value_page_fits_and_charts_each_account_and_the_desk(
    open_page, live_server, seeded, screen, scheme, artifacts_dir
):
    page = open_as_alice(open_page, live_server, "/value?range=24h", screen, scheme)
    chart = page.locator("#value-chart")
    wait_for_value_chart(page)
    assert chart.get_attribute("data-state") == "ready"
    # hedge and main-trading-account have priced positions; ops only an unpriced one.
    assert chart.get_attribute("data-lines") == "3"
    assert_on_screen(page, page.locator("#value-label"))
    assert_on_screen(page, chart.locator("canvas"))
    expect(page.locator("#value-unpriced")).to_have_text("1 position held now has no price")
    desk = page.locator("#value-figures tr.desk-total")
    expect(desk).to_contain_text("Desk")
    assert_on_screen(page, desk)
    page.screenshot(
        caret="initial", full_page=True, path=artifacts_dir / f"value-{screen}-{scheme}.png"
    )
    assert_fits_the_screen(page)


def test_value_range_buttons_are_links_to_the_range(open_page, live_server, seeded):
    page = open_as_alice(open_page, live_server, "/value", "laptop", "light")
    page.get_by_role("button", name="7 d").click()
    expect(page).to_have_url(f"{live_server.url}/value?range=7d")
    wait_for_value_chart(page)
    assert page.locator("#value-chart").get_attribute("data-state") == "ready"
    expect(page.get_by_role("button", name="7 d")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#value-figures thead")).to_contain_text("Change over 7 d")
    assert_fits_the_screen(page)


def test_limits_screen_refreshes_itself_when_a_position_moves(open_page, live_server, seeded):
    live_server.app.config["LIVE_REFRESH_SECONDS"] = 1
    page = open_as_alice(open_page, live_server, "/limits", "laptop", "light")
    first = page.locator("#limits tbody tr").first
    assert first.get_attribute("data-series") == "main-trading-account/BTC"
    # The hedge goes 9.5 short: 95 % of its short limit, now nearest to breach.
    at = seeded["now"] + timedelta(seconds=10)
    store(live_server.app, [snap("hedge", "BTC", at=at, amount="-9.5", price="64100")])
    expect(first).to_have_attribute("data-series", "hedge/BTC", timeout=10_000)
    expect(first).to_contain_text("95.0 %")
    expect(first).to_have_class(re.compile(r"\bchanged\b"))
    assert_fits_the_screen(page)
