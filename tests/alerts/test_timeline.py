"""An alert's timeline: everything that happened to it, from the tables that record it."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.admin.audit import Action
from app.admin.models import AuditEvent
from app.alerts.models import (
    Alert,
    AlertRule,
    AlertTransition,
    Channel,
    DeliveryAttempt,
    Notification,
    RuleKind,
    Silence,
)
from app.alerts.timeline import alert_overlay, alert_timeline, chart_window, transitions
from app.auth.models import Role
from app.extensions import db
from tests.conftest import client_as

T1 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = T1 + timedelta(hours=5)


def at(minutes: float) -> datetime:
    return T1 + timedelta(minutes=minutes)


@pytest.fixture
def story(app):
    """BTC above 10 (clears at 8) fired at 12.5 at T1, went to two channels (one
    delivered, one refused), was acknowledged, silenced for 30 minutes, resolved at 7."""
    with app.app_context():
        rule = AlertRule(
            name="BTC too big",
            kind=RuleKind.POSITION_ABOVE,
            asset="BTC",
            threshold=Decimal("10"),
            clear_threshold=Decimal("8"),
        )
        hook = Channel(name="desk-hook", kind="webhook", target="https://example.com/h")
        mail = Channel(name="desk-mail", kind="email", target="desk@example.com")
        db.session.add_all([rule, hook, mail])
        db.session.flush()
        alert = Alert(
            rule_id=rule.id,
            account="main",
            asset="BTC",
            state="resolved",
            value=Decimal("7"),
            state_since=at(90),
            acknowledged_at=at(3),
            acknowledgement="hedging now",
        )
        db.session.add(alert)
        db.session.flush()
        db.session.add_all(
            [
                AlertTransition(
                    alert_id=alert.id,
                    from_state="normal",
                    to_state="firing",
                    value=Decimal("12.5"),
                    at=at(0),
                ),
                AlertTransition(
                    alert_id=alert.id,
                    from_state="firing",
                    to_state="resolved",
                    value=Decimal("7"),
                    at=at(90),
                ),
            ]
        )
        sent = Notification(
            channel_id=hook.id,
            alert_id=alert.id,
            kind="firing",
            dedupe_key="a",
            payload={},
            status="sent",
            attempts=1,
            created_at=at(0),
            sent_at=at(0.1),
        )
        refused = Notification(
            channel_id=mail.id,
            alert_id=alert.id,
            kind="firing",
            dedupe_key="b",
            payload={},
            status="pending",
            attempts=1,
            created_at=at(0),
            next_attempt_at=at(1),
        )
        db.session.add_all([sent, refused])
        db.session.flush()
        db.session.add_all(
            [
                DeliveryAttempt(notification_id=sent.id, at=at(0.1), ok=True, detail="HTTP 200"),
                DeliveryAttempt(
                    notification_id=refused.id, at=at(0.2), ok=False, detail="SMTP 550 refused"
                ),
                AuditEvent(
                    at=at(3),
                    actor_name="olivia",
                    action=Action.ALERT_ACK,
                    target=f"alert:{alert.id}",
                ),
                Silence(
                    rule_id=rule.id,
                    asset="BTC",
                    account="main",
                    starts_at=at(10),
                    ends_at=at(40),
                    comment="broker maintenance",
                ),
                # Another series' silence, and one over before the alert began: not its own.
                Silence(asset="ETH", starts_at=at(10), ends_at=at(40), comment="eth"),
                Silence(starts_at=at(-60), ends_at=at(-1), comment="earlier"),
            ]
        )
        db.session.commit()
        return alert.id


def test_timeline_tells_the_alert_story_in_time_order(app, story):
    with app.app_context():
        alert = db.session.get(Alert, story)
        events = alert_timeline(alert, NOW)

        seen = [(e.at, e.kind, e.text, e.detail, e.value, e.state) for e in events]

    assert seen == [
        (at(0), "transition", "normal → firing", "", Decimal("12.5"), "firing"),
        (at(0), "notification", "firing notification queued for desk-hook", "", None, ""),
        (
            at(0),
            "notification",
            "firing notification queued for desk-mail",
            "pending, 1 attempt(s)",
            None,
            "",
        ),
        (at(0.1), "delivery", "firing delivered to desk-hook", "HTTP 200", None, "ok"),
        (
            at(0.2),
            "delivery",
            "firing not delivered to desk-mail",
            "SMTP 550 refused",
            None,
            "failed",
        ),
        (at(3), "acknowledgement", "acknowledged by olivia", "hedging now", None, ""),
        (at(10), "silence", f"silence #{_silence_id(app)} began", "broker maintenance", None, ""),
        (at(40), "silence", f"silence #{_silence_id(app)} ended", "", None, ""),
        (at(90), "transition", "firing → resolved", "", Decimal("7"), "resolved"),
    ]


def test_a_notification_not_delivered_yet_says_when_it_is_tried_next(app, story):
    with app.app_context():
        events = alert_timeline(db.session.get(Alert, story), NOW)

    [waiting] = [e for e in events if e.kind == "notification" and e.next_try is not None]
    assert waiting.text == "firing notification queued for desk-mail" and waiting.next_try == at(1)


def _silence_id(app) -> int:
    with app.app_context():
        return db.session.execute(
            db.select(Silence.id).where(Silence.comment == "broker maintenance")
        ).scalar_one()


def test_overlay_has_the_rule_lines_and_the_firing_span(app, story):
    with app.app_context():
        overlay = alert_overlay(db.session.get(Alert, story))

    assert overlay["spans"] == [
        {
            "from": "2026-03-01T12:00:00Z",
            "to": "2026-03-01T13:30:00Z",
            "label": "BTC too big · main",
            "kind": "firing",
        }
    ]
    assert [(line["kind"], line["value"], line["metric"]) for line in overlay["limits"]] == [
        ("limit", "10", "amount"),
        ("clear", "8", "amount"),
    ]


def test_chart_window_frames_the_alert_with_a_margin(app, story):
    with app.app_context():
        steps = transitions(db.session.get(Alert, story))

    # 90 minutes firing: a quarter of it, but at least an hour, either side.
    assert chart_window(steps, NOW) == (at(-60), at(150))
    assert chart_window(steps, at(120)) == (at(-60), at(120))  # never past now
    # Firing for 8 hours: a quarter is 2 hours.
    assert chart_window(steps[:1], at(480)) == (at(-120), at(480))


def test_alert_page_shows_the_timeline_in_order_with_delivery_results(app, story):
    html = client_as(app, Role.VIEWER).get(f"/alerts/{story}").get_data(as_text=True)

    timeline = html.split('id="timeline"')[1]
    seen = [
        "normal → firing at",
        "firing delivered to desk-hook",
        "HTTP 200",
        "firing not delivered to desk-mail",
        "SMTP 550 refused",
        "acknowledged by olivia",
        "hedging now",
        "broker maintenance",
        "firing → resolved at",
    ]
    places = [timeline.index(text) for text in seen]
    assert places == sorted(places)
    assert 'class="badge delivery-ok"' in timeline and 'class="badge delivery-failed"' in timeline
    assert "12.5 BTC" in timeline and "7 BTC" in timeline
