"""Position snapshots and the latest position per (account, asset)."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db_types import EXACT, ExactDecimal, UTCDateTime, utcnow
from app.extensions import db

# SQLite only auto-increments a column declared exactly INTEGER.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Position(db.Model):
    """What the trading system reported holding at one moment.

    On PostgreSQL the migrations (not create_all) partition this table by range of
    `timestamp` (app.positions.partitions) and make its primary key (id, timestamp),
    since a partitioned table's keys must hold the partition key. The model keeps `id`
    alone: SQLite auto-increments only an INTEGER PRIMARY KEY on its own.
    """

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    asset: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    price: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("account", "asset", "timestamp"),
        # Serves the history page: one asset, newest first, keyset on (timestamp, id).
        # It holds every column the page shows, so the page reads the index alone.
        Index(None, "asset", "timestamp", "id", "account", "amount", "price"),
    )


class LatestPosition(db.Model):
    """The newest snapshot per (account, asset), so the overview never scans history."""

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    asset: Mapped[str] = mapped_column(String(64), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    price: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def notional(self) -> Decimal | None:
        return notional(self.amount, self.price)


class RollupPicks:
    """A period's snapshot count and its first, last, lowest and highest snapshot.

    Each pick is a copy of its snapshot (id, time, amount, price), so a chart reads
    long ranges from the rollups alone.
    """

    rows: Mapped[int] = mapped_column(Integer)
    first_id: Mapped[int] = mapped_column(BigInteger)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    first_price: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    last_price: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    low_id: Mapped[int] = mapped_column(BigInteger)
    low_at: Mapped[datetime] = mapped_column(UTCDateTime)
    low_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    low_price: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    # SQLite keeps ExactDecimal as text: these rank the extremes across periods there.
    low_rank: Mapped[float] = mapped_column(Float)
    high_id: Mapped[int] = mapped_column(BigInteger)
    high_at: Mapped[datetime] = mapped_column(UTCDateTime)
    high_amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    high_price: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    high_rank: Mapped[float] = mapped_column(Float)


def extremes_index(name: str, period_start: str) -> Index:
    """A rollup table's index that ranks its periods' extremes (SQLite's chart reads them
    from it alone, without the rows)."""
    return Index(
        name, "asset", "account", period_start, "low_rank", "low_at", "high_rank", "high_at"
    )


class PositionRollup(RollupPicks, db.Model):
    """One UTC hour of one (account, asset), folded from the snapshots up to the watermark."""

    __table_args__ = (extremes_index("ix_position_rollup_extremes", "hour_start"),)

    asset: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)


class PositionDailyRollup(RollupPicks, db.Model):
    """One UTC day of one (account, asset), folded with the hours by the same pass.

    Its own table rather than a width column on the hourly one: every hourly read,
    key and index stays as it is, and a whole-history chart reads about 14 day rows a
    bucket after ten years instead of 334 hour rows.
    """

    __table_args__ = (extremes_index("ix_position_daily_rollup_extremes", "day_start"),)

    asset: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    day_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)


class PositionWeeklyRollup(RollupPicks, db.Model):
    """One ISO week (from Monday 00:00 UTC) of one (account, asset), folded with the hours
    and days by the same pass.

    A whole-history chart after ten years reads about 4 week rows a bucket instead of
    about 28 day rows (bench/README.md, scale.py).
    """

    __table_args__ = (extremes_index("ix_position_weekly_rollup_extremes", "week_start"),)

    asset: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    week_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)


class RollupWatermark(db.Model):
    """How far the rollups go: every snapshot with id <= folded_id is folded in.

    On PostgreSQL ids can commit out of order; `pending_id` becomes safe to fold once
    the transactions writing snapshots when it was read (`pending_writers`) have ended.
    """

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folded_id: Mapped[int] = mapped_column(BigInteger)
    pending_id: Mapped[int | None] = mapped_column(BigInteger)
    pending_writers: Mapped[str | None] = mapped_column(Text)


def notional(amount: Decimal, price: Decimal | None) -> Decimal | None:
    """amount * price, exactly; None without a price."""
    return None if price is None else EXACT.multiply(amount, price)
