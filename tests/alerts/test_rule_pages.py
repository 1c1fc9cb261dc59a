"""Rule and channel pages: who may change what, and what the forms refuse."""

import re
from decimal import Decimal

import pytest

from app.alerts.models import AlertRule, Channel
from app.auth.models import Role
from app.extensions import db
from tests.alerts.receivers import WebhookReceiver
from tests.conftest import client_as, csrf_token_from

GOOD = {
    "name": "BTC cap",
    "kind": "position_above",
    "asset": "BTC",
    "account": "*",
    "threshold": "2.5",
    "clear_threshold": "2",
    "window_seconds": "",
    "pending_seconds": "0",
    "severity": "critical",
    "description": "Desk limit",
    "runbook_url": "https://wiki.example/btc",
    "repeat_interval_seconds": "3600",
    "send_resolved": "y",
    "enabled": "y",
}


def rules(app):
    with app.app_context():
        return db.session.execute(db.select(AlertRule)).scalars().all()


def post_rule(client, path="/alerts/rules/new", **changes):
    token = csrf_token_from(client, "/alerts/rules/new")
    return client.post(path, data={"csrf_token": token, **GOOD, **changes})


def test_operator_creates_edits_disables_and_deletes_a_rule(app):
    client = client_as(app, Role.OPERATOR)
    assert post_rule(client).status_code == 302
    (rule,) = rules(app)
    assert (rule.threshold, rule.clear_threshold, rule.severity) == (
        Decimal("2.5"),
        Decimal("2"),
        "critical",
    )
    assert "BTC cap" in client.get("/alerts/rules").get_data(as_text=True)
    edit = client.get(f"/alerts/rules/{rule.id}/edit").get_data(as_text=True)
    assert 'value="2.5"' in edit
    assert post_rule(client, f"/alerts/rules/{rule.id}/edit", threshold="3").status_code == 302
    assert rules(app)[0].threshold == Decimal("3")
    token = csrf_token_from(client, "/alerts/rules")
    client.post(f"/alerts/rules/{rule.id}/toggle", data={"csrf_token": token})
    assert rules(app)[0].enabled is False
    client.post(f"/alerts/rules/{rule.id}/delete", data={"csrf_token": token})
    assert rules(app) == []


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"threshold": "abc"}, "Not a valid decimal"),
        ({"threshold": ""}, "This field is required"),
        ({"clear_threshold": "3"}, "at or below the threshold"),
        ({"kind": "change_over_window"}, "needs --window"),
        ({"runbook_url": "javascript:alert(1)"}, "http:// or https://"),
        ({"name": ""}, "This field is required"),
        ({"pending_seconds": "-1"}, "at least 0"),
        ({"kind": "teleport"}, "Not a valid choice"),
        ({"threshold": "NaN"}, "finite"),
    ],
)
def test_rule_form_rejects_bad_input_with_a_clear_message(app, changes, message):
    client = client_as(app, Role.OPERATOR)
    response = post_rule(client, **changes)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert rules(app) == []


def test_viewers_see_rules_but_cannot_change_them(app):
    with app.app_context():
        db.session.add(AlertRule(name="r", kind="position_above", threshold=Decimal("1")))
        db.session.commit()
    client = client_as(app, Role.VIEWER)
    html = client.get("/alerts/rules").get_data(as_text=True)
    assert ">r<" in html and "Edit" not in html
    assert client.get("/alerts/rules/new").status_code == 403
    token = csrf_token_from(client, "/alerts/rules")
    assert client.post("/alerts/rules/1/toggle", data={"csrf_token": token}).status_code == 403
    assert client.post("/alerts/rules/1/delete", data={"csrf_token": token}).status_code == 403
    assert rules(app)[0].enabled is True


def test_channels_are_admin_only_and_secrets_are_masked(app):
    operator = client_as(app, Role.OPERATOR)
    assert operator.get("/alerts/channels").status_code == 403
    admin = client_as(app, Role.ADMIN)
    token = csrf_token_from(admin, "/alerts/channels")
    secret_url = "https://hooks.example.com/services/T000/B000/very-secret-token"
    response = admin.post(
        "/alerts/channels",
        data={"csrf_token": token, "name": "slack", "kind": "slack", "target": secret_url},
    )
    assert response.status_code == 302
    html = admin.get("/alerts/channels").get_data(as_text=True)
    assert "https://hooks.example.com/…" in html and "very-secret-token" not in html
    bad = admin.post(
        "/alerts/channels",
        data={"csrf_token": token, "name": "x", "kind": "webhook", "target": "file:///etc"},
    )
    assert bad.status_code == 400 and "http:// or https://" in bad.get_data(as_text=True)
    bad = admin.post(
        "/alerts/channels",
        data={"csrf_token": token, "name": "m", "kind": "email", "target": "nobody"},
    )
    assert bad.status_code == 400 and "not an e-mail address" in bad.get_data(as_text=True)


def test_send_test_notification_reaches_the_receiver_or_says_why_not(app):
    admin = client_as(app, Role.ADMIN)
    with WebhookReceiver() as receiver:
        with app.app_context():
            db.session.add(Channel(name="hook", kind="webhook", target=receiver.url))
            db.session.commit()
        token = csrf_token_from(admin, "/alerts/channels")
        admin.post("/alerts/channels/1/test", data={"csrf_token": token})
        assert receiver.received[0]["tradingmonitor"]["kind"] == "test"
        receiver.status = 500
        admin.post("/alerts/channels/1/test", data={"csrf_token": token})
    html = admin.get("/alerts/channels").get_data(as_text=True)
    assert "failed: HTTP 500" in html


def test_rule_with_channel_selected(app):
    with app.app_context():
        db.session.add(Channel(name="hook", kind="webhook", target="https://h.example/x"))
        db.session.commit()
    client = client_as(app, Role.OPERATOR)
    assert post_rule(client, channels="1").status_code == 302
    with app.app_context():
        rule = db.session.execute(db.select(AlertRule)).scalar_one()
        assert [c.name for c in rule.channels] == ["hook"]


def test_channels_page_shows_the_delivery_log(app):
    from app.alerts.delivery import deliver_due
    from app.db_types import utcnow
    from tests.positions.helpers import snap, store

    admin = client_as(app, Role.ADMIN)
    with WebhookReceiver() as receiver:
        receiver.status = 500
        with app.app_context():
            db.session.add(
                AlertRule(
                    name="cap",
                    kind="position_above",
                    threshold=Decimal("1"),
                    channels=[Channel(name="hook", kind="webhook", target=receiver.url)],
                )
            )
            db.session.commit()
        store(app, [snap(at=utcnow(), amount="5")])
        with app.app_context():
            deliver_due()
    html = admin.get("/alerts/channels").get_data(as_text=True)
    assert 'id="deliveries"' in html and "HTTP 500" in html and ">pending<" in html


def test_rule_form_marks_each_kinds_fields_and_shows_them_all_without_script(app):
    """rule-form.js hides the fields of the other kinds; the page as served hides none."""
    html = client_as(app, Role.OPERATOR).get("/alerts/rules/new").get_data(as_text=True)

    parts = re.findall(r'<div[^>]* data-kinds="([^"]+)"[^>]*>', html)
    window = [kinds for kinds in parts if kinds == "change_over_window"]
    assert window, parts
    assert not re.search(r"data-kinds=[^>]*\shidden", html)
    assert 'name="window_seconds"' in html and 'name="clear_threshold"' in html
    assert re.search(r'<script src="/static/js/rule-form\.js[^"]*" defer>', html)


def test_a_rule_saved_with_fields_of_another_kind_keeps_working(app):
    """Hidden fields are still sent: the server checks every field as it always has."""
    client = client_as(app, Role.OPERATOR)

    response = post_rule(client, window_seconds="300", change_percent="y")

    assert response.status_code == 302
    [rule] = rules(app)
    assert rule.kind == "position_above" and rule.threshold == Decimal("2.5")
