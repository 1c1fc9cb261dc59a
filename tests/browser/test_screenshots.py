"""The README's screenshots: the desk (1366 by 768: overview and history, light and
dark) and a phone (390 by 844: the overview's cards and the alerts, light and dark).

They land in test-artifacts/browser/screenshots/; `make screenshots` copies the ones
the README shows into docs/screenshots/. The data is the layout tests' desk: two
accounts, a day of history, alerts firing, one feed stale.
"""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

DESK = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def shots_dir(artifacts_dir):
    path = artifacts_dir / "screenshots"
    path.mkdir(exist_ok=True)
    return path


def open_as_admin(open_page, desk, viewport, scheme):
    return open_page(viewport=viewport, color_scheme=scheme, storage_state=desk.storage_state)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_desk_screenshots_of_overview_and_history(open_page, desk, shots_dir, scheme):
    page = open_as_admin(open_page, desk, DESK, scheme)

    page.goto(f"{desk.url}/", wait_until="networkidle")
    expect(page.locator("#overview td.spark svg").first).to_be_visible()
    # Two limit alerts, the stale DOGE feed, and the reconciliation's BTC break and DOGE unknown.
    expect(page.locator("[data-testid=firing-count]")).to_have_text("5")
    page.screenshot(caret="initial", path=shots_dir / f"desk-overview-{scheme}.png")

    page.goto(f"{desk.url}/positions/BTC", wait_until="networkidle")
    expect(page.get_by_role("heading", name="BTC", exact=True)).to_be_visible()
    chart = page.locator("#chart canvas").first
    expect(chart).to_be_visible()
    # The history chart is on the first screen of a laptop, whole.
    box = chart.bounding_box()
    assert box["y"] + box["height"] <= DESK["height"], box
    page.screenshot(caret="initial", path=shots_dir / f"desk-history-{scheme}.png")

    for name in ("overview", "history"):
        assert (shots_dir / f"desk-{name}-{scheme}.png").stat().st_size > 20_000


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_screenshots_of_overview_cards_and_alerts(open_page, desk, shots_dir, scheme):
    page = open_as_admin(open_page, desk, PHONE, scheme)

    page.goto(f"{desk.url}/", wait_until="networkidle")
    # The positions table reads as cards on a phone: rows are boxes, no header row.
    first_row = page.locator("#overview tbody tr").first
    expect(first_row).to_be_visible()
    assert first_row.evaluate("tr => getComputedStyle(tr).display") == "block"
    # The cards from their heading down (the totals above them are a scroll away).
    page.locator("#overview").evaluate(
        "table => window.scrollTo(0, table.getBoundingClientRect().top + window.scrollY - 56)"
    )
    page.screenshot(caret="initial", path=shots_dir / f"phone-overview-{scheme}.png")

    page.goto(f"{desk.url}/alerts/", wait_until="networkidle")
    acknowledge = page.locator("#alerts-live").get_by_role("button", name="Acknowledge").first
    expect(acknowledge).to_be_in_viewport()
    page.screenshot(caret="initial", path=shots_dir / f"phone-alerts-{scheme}.png")

    for name in ("overview", "alerts"):
        assert (shots_dir / f"phone-{name}-{scheme}.png").stat().st_size > 20_000
