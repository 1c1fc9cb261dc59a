"""Grouping a channel's messages, in Alertmanager's sense.

A channel with `group_by` labels does not get one message per alert: the transition
marks the alert's group changed (in the transition's transaction), and a worker pass
flushes due groups into ordinary outbox rows, one message listing the group's alerts.
The first message waits `group_wait` after the group's first change; later changes go
at most once per `group_interval`; an unchanged firing group is re-sent after
`group_repeat`; when every alert has resolved, the group's resolved message ends it.

Order per group: a group's next message is not composed while its previous one waits
for delivery, so a resolved never overtakes its firing. Two workers flushing one
group: the conditional UPDATE of its version lets one compose the message.
"""

from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.alerts import notify
from app.alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    Channel,
    Notification,
    NotificationKind,
    NotificationStatus,
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


def _insert_ignore(model, values: dict, index: list[str]):
    module = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(model).values(**values).on_conflict_do_nothing(index_elements=index)


def _locked_group(channel: Channel, key: str, labels: dict, now: datetime) -> NotificationGroup:
    db.session.execute(
        _insert_ignore(
            NotificationGroup,
            {
                "channel_id": channel.id,
                "key": key,
                "labels": labels,
                "version": 0,
                "created_at": now,
            },
            ["channel_id", "key"],
        )
    )
    query = (
        select(NotificationGroup)
        .where(NotificationGroup.channel_id == channel.id, NotificationGroup.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return db.session.execute(query).scalar_one()


def _mark_changed(group: NotificationGroup, channel: Channel, now: datetime) -> None:
    if group.last_sent_at is None:
        due = (group.changed_at or now) + timedelta(seconds=channel.group_wait_seconds)
    else:
        due = max(now, group.last_sent_at + timedelta(seconds=channel.group_interval_seconds))
    group.changed_at = group.changed_at or now
    group.next_flush_at = min(due, group.next_flush_at) if group.next_flush_at else due


def _transaction_cache() -> dict:
    """Groups locked and members touched in this transaction: a storm's batch locks each
    group once, and its new members are written together at commit."""
    session = db.session()  # the scoped session's own Session
    transaction = session.get_transaction()
    cached = session.info.get("notification_groups")
    if cached is None or cached[0] is not transaction:
        cached = (transaction, {})
        session.info["notification_groups"] = cached
    return cached[1]


def add(alert: Alert, rule: AlertRule, channel: Channel, kind: str, now: datetime) -> bool:
    """Record a firing or resolved alert in its group of this channel; whether it counts
    as notified. Reminders are the group's own repeat, so a repeat changes nothing."""
    if kind == NotificationKind.REPEAT:
        return True
    key, labels = group_key(labels_of(channel), alert, rule)
    cache = _transaction_cache()
    with db.session.no_autoflush:
        group = cache.get((channel.id, key)) or _locked_group(channel, key, labels, now)
        cache[(channel.id, key)] = group
        member = cache.get((group.id, alert.id)) or db.session.get(
            NotificationGroupAlert, (group.id, alert.id), populate_existing=True
        )
    state = AlertState.RESOLVED if kind == NotificationKind.RESOLVED else AlertState.FIRING
    if member is None:
        if state == AlertState.RESOLVED:
            return False  # never in the group in this firing: nothing to tell
        member = NotificationGroupAlert(group_id=group.id, alert_id=alert.id)
        db.session.add(member)
    cache[(group.id, alert.id)] = member
    if state == AlertState.FIRING and member.fired_at != alert.fired_at:
        member.notified_state = None  # a new firing is news even if the last was too
    if member.state == state and member.notified_state is not None:
        return True
    member.state, member.fired_at, member.changed_at = state, alert.fired_at, now
    _mark_changed(group, channel, now)
    return True


def due_groups(now: datetime) -> list[tuple[int, int]]:
    """(id, version) of the groups whose next flush is due, earliest first."""
    query = (
        select(NotificationGroup.id, NotificationGroup.version)
        .where(NotificationGroup.next_flush_at <= now)
        .order_by(NotificationGroup.next_flush_at)
        .limit(MAX_GROUPS_PER_PASS)
    )
    return [tuple(row) for row in db.session.execute(query)]


def _previous_pending(group_id: int) -> bool:
    return db.session.execute(
        select(
            exists().where(
                Notification.group_id == group_id,
                Notification.status == NotificationStatus.PENDING,
            )
        )
    ).scalar_one()


def _claim(group_id: int, version: int, now: datetime) -> bool:
    result = db.session.execute(
        update(NotificationGroup)
        .where(
            NotificationGroup.id == group_id,
            NotificationGroup.version == version,
            NotificationGroup.next_flush_at <= now,
        )
        .values(version=version + 1)
    )
    return result.rowcount == 1


def _message_kind(group, changed, firing, now) -> str | None:
    if changed:
        return NotificationKind.FIRING if firing else NotificationKind.RESOLVED
    repeat = timedelta(seconds=group.channel.group_repeat_seconds)
    stale = group.last_sent_at is None or now - group.last_sent_at >= repeat
    unacknowledged = any(alert.acknowledged_at is None for _, alert in firing)
    return NotificationKind.REPEAT if firing and stale and unacknowledged else None


def flush(group_id: int, version: int, now: datetime) -> bool:
    """Compose the group's due message, if it has one; whether a message was queued.

    The caller commits. Does nothing if another worker flushed it first or the
    group's previous message is still waiting for delivery.
    """
    if _previous_pending(group_id) or not _claim(group_id, version, now):
        return False
    group = db.session.get(NotificationGroup, group_id, populate_existing=True)
    rows = db.session.execute(
        select(NotificationGroupAlert, Alert)
        .join(Alert, NotificationGroupAlert.alert_id == Alert.id)
        .where(NotificationGroupAlert.group_id == group_id)
        .order_by(Alert.rule_id, Alert.account, Alert.asset)
        .execution_options(populate_existing=True)
    ).all()
    firing = [(m, a) for m, a in rows if m.state == AlertState.FIRING]
    # A resolved alert leaves quietly if it was never announced, or if its rule sends
    # no resolved messages.
    told = firing + [
        (m, a)
        for m, a in rows
        if m.state == AlertState.RESOLVED
        and m.notified_state == AlertState.FIRING
        and a.rule.send_resolved
    ]
    changed = [(m, a) for m, a in told if m.state != m.notified_state]
    kind = _message_kind(group, changed, firing, now)
    if kind is not None:
        listed = firing + [(m, a) for m, a in changed if m.state == AlertState.RESOLVED]
        db.session.add(
            Notification(
                channel_id=group.channel_id,
                group_id=group.id,
                kind=kind,
                dedupe_key=f"group:{group.id}/message:{version + 1}",
                payload=group_payload(group, listed, kind),
                next_attempt_at=now,
                created_at=now,
            )
        )
        group.last_sent_at = now
    for member, _ in rows:
        member.notified_state = member.state
        if member.state == AlertState.RESOLVED:
            db.session.delete(member)
    group.changed_at = None
    repeat = timedelta(seconds=group.channel.group_repeat_seconds)
    if firing:
        group.next_flush_at = (group.last_sent_at or now) + repeat
    else:
        # Everything resolved and told: the next firing starts a new group wait.
        group.next_flush_at = group.last_sent_at = None
    return kind is not None


def group_payload(group: NotificationGroup, listed: list, kind: str) -> dict:
    """One Alertmanager v4 body listing every alert of the group (firing, then resolved)."""
    channel, key = group.channel, f"channel:{group.channel_id}/{group.key}"
    parts = []
    for member, alert in listed:
        member_kind = NotificationKind.RESOLVED if member.state == AlertState.RESOLVED else kind
        parts.append(notify.alertmanager_payload(alert, alert.rule, channel, member_kind, key))
    alerts = [part["alerts"][0] for part in parts]
    common_labels = _common([a["labels"] for a in alerts])
    common_notes = _common([a["annotations"] for a in alerts])
    return {
        "version": "4",
        "groupKey": key,
        "truncatedAlerts": 0,
        "status": "resolved" if kind == NotificationKind.RESOLVED else "firing",
        "receiver": channel.name,
        "groupLabels": group.labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_notes,
        "externalURL": parts[0]["externalURL"] if parts else "",
        "alerts": alerts,
        "tradingmonitor": {
            "kind": kind,
            "group_id": group.id,
            "alerts": [part["tradingmonitor"] for part in parts],
        },
    }


def _common(dicts: list[dict]) -> dict:
    if not dicts:
        return {}
    return {k: v for k, v in dicts[0].items() if all(d.get(k) == v for d in dicts[1:])}


def flush_due(now: datetime) -> int:
    """Flush every due group, one short transaction each; the number of messages queued."""
    due = due_groups(now)
    db.session.commit()
    queued = 0
    for group_id, version in due:
        queued += flush(group_id, version, now)
        db.session.commit()
    return queued
