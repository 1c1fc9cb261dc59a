"""Flushing due notification groups into the outbox: one message per group.

Order per group: a group's next message is not composed while its previous one waits
for delivery, so a resolved never overtakes its firing. Two workers flushing one
group: the conditional UPDATE of its version lets one compose the message.
"""

from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select, update

from app.alerts import notify
from app.alerts.grouping import due_groups
from app.alerts.models import Alert, AlertState, Notification, NotificationKind, NotificationStatus
from app.alerts.oncall_models import NotificationGroup, NotificationGroupAlert
from app.extensions import db


def _previous_pending(group_id: int) -> bool:
    return db.session.execute(
        select(
            exists().where(
                Notification.group_id == group_id,
                Notification.status == NotificationStatus.PENDING,
            )
        )
    ).scalar_one()


def _claim(group_id: int, version: int) -> bool:
    result = db.session.execute(
        update(NotificationGroup)
        .where(NotificationGroup.id == group_id, NotificationGroup.version == version)
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
    if _previous_pending(group_id) or not _claim(group_id, version):
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
    _mark_told(group_id, [a.id for _, a in firing], [a.id for m, a in rows if m not in firing])
    repeat = timedelta(seconds=group.channel.group_repeat_seconds)
    if firing:
        # The next reminder: one repeat after the last message, or from now if that
        # passed without one (every alert acknowledged).
        last = group.last_sent_at
        group.next_flush_at = (last if last and last + repeat > now else now) + repeat
    else:
        # Everything resolved and told: the next firing starts a new group wait.
        group.next_flush_at = group.last_sent_at = None
    return kind is not None


def _mark_told(group_id: int, firing_ids: list[int], resolved_ids: list[int]) -> None:
    """Record what the group has told: firing alerts as announced; resolved ones leave.

    Plain statements, not the loaded rows: a transition may change a member meanwhile.
    What was read as firing is what was announced, whatever it is now; a resolved
    member that fired again since stays, as a change.
    """
    table = NotificationGroupAlert.__table__
    if firing_ids:
        db.session.execute(
            update(table)
            .where(table.c.group_id == group_id, table.c.alert_id.in_(firing_ids))
            .values(notified_state=AlertState.FIRING)
        )
    if resolved_ids:
        db.session.execute(
            delete(table).where(
                table.c.group_id == group_id,
                table.c.alert_id.in_(resolved_ids),
                table.c.state == AlertState.RESOLVED,
            )
        )


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
