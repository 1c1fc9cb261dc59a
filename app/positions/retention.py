"""Retention: delete history older than a moment, in short transactions."""

from datetime import datetime

from sqlalchemy import delete, func, select

from app.extensions import db
from app.positions.models import Position
from app.positions.rollup import drop_hours_before, hour_floor, refold_hour

# Rows per DELETE: each batch is its own short transaction, so ingest (and, on
# SQLite, every other writer) waits for one batch at most, never for the whole prune.
PRUNE_BATCH_SIZE = 10_000


def count_before(before: datetime) -> list[tuple[str, str, int]]:
    """(account, asset, snapshots) that a prune at `before` would delete."""
    rows = db.session.execute(
        select(Position.account, Position.asset, func.count())
        .where(Position.timestamp < before)
        .group_by(Position.account, Position.asset)
        .order_by(Position.account, Position.asset)
    )
    return [(account, asset, count) for account, asset, count in rows]


def prune_before(before: datetime, *, batch_size: int = PRUNE_BATCH_SIZE) -> int:
    """Delete snapshots older than `before`, committing batch by batch; return how many.

    The latest-position rows are kept: the overview still shows a position whose
    history was pruned, with the time of its last snapshot. The hourly rollups follow:
    hours that ended by `before` go, the hour it cuts through is folded again from
    the snapshots left in it.
    """
    deleted = 0
    while True:
        ids = select(Position.id).where(Position.timestamp < before).limit(batch_size)
        result = db.session.execute(delete(Position).where(Position.id.in_(ids.scalar_subquery())))
        db.session.commit()
        deleted += result.rowcount
        if result.rowcount < batch_size:
            break
    drop_hours_before(before)
    if hour_floor(before) != before:
        refold_hour(hour_floor(before))
    return deleted
