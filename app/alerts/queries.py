"""Read queries of the alerts room."""

from sqlalchemy import case, func, select
from sqlalchemy.orm import joinedload

from app.alerts.models import Alert, AlertState
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
