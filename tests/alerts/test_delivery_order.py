"""Delivery order per alert and channel, and the idempotency key every attempt carries."""

import threading
from datetime import timedelta

from app.alerts.models import Notification
from app.db_types import utcnow
from app.extensions import db
from tests.alerts.helpers import wait_for
from tests.alerts.outbox import deliver, make_due, notifications, setup_rule
from tests.alerts.receivers import WebhookReceiver
from tests.positions.helpers import snap, store


def statuses(bodies):
    return [(b["tradingmonitor"]["alert_id"], b["status"]) for b in bodies]


def fire_then_resolve(app, asset="BTC"):
    store(app, [snap(asset=asset, at=utcnow(), amount="11")])
    store(app, [snap(asset=asset, at=utcnow() + timedelta(seconds=1), amount="1")])


def test_resolved_waits_for_its_firing_after_an_outage(any_app):
    with WebhookReceiver() as receiver:
        setup_rule(any_app, target=receiver.url)
        receiver.status = 500
        store(any_app, [snap(at=utcnow(), amount="11")])
        assert deliver(any_app) == (0, 1)  # the firing fails and backs off
        store(any_app, [snap(at=utcnow() + timedelta(seconds=1), amount="1")])
        receiver.status = 200
        # The resolved is due, the firing is not: the resolved must not overtake it.
        assert deliver(any_app) == (0, 0)
        assert receiver.received == []
        make_due(any_app)
        assert deliver(any_app) == (2, 0)  # the firing, then the resolved it freed
    (alert_id,) = {n.alert_id for n in notifications(any_app)}
    assert statuses(receiver.received) == [(alert_id, "firing"), (alert_id, "resolved")]


def test_a_failing_alert_does_not_hold_up_another_alert(app):
    with WebhookReceiver() as receiver:
        setup_rule(app, target=receiver.url, asset="*")
        receiver.status = 500
        store(app, [snap(asset="BTC", at=utcnow(), amount="11")])
        assert deliver(app) == (0, 1)
        receiver.status = 200
        fire_then_resolve(app, asset="ETH")
        assert deliver(app) == (2, 0)
    assert [b["commonLabels"]["asset"] for b in receiver.received] == ["ETH", "ETH"]
    assert [b["status"] for b in receiver.received] == ["firing", "resolved"]


def test_a_later_message_waits_while_another_worker_is_sending_the_earlier(any_app):
    """Two workers: one holds the firing at a slow receiver; the other may not send on."""
    with WebhookReceiver() as receiver:
        setup_rule(any_app, target=receiver.url)
        receiver.gate = threading.Event()
        store(any_app, [snap(at=utcnow(), amount="11")])
        first = threading.Thread(target=deliver, args=(any_app,))
        first.start()
        try:
            assert wait_for(lambda: receiver.requests == 1, timeout=30)
            store(any_app, [snap(at=utcnow() + timedelta(seconds=1), amount="1")])
            make_due(any_app)
            assert deliver(any_app) == (0, 0)  # the second worker: the firing is in flight
        finally:
            receiver.gate.set()
            first.join(30)
        deliver(any_app)
    # The first worker's pass went on to the resolved once the firing was delivered.
    assert [b["status"] for b in receiver.received] == ["firing", "resolved"]
    assert len(receiver.attempts) == 2
    assert [n.status for n in notifications(any_app)] == ["sent", "sent"]


def test_every_attempt_carries_the_same_idempotency_key(any_app):
    with WebhookReceiver() as receiver:
        setup_rule(any_app, target=receiver.url)
        store(any_app, [snap(at=utcnow(), amount="11")])
        receiver.status = 500
        assert deliver(any_app) == (0, 1)
        receiver.status = 200
        make_due(any_app)
        assert deliver(any_app) == (1, 0)
    (row,) = notifications(any_app)
    assert row.idempotency_key.startswith("tm-")
    assert len(receiver.attempts) == 2
    for headers, body in receiver.attempts:
        assert headers["Idempotency-Key"] == row.idempotency_key
        assert body["idempotencyKey"] == row.idempotency_key
    assert receiver.attempts[0][1] == receiver.attempts[1][1]  # the same message again


def test_each_message_has_its_own_key(app):
    with WebhookReceiver() as receiver:
        setup_rule(app, target=receiver.url)
        fire_then_resolve(app)
        assert deliver(app) == (2, 0)
    keys = [h["Idempotency-Key"] for h, _ in receiver.attempts]
    assert len(set(keys)) == 2
    with app.app_context():
        stored = db.session.execute(
            db.select(Notification.idempotency_key).order_by(Notification.id)
        ).scalars()
        assert keys == list(stored)


def test_slack_hook_gets_the_key_as_a_header(app):
    with WebhookReceiver() as receiver:
        setup_rule(app, kind="slack", target=receiver.url)
        store(app, [snap(at=utcnow(), amount="11")])
        assert deliver(app) == (1, 0)
    ((headers, body),) = receiver.attempts
    assert headers["Idempotency-Key"] == notifications(app)[0].idempotency_key
    assert set(body) == {"text"}
