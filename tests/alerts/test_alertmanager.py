"""Alertmanager channels: alerts reach a real Alertmanager, stay while firing, then end."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from flask import url_for

from app.alerts.alertmanager import firing_to_resend, to_alertmanager
from app.alerts.delivery import deliver_due
from app.alerts.duties import resend_to_alertmanagers
from app.alerts.models import Alert, AlertRule, Channel
from app.auth.models import Role
from app.db_types import utcnow
from app.extensions import db
from tests.alerts import alertmanager_server
from tests.alerts.alertmanager_server import Alertmanager, alertmanager_binary
from tests.alerts.helpers import wait_for
from tests.alerts.receivers import WebhookReceiver
from tests.alerts.test_wakeup import heartbeat
from tests.alerts.test_workers import worker
from tests.conftest import build_app, client_as, csrf_token_from
from tests.positions.helpers import snap, store

PUBLIC_URL = "https://tm.example.com/desk"
RULE = "BTC too big"


@pytest.fixture
def alertmanager(tmp_path):
    binary = alertmanager_binary()
    workdir = tmp_path / "alertmanager"
    workdir.mkdir()
    with Alertmanager(binary, workdir) as server:
        yield server


@pytest.fixture
def app(sqlite_url):
    app = build_app(sqlite_url, PUBLIC_URL=PUBLIC_URL)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


def add_rule(app, target) -> int:
    with app.app_context():
        rule = AlertRule(
            name=RULE,
            kind="position_above",
            asset="BTC",
            threshold=Decimal(10),
            severity="critical",
            runbook_url="https://wiki.example.com/btc",
            channels=[Channel(name="am", kind="alertmanager", target=target)],
        )
        db.session.add(rule)
        db.session.commit()
        return rule.id


def fire(app) -> int:
    store(app, [snap(at=utcnow(), amount="12.5")])
    with app.app_context():
        return db.session.execute(db.select(Alert.id)).scalar_one()


def resolve(app) -> None:
    store(app, [snap(at=utcnow() + timedelta(seconds=1), amount="0")])


def deliver(app) -> tuple[int, int]:
    with app.app_context():
        return deliver_due()


def ours(alertmanager) -> list[dict]:
    return [a for a in alertmanager.alerts() if a["labels"].get("alertname") == RULE]


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_firing_alert_reaches_alertmanager_with_its_labels_then_resolves(app, alertmanager):
    rule_id = add_rule(app, alertmanager.url)
    alert_id = fire(app)
    assert deliver(app) == (1, 0)

    [held] = ours(alertmanager)
    assert held["labels"] == {
        "alertname": RULE,
        "rule": str(rule_id),
        "account": "main",
        "asset": "BTC",
        "severity": "critical",
    }
    assert held["annotations"]["value"] == "12.5"
    assert held["annotations"]["runbook"] == "https://wiki.example.com/btc"
    assert "12.5" in held["annotations"]["summary"] and "10" in held["annotations"]["summary"]
    with app.test_request_context():
        detail = url_for("alerts.detail", alert_id=alert_id)
    assert held["generatorURL"] == PUBLIC_URL + detail
    assert held["status"]["state"] == "active"
    assert parse(held["endsAt"]) > utcnow()

    resolve(app)
    assert deliver(app) == (1, 0)
    # Alertmanager lists only alerts that have not ended.
    assert wait_for(lambda: not ours(alertmanager), timeout=15)


def test_a_re_send_keeps_a_firing_alert_alive_in_alertmanager(app, alertmanager):
    add_rule(app, alertmanager.url)
    fire(app)
    deliver(app)
    [before] = ours(alertmanager)

    with app.app_context():
        app.config["ALERTMANAGER_RESEND_SECONDS"] = 600  # ends 40 minutes from now
        assert resend_to_alertmanagers() == 1

    [after] = ours(alertmanager)
    assert parse(after["endsAt"]) > parse(before["endsAt"]) + timedelta(minutes=20)
    assert after["startsAt"] == before["startsAt"]


def test_nothing_is_re_sent_before_the_firing_message_went_out(app):
    with WebhookReceiver() as receiver:
        add_rule(app, receiver.url.removesuffix("/hook"))
        fire(app)
        with app.app_context():
            [channel] = db.session.execute(db.select(Channel)).scalars()
            assert firing_to_resend(channel, utcnow()) == []
        deliver(app)
        with app.app_context():
            [channel] = db.session.execute(db.select(Channel)).scalars()
            assert len(firing_to_resend(channel, utcnow())) == 1
        # Resolved but its message not yet sent: a re-send must not bring it back.
        resolve(app)
        with app.app_context():
            [channel] = db.session.execute(db.select(Channel)).scalars()
            assert firing_to_resend(channel, utcnow()) == []
    # What went out is Alertmanager's API body: a list of alerts.
    [body] = receiver.received
    assert [item["labels"]["alertname"] for item in body] == [RULE]


def test_a_firing_message_ends_four_re_sends_after_it_is_sent(app):
    payload = {
        "status": "firing",
        "commonLabels": {},
        "commonAnnotations": {},
        "alerts": [
            {
                "labels": {"alertname": "x", "account": "main", "asset": "BTC"},
                "annotations": {"value": "1"},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
            }
        ],
    }
    now = utcnow()
    with app.app_context():
        [item] = to_alertmanager(payload, now)
    assert parse(item["endsAt"]) == now + timedelta(
        seconds=4 * app.config["ALERTMANAGER_RESEND_SECONDS"]
    )
    assert "generatorURL" not in item  # no public URL: no link, rather than an empty one
    assert item["labels"] == {"alertname": "x", "account": "main", "asset": "BTC"}


def test_admin_adds_an_alertmanager_channel(app):
    admin = client_as(app, Role.ADMIN)
    token = csrf_token_from(admin, "/alerts/channels")
    response = admin.post(
        "/alerts/channels",
        data={
            "csrf_token": token,
            "name": "prometheus",
            "kind": "alertmanager",
            "target": "http://alertmanager.internal:9093",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        [channel] = db.session.execute(db.select(Channel)).scalars()
        assert (channel.kind, channel.target) == (
            "alertmanager",
            "http://alertmanager.internal:9093",
        )


def test_the_worker_hands_off_re_sends_and_ends_an_alert_between_its_passes(
    app, alertmanager, tmp_path
):
    add_rule(app, alertmanager.url)
    log = tmp_path / "worker.log"
    process = worker(
        log,
        app.config["SQLALCHEMY_DATABASE_URI"],
        "--interval",
        "60",
        TRADINGMONITOR_PUBLIC_URL=PUBLIC_URL,
        TRADINGMONITOR_ALERTMANAGER_RESEND_SECONDS="1",
    )
    try:
        assert wait_for(lambda: heartbeat(app) == [1], timeout=30), log.read_text()
        alert_id = fire(app)
        assert wait_for(lambda: ours(alertmanager), timeout=10), log.read_text()
        [first] = ours(alertmanager)
        assert first["generatorURL"] == f"{PUBLIC_URL}/alerts/{alert_id}"
        # Re-sent while firing: Alertmanager sees the alert updated, its end pushed out.
        assert wait_for(
            lambda: [a["updatedAt"] for a in ours(alertmanager)] != [first["updatedAt"]],
            timeout=10,
        )
        resolve(app)
        assert wait_for(lambda: not ours(alertmanager), timeout=10), log.read_text()
        assert heartbeat(app) == [1]  # all of it between the first pass and the second
    finally:
        process.terminate()
        process.wait(30)


def test_the_channel_test_button_puts_a_test_alert_in_alertmanager(app, alertmanager):
    with app.app_context():
        channel = Channel(name="am", kind="alertmanager", target=alertmanager.url)
        db.session.add(channel)
        db.session.commit()
        channel_id = channel.id
    admin = client_as(app, Role.ADMIN)
    token = csrf_token_from(admin, "/alerts/channels")
    response = admin.post(f"/alerts/channels/{channel_id}/test", data={"csrf_token": token})
    assert response.status_code == 302
    [test] = [
        a for a in alertmanager.alerts() if a["labels"]["alertname"] == "TradingMonitor test"
    ]
    assert test["labels"]["severity"] == "info"


def test_a_missing_binary_skips_unless_alertmanager_is_required(monkeypatch):
    monkeypatch.setattr(alertmanager_server, "BINARY", "/nonexistent/prometheus-alertmanager")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("REQUIRE_ALERTMANAGER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="prometheus-alertmanager"):
        alertmanager_binary()
    monkeypatch.setenv("REQUIRE_ALERTMANAGER", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_ALERTMANAGER=1"):
        alertmanager_binary()
