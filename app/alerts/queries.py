"""Read queries of the alerts room."""

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import contains_eager, joinedload

from app.alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    AlertTransition,
    RuleKind,
    Severity,
)
from app.extensions import db


def open_alerts() -> list[Alert]:
    """Firing and pending alerts, firing first, newest first within each state."""
    firing_first = case((Alert.state == AlertState.FIRING, 0), else_=1)
    return list(
        db.session.execute(
            select(Alert)
            .options(joinedload(Alert.rule))
            .where(Alert.state.in_(AlertState.ACTIVE))
            .order_by(firing_first, Alert.state_since.desc(), Alert.id.desc())
        ).scalars()
    )


def alerts_by_urgency() -> list[Alert]:
    """Firing and pending alerts in the order a trader acts on them.

    State first: firing and not yet acknowledged (someone must act), then pending (may
    fire soon), then firing but acknowledged (someone is on it). Then severity:
    critical, warning, info. Then age: the one in its state longest first, because it
    has waited longest; a new alert shows at the end of its group and glows on arrival
    (live refresh). Resolved alerts are not open: the history and each alert's own page
    keep them.
    """
    urgency = case(
        (and_(Alert.state == AlertState.FIRING, Alert.acknowledged_at.is_(None)), 0),
        (Alert.state == AlertState.PENDING, 1),
        else_=2,
    )
    severity = case(
        (AlertRule.severity == Severity.CRITICAL, 0),
        (AlertRule.severity == Severity.WARNING, 1),
        else_=2,
    )
    return list(
        db.session.execute(
            select(Alert)
            .join(Alert.rule)
            .options(contains_eager(Alert.rule))
            .where(Alert.state.in_(AlertState.ACTIVE))
            .order_by(urgency, severity, Alert.state_since, Alert.id)
        ).scalars()
    )


def firing_count() -> int:
    """How many alerts are firing now (the layout's badge; the index on state serves it)."""
    return db.session.scalar(
        select(func.count()).select_from(Alert).where(Alert.state == AlertState.FIRING)
    )


def firing_series() -> tuple[int, set[tuple[str, str]]]:
    """How many alerts are firing, and the (account, asset) pairs they are on (asset "*"
    for account-wide rules)."""
    rows = db.session.execute(
        select(Alert.account, Alert.asset).where(Alert.state == AlertState.FIRING)
    ).all()
    return len(rows), {(account, asset) for account, asset in rows}


def transitions(
    *,
    rule_id: int | None = None,
    asset: str | None = None,
    state: str | None = None,
    start=None,
    end=None,
    before_id: int | None = None,
    limit: int | None = 200,
):
    """Alert transitions, newest first, with their alert and rule."""
    query = (
        select(AlertTransition, Alert, AlertRule)
        .join(Alert, AlertTransition.alert_id == Alert.id)
        .join(AlertRule, Alert.rule_id == AlertRule.id)
        .order_by(AlertTransition.id.desc())
    )
    if rule_id:
        query = query.where(Alert.rule_id == rule_id)
    if asset:
        query = query.where(Alert.asset == asset)
    if state:
        query = query.where(AlertTransition.to_state == state)
    if start is not None:
        query = query.where(AlertTransition.at >= start)
    if end is not None:
        query = query.where(AlertTransition.at < end)
    if before_id:
        query = query.where(AlertTransition.id < before_id)
    if limit:
        query = query.limit(limit)
    return db.session.execute(query)


# Every state but normal, spelled out so the query can use the index on state
# rather than read every alert of every rule (`state != 'normal'` cannot).
NOT_NORMAL = tuple(state for state in AlertState.ALL if state != AlertState.NORMAL)


def alerts_for_asset(asset: str) -> list[Alert]:
    """The alerts of `asset` that are not back to normal, newest first, with their rule."""
    return list(
        db.session.execute(
            select(Alert)
            .join(Alert.rule)
            .options(contains_eager(Alert.rule))
            .where(Alert.asset == asset, Alert.state.in_(NOT_NORMAL))
            .order_by(Alert.state_since.desc(), Alert.id.desc())
        ).scalars()
    )


# Rules that cap a value a desk holds: the limits screen lists them and charts draw them.
LIMIT_KINDS = (
    RuleKind.POSITION_ABOVE,
    RuleKind.POSITION_BELOW,
    RuleKind.NOTIONAL_ABOVE,
    RuleKind.GROSS_EXPOSURE_ABOVE,
)


def limit_rules(rule_id: int | None = None) -> list[AlertRule]:
    """The enabled rules that are limits (amount, notional, gross exposure), by id."""
    query = select(AlertRule).where(AlertRule.enabled.is_(True), AlertRule.kind.in_(LIMIT_KINDS))
    if rule_id is not None:
        query = query.where(AlertRule.id == rule_id)
    return list(db.session.execute(query.order_by(AlertRule.id)).scalars())
