"""The last day of every (account, asset), a few dozen points each, for the overview."""

from datetime import datetime, timedelta

from sqlalchemy import BigInteger, literal, select, true

from app.db_types import format_decimal
from app.extensions import db
from app.positions.buckets import EPOCH, epoch_seconds, micros_as_column_value, to_micros
from app.positions.models import LatestPosition, Position

WINDOW = timedelta(hours=24)
BUCKET = timedelta(minutes=30)
BUCKETS = WINDOW // BUCKET


def window_start(now: datetime) -> datetime:
    """Start of the first half-hour bucket: the last one is the half hour holding `now`."""
    current = now - (now - EPOCH) % BUCKET
    return current - (BUCKETS - 1) * BUCKET


def sparklines(now: datetime) -> list[dict]:
    """The last snapshot of each half hour of the last day, for every latest-position pair.

    One query whatever the number of series: a bucket's last snapshot is one index
    seek, so the cost grows with series x 48, never with the rows stored.
    """
    start_us, step_us = to_micros(window_start(now)), BUCKET // timedelta(microseconds=1)
    index = select(literal(0, BigInteger).label("i")).cte("spark_index", recursive=True)
    index = index.union_all(select(index.c.i + 1).where(index.c.i < BUCKETS - 1))
    bucket = (
        select(
            LatestPosition.account,
            LatestPosition.asset,
            micros_as_column_value(start_us + index.c.i * step_us).label("lo"),
            micros_as_column_value(start_us + (index.c.i + 1) * step_us).label("hi"),
        )
        .join(index, true())
        .cte("spark_bucket")
    )
    last_in_bucket = (
        select(Position.id)
        .where(
            Position.account == bucket.c.account,
            Position.asset == bucket.c.asset,
            Position.timestamp >= bucket.c.lo,
            Position.timestamp < bucket.c.hi,
        )
        .order_by(Position.timestamp.desc())
        .limit(1)
        .correlate(bucket)
        .scalar_subquery()
    )
    picks = select(last_in_bucket.label("id")).select_from(bucket).subquery()
    # The window bounds the time too: PostgreSQL then looks the ids up in the last
    # day's partitions only, not in every one.
    start = window_start(now)
    in_window = (Position.timestamp >= start, Position.timestamp < start + WINDOW)
    rows = db.session.execute(
        select(Position.account, Position.asset, Position.timestamp, Position.amount)
        .where(Position.id.in_(select(picks.c.id)), *in_window)
        .order_by(Position.asset, Position.account, Position.timestamp)
    )
    by_series: dict[tuple[str, str], list] = {}
    for row in rows:
        by_series.setdefault((row.account, row.asset), []).append(
            [epoch_seconds(row.timestamp), format_decimal(row.amount)]
        )
    pairs = db.session.execute(
        select(LatestPosition.account, LatestPosition.asset).order_by(
            LatestPosition.asset, LatestPosition.account
        )
    )
    return [
        {"account": account, "asset": asset, "points": by_series.get((account, asset), [])}
        for account, asset in pairs
    ]
