"""Notifications: outbox rows with transitions, delivery to real receivers, retries."""

import socket
from datetime import timedelta

import pytest

from app.alerts.engine import evaluate_all
from app.alerts.models import (
    Alert,
    DeliveryAttempt,
)
from app.db_types import utcnow
from app.extensions import db
from tests.alerts.outbox import deliver, make_due, notifications, setup_rule
from tests.alerts.receivers import SmtpReceiver, WebhookReceiver
from tests.positions.helpers import snap, store


def test_firing_and_resolved_are_queued_with_the_transition(any_app):
    setup_rule(any_app)
    store(any_app, [snap(at=utcnow(), amount="11")])
    (firing,) = notifications(any_app)
    assert firing.kind == "firing" and firing.status == "pending"
    store(any_app, [snap(at=utcnow() + timedelta(seconds=1), amount="1")])
    assert [n.kind for n in notifications(any_app)] == ["firing", "resolved"]


def test_resolved_is_not_sent_when_the_rule_says_so(app):
    setup_rule(app, send_resolved=False)
    store(app, [snap(at=utcnow(), amount="11")])
    store(app, [snap(at=utcnow() + timedelta(seconds=1), amount="1")])
    assert [n.kind for n in notifications(app)] == ["firing"]


def test_webhook_gets_an_alertmanager_v4_payload(app):
    with WebhookReceiver() as receiver:
        setup_rule(app, target=receiver.url)
        store(app, [snap(at=utcnow(), amount="12.5")])
        assert deliver(app) == (1, 0)
    (body,) = receiver.received
    assert body["version"] == "4" and body["status"] == "firing"
    (alert,) = body["alerts"]
    assert alert["labels"] == {
        "alertname": "BTC too big",
        "severity": "critical",
        "account": "main",
        "asset": "BTC",
        "rule_id": alert["labels"]["rule_id"],
    }
    assert alert["annotations"]["value"] == "12.5"
    assert alert["annotations"]["runbook_url"] == "https://wiki.example/btc"
    assert alert["startsAt"].endswith("Z") and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert body["groupKey"] and body["receiver"] == "ops"


def test_receiver_down_is_retried_with_backoff_then_delivered_once(app):
    with WebhookReceiver() as receiver:
        setup_rule(app, target=receiver.url)
        store(app, [snap(at=utcnow(), amount="11")])
        receiver.status = 500
        assert deliver(app) == (0, 1)
        (pending,) = notifications(app)
        assert pending.attempts == 1 and pending.last_error == "HTTP 500"
        assert pending.next_attempt_at > utcnow()
        assert deliver(app) == (0, 0)  # not due yet: backoff
        make_due(app)
        assert deliver(app) == (0, 1)
        assert notifications(app)[0].next_attempt_at - utcnow() > timedelta(seconds=15)
        receiver.status = 200
        make_due(app)
        assert deliver(app) == (1, 0)
        assert deliver(app) == (0, 0)
    assert len(receiver.received) == 1
    (sent,) = notifications(app)
    assert sent.status == "sent" and sent.attempts == 3
    with app.app_context():
        log = db.session.execute(db.select(DeliveryAttempt.ok, DeliveryAttempt.detail)).all()
    assert [tuple(r) for r in log] == [
        (False, "HTTP 500"),
        (False, "HTTP 500"),
        (True, "HTTP 200"),
    ]


def test_refused_connection_is_retried(app):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    setup_rule(app, target=f"http://127.0.0.1:{port}/hook")
    store(app, [snap(at=utcnow(), amount="11")])
    assert deliver(app) == (0, 1)
    assert notifications(app)[0].last_error.startswith("unreachable")


def test_slack_channel_gets_text_linking_to_the_alert_page(app):
    app.config["PUBLIC_URL"] = "https://tm.example.com"
    with WebhookReceiver() as receiver:
        setup_rule(app, kind="slack", target=receiver.url)
        store(app, [snap(at=utcnow(), amount="11")])
        deliver(app)
    (body,) = receiver.received
    assert set(body) == {"text"}
    assert body["text"].startswith("[FIRING] BTC too big (critical) main/BTC: value 11")
    with app.app_context():
        alert_id = db.session.scalar(db.select(Alert.id))
    assert body["text"].endswith(f"\nAlert: https://tm.example.com/alerts/{alert_id}")


def test_email_goes_through_a_real_smtp_server(app):
    with SmtpReceiver() as smtp:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port)
        setup_rule(app, kind="email", target="desk@example.com")
        store(app, [snap(at=utcnow(), amount="11")])
        assert deliver(app) == (1, 0)
    assert smtp.recipients == [["desk@example.com"]]
    (message,) = smtp.messages
    assert message["Subject"] == "[FIRING] BTC too big (critical) main/BTC"


def test_repeat_while_firing_and_unacknowledged_only(app):
    setup_rule(app, repeat_interval_seconds=60)
    store(app, [snap(at=utcnow(), amount="11")])
    with app.app_context():
        evaluate_all(now=utcnow() + timedelta(seconds=30))
        evaluate_all(now=utcnow() + timedelta(seconds=61))
        evaluate_all(now=utcnow() + timedelta(seconds=62))
        db.session.commit()
    assert [n.kind for n in notifications(app)] == ["firing", "repeat"]
    with app.app_context():
        from app.alerts.models import Alert

        db.session.execute(db.update(Alert).values(acknowledged_at=utcnow()))
        evaluate_all(now=utcnow() + timedelta(seconds=200))
        db.session.commit()
    assert [n.kind for n in notifications(app)] == ["firing", "repeat"]


@pytest.mark.parametrize(
    "kind, target, message",
    [
        ("webhook", "ftp://example.com/x", "http:// or https://"),
        ("webhook", "javascript:alert(1)", "http:// or https://"),
        ("slack", "https://", "name a host"),
        ("email", "not-an-address", "not an e-mail"),
        ("email", "a@b@c", "not an e-mail"),
    ],
)
def test_add_channel_refuses_bad_targets(runner, kind, target, message):
    result = runner.invoke(args=["alerts", "add-channel", "x", "--kind", kind, "--target", target])
    assert result.exit_code == 2 and message in result.output


def test_cli_channel_rule_and_deliver(app, runner):
    with WebhookReceiver() as receiver:
        assert (
            runner.invoke(
                args=[
                    "alerts",
                    "add-channel",
                    "hook",
                    "--kind",
                    "webhook",
                    "--target",
                    receiver.url,
                ]
            ).exit_code
            == 0
        )
        result = runner.invoke(
            args=[
                "alerts",
                "add-rule",
                "big",
                "--kind",
                "position_above",
                "--threshold",
                "1",
                "--channel",
                "hook",
            ]
        )
        assert result.exit_code == 0, result.output
        assert (
            runner.invoke(
                args=[
                    "alerts",
                    "add-rule",
                    "x",
                    "--kind",
                    "position_above",
                    "--threshold",
                    "1",
                    "--channel",
                    "nope",
                ]
            ).exit_code
            == 2
        )
        store(app, [snap(at=utcnow(), amount="5")])
        delivered = runner.invoke(args=["alerts", "deliver"])
        assert "Sent 1, failed 0" in delivered.output
    assert len(receiver.received) == 1
    listing = runner.invoke(
        args=["alerts", "add-channel", "hook", "--kind", "webhook", "--target", receiver.url]
    )
    assert listing.exit_code == 2 and "exists" in listing.output
