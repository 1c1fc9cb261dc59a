"""Defining escalation policies and their steps; every change is audited, the caller commits."""

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.admin.audit import Action, record_event
from app.alerts.models import AlertRule, Channel
from app.alerts.oncall_models import EscalationPolicy, EscalationStep
from app.extensions import db


def all_policies() -> list[EscalationPolicy]:
    """Every policy by name, with its steps and their channels."""
    query = (
        select(EscalationPolicy)
        .order_by(EscalationPolicy.name)
        .options(selectinload(EscalationPolicy.steps).selectinload(EscalationStep.channels))
    )
    return list(db.session.execute(query).scalars())


def rules_using(policy: EscalationPolicy) -> list[AlertRule]:
    query = select(AlertRule).where(AlertRule.escalation_policy_id == policy.id)
    return list(db.session.execute(query.order_by(AlertRule.name)).scalars())


def name_taken(name: str, policy: EscalationPolicy | None = None) -> bool:
    query = select(EscalationPolicy.id).where(EscalationPolicy.name == name)
    if policy is not None:
        query = query.where(EscalationPolicy.id != policy.id)
    return db.session.execute(query).first() is not None


def _target(policy: EscalationPolicy) -> str:
    return f"policy:{policy.id}"


def create_policy(name: str, description: str) -> EscalationPolicy:
    policy = EscalationPolicy(name=name, description=description)
    db.session.add(policy)
    db.session.flush()
    record_event(Action.POLICY_CREATE, target=_target(policy), detail={"name": name})
    return policy


def update_policy(policy: EscalationPolicy, name: str, description: str) -> None:
    policy.name, policy.description = name, description
    record_event(Action.POLICY_UPDATE, target=_target(policy), detail={"name": name})


def add_step(policy: EscalationPolicy, channel_ids: list[int], wait_seconds: int) -> None:
    """Append a step notifying the channels, then waiting `wait_seconds`."""
    channels = [c for c in (db.session.get(Channel, i) for i in channel_ids) if c is not None]
    last = db.session.execute(
        select(func.max(EscalationStep.position)).where(EscalationStep.policy_id == policy.id)
    ).scalar()
    step = EscalationStep(
        policy_id=policy.id,
        position=0 if last is None else last + 1,
        wait_seconds=wait_seconds,
        channels=channels,
    )
    db.session.add(step)
    record_event(
        Action.POLICY_UPDATE,
        target=_target(policy),
        detail={
            "name": policy.name,
            "added_step": step.position + 1,
            "channels": [c.name for c in channels],
            "wait_seconds": wait_seconds,
        },
    )


def remove_step(policy: EscalationPolicy, step: EscalationStep) -> None:
    """Delete a step; the later ones move up one place."""
    removed = step.position
    db.session.delete(step)
    db.session.flush()
    later = select(EscalationStep).where(
        EscalationStep.policy_id == policy.id, EscalationStep.position > removed
    )
    # In ascending order, each move lands on the place just freed.
    for moved in db.session.execute(later.order_by(EscalationStep.position)).scalars():
        moved.position -= 1
        db.session.flush()
    record_event(
        Action.POLICY_UPDATE,
        target=_target(policy),
        detail={"name": policy.name, "removed_step": removed + 1},
    )


def delete_policy(policy: EscalationPolicy) -> None:
    """Delete the policy; its rules keep their own channels and stop escalating."""
    record_event(Action.POLICY_DELETE, target=_target(policy), detail={"name": policy.name})
    db.session.delete(policy)
