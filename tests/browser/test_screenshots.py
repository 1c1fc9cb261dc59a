"""Screenshots of the overview, a history page and the alerts, in light and dark.

They land in test-artifacts/browser/; `make screenshots` copies the overview and
history ones into docs/screenshots/ for the README.
"""

import math
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app.db_types import utcnow
from tests.alerts.helpers import add_rule
from tests.browser.test_walkthrough import log_in
from tests.conftest import PASSWORD, make_user
from tests.positions.helpers import snap, store

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(live_server):
    """A day of half-hourly snapshots for three assets over two accounts, one rule broken."""
    app = live_server.app
    make_user(app, "alice")
    now = utcnow().replace(second=0, microsecond=0)
    prices = {"BTC": 64000, "ETH": 3100, "SOL": 145}
    snapshots = [
        snap(
            account=account,
            asset=asset,
            at=now - timedelta(minutes=30 * step),
            amount=f"{base * (1 + 0.3 * math.sin(step / (4 if account == 'main' else 7))):.2f}",
            price=str(prices[asset] + step * 3),
        )
        for asset, base in (("BTC", 2), ("ETH", 30), ("SOL", 400))
        for account in ("main", "hedge")
        for step in range(48, -1, -1)
    ]
    # One feed went quiet an hour ago: its row shows as stale.
    snapshots.append(snap(account="main", asset="DOGE", at=now - timedelta(hours=1), amount="1e4"))
    add_rule(app, "BTC position over 4", "4", severity="critical")
    store(app, snapshots)
    store(app, [snap(account="main", asset="BTC", at=utcnow(), amount="4.5", price="64200")])
    return app


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_of_overview_history_and_alerts(
    demo, live_server, open_page, artifacts_dir, scheme
):
    base = live_server.url
    page = open_page(color_scheme=scheme, viewport={"width": 1280, "height": 760})
    page.goto(f"{base}/login")
    log_in(page, "alice", PASSWORD)

    page.goto(f"{base}/", wait_until="networkidle")
    expect(page.locator("#overview td.spark svg").first).to_be_visible()
    expect(page.locator("[data-testid=firing-count]")).to_have_text("1")
    page.screenshot(caret="initial", path=artifacts_dir / f"overview-{scheme}.png")

    page.goto(f"{base}/positions/BTC", wait_until="networkidle")
    expect(page.get_by_role("heading", name="BTC", exact=True)).to_be_visible()
    expect(page.locator("#chart canvas").first).to_be_visible()
    page.screenshot(caret="initial", path=artifacts_dir / f"history-{scheme}.png")

    page.goto(f"{base}/alerts/", wait_until="networkidle")
    expect(page.locator("#alerts tbody tr")).to_have_count(1)
    page.screenshot(caret="initial", path=artifacts_dir / f"alerts-{scheme}.png")

    for name in ("overview", "history", "alerts"):
        assert (artifacts_dir / f"{name}-{scheme}.png").stat().st_size > 10_000
