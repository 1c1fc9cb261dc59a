"""Read queries of the alerts room."""

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import contains_eager, joinedload

from app.alerts.models import Alert, AlertRule, AlertState, AlertTransition, RuleKind, Severity
from app.db_reads import DriverRead
from app.db_types import driver_decimal, driver_utc
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


# The layout counts firing alerts on every page: fixed reads of table columns on the
# driver's cursor (app.db_reads). Both use the index on alert.state.
_alert = Alert.__table__.c
FIRING_COUNT = DriverRead(
    select(func.count()).select_from(Alert.__table__).where(_alert.state == AlertState.FIRING)
)
FIRING_SERIES = DriverRead(
    select(_alert.account, _alert.asset).where(_alert.state == AlertState.FIRING)
)


def firing_count() -> int:
    """How many alerts are firing now."""
    return FIRING_COUNT.first()[0]


def firing_series() -> tuple[int, set[tuple[str, str]]]:
    """How many alerts are firing, and the (account, asset) pairs they are on (asset "*"
    for account-wide rules): one read for a page that shows both."""
    rows = FIRING_SERIES.rows()
    return len(rows), set(rows)


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
_rule = AlertRule.__table__.c
# Read-only rows (asset, state, account, value, since, rule name) of every alert that is
# not normal: the page shows them and changes nothing, so no ORM objects.
OPEN_ALERT_ROWS = DriverRead(
    select(
        _alert.asset,
        _alert.state,
        _alert.account,
        _alert.value,
        _alert.state_since,
        _rule.name,
    )
    .join_from(Alert.__table__, AlertRule.__table__, _alert.rule_id == _rule.id)
    .where(or_(*(_alert.state == state for state in NOT_NORMAL)))
    .order_by(_alert.state_since.desc())
)


class AssetAlert(NamedTuple):
    state: str
    account: str
    value: Decimal | None
    state_since: datetime
    rule_name: str


def alerts_for_asset(asset: str) -> tuple[int, list[AssetAlert]]:
    """How many alerts are firing, and the alerts of `asset` that are not back to
    normal: one read for its history page, which shows both."""
    rows = OPEN_ALERT_ROWS.rows()
    firing = sum(1 for row in rows if row[1] == AlertState.FIRING)
    return firing, [
        AssetAlert(state, account, driver_decimal(value), driver_utc(since), rule_name)
        for alert_asset, state, account, value, since, rule_name in rows
        if alert_asset == asset
    ]


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
