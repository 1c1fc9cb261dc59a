"""Grouping a channel's messages, in Alertmanager's sense: the transition's side.

A channel with `group_by` labels does not get one message per alert: the transition
records the alert in its group (in the transition's transaction: one membership row,
no lock on the group), and a worker pass flushes due groups into ordinary outbox rows
(app.alerts.group_flush), one message listing the group's alerts. The first message
waits `group_wait` after the group's first change; later changes go at most once per
`group_interval`; an unchanged firing group is re-sent after `group_repeat`; when
every alert has resolved, the group's resolved message ends it.
"""

from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    Channel,
    NotificationKind,
)
from app.alerts.oncall_models import GroupLabel, NotificationGroup, NotificationGroupAlert
from app.extensions import db

# Groups flushed per pass at most; the rest are due again in the next pass.
MAX_GROUPS_PER_PASS = 500
# An Alertmanager groups what it receives itself: its channel gets every alert alone.
UNGROUPED_KINDS = ("alertmanager",)


def labels_of(channel: Channel) -> list[str]:
    """The channel's group labels, in its order; [] when it does not group."""
    if channel.kind in UNGROUPED_KINDS:
        return []
    return [label for label in channel.group_by.split(",") if label in GroupLabel.ALL]


def group_key(labels: list[str], alert: Alert, rule: AlertRule) -> tuple[str, dict]:
    """The group's key (stable, by rule id) and the labels a message shows for it."""
    values = {
        GroupLabel.RULE: (str(rule.id), rule.name),
        GroupLabel.ACCOUNT: (alert.account, alert.account),
        GroupLabel.ASSET: (alert.asset, alert.asset),
        GroupLabel.SEVERITY: (rule.severity, rule.severity),
    }
    key = ",".join(f"{label}={values[label][0]}" for label in labels)
    shown = {
        ("alertname" if label == GroupLabel.RULE else label): values[label][1] for label in labels
    }
    return key, shown


def _dialect():
    return postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite


def _group_id(channel: Channel, key: str, labels: dict, now: datetime) -> int:
    """The id of the channel's group for `key`, created if new; read once per transaction.

    No lock is taken: two batches marking groups in different orders cannot deadlock.
    """
    cache = _transaction_cache()
    if (channel.id, key) in cache:
        return cache[(channel.id, key)]
    values = {"channel_id": channel.id, "key": key, "labels": labels, "created_at": now}
    create = (
        _dialect()
        .insert(NotificationGroup)
        .values(version=0, **values)
        .on_conflict_do_nothing(index_elements=["channel_id", "key"])
    )
    if _dialect() is postgresql:
        # In a transaction of its own: a new row's lock held until the batch commits
        # would make two batches creating the same groups wait for each other.
        with db.engine.connect() as conn:
            conn.execute(create)
            conn.commit()
    else:
        db.session.execute(create)  # SQLite: this transaction holds the write lock anyway
    group_id = db.session.execute(
        select(NotificationGroup.id).where(
            NotificationGroup.channel_id == channel.id, NotificationGroup.key == key
        )
    ).scalar_one()
    cache[(channel.id, key)] = group_id
    return group_id


def _transaction_cache() -> dict:
    """The group ids this transaction has looked up, by (channel id, key)."""
    session = db.session()  # the scoped session's own Session
    transaction = session.get_transaction()
    cached = session.info.get("notification_groups")
    if cached is None or cached[0] is not transaction:
        cached = (transaction, {})
        session.info["notification_groups"] = cached
    return cached[1]


def _fire(group_id: int, alert: Alert, now: datetime) -> None:
    """The alert fires in the group: a change, unless this firing is already there."""
    member = NotificationGroupAlert.__table__.c
    insert = _dialect().insert(NotificationGroupAlert.__table__)
    statement = insert.values(
        group_id=group_id,
        alert_id=alert.id,
        state=AlertState.FIRING,
        fired_at=alert.fired_at,
        notified_state=None,
        changed_at=now,
    )
    # A row a worker is deleting (told resolved) is gone when this runs: then it inserts.
    same_firing = member.fired_at == alert.fired_at
    unchanged = and_(same_firing, member.state == AlertState.FIRING)
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=["group_id", "alert_id"],
            set_={
                "state": AlertState.FIRING,
                "fired_at": alert.fired_at,
                # A new firing is news even if the last one was announced too.
                "notified_state": case((same_firing, member.notified_state), else_=None),
                "changed_at": case((unchanged, member.changed_at), else_=now),
            },
        )
    )


def _resolve(group_id: int, alert: Alert, now: datetime) -> bool:
    """The alert resolved: a change if it was firing in the group."""
    member = NotificationGroupAlert.__table__.c
    result = db.session.execute(
        update(NotificationGroupAlert.__table__)
        .where(
            member.group_id == group_id,
            member.alert_id == alert.id,
            member.state == AlertState.FIRING,
        )
        .values(state=AlertState.RESOLVED, changed_at=now)
    )
    return result.rowcount == 1


def add(alert: Alert, rule: AlertRule, channel: Channel, kind: str, now: datetime) -> bool:
    """Record a firing or resolved alert in its group of this channel; whether it counts
    as notified. Reminders are the group's own repeat, so a repeat changes nothing.

    Only the alert's membership row is written (under the alert's lock, like the rest
    of its transition); the worker finds changed groups from their members.
    """
    if kind == NotificationKind.REPEAT:
        return True
    key, labels = group_key(labels_of(channel), alert, rule)
    group_id = _group_id(channel, key, labels, now)
    if kind == NotificationKind.RESOLVED:
        return _resolve(group_id, alert, now)
    _fire(group_id, alert, now)
    return True


def _change_due(first_change, last_sent, channel_wait: int, interval: int) -> datetime:
    """When a group's pending changes are due: the group wait after its first change if
    nothing was sent yet, else one group interval after the last message."""
    if last_sent is None:
        return first_change + timedelta(seconds=channel_wait)
    return last_sent + timedelta(seconds=interval)


def due_groups(now: datetime) -> list[tuple[int, int]]:
    """(id, version) of the groups with a message due, earliest first."""
    member = NotificationGroupAlert
    changed = (
        select(member.group_id, func.min(member.changed_at).label("first_change"))
        .where(or_(member.notified_state.is_(None), member.notified_state != member.state))
        .group_by(member.group_id)
        .subquery()
    )
    query = (
        select(
            NotificationGroup.id,
            NotificationGroup.version,
            NotificationGroup.last_sent_at,
            NotificationGroup.next_flush_at,
            Channel.group_wait_seconds,
            Channel.group_interval_seconds,
            changed.c.first_change,
        )
        .join(Channel, NotificationGroup.channel_id == Channel.id)
        .outerjoin(changed, changed.c.group_id == NotificationGroup.id)
        .where(or_(changed.c.first_change.is_not(None), NotificationGroup.next_flush_at <= now))
    )
    due = []
    for row in db.session.execute(query):
        moments = [row.next_flush_at] if row.next_flush_at is not None else []
        if row.first_change is not None:
            first = row.first_change
            wait, interval = row.group_wait_seconds, row.group_interval_seconds
            moments.append(_change_due(first, row.last_sent_at, wait, interval))
        if moments and min(moments) <= now:
            due.append((min(moments), row.id, row.version))
    return [(group_id, version) for _, group_id, version in sorted(due)[:MAX_GROUPS_PER_PASS]]
