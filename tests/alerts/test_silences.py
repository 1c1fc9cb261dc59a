"""Silences: matching, muting notifications but not evaluation, expiry, pages."""

from datetime import timedelta
from decimal import Decimal

import pytest

from app.alerts.models import Alert, AlertRule, Channel, Notification, RuleKind, Silence
from app.auth.models import Role
from app.db_types import utcnow
from app.extensions import db
from tests.conftest import client_as, csrf_token_from
from tests.positions.helpers import snap, store


@pytest.fixture
def rule_id(app):
    with app.app_context():
        rule = AlertRule(
            name="too big",
            kind=RuleKind.POSITION_ABOVE,
            threshold=Decimal("10"),
            channels=[Channel(name="ops", kind="webhook", target="http://127.0.0.1:9/x")],
        )
        db.session.add(rule)
        db.session.commit()
        return rule.id


def add_silence(app, **matchers):
    now = utcnow()
    with app.app_context():
        db.session.add(
            Silence(
                starts_at=now - timedelta(seconds=1),
                ends_at=now + timedelta(hours=1),
                comment="maintenance",
                **matchers,
            )
        )
        db.session.commit()


def counts(app):
    with app.app_context():
        alerts = db.session.execute(db.select(Alert.state)).scalars().all()
        notes = db.session.execute(db.select(db.func.count(Notification.id))).scalar_one()
        return alerts, notes


def test_silenced_alert_fires_and_shows_but_is_not_notified(app, rule_id):
    add_silence(app, asset="BTC")
    store(app, [snap(asset="BTC", at=utcnow(), amount="11")])
    assert counts(app) == (["firing"], 0)
    store(app, [snap(asset="ETH", at=utcnow(), amount="11")])
    assert counts(app) == (["firing", "firing"], 1)


@pytest.mark.parametrize(
    "matchers, muted",
    [
        ({}, True),
        ({"account": "main"}, True),
        ({"account": "other"}, False),
        ({"asset": "BTC", "account": "main"}, True),
        ({"asset": "ETH"}, False),
    ],
)
def test_matchers(app, rule_id, matchers, muted):
    add_silence(app, **matchers)
    store(app, [snap(at=utcnow(), amount="11")])
    assert counts(app)[1] == (0 if muted else 1)


def test_silence_for_another_rule_does_not_mute(app, rule_id):
    with app.app_context():
        other = AlertRule(name="other", kind=RuleKind.POSITION_BELOW, threshold=Decimal("0"))
        db.session.add(other)
        db.session.commit()
        other_id = other.id
    add_silence(app, rule_id=other_id)
    store(app, [snap(at=utcnow(), amount="11")])
    assert counts(app)[1] == 1


def test_expired_silence_mutes_nothing(app, rule_id):
    now = utcnow()
    with app.app_context():
        db.session.add(
            Silence(
                starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1), comment="old"
            )
        )
        db.session.commit()
    store(app, [snap(at=utcnow(), amount="11")])
    assert counts(app)[1] == 1


def test_operator_silences_an_alert_in_one_click(app, rule_id):
    store(app, [snap(at=utcnow(), amount="11")])
    client = client_as(app, Role.OPERATOR)
    with app.app_context():
        alert_id = db.session.execute(db.select(Alert.id)).scalar_one()
    token = csrf_token_from(client, "/alerts/")
    response = client.post(f"/alerts/{alert_id}/silence", data={"csrf_token": token, "hours": "2"})
    assert response.status_code == 302
    assert "silenced</span>" in client.get("/alerts/").get_data(as_text=True)
    with app.app_context():
        silence = db.session.execute(db.select(Silence)).scalar_one()
        assert (silence.rule_id, silence.asset, silence.account) == (rule_id, "BTC", "main")
        assert timedelta(hours=1, minutes=59) < silence.ends_at - utcnow() <= timedelta(hours=2)


def test_silence_form_previews_then_creates_and_expires(app, rule_id):
    store(app, [snap(at=utcnow(), amount="11"), snap(asset="ETH", at=utcnow(), amount="12")])
    client = client_as(app, Role.OPERATOR)
    token = csrf_token_from(client, "/alerts/silences")
    form = {
        "csrf_token": token,
        "rule_id": "0",
        "asset": "ETH",
        "account": "*",
        "hours": "1",
        "comment": "rolling ETH",
    }
    preview = client.post("/alerts/silences", data={**form, "action": "preview"})
    html = preview.get_data(as_text=True)
    assert "Would silence 1 open alert(s)" in html and "main/ETH" in html
    with app.app_context():
        assert db.session.execute(db.select(Silence)).first() is None
    created = client.post("/alerts/silences", data={**form, "action": "create"})
    assert created.status_code == 302
    listing = client.get("/alerts/silences").get_data(as_text=True)
    assert "rolling ETH" in listing and ">active<" in listing
    with app.app_context():
        silence_id = db.session.execute(db.select(Silence.id)).scalar_one()
    client.post(f"/alerts/silences/{silence_id}/expire", data={"csrf_token": token})
    listing = client.get("/alerts/silences").get_data(as_text=True)
    assert "rolling ETH" in listing and ">expired<" in listing


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"hours": "0"}, "between"),
        ({"hours": "abc"}, "Not a valid decimal"),
        ({"comment": ""}, "required"),
        ({"rule_id": "999"}, "Not a valid choice"),
    ],
)
def test_silence_form_rejects_bad_input(app, rule_id, changes, message):
    client = client_as(app, Role.OPERATOR)
    token = csrf_token_from(client, "/alerts/silences")
    form = {
        "csrf_token": token,
        "rule_id": "0",
        "asset": "*",
        "account": "*",
        "hours": "1",
        "comment": "why",
        "action": "create",
        **changes,
    }
    response = client.post("/alerts/silences", data=form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(db.select(Silence)).first() is None


def test_viewers_see_silences_but_cannot_create_or_end_them(app, rule_id):
    add_silence(app)
    client = client_as(app, Role.VIEWER)
    html = client.get("/alerts/silences").get_data(as_text=True)
    assert "maintenance" in html and "End now" not in html and "New silence" not in html
    token = csrf_token_from(client, "/alerts/silences")
    response = client.post(
        "/alerts/silences",
        data={
            "csrf_token": token,
            "rule_id": "0",
            "asset": "*",
            "account": "*",
            "hours": "1",
            "comment": "x",
        },
    )
    assert response.status_code == 403
    assert client.post("/alerts/silences/1/expire", data={"csrf_token": token}).status_code == 403
    assert client.post("/alerts/1/silence", data={"csrf_token": token}).status_code == 403


def test_alert_that_fired_while_silenced_is_announced_once_the_silence_ends(app, rule_id):
    from app.alerts.engine import evaluate_all

    add_silence(app)
    store(app, [snap(at=utcnow(), amount="11")])
    assert counts(app) == (["firing"], 0)
    with app.app_context():
        evaluate_all()
        db.session.commit()
    assert counts(app)[1] == 0
    with app.app_context():
        db.session.execute(db.update(Silence).values(ends_at=utcnow()))
        db.session.commit()
        evaluate_all()
        evaluate_all()
        db.session.commit()
        kinds = db.session.execute(db.select(Notification.kind)).scalars().all()
    assert kinds == ["firing"]
