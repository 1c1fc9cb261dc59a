"""An operator creates a rule, a snapshot breaks it, the alert appears by itself, ack;
on a phone, the acknowledge is a thumb away and the alert's page tells its story."""

import pytest
import requests
from playwright.sync_api import expect

from app.auth.models import Role, User
from app.auth.tokens import create_token
from app.db_types import utcnow
from app.extensions import db
from tests.alerts.helpers import firing_btc_alert
from tests.browser.test_walkthrough import log_in
from tests.conftest import PASSWORD, make_user
from tests.positions.helpers import snap, store

pytestmark = pytest.mark.browser


def test_operator_sees_a_new_alert_without_reloading_and_acknowledges_it(
    live_server, browser_page, artifacts_dir
):
    app, base, page = live_server.app, live_server.url, browser_page
    app.config["LIVE_REFRESH_SECONDS"] = 1
    make_user(app, "olivia", role=Role.OPERATOR)
    make_user(app, "feeder", role=Role.ADMIN)  # only admins may hold ingest tokens
    store(app, [snap(asset="BTC", at=utcnow(), amount="1")])
    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(username="feeder")).scalar_one()
        _, secret = create_token(user, "feeder", ["ingest"])
        db.session.commit()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{base}/alerts/rules/new")
    log_in(page, "olivia", PASSWORD)
    expect(page).to_have_url(f"{base}/alerts/rules/new")
    page.fill("input[name=name]", "BTC over 2")
    page.select_option("select[name=kind]", "position_above")
    page.fill("input[name=asset]", "BTC")
    page.fill("input[name=threshold]", "2")
    page.select_option("select[name=severity]", "critical")
    page.click("button[value=save]")
    expect(page).to_have_url(f"{base}/alerts/rules")
    expect(page.locator("#rules")).to_contain_text("BTC over 2")

    page.goto(f"{base}/alerts/")
    expect(page.get_by_text("Nothing is firing or pending")).to_be_visible()
    page.screenshot(caret="initial", path=artifacts_dir / "10-alerts-empty.png", full_page=True)
    marker = page.evaluate("() => { window.__sameDocument = true; return 1; }")
    assert marker == 1

    response = requests.post(
        f"{base}/api/v1/positions",
        json={
            "positions": [
                {
                    "account": "main",
                    "asset": "BTC",
                    "timestamp": utcnow().isoformat(),
                    "amount": "2.5",
                }
            ]
        },
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )
    assert response.status_code == 200

    row = page.locator("#alerts tbody tr")
    expect(row).to_have_count(1, timeout=10_000)
    expect(row).to_contain_text("BTC over 2")
    expect(row).to_contain_text("2.5")
    # Same document: the table refreshed itself, the page was not reloaded.
    assert page.evaluate("() => window.__sameDocument === true")
    page.screenshot(caret="initial", path=artifacts_dir / "11-alert-firing.png", full_page=True)

    row.locator("input[name=comment]").fill("reducing now")
    row.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_contain_text("Acknowledged BTC over 2")
    expect(page.locator("#alerts tbody tr")).to_contain_text("reducing now")
    page.screenshot(
        caret="initial", path=artifacts_dir / "12-alert-acknowledged.png", full_page=True
    )
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors


def test_operator_on_a_phone_acknowledges_with_a_thumb_and_reads_the_timeline(
    live_server, open_page, artifacts_dir
):
    app, base = live_server.app, live_server.url
    make_user(app, "olivia", role=Role.OPERATOR)
    alert_id = firing_btc_alert(app)
    page = open_page(viewport={"width": 390, "height": 844}, color_scheme="dark")

    page.goto(f"{base}/alerts/")
    log_in(page, "olivia", PASSWORD)
    card = page.locator("#alerts tbody tr").first
    button = card.get_by_role("button", name="Acknowledge")
    box = button.bounding_box()
    assert box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert box["y"] + box["height"] <= 844, box
    card.locator("input[name=comment]").fill("cutting now")
    button.click()

    expect(page.get_by_role("status")).to_contain_text("Acknowledged BTC too big")
    expect(card.locator(".badge.acked")).to_be_visible()
    card.get_by_role("link", name="BTC too big").click()
    expect(page).to_have_url(f"{base}/alerts/{alert_id}")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("normal → firing at 12.5 BTC")
    expect(timeline).to_contain_text("acknowledged by olivia")
    expect(timeline).to_contain_text("cutting now")
    page.screenshot(
        caret="initial", path=artifacts_dir / "13-alert-page-phone.png", full_page=True
    )
