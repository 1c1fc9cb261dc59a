"""The reconciliation pages in Chromium: the table, the detail page's chart with both
sides and a shaded break, the CSV link. Screenshots land in test-artifacts/browser/."""

from datetime import timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from app.db_types import utcnow
from app.extensions import db
from app.recon.define import AssetSpec, ReconSpec, save_reconciliation
from app.recon.models import ReconAsset, ReconTransition
from tests.browser.conftest import session_cookies
from tests.conftest import PASSWORD, make_user
from tests.positions.helpers import snap, store

pytestmark = pytest.mark.browser

CHART = "#chart"
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""
# The break span's fill in chart.css (rgba(239, 68, 68, 0.12)), as the canvas holds it.
SPAN_PIXELS = """canvas => {
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 15 && d[i + 3] < 50 && Math.abs(d[i] - 239) < 12
        && Math.abs(d[i + 1] - 68) < 12 && Math.abs(d[i + 2] - 68) < 12) n++;
  }
  return n;
}"""


@pytest.fixture
def seeded(live_server):
    """Two hours of a book (BTC) and a venue (XBT contracts, x 0.001): the venue
    disagreed for half an hour (a break that resolved), and breaks again now."""
    app = live_server.app
    make_user(app, "alice")
    now = utcnow().replace(microsecond=0)
    snapshots = []
    for i in range(24, -1, -1):
        at = now - timedelta(minutes=5 * i) - timedelta(seconds=30)
        book = Decimal("2.5") + Decimal(i % 3) / 10
        off = 60 >= 5 * i > 30 or i == 0
        venue = (book + (Decimal("0.75") if off else 0)) * 1000
        snapshots.append(snap(account="main", asset="BTC", at=at, amount=str(book)))
        snapshots.append(snap(account="main@venue", asset="XBT", at=at, amount=str(venue)))
    store(app, snapshots)
    with app.app_context():
        spec = ReconSpec(
            name="venue",
            left_account="main",
            right_account="main@venue",
            assets=(AssetSpec("BTC", "XBT", Decimal("0.001"), Decimal("0.01")),),
        )
        recon = save_reconciliation(spec, actor="cli")
        db.session.commit()
        asset = db.session.execute(
            db.select(ReconAsset).where(ReconAsset.reconciliation_id == recon.id)
        ).scalar_one()
        # The earlier break, as the engine would have recorded it at the time.
        for minutes, before, after, venue in (
            (60, "matched", "break", "3.25"),
            (30, "break", "matched", "2.5"),
        ):
            at = now - timedelta(minutes=minutes)
            db.session.add(
                ReconTransition(
                    recon_asset_id=asset.id,
                    from_state=before,
                    to_state=after,
                    at=at,
                    as_of=at,
                    left_amount=Decimal("2.5"),
                    right_amount=Decimal(venue) * 1000,
                    difference=Decimal(venue) - Decimal("2.5"),
                )
            )
        db.session.commit()
        return {"recon": recon.id, "state": asset.state}


@pytest.fixture
def page(browser_page, live_server, seeded):
    page = browser_page
    page.add_init_script(WATCH_CSP)
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    page.goto(f"{live_server.url}/login?next=/recon")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/recon")
    return page


def test_recon_page_lists_the_break_and_its_chart_draws_both_sides_and_the_break(
    page, live_server, seeded, artifacts_dir
):
    row = page.locator("#recon tbody tr").first
    expect(row).to_have_attribute("data-state", "break")
    expect(row.locator(".badge")).to_have_text("break")
    # Exact on hover: the venue's 3250 contracts x 0.001.
    expect(row.locator("td").nth(3).locator(".num")).to_have_attribute("title", "3.25000")
    page.screenshot(caret="initial", path=artifacts_dir / "recon-page.png")

    row.get_by_role("link", name="BTC").click()
    expect(page.locator("main h1")).to_have_text("BTC in venue")
    page.wait_for_function(
        "() => { const el = document.getElementById('chart');"
        " return el && ['ready', 'empty', 'error'].includes(el.dataset.state); }"
    )
    chart = page.locator(CHART)
    expect(chart).to_have_attribute("data-state", "ready")
    # The break of an hour ago (closed) and the one open now.
    expect(chart).to_have_attribute("data-spans", "2")
    labels = page.locator(f"{CHART} .u-legend .u-series .u-label").all_inner_texts()
    assert labels[1:] == ["main BTC amount", "main@venue XBT x 0.001 amount"]
    assert page.locator(f"{CHART} canvas").evaluate(SPAN_PIXELS) > 2000
    page.screenshot(caret="initial", path=artifacts_dir / "recon-detail.png", full_page=True)

    # The latest break opens the chart on a window around it: the earlier break is out of it.
    page.get_by_test_id("latest-break").click()
    page.wait_for_function(
        "() => { const el = document.getElementById('chart');"
        " return el && el.dataset.state === 'ready' && el.dataset.xMin; }"
    )
    span = float(chart.get_attribute("data-x-max")) - float(chart.get_attribute("data-x-min"))
    assert 30 * 60 <= span <= 2 * 3600
    page.go_back()
    history = page.locator("#recon-history tbody tr")
    expect(history).to_have_count(3)
    expect(history.first).to_have_attribute("data-state", "break")
    csv_link = page.get_by_role("link", name="Download the history as CSV")
    with page.expect_download() as download:
        csv_link.click()
    lines = download.value.path().read_text().splitlines()
    assert lines[0].startswith("at,reconciliation,asset,right_asset,multiplier,from,to")
    assert len(lines) == 4
    page.get_by_role("link", name="XBT on main@venue").click()
    expect(page).to_have_url(f"{live_server.url}/positions/XBT?account=main@venue")
    assert page.problems == []
    assert page.evaluate("window.__cspViolations") == []


def test_recon_table_refreshes_itself(page, live_server, seeded):
    region = page.locator("#recon-live")
    expect(region).to_have_attribute("data-live", "")
    now = utcnow().replace(microsecond=0)
    # The venue catches up: the next ingest evaluates the pair, the next refresh shows it.
    store(live_server.app, [snap(account="main@venue", asset="XBT", at=now, amount="2500")])
    store(live_server.app, [snap(account="main", asset="BTC", at=now, amount="2.5")])
    expect(page.locator("#recon tbody tr").first).to_have_attribute(
        "data-state", "matched", timeout=15_000
    )


def test_admin_defines_a_reconciliation_on_a_phone_and_a_mistake_keeps_the_form(
    open_page, live_server, artifacts_dir
):
    make_user(live_server.app, "ada", role="admin")
    now = utcnow().replace(microsecond=0)
    store(
        live_server.app,
        [
            snap(account="main", asset="ETH", at=now, amount="10"),
            snap(account="main@venue", asset="ETH", at=now, amount="10"),
        ],
    )
    page = open_page(
        viewport={"width": 390, "height": 844},
        storage_state=session_cookies(live_server.url, "ada"),
    )
    page.goto(f"{live_server.url}/recon/definitions/new")
    page.get_by_label("Name", exact=True).fill("venue")
    page.get_by_label("Left account (the trading system's book)").fill("main")
    page.get_by_label("Right account (the venue's report)").fill("main@venue")
    page.get_by_label("Asset (left), line 1").fill("ETH")
    page.get_by_label("Multiplier (empty: 1), line 1").fill("1,0")
    page.get_by_role("button", name="Save reconciliation").click()
    problem = page.locator("#form-problem")
    expect(problem).to_contain_text("Nothing was saved")
    multiplier = page.get_by_label("Multiplier (empty: 1), line 1")
    expect(multiplier).to_have_attribute("aria-invalid", "true")
    expect(multiplier).to_have_value("1,0")
    expect(page.get_by_label("Asset (left), line 1")).to_have_value("ETH")
    page.screenshot(caret="initial", path=artifacts_dir / "recon-define-error.png", full_page=True)

    multiplier.fill("1")
    page.get_by_role("button", name="Save reconciliation").click()
    expect(page.locator("main h1")).to_have_text("Reconciliations")
    expect(page.locator("[data-recon=venue]")).to_contain_text("main (book) ↔ main@venue (venue)")
    page.get_by_role("link", name="Reconciliation", exact=True).click()
    expect(page.locator("#recon tbody tr").first).to_have_attribute("data-state", "matched")


def test_admin_previews_a_definition_on_its_chart_before_saving_it(
    open_page, live_server, seeded, artifacts_dir
):
    make_user(live_server.app, "ada", role="admin")
    page = open_page(storage_state=session_cookies(live_server.url, "ada"))
    page.add_init_script(WATCH_CSP)
    page.goto(f"{live_server.url}/recon/definitions/new")
    page.get_by_label("Name", exact=True).fill("venue, typed")
    page.get_by_label("Left account (the trading system's book)").fill("main")
    page.get_by_label("Right account (the venue's report)").fill("main@venue")
    page.get_by_label("Asset (left), line 1").fill("BTC")
    page.get_by_label("Right asset (empty: the same), line 1").fill("XBT")
    page.get_by_label("Multiplier (empty: 1), line 1").fill("0.001")
    page.get_by_label("Absolute tolerance (empty: the default), line 1").fill("0.01")
    page.locator("input[name=preview_days]").fill("1")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    # Twice off the venue in two hours: the half-hour break and the one open now.
    expect(preview).to_contain_text("2 break(s) in 1 asset(s)")
    page.wait_for_function(
        "() => { const el = document.getElementById('chart');"
        " return el && ['ready', 'empty', 'error'].includes(el.dataset.state); }"
    )
    chart = page.locator(CHART)
    expect(chart).to_have_attribute("data-state", "ready")
    expect(chart).to_have_attribute("data-spans", "2")
    # Half an hour and a few minutes of a day, shaded.
    assert page.locator(f"{CHART} canvas").evaluate(SPAN_PIXELS) > 1000
    page.screenshot(caret="initial", path=artifacts_dir / "recon-preview.png", full_page=True)
    # Nothing was saved; the typed form is still there to save.
    expect(page.get_by_label("Name", exact=True)).to_have_value("venue, typed")
    page.goto(f"{live_server.url}/recon/definitions")
    expect(page.locator("[data-recon='venue, typed']")).to_have_count(0)
    assert page.evaluate("window.__cspViolations") == []
