"""On-call tests: a frozen engine clock, grouped channels, policies, a worker's duty."""

from datetime import timedelta
from decimal import Decimal

from app.alerts.models import AlertRule, Channel, Notification, NotificationStatus, RuleKind
from app.alerts.oncall import on_call_pass
from app.alerts.oncall_models import EscalationPolicy, EscalationStep, NotificationGroup
from app.db_types import utcnow
from app.extensions import db
from tests.positions.helpers import snap, store


class Clock:
    """The engine's clock, frozen at `start` and moved by the test."""

    def __init__(self, monkeypatch):
        # In the past, so snapshots at the clock's time are never "in the future".
        self.now = utcnow().replace(microsecond=0) - timedelta(hours=3)
        self.start = self.now
        monkeypatch.setattr("app.alerts.engine.utcnow", lambda: self.now)

    def at(self, seconds: float):
        """Move to `seconds` after the start and return that moment."""
        self.now = self.start + timedelta(seconds=seconds)
        return self.now


def add_channel(app, name="desk", target="http://127.0.0.1:9/none", **grouping) -> int:
    with app.app_context():
        channel = Channel(name=name, kind="webhook", target=target, **grouping)
        db.session.add(channel)
        db.session.commit()
        return channel.id


def add_rule(app, name="BTC too big", channel_ids=(), asset="*", **fields) -> int:
    """A rule breached above 10 (any asset unless told), notifying `channel_ids`."""
    with app.app_context():
        channels = [db.session.get(Channel, i) for i in channel_ids]
        rule = AlertRule(
            name=name,
            kind=RuleKind.POSITION_ABOVE,
            asset=asset,
            threshold=Decimal("10"),
            channels=channels,
            **fields,
        )
        db.session.add(rule)
        db.session.commit()
        return rule.id


def add_policy(app, name, steps: list[tuple[list[int], int]]) -> int:
    """A policy whose steps are (channel ids, wait seconds), in order."""
    with app.app_context():
        policy = EscalationPolicy(name=name)
        for position, (channel_ids, wait) in enumerate(steps):
            channels = [db.session.get(Channel, i) for i in channel_ids]
            policy.steps.append(
                EscalationStep(position=position, wait_seconds=wait, channels=channels)
            )
        db.session.add(policy)
        db.session.commit()
        return policy.id


def position(app, clock, asset, amount, account="main"):
    """A snapshot at the clock's time, through the one write path."""
    store(app, [snap(account=account, asset=asset, at=clock.now, amount=amount)])


def run_duty(app, now) -> int:
    with app.app_context():
        return on_call_pass(now)


def outbox(app, channel_id=None) -> list[Notification]:
    with app.app_context():
        query = db.select(Notification).order_by(Notification.id)
        if channel_id is not None:
            query = query.where(Notification.channel_id == channel_id)
        return db.session.execute(query).scalars().all()


def groups(app) -> list[NotificationGroup]:
    with app.app_context():
        query = db.select(NotificationGroup).order_by(NotificationGroup.id)
        return db.session.execute(query).scalars().all()


def listed(notification: Notification) -> list[tuple[str, str]]:
    """(asset, status) of each alert a message lists."""
    return [(a["labels"]["asset"], a["status"]) for a in notification.payload["alerts"]]


def flushed(app, now) -> int:
    """Run the duty, then count what it queued as delivered (as a healthy receiver would):
    a group's next message waits for its previous one."""
    queued = run_duty(app, now)
    with app.app_context():
        db.session.execute(
            db.update(Notification)
            .where(Notification.status == NotificationStatus.PENDING)
            .values(status=NotificationStatus.SENT, sent_at=now)
        )
        db.session.commit()
    return queued
