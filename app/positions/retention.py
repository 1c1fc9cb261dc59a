"""Retention: delete history older than a moment, or one series' snapshots stored by mistake."""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, or_, select

from app.db_types import utcnow
from app.extensions import db
from app.positions import partitions
from app.positions.models import LatestPosition, Position
from app.positions.refold import drop_hours_before, refold_hours
from app.positions.rollup import hour_floor

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
    history was pruned, with the time of its last snapshot. The rollups follow: hours
    and days that ended by `before` go, the hour it cuts through is folded again from
    the snapshots left in it, the day it cuts through from the hours left in it.

    On PostgreSQL the partitions wholly older than `before` are detached and dropped
    instead: only the partition `before` cuts through (and `position_before`) lose
    rows one by one.
    """
    deleted = 0
    detached = partitions.detach_before(before)
    db.session.commit()
    for name in detached:
        deleted += partitions.drop_detached(name)
        db.session.commit()
    while True:
        older = Position.timestamp < before
        ids = select(Position.id).where(older).limit(batch_size).scalar_subquery()
        # `older` again on the DELETE: PostgreSQL then visits the old partitions only.
        result = db.session.execute(delete(Position).where(older, Position.id.in_(ids)))
        db.session.commit()
        deleted += result.rowcount
        if result.rowcount < batch_size:
            break
    drop_hours_before(before)
    cut = hour_floor(before)
    if cut != before:
        refold_hours(cut, cut)
        db.session.commit()
    return deleted


@dataclass
class SeriesSelection:
    """The snapshots of one (account, asset) in [start, end): what a delete would remove."""

    account: str
    asset: str
    start: datetime
    end: datetime
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    # The latest position's time now, and what it becomes once they are gone (None: no row).
    latest_before: datetime | None = None
    latest_after: datetime | None = None
    # Only snapshots stored by then are deleted: one that arrives while the operator
    # reads the count is not among what they confirmed.
    selected_at: datetime = field(default_factory=utcnow)


def _in_selection(account: str, asset: str, start: datetime, end: datetime) -> tuple:
    p = Position
    return (p.asset == asset, p.account == account, p.timestamp >= start, p.timestamp < end)


def select_series(account: str, asset: str, start: datetime, end: datetime) -> SeriesSelection:
    """Count what deleting [start, end) of a series would remove and where its latest would go."""
    found = SeriesSelection(account, asset, start, end)
    where = _in_selection(account, asset, start, end)
    found.count, found.first, found.last = db.session.execute(
        select(func.count(), func.min(Position.timestamp), func.max(Position.timestamp)).where(
            *where
        )
    ).one()
    latest = db.session.get(LatestPosition, (account, asset))
    found.latest_before = found.latest_after = latest.timestamp if latest else None
    if latest is not None and start <= latest.timestamp < end:
        outside = or_(Position.timestamp < start, Position.timestamp >= end)
        newest = _newest(account, asset, outside)
        found.latest_after = newest.timestamp if newest else None
    return found


def _newest(account: str, asset: str, *also):
    """The series' newest snapshot (among those matching `also`), or None."""
    p = Position
    return db.session.execute(
        select(p)
        .where(p.asset == asset, p.account == account, *also)
        .order_by(p.timestamp.desc(), p.id.desc())
        .limit(1)
    ).scalar()


def delete_series_range(found: SeriesSelection) -> int:
    """Delete the selected snapshots, then put the latest row and the rollups of the hours
    and days they were in back in line with what is left; the caller commits. Returns how
    many."""
    account, asset, start, end = found.account, found.asset, found.start, found.end
    where = (*_in_selection(account, asset, start, end), Position.received_at <= found.selected_at)
    first, last = db.session.execute(
        select(func.min(Position.timestamp), func.max(Position.timestamp)).where(*where)
    ).one()
    deleted = db.session.execute(delete(Position).where(*where)).rowcount
    latest = db.session.get(LatestPosition, (account, asset))
    if latest is not None and start <= latest.timestamp < end:
        newest = _newest(account, asset)
        if newest is None:
            db.session.delete(latest)
        else:
            latest.timestamp = newest.timestamp
            latest.amount = newest.amount
            latest.price = newest.price
            latest.updated_at = utcnow()
    if first is not None:
        refold_hours(hour_floor(first), hour_floor(last), series=(account, asset))
    return deleted
