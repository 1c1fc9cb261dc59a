"""An alert's own page: who may see it, what it shows, and acting from it."""

import re
from decimal import Decimal

from app.alerts.models import Alert, AlertRule
from app.auth.models import Role
from app.db_types import utcnow
from app.extensions import db
from tests.alerts.helpers import firing_btc_alert
from tests.conftest import ParsedPage, client_as, csrf_token_from
from tests.positions.helpers import snap, store


def test_viewer_sees_the_alert_its_value_timeline_and_chart(app):
    alert_id = firing_btc_alert(app)
    client = client_as(app, Role.VIEWER)

    response = client.get(f"/alerts/{alert_id}")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<h1>BTC too big</h1>" in html
    assert re.search(r'title="12\.5">12\.5 BTC</span>', html)
    assert 'class="badge state-firing"' in html and 'class="badge severity-critical"' in html
    timeline = html.split('id="timeline"')[1]
    assert "normal → firing" in timeline and "12.5 BTC" in timeline
    assert f'data-overlay-url="/alerts/{alert_id}/overlay.json"' in html
    assert 'data-series-url="/positions/BTC/series?account=main"' in html
    assert re.search(r'data-from="[0-9T:.-]+Z" data-to="[0-9T:.-]+Z"', html)
    # Viewers look; they get no buttons.
    assert "Acknowledge</button>" not in html


def test_unknown_alert_is_404_and_anonymous_visitors_go_to_login(app):
    client = client_as(app, Role.VIEWER)
    assert client.get("/alerts/999").status_code == 404
    assert client.get("/alerts/999/overlay.json").status_code == 404
    alert_id = firing_btc_alert(app)
    anonymous = app.test_client()
    assert anonymous.get(f"/alerts/{alert_id}").status_code == 302
    assert anonymous.get(f"/alerts/{alert_id}/overlay.json").status_code in (302, 401)


def test_overlay_json_gives_the_limit_and_the_open_firing_span(app):
    alert_id = firing_btc_alert(app)

    document = client_as(app, Role.VIEWER).get(f"/alerts/{alert_id}/overlay.json").get_json()

    assert document["limits"] == [
        {
            "label": "BTC too big",
            "value": "10",
            "metric": "amount",
            "kind": "limit",
            "rule_id": document["limits"][0]["rule_id"],
        }
    ]
    [span] = document["spans"]
    assert span["to"] is None and span["kind"] == "firing" and span["from"].endswith("Z")


def test_runbook_is_linked_only_when_it_is_http(app):
    alert_id = firing_btc_alert(app)
    client = client_as(app, Role.VIEWER)
    with app.app_context():
        db.session.get(Alert, alert_id).rule.runbook_url = "https://wiki.example/btc"
        db.session.commit()
    page = ParsedPage(client.get(f"/alerts/{alert_id}").get_data(as_text=True))
    [runbook] = [a for a in page.elements("a") if a.get("href") == "https://wiki.example/btc"]
    assert "noopener" in runbook["rel"]

    with app.app_context():
        db.session.get(Alert, alert_id).rule.runbook_url = "javascript:alert(1)"
        db.session.commit()
    html = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "javascript:" not in html


def test_operator_acknowledges_from_the_alert_page_and_comes_back_to_it(app):
    alert_id = firing_btc_alert(app)
    client = client_as(app, Role.OPERATOR)
    html = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Acknowledge</button>" in html and "Silence 1 h</button>" in html
    token = csrf_token_from(client, f"/alerts/{alert_id}")

    response = client.post(
        f"/alerts/{alert_id}/acknowledge",
        data={"csrf_token": token, "comment": "on it", "return_to": "detail"},
    )

    assert response.status_code == 302
    assert response.headers["Location"] == f"/alerts/{alert_id}"
    html = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    timeline = html.split('id="timeline"')[1]
    assert "acknowledged by operator" in timeline and "on it" in timeline
    assert "Acknowledge</button>" not in html


def test_every_alert_list_links_to_the_alert_page(app):
    alert_id = firing_btc_alert(app)
    store(app, [snap(at=utcnow(), amount="1")])  # resolved: still in the history
    store(app, [snap(at=utcnow(), amount="11")])  # firing again
    client = client_as(app, Role.VIEWER)
    link = f'href="/alerts/{alert_id}"'
    assert link in client.get("/alerts/").get_data(as_text=True)
    assert client.get("/alerts/history").get_data(as_text=True).count(link) == 3


def test_an_account_wide_alert_has_no_asset_chart(app):
    with app.app_context():
        db.session.add(
            AlertRule(name="gross", kind="gross_exposure_above", threshold=Decimal(100), asset="*")
        )
        db.session.commit()
    store(app, [snap(at=utcnow(), amount="2", price="100")])
    with app.app_context():
        alert_id = db.session.execute(db.select(Alert.id)).scalar_one()

    html = client_as(app, Role.VIEWER).get(f"/alerts/{alert_id}").get_data(as_text=True)

    assert "main (all assets)" in html and 'id="chart"' not in html
    assert re.search(r'title="200(\.0+)?">200\.00 USD</span>', html)
