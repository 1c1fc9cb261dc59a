"""A break is an alert like any other: the alert pages show, acknowledge and silence it."""

import pytest

from app.alerts.models import Alert, AlertRule, AlertState
from app.auth.models import Role
from app.extensions import db
from tests.conftest import client_as
from tests.recon.helpers import book, define, ingest, venue

pytestmark = pytest.mark.usefixtures("frozen_clock")


@pytest.fixture
def firing(app):
    ingest(app, book(amount="5"), venue(amount="5"))
    define(app)
    ingest(app, book(amount="5", seconds=10), venue(amount="7.5", seconds=10))
    with app.app_context():
        alert = db.session.execute(db.select(Alert)).scalar_one()
        assert alert.state == AlertState.FIRING
        return alert.id, alert.rule_id


def test_the_alert_pages_show_a_break(app, firing):
    alert_id, rule_id = firing
    viewer = client_as(app, Role.VIEWER)
    listing = viewer.get("/alerts/")
    assert listing.status_code == 200
    assert "Reconciliation binance" in listing.get_data(as_text=True)
    detail = viewer.get(f"/alerts/{alert_id}")
    assert detail.status_code == 200
    assert "recon break" in detail.get_data(as_text=True)
    assert viewer.get(f"/alerts/{alert_id}/overlay.json").status_code == 200
    # The chart around the break draws both sides, as the reconciliation page does.
    html = detail.get_data(as_text=True)
    assert f'data-series-url="/recon/rule/{rule_id}/XBT/series"' in html
    document = viewer.get(f"/recon/rule/{rule_id}/XBT/series").get_json()
    assert [s["account"] for s in document["series"]] == ["main XBT", "main@binance BTC"]
    assert [p[1] for p in document["series"][1]["points"]] == ["5", "7.5"]
    assert len(document["spans"]) == 1
    assert viewer.get(f"/recon/rule/{rule_id}/ETH/series").status_code == 404
    assert viewer.get(f"/recon/rule/{rule_id + 1}/XBT/series").status_code == 404
    assert viewer.get(f"/alerts/history?rule={rule_id}&asset=XBT").status_code == 200
    assert viewer.get("/alerts/history.csv").status_code == 200


def test_operators_acknowledge_a_break(app, firing):
    alert_id, _ = firing
    operator = client_as(app, Role.OPERATOR)
    page = operator.get(f"/alerts/{alert_id}").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = operator.post(
        f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token, "comment": "on it"}
    )
    assert response.status_code in (200, 302, 303)
    with app.app_context():
        assert db.session.get(Alert, alert_id).acknowledged_at is not None


def test_the_rules_page_lists_the_reconciliation_rule(app, firing):
    operator = client_as(app, Role.OPERATOR)
    response = operator.get("/alerts/rules")
    assert response.status_code == 200
    assert "Reconciliation binance" in response.get_data(as_text=True)


def test_the_rule_form_sends_a_reconciliation_rule_back_to_its_definition(app, firing):
    _, rule_id = firing
    admin = client_as(app, Role.ADMIN)
    response = admin.get(f"/alerts/rules/{rule_id}/edit")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/recon/definitions")
    token = admin.get("/alerts/rules").get_data(as_text=True)
    token = token.split('name="csrf_token" value="')[1].split('"')[0]
    for action in ("toggle", "delete"):
        answer = admin.post(f"/alerts/rules/{rule_id}/{action}", data={"csrf_token": token})
        assert answer.status_code == 302
    with app.app_context():
        rule = db.session.get(AlertRule, rule_id)
        assert rule is not None and rule.enabled
