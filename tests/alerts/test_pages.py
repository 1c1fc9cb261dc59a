"""The alerts page, acknowledgement, and the firing badge on every page."""

import logging
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.alerts.models import Alert, AlertRule, Silence
from app.auth.models import Role, User
from app.db_types import utcnow
from app.extensions import db
from tests.alerts.helpers import add_rule, firing_btc_alert
from tests.conftest import ParsedPage, client_as, csrf_token_from
from tests.positions.helpers import snap, store


@pytest.fixture
def firing(app):
    """A rule broken by one snapshot: one firing alert on main/BTC."""
    return firing_btc_alert(app, snap(asset="ETH", at=utcnow(), amount="99"))


def test_firing_alert_is_listed_with_rule_series_and_value(app, firing):
    html = client_as(app, Role.VIEWER).get("/alerts/").get_data(as_text=True)
    assert "BTC too big" in html and "main/BTC" in html and "12.5" in html
    assert 'class="badge state-firing"' in html
    # Viewers look; they get no buttons.
    assert "Acknowledge</button>" not in html


def test_every_page_shows_the_firing_count_and_the_overview_marks_the_row(app, firing):
    client = client_as(app, Role.VIEWER)
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'data-testid="firing-count">1<', html)
    assert "<title>(1) Positions" in html
    assert re.search(r'<tr class="\s*alerting" data-account="main" data-asset="BTC"[\s>]', html)
    assert re.search(r'<tr class="" data-account="main" data-asset="ETH"[\s>]', html)


def test_operator_acknowledges_with_a_comment(app, firing, caplog):
    client = client_as(app, Role.OPERATOR)
    token = csrf_token_from(client, "/alerts/")
    with caplog.at_level(logging.INFO):
        response = client.post(
            f"/alerts/{firing}/acknowledge", data={"csrf_token": token, "comment": "hedging now"}
        )
    assert response.status_code == 302
    assert "alert acknowledged: user=operator" in caplog.text
    with app.app_context():
        alert = db.session.get(Alert, firing)
        assert alert.acknowledged_at is not None and alert.acknowledgement == "hedging now"
        assert alert.state == "firing"
    html = client.get("/alerts/").get_data(as_text=True)
    assert "hedging now" in html and "Acknowledge</button>" not in html


def test_viewer_cannot_acknowledge(app, firing):
    client = client_as(app, Role.VIEWER)
    token = csrf_token_from(client, "/alerts/")
    response = client.post(f"/alerts/{firing}/acknowledge", data={"csrf_token": token})
    assert response.status_code == 403
    with app.app_context():
        assert db.session.get(Alert, firing).acknowledged_at is None


def test_acknowledge_needs_csrf_and_a_firing_alert(app, firing):
    client = client_as(app, Role.OPERATOR)
    assert client.post(f"/alerts/{firing}/acknowledge").status_code == 400
    token = csrf_token_from(client, "/alerts/")
    assert client.post("/alerts/999/acknowledge", data={"csrf_token": token}).status_code == 404
    store(app, [snap(at=utcnow(), amount="1")])  # resolves it
    response = client.post(f"/alerts/{firing}/acknowledge", data={"csrf_token": token})
    assert response.status_code == 302
    assert "not firing" in client.get("/alerts/").get_data(as_text=True)
    long = client.post(
        f"/alerts/{firing}/acknowledge", data={"csrf_token": token, "comment": "x" * 501}
    )
    assert long.status_code == 400


def test_no_alerts_says_so(app):
    html = client_as(app, Role.VIEWER).get("/alerts/").get_data(as_text=True)
    assert "Nothing is firing or pending" in html and "firing-count" not in html


def test_the_badge_refreshes_alone_with_the_firing_count(app, firing):
    client = client_as(app, Role.VIEWER)

    html = client.get("/alerts/badge").get_data(as_text=True)

    assert re.fullmatch(
        r'\s*<span id="firing-badge" data-live data-firing="1".*</span>\s*', html, re.S
    )
    assert 'data-testid="firing-count">1<' in html
    assert "<nav" not in html


def test_the_badge_is_empty_when_nothing_fires(app):
    html = client_as(app, Role.VIEWER).get("/alerts/badge").get_data(as_text=True)

    assert 'data-firing="0"' in html
    assert "firing-count" not in html


def test_live_refresh_of_the_alerts_page_gets_the_table_alone(app, firing):
    client = client_as(app, Role.VIEWER)

    html = client.get("/alerts/", headers={"HX-Request": "true"}).get_data(as_text=True)

    assert "<nav" not in html
    assert 'id="alerts-live" data-live' in html
    assert re.search(r'data-live-key="\d+" data-live-values="firing 12.5 ', html)


HOSTILE = ["<script>alert(1)</script>", "{{7*7}}", "\"'><img src=x>"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_rule_and_asset_names_are_escaped_on_every_alerts_page(app, name):
    add_rule(app, f"rule {name}", "10", asset=name)
    store(app, [snap(asset=name, account=name, at=utcnow(), amount="12.5")])
    client = client_as(app, Role.OPERATOR)
    with app.app_context():
        alert_id = db.session.execute(db.select(Alert.id)).scalar_one()
    for path in ("/alerts/", f"/alerts/{alert_id}", "/alerts/history", "/alerts/rules", "/"):
        html = client.get(path).get_data(as_text=True)
        page = ParsedPage(html)
        # Shown as the text typed; nothing of it became an element.
        assert page.shows_as_text(name), path
        assert "<script>alert" not in html and "<img src=x>" not in html, path
        assert not page.elements("img"), path
        if name == "{{7*7}}":
            assert "{{7*7}}" in html, path  # shown as typed, never evaluated


def test_alerts_are_sorted_by_state_then_severity_then_age(app):
    """Firing unacknowledged, then pending, then acknowledged; critical before warning
    before info; the one open longest first."""
    now = utcnow()
    made = [
        # (name, severity, state, minutes in that state, acknowledged)
        ("info firing old", "info", "firing", 50, False),
        ("warning pending", "warning", "pending", 5, False),
        ("critical acked", "critical", "firing", 90, True),
        ("critical firing new", "critical", "firing", 2, False),
        ("warning firing", "warning", "firing", 30, False),
        ("critical pending", "critical", "pending", 1, False),
        ("critical firing old", "critical", "firing", 40, False),
        ("info acked", "info", "firing", 200, True),
        ("resolved one", "critical", "resolved", 1, False),
        ("normal one", "critical", "normal", 1, False),
    ]
    with app.app_context():
        for name, severity, state, minutes, acked in made:
            rule = AlertRule(
                name=name, kind="position_above", threshold=Decimal(1), severity=severity
            )
            db.session.add(rule)
            db.session.flush()
            since = now - timedelta(minutes=minutes)
            db.session.add(
                Alert(
                    rule_id=rule.id,
                    account="main",
                    asset="BTC",
                    state=state,
                    value=Decimal(2),
                    state_since=since,
                    acknowledged_at=since if acked else None,
                )
            )
        db.session.commit()

    html = client_as(app, Role.VIEWER).get("/alerts/").get_data(as_text=True)

    shown = re.findall(r'<td class="alert-rule"><a href="/alerts/\d+">([^<]+)</a>', html)
    assert shown == [
        "critical firing old",
        "critical firing new",
        "warning firing",
        "info firing old",
        "critical pending",
        "warning pending",
        "critical acked",
        "info acked",
    ]


def test_alert_values_carry_their_unit(app):
    """Amounts in the asset, notionals in the quote currency, a change in percent, a
    stale feed's age as a duration."""
    now = utcnow()
    rules = [
        ("amount", {"kind": "position_above"}, "BTC", "1234.5"),
        ("notional", {"kind": "notional_above"}, "BTC", "311500.0"),
        ("change", {"kind": "change_over_window", "change_percent": True}, "BTC", "12.5"),
        ("stale", {"kind": "stale_feed"}, "ETH", "3725.250"),
    ]
    with app.app_context():
        for name, fields, asset, value in rules:
            rule = AlertRule(name=name, threshold=Decimal(1), **fields)
            db.session.add(rule)
            db.session.flush()
            db.session.add(
                Alert(
                    rule_id=rule.id,
                    account="main",
                    asset=asset,
                    state="firing",
                    value=Decimal(value),
                    state_since=now,
                )
            )
        db.session.commit()

    html = client_as(app, Role.VIEWER).get("/alerts/").get_data(as_text=True)

    assert re.search(r'title="1234\.5">1,234\.5 BTC</span>', html)
    assert re.search(r'title="311500(\.0)?">311,500\.00 USD</span>', html)
    assert re.search(r">12\.5 %</span>", html)
    assert re.search(r'title="3725\.250 s">1h 2m</span>', html)


def _silence_form(client, **changes):
    token = csrf_token_from(client, "/alerts/silences")
    form = {"csrf_token": token, "rule_id": "0", "asset": "SOL", "account": "*", "hours": "2"}
    return client.post("/alerts/silences", data={**form, "comment": "rebalancing", **changes})


def test_silence_starts_at_an_iso_moment_typed_in_the_users_zone(app):
    client = client_as(app, Role.OPERATOR)
    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(username="operator")).scalar_one()
        user.timezone = "Europe/Paris"
        db.session.commit()

    response = _silence_form(client, starts="2099-07-01 09:30", action="create")

    assert response.status_code == 302
    with app.app_context():
        silence = db.session.execute(db.select(Silence)).scalar_one()
        # 09:30 in Paris in July is 07:30 UTC; two hours long.
        assert silence.starts_at == datetime(2099, 7, 1, 7, 30, tzinfo=UTC)
        assert silence.ends_at == datetime(2099, 7, 1, 9, 30, tzinfo=UTC)
    html = client.get("/alerts/silences").get_data(as_text=True)
    assert "2099-07-01 09:30:00 CEST" in html and "scheduled" in html


def test_silence_start_typed_wrong_is_refused_with_the_form_kept(app):
    client = client_as(app, Role.OPERATOR)

    response = _silence_form(client, starts="07/01/2099", action="create")

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "must look like 2026-01-31" in html and 'value="07/01/2099"' in html
    with app.app_context():
        assert db.session.execute(db.select(Silence)).first() is None


@pytest.mark.parametrize("path", ["/alerts/silences", "/alerts/history"])
def test_dates_are_typed_as_iso_text_not_picked(app, path):
    page = ParsedPage(client_as(app, Role.OPERATOR).get(path).get_data(as_text=True))

    moments = [i for i in page.elements("input") if i.get("placeholder") == "yyyy-mm-dd hh:mm"]

    assert moments and all(i["type"] == "text" and i.get("pattern") for i in moments)
    assert not [i for i in page.elements("input") if i.get("type", "").startswith("datetime")]
