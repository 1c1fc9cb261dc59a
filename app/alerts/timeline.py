"""One alert's story in time order, for its page: transitions, notifications and their
delivery attempts, acknowledgements, silences that covered it, audit entries about it.

Each comes from the table that records it; nothing here writes.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import or_, select

from app.admin.audit import Action
from app.admin.models import AuditEvent
from app.alerts.models import (
    ANY,
    Alert,
    AlertRule,
    AlertState,
    AlertTransition,
    Channel,
    DeliveryAttempt,
    Notification,
    Silence,
)
from app.alerts.queries import LIMIT_KINDS
from app.extensions import db
from app.positions.overlay import rule_lines
from app.templating import utc_iso

# The least a chart shows around an alert: enough to see what led to it.
CHART_LEAD = timedelta(hours=1)

# Events of one kind read for a page: the newest this many (a rule repeating every
# hour for months would otherwise list thousands of notifications).
MAX_EVENTS_PER_KIND = 500

# Events at the same moment read in the order they happen: a transition queues its
# notifications, which are then delivered.
TRANSITION, NOTIFICATION, DELIVERY, ACKNOWLEDGEMENT, SILENCE, AUDIT = (
    "transition",
    "notification",
    "delivery",
    "acknowledgement",
    "silence",
    "audit",
)
ORDER = (TRANSITION, NOTIFICATION, DELIVERY, ACKNOWLEDGEMENT, SILENCE, AUDIT)


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    text: str
    detail: str = ""
    value: Decimal | None = None
    # transition: the state it moved to; delivery: "ok" or "failed".
    state: str = ""
    # A notification not delivered yet: when the worker tries it next.
    next_try: datetime | None = None


def _newest(query, *order):
    """The newest MAX_EVENTS_PER_KIND rows of the query."""
    desc = [column.desc() for column in order]
    return list(db.session.execute(query.order_by(*desc).limit(MAX_EVENTS_PER_KIND)))


def transitions(alert: Alert) -> list[AlertTransition]:
    """The alert's transitions, oldest first."""
    rows = _newest(
        select(AlertTransition).where(AlertTransition.alert_id == alert.id),
        AlertTransition.at,
        AlertTransition.id,
    )
    return [row[0] for row in reversed(rows)]


def _transition_events(rows: list[AlertTransition]) -> list[Event]:
    return [
        Event(t.at, TRANSITION, f"{t.from_state} → {t.to_state}", value=t.value, state=t.to_state)
        for t in rows
    ]


def _notification_events(alert: Alert) -> list[Event]:
    events = []
    queued = _newest(
        select(Notification, Channel.name)
        .join(Channel, Notification.channel_id == Channel.id)
        .where(Notification.alert_id == alert.id),
        Notification.id,
    )
    for notification, channel in reversed(queued):
        text = f"{notification.kind} notification queued for {channel}"
        if notification.status == "sent":
            events.append(Event(notification.created_at, NOTIFICATION, text))
            continue
        detail = f"{notification.status}, {notification.attempts} attempt(s)"
        next_try = notification.next_attempt_at
        events.append(
            Event(notification.created_at, NOTIFICATION, text, detail, next_try=next_try)
        )
    attempts = _newest(
        select(DeliveryAttempt, Notification.kind, Channel.name)
        .join(Notification, DeliveryAttempt.notification_id == Notification.id)
        .join(Channel, Notification.channel_id == Channel.id)
        .where(Notification.alert_id == alert.id),
        DeliveryAttempt.at,
        DeliveryAttempt.id,
    )
    for attempt, kind, channel in reversed(attempts):
        text = f"{kind} {'delivered to' if attempt.ok else 'not delivered to'} {channel}"
        state = "ok" if attempt.ok else "failed"
        events.append(Event(attempt.at, DELIVERY, text, attempt.detail, state=state))
    return events


def _audit_events(alert: Alert) -> list[Event]:
    """Acknowledgements (with the comment of the current one) and other audit entries."""
    rows = _newest(
        select(AuditEvent).where(AuditEvent.target == f"alert:{alert.id}"),
        AuditEvent.at,
        AuditEvent.id,
    )
    events = []
    for (entry,) in reversed(rows):
        if entry.action == Action.ALERT_ACK:
            events.append(Event(entry.at, ACKNOWLEDGEMENT, f"acknowledged by {entry.actor_name}"))
        elif entry.action == Action.ALERT_ESCALATE:
            step = entry.detail or {}
            text = f"escalation: step {step.get('step')} of policy {step.get('policy')} paged"
            channels = ", ".join(step.get("channels") or []) or "no channel"
            events.append(Event(entry.at, AUDIT, text, channels))
        else:
            events.append(Event(entry.at, AUDIT, f"{entry.action} by {entry.actor_name}"))
    acks = [i for i, event in enumerate(events) if event.kind == ACKNOWLEDGEMENT]
    if alert.acknowledged_at is not None:
        comment = alert.acknowledgement or ""
        if acks:
            last = events[acks[-1]]
            events[acks[-1]] = Event(last.at, ACKNOWLEDGEMENT, last.text, comment)
        else:  # acknowledged without an audit entry (older data): the alert's own record
            events.append(Event(alert.acknowledged_at, ACKNOWLEDGEMENT, "acknowledged", comment))
    return events


def covering_silences(alert: Alert, start: datetime, end: datetime) -> list[Silence]:
    """Silences matching the alert that were in force at some moment of [start, end)."""
    query = select(Silence).where(
        or_(Silence.rule_id.is_(None), Silence.rule_id == alert.rule_id),
        Silence.asset.in_((ANY, alert.asset)),
        Silence.account.in_((ANY, alert.account)),
        Silence.starts_at < end,
        Silence.ends_at > start,
    )
    return [row[0] for row in reversed(_newest(query, Silence.starts_at, Silence.id))]


def _silence_events(alert: Alert, start: datetime, now: datetime) -> list[Event]:
    events = []
    for silence in covering_silences(alert, start, now):
        scope = f"silence #{silence.id}"
        events.append(Event(silence.starts_at, SILENCE, f"{scope} began", silence.comment))
        if silence.ends_at <= now:
            events.append(Event(silence.ends_at, SILENCE, f"{scope} ended"))
    return events


def alert_timeline(alert: Alert, now: datetime) -> list[Event]:
    """Everything that happened to the alert, oldest first."""
    steps = transitions(alert)
    # Silences count from the alert's first transition (or its creation) on.
    start = steps[0].at if steps else alert.state_since
    events = [
        *_transition_events(steps),
        *_notification_events(alert),
        *_audit_events(alert),
        *_silence_events(alert, start, now),
    ]
    return sorted(events, key=lambda e: (e.at, ORDER.index(e.kind)))


def firing_spans(steps: list[AlertTransition], label: str) -> list[dict]:
    """When the alert was firing, from its transitions (oldest first): the chart's spans.
    A span still open has "to": None."""
    spans = []
    for step in steps:
        if step.to_state == AlertState.FIRING:
            spans.append({"from": step.at, "to": None, "label": label, "kind": "firing"})
        elif step.from_state == AlertState.FIRING and spans and spans[-1]["to"] is None:
            spans[-1]["to"] = step.at
    return spans


def chart_window(steps: list[AlertTransition], now: datetime) -> tuple[datetime, datetime]:
    """The time around the alert a chart shows: its first transition to its last (or
    now while it is open), with a quarter of that (at least CHART_LEAD) either side."""
    first = steps[0].at if steps else now
    last = now if not steps or steps[-1].to_state in AlertState.ACTIVE else steps[-1].at
    margin = max((last - first) / 4, CHART_LEAD)
    return first - margin, min(last + margin, now)


def iso_spans(spans: list[dict]) -> list[dict]:
    """Spans with their moments as ISO text (UTC, "Z"), as the chart reads them."""
    return [
        {**span, "from": utc_iso(span["from"]), "to": utc_iso(span["to"]) or None}
        for span in spans
    ]


def limit_lines(rule: AlertRule) -> list[dict]:
    """The rule's limit and clear lines when it is a limit (its value is an amount or a
    notional a chart can draw); none for a change or a stale feed."""
    return rule_lines(rule) if rule.kind in LIMIT_KINDS else []


def alert_overlay(alert: Alert) -> dict:
    """What the alert's chart draws on top: its rule's limit (and clear) line, and when
    it fired."""
    rule = alert.rule
    limits = limit_lines(rule)
    label = f"{rule.name} · {alert.account}"
    return {"limits": limits, "spans": iso_spans(firing_spans(transitions(alert), label))}
