"""Read queries of the alerts room."""

from sqlalchemy import case, func, select
from sqlalchemy.orm import joinedload

from app.alerts.models import Alert, AlertRule, AlertState, AlertTransition
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


def firing_count() -> int:
    return db.session.execute(
        select(func.count(Alert.id)).where(Alert.state == AlertState.FIRING)
    ).scalar_one()


def firing_series() -> set[tuple[str, str]]:
    """(account, asset) pairs with a firing alert; asset "*" for account-wide rules."""
    rows = db.session.execute(
        select(Alert.account, Alert.asset).where(Alert.state == AlertState.FIRING)
    )
    return {(account, asset) for account, asset in rows}


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


def alerts_for_asset(asset: str) -> list[Alert]:
    """Alerts of an asset that are not back to normal, for its history page."""
    return list(
        db.session.execute(
            select(Alert)
            .options(joinedload(Alert.rule))
            .where(Alert.asset == asset, Alert.state != AlertState.NORMAL)
            .order_by(Alert.state_since.desc())
        ).scalars()
    )
