"""Grouped channels: group wait, group interval, repeat interval and the resolved message,
with the engine's clock frozen; order and the one flush per group still hold."""

import threading

import pytest

from app.alerts import group_flush, grouping
from app.alerts.engine import evaluate_all
from app.alerts.messages import chat_text, email_message
from app.alerts.models import Alert
from app.extensions import db
from tests.alerts.oncall import (
    Clock,
    add_channel,
    add_rule,
    flushed,
    groups,
    listed,
    outbox,
    position,
    run_duty,
)
from tests.alerts.outbox import deliver, make_due
from tests.alerts.receivers import WebhookReceiver
from tests.positions.helpers import snap, store

GROUPED = {"group_by": "rule", "group_wait_seconds": 30, "group_interval_seconds": 300}


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


def grouped_desk(app, target="http://127.0.0.1:9/none", **settings) -> int:
    channel = add_channel(app, target=target, **{**GROUPED, **settings})
    add_rule(app, channel_ids=[channel])
    return channel


def test_first_message_waits_for_the_group_wait_and_lists_every_alert(app, clock):
    grouped_desk(app)
    position(app, clock, "BTC", "11")
    clock.at(10)
    position(app, clock, "ETH", "12")
    assert outbox(app) == []  # a transition marks the group; it queues nothing itself
    assert flushed(app, clock.at(29)) == 0
    assert outbox(app) == []
    assert flushed(app, clock.at(30)) == 1
    (message,) = outbox(app)
    assert message.kind == "firing" and message.alert_id is None
    assert listed(message) == [("BTC", "firing"), ("ETH", "firing")]
    assert message.payload["groupLabels"] == {"alertname": "BTC too big"}


def test_later_changes_wait_for_the_group_interval(app, clock):
    grouped_desk(app)
    position(app, clock, "BTC", "11")
    flushed(app, clock.at(30))
    clock.at(40)
    position(app, clock, "ETH", "12")
    clock.at(50)
    position(app, clock, "SOL", "13")
    assert flushed(app, clock.at(329)) == 0
    assert len(outbox(app)) == 1
    assert flushed(app, clock.at(330)) == 1
    latest = outbox(app)[-1]
    assert latest.kind == "firing"
    assert listed(latest) == [("BTC", "firing"), ("ETH", "firing"), ("SOL", "firing")]


def test_an_unchanged_firing_group_is_sent_again_after_the_repeat_interval(app, clock):
    grouped_desk(app, group_repeat_seconds=3600)
    position(app, clock, "BTC", "11")
    position(app, clock, "ETH", "12")
    flushed(app, clock.at(30))
    assert flushed(app, clock.at(3629)) == 0
    assert flushed(app, clock.at(3630)) == 1
    first, repeat = outbox(app)
    assert repeat.kind == "repeat"
    assert listed(repeat) == listed(first)
    assert chat_text(repeat.payload).startswith("[STILL FIRING] 2 alert(s) of group")


def test_a_resolving_alert_is_a_change_and_the_last_one_ends_the_group(app, clock):
    grouped_desk(app)
    position(app, clock, "BTC", "11")
    position(app, clock, "ETH", "12")
    flushed(app, clock.at(30))
    clock.at(60)
    position(app, clock, "BTC", "1")
    assert flushed(app, clock.at(330)) == 1
    assert listed(outbox(app)[-1]) == [("ETH", "firing"), ("BTC", "resolved")]
    clock.at(400)
    position(app, clock, "ETH", "2")
    assert flushed(app, clock.at(629)) == 0
    assert flushed(app, clock.at(630)) == 1
    last = outbox(app)[-1]
    assert (last.kind, last.payload["status"]) == ("resolved", "resolved")
    assert listed(last) == [("ETH", "resolved")]
    (group,) = groups(app)
    assert group.next_flush_at is None and group.last_sent_at is None
    # A new storm in this group waits the group wait again, not the interval.
    clock.at(700)
    position(app, clock, "BTC", "11")
    assert flushed(app, clock.at(729)) == 0
    assert flushed(app, clock.at(730)) == 1


def test_an_alert_that_resolves_before_its_group_is_sent_is_never_mentioned(app, clock):
    grouped_desk(app)
    position(app, clock, "BTC", "11")
    position(app, clock, "ETH", "12")
    clock.at(5)
    position(app, clock, "BTC", "1")
    assert flushed(app, clock.at(30)) == 1
    assert listed(outbox(app)[-1]) == [("ETH", "firing")]


def test_a_group_resolved_message_never_overtakes_its_firing(app, clock):
    with WebhookReceiver() as receiver:
        grouped_desk(app, target=receiver.url)
        receiver.status = 500
        position(app, clock, "BTC", "11")
        run_duty(app, clock.at(30))
        assert deliver(app) == (0, 1)
        clock.at(40)
        position(app, clock, "BTC", "1")
        # The resolved is due, but the group's firing is still undelivered: it waits.
        assert run_duty(app, clock.at(330)) == 0
        receiver.status = 200
        make_due(app)
        assert deliver(app) == (1, 0)
        assert run_duty(app, clock.at(331)) == 1
        assert deliver(app) == (1, 0)
    assert [body["status"] for body in receiver.received] == ["firing", "resolved"]
    keys = [headers["Idempotency-Key"] for headers, _ in receiver.attempts]
    assert keys[0] == keys[1] != keys[2]  # the retried firing kept its key


def test_groups_follow_the_channels_labels(app, clock):
    channel = add_channel(app, **{**GROUPED, "group_by": "asset"})
    add_rule(app, "BTC too big", channel_ids=[channel])
    add_rule(app, "Anything too big", channel_ids=[channel], severity="critical")
    position(app, clock, "BTC", "11")
    position(app, clock, "ETH", "12")
    assert flushed(app, clock.at(30)) == 2
    by_asset = {m.payload["groupLabels"]["asset"]: m for m in outbox(app)}
    assert sorted(by_asset) == ["BTC", "ETH"]
    rules = [a["labels"]["alertname"] for a in by_asset["BTC"].payload["alerts"]]
    assert sorted(rules) == ["Anything too big", "BTC too big"]


def test_an_ungrouped_channel_beside_a_grouped_one_still_gets_a_message_per_alert(app, clock):
    grouped = add_channel(app, "grouped", **GROUPED)
    plain = add_channel(app, "plain")
    add_rule(app, channel_ids=[grouped, plain])
    position(app, clock, "BTC", "11")
    position(app, clock, "ETH", "12")
    assert [n.alert_id is not None for n in outbox(app, plain)] == [True, True]
    assert outbox(app, grouped) == []


def test_a_grouped_message_reads_as_one_list(app, clock):
    grouped_desk(app)
    position(app, clock, "BTC", "11")
    position(app, clock, "ETH", "12")
    run_duty(app, clock.at(30))
    (message,) = outbox(app)
    text = chat_text(message.payload)
    assert text.splitlines()[0] == "[FIRING] 2 alert(s) of group alertname=BTC too big"
    assert "main/BTC: value 11" in text and "main/ETH: value 12" in text
    with app.app_context():
        mail = email_message("desk@example.com", message.payload, message.idempotency_key)
    assert mail["Subject"] == "[FIRING] 2 alert(s) of group alertname=BTC too big"
    body = mail.get_body(("plain",)).get_content()
    assert "account main, asset BTC" in body and "account main, asset ETH" in body


def test_two_workers_flush_a_group_once(any_app, clock):
    grouped_desk(any_app)
    position(any_app, clock, "BTC", "11")
    now = clock.at(30)
    with any_app.app_context():
        ((group_id, version),) = grouping.due_groups(now)
    start = threading.Barrier(2)
    results = []

    def flush():
        with any_app.app_context():
            start.wait(10)
            results.append(group_flush.flush(group_id, version, now))
            db.session.commit()

    threads = [threading.Thread(target=flush) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False, True]
    assert len(outbox(any_app)) == 1


def test_a_batch_firing_many_alerts_of_one_group_makes_one_group(app, clock):
    grouped_desk(app)
    store(app, [snap(asset=a, at=clock.now, amount="11") for a in ("BTC", "ETH", "SOL")])
    (group,) = groups(app)
    assert group.key.startswith("rule=")
    assert flushed(app, clock.at(30)) == 1
    assert listed(outbox(app)[-1]) == [("BTC", "firing"), ("ETH", "firing"), ("SOL", "firing")]


def test_a_rules_reminders_leave_a_grouped_channel_to_its_groups_repeat(app, clock):
    channel = add_channel(app, **GROUPED)
    add_rule(app, channel_ids=[channel], repeat_interval_seconds=60)
    position(app, clock, "BTC", "11")
    assert flushed(app, clock.at(30)) == 1
    with app.app_context():
        evaluate_all(clock.at(600))  # the rule's reminder is due: no per-alert message
    assert [n.kind for n in outbox(app)] == ["firing"]
    assert flushed(app, clock.at(600)) == 0


def test_batches_marking_groups_in_opposite_orders_do_not_wait_for_each_other(any_app, clock):
    """PostgreSQL: a transition locks no group (only its own alert's membership), so two
    batches touching the same groups in opposite orders never deadlock."""
    if any_app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer: its batches never run side by side")
    channel = add_channel(any_app, **{**GROUPED, "group_by": "severity"})
    add_rule(any_app, "Critical", channel_ids=[channel], severity="critical")
    add_rule(any_app, "Warning", channel_ids=[channel], severity="warning")
    position(any_app, clock, "BTC", "11")
    position(any_app, clock, "ETH", "12")
    assert flushed(any_app, clock.at(30)) == 2  # both groups announced
    with any_app.app_context():
        alerts = db.session.execute(db.select(Alert)).scalars().all()
        ids = {(a.rule.severity, a.asset): a.id for a in alerts}
    halfway = threading.Barrier(2)
    errors = []

    def batch(order):
        with any_app.app_context():
            try:
                for n, key in enumerate(order):
                    alert = db.session.get(Alert, ids[key])
                    channel = alert.rule.channels[0]
                    assert grouping.add(alert, alert.rule, channel, "resolved", clock.now)
                    if n == 0:
                        halfway.wait(10)
                db.session.commit()
            except Exception as exc:  # a deadlock would surface here
                errors.append(exc)
                db.session.rollback()

    orders = ((("critical", "BTC"), ("warning", "BTC")), (("warning", "ETH"), ("critical", "ETH")))
    threads = [threading.Thread(target=batch, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert run_duty(any_app, clock.at(330)) == 2
    assert {m.kind for m in outbox(any_app)[2:]} == {"resolved"}
