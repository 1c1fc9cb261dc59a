"""Escalation policies: while a firing alert stays unacknowledged, page the next step.

A rule with a policy notifies step 0's channels (beside its own) when its alert fires.
When a step's wait ends and nobody has acknowledged, a worker pass notifies the next
step. Acknowledging stops the escalation, resolving ends it; the resolved message goes
to every step paged so far. Each step taken is in the audit log, so it shows on the
alert's timeline. Two workers advance a step once: the step moves by a conditional
UPDATE (… WHERE escalation_step = n), and only the worker whose UPDATE matched pages.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from app.admin.audit import Action, record_event
from app.alerts import notify
from app.alerts.models import Alert, AlertRule, AlertState, Channel, NotificationKind
from app.alerts.oncall_models import EscalationPolicy, EscalationStep
from app.alerts.silences import silence_for
from app.extensions import db

ACTOR = "escalation"


def policy_steps(policy_id: int | None) -> list[EscalationStep]:
    """The policy's steps in order (none for no policy)."""
    if policy_id is None:
        return []
    query = (
        select(EscalationStep)
        .where(EscalationStep.policy_id == policy_id)
        .order_by(EscalationStep.position)
        .options(selectinload(EscalationStep.channels))
    )
    return list(db.session.execute(query).scalars())


def policy_choices() -> list[tuple[int, str]]:
    """The rule form's choice of policy: none, or one of those defined."""
    query = select(EscalationPolicy.id, EscalationPolicy.name).order_by(EscalationPolicy.name)
    return [(0, "none"), *((row.id, row.name) for row in db.session.execute(query))]


def chosen_policy(policy_id: int | None) -> tuple[int | None, str | None]:
    """The policy id a rule form chose (None for none), or a problem if it is gone."""
    if not policy_id:
        return None, None
    if db.session.get(EscalationPolicy, policy_id) is None:
        return None, "That escalation policy no longer exists."
    return policy_id, None


def paged_channels(alert: Alert, rule: AlertRule) -> list[Channel]:
    """The channels of every step paged so far in this firing."""
    if alert.escalation_step is None:
        return []
    steps = policy_steps(rule.escalation_policy_id)
    return [channel for step in steps[: alert.escalation_step + 1] for channel in step.channels]


def _next_at(steps: list[EscalationStep], position: int, now: datetime) -> datetime | None:
    """When the step after `position` is due: its wait ends, if a later step exists."""
    if position + 1 >= len(steps):
        return None
    return now + timedelta(seconds=steps[position].wait_seconds)


def _record(alert: Alert, rule: AlertRule, step: EscalationStep, now: datetime) -> None:
    event = record_event(
        Action.ALERT_ESCALATE,
        target=f"alert:{alert.id}",
        detail={
            "policy": step.policy.name,
            "step": step.position + 1,
            "channels": [channel.name for channel in step.channels],
            "rule": rule.name,
        },
        actor=ACTOR,
    )
    event.at = now


def start(alert: Alert, rule: AlertRule, now: datetime) -> None:
    """The alert fires (or is first announced): page step 0 from now on."""
    steps = policy_steps(rule.escalation_policy_id)
    if not steps or alert.escalation_step is not None:
        return
    alert.escalation_step = 0
    alert.escalation_next_at = _next_at(steps, 0, now)
    _record(alert, rule, steps[0], now)


def reset(alert: Alert) -> None:
    """A new firing starts its escalation from the first step again."""
    alert.escalation_step = alert.escalation_next_at = None


def end(alert: Alert) -> None:
    """Resolved: nothing more to page (the steps paged keep hearing the resolve)."""
    alert.escalation_next_at = None


def due(now: datetime) -> list[tuple[int, int]]:
    """(alert id, step) of firing, unacknowledged alerts whose step's wait has ended."""
    query = (
        select(Alert.id, Alert.escalation_step)
        .where(
            Alert.escalation_next_at <= now,
            Alert.state == AlertState.FIRING,
            Alert.acknowledged_at.is_(None),
        )
        .order_by(Alert.escalation_next_at)
    )
    return [tuple(row) for row in db.session.execute(query)]


def advance(alert_id: int, step: int, now: datetime) -> bool:
    """Page the step after `step` if this worker is the one to move it; the caller commits."""
    alert = db.session.get(Alert, alert_id, populate_existing=True)
    if alert is None or silence_for(alert, now) is not None:
        return False  # a silence holds the escalation where it is until it ends
    rule = alert.rule
    steps = policy_steps(rule.escalation_policy_id)
    position = step + 1
    claimed = db.session.execute(
        update(Alert)
        .where(
            Alert.id == alert_id,
            Alert.escalation_step == step,
            Alert.escalation_next_at <= now,
            Alert.state == AlertState.FIRING,
            Alert.acknowledged_at.is_(None),
        )
        .values(
            escalation_step=position if position < len(steps) else step,
            escalation_next_at=_next_at(steps, position, now),
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1 or position >= len(steps):
        return False
    # The UPDATE holds the alert's row lock until commit, as a transition does.
    db.session.refresh(alert)
    episode = f"alert:{alert.id}/fired:{notify.iso(alert.fired_at)}/escalation:{position}"
    notify.queue(
        alert, rule, NotificationKind.FIRING, now, episode, channels=steps[position].channels
    )
    _record(alert, rule, steps[position], now)
    return True


def advance_due(now: datetime) -> int:
    """Advance every due escalation, one short transaction each; the steps taken."""
    pending = due(now)
    db.session.commit()
    taken = 0
    for alert_id, step in pending:
        taken += advance(alert_id, step, now)
        db.session.commit()
    return taken


@dataclass(frozen=True)
class OpenEscalation:
    alert: Alert
    policy: EscalationPolicy
    step: int  # 1-based, as the page shows it
    steps: int
    next_at: datetime | None


def open_escalations() -> list[OpenEscalation]:
    """Firing alerts of rules with a policy, with the step each is on."""
    query = (
        select(Alert, EscalationPolicy)
        .join(AlertRule, Alert.rule_id == AlertRule.id)
        .join(EscalationPolicy, AlertRule.escalation_policy_id == EscalationPolicy.id)
        .where(Alert.state == AlertState.FIRING)
        .order_by(Alert.fired_at.desc(), Alert.id)
        .options(selectinload(Alert.rule), selectinload(EscalationPolicy.steps))
    )
    return [
        OpenEscalation(
            alert=alert,
            policy=policy,
            step=0 if alert.escalation_step is None else alert.escalation_step + 1,
            steps=len(policy.steps),
            next_at=alert.escalation_next_at if alert.acknowledged_at is None else None,
        )
        for alert, policy in db.session.execute(query)
    ]
