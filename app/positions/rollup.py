"""Rollups: each hour's, day's and ISO week's first, last, lowest and highest snapshot,
folded in the background.

Snapshots are folded in id order up to a watermark. Ids grow with insertion, so the
rows above the watermark are exactly the ones not folded yet, whatever their
timestamps: late and backfilled snapshots are folded like any other. Ingest is left
alone; `flask alerts run` folds a bounded chunk each pass, into the hours, the days
and the weeks in the same transaction, so one watermark holds for every level.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.positions.models import (
    Position,
    PositionDailyRollup,
    PositionRollup,
    PositionWeeklyRollup,
)
from app.positions.queries import SNAPSHOT_COLUMNS
from app.positions.watermark import folded_id, is_sqlite, lock_watermark, safe_bound

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)
# Snapshots per transaction: SQLite has one writer, so ingest waits for one chunk at most.
CHUNK_ROWS = 5_000
# Past this backlog (no worker running?) charts read the snapshots directly: fetching
# that many unfolded rows would cost more than the raw downsampling query.
FAR_BEHIND_ROWS = 20_000
ROLES = ("first", "last", "low", "high")


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def day_floor(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def week_floor(moment: datetime) -> datetime:
    """The Monday 00:00 UTC that begins the ISO week of `moment`."""
    return day_floor(moment) - moment.weekday() * DAY


@dataclass(frozen=True)
class Level:
    """One width of rollup: its table, the column holding a period's start, its width."""

    model: type
    start: str
    floor: Callable[[datetime], datetime]
    width: timedelta

    def start_column(self, model=None):
        return getattr(model or self.model, self.start)


HOURLY = Level(PositionRollup, "hour_start", hour_floor, HOUR)
DAILY = Level(PositionDailyRollup, "day_start", day_floor, DAY)
WEEKLY = Level(PositionWeeklyRollup, "week_start", week_floor, WEEK)
# Finest first: each level is folded again from the one before it (`_refold`).
LEVELS = (HOURLY, DAILY, WEEKLY)


@dataclass
class Pick:
    id: int
    at: datetime
    amount: Decimal
    price: Decimal | None


class Period:
    """The rollup of one (account, asset, hour, day or week) while it is being folded."""

    __slots__ = ("first", "high", "last", "low", "rows")

    def __init__(self, pick: Pick, rows: int = 1):
        self.rows = rows
        self.first = self.last = self.low = self.high = pick

    @classmethod
    def from_row(cls, row) -> "Period":
        period = cls(Pick(row.first_id, row.first_at, row.first_amount, row.first_price), row.rows)
        period.last = Pick(row.last_id, row.last_at, row.last_amount, row.last_price)
        period.low = Pick(row.low_id, row.low_at, row.low_amount, row.low_price)
        period.high = Pick(row.high_id, row.high_at, row.high_amount, row.high_price)
        return period

    def add(self, pick: Pick) -> None:
        """Fold one more snapshot; ties on the amount go to the earliest, as in buckets.py."""
        self.rows += 1
        self.take(pick, pick, pick, pick)

    def merge(self, other: "Period") -> None:
        self.rows += other.rows
        self.take(other.first, other.last, other.low, other.high)

    def take(self, first: Pick, last: Pick, low: Pick, high: Pick) -> None:
        if first.at < self.first.at:
            self.first = first
        if last.at > self.last.at:
            self.last = last
        if (low.amount, low.at) < (self.low.amount, self.low.at):
            self.low = low
        if (-high.amount, high.at) < (-self.high.amount, self.high.at):
            self.high = high

    def values(self, key, start: str) -> dict:
        account, asset, period_start = key
        row = {"asset": asset, "account": account, start: period_start, "rows": self.rows}
        for role in ROLES:
            pick = getattr(self, role)
            row.update(
                {
                    f"{role}_id": pick.id,
                    f"{role}_at": pick.at,
                    f"{role}_amount": pick.amount,
                    f"{role}_price": pick.price,
                }
            )
        row["low_rank"], row["high_rank"] = float(self.low.amount), float(self.high.amount)
        return row


def upsert_periods(level: Level, periods: dict) -> None:
    if not periods:
        return
    table = level.model.__table__
    insert = (sqlite if is_sqlite() else postgresql).insert(table)
    keys = [c.name for c in table.primary_key.columns]
    insert = insert.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys},
    )
    db.session.execute(
        insert, [period.values(key, level.start) for key, period in periods.items()]
    )


def _stored(level: Level, keys) -> dict:
    """The rollup rows already stored for these (account, asset, start) keys, in one query."""
    if not keys:
        return {}
    spans: dict[tuple[str, str], list[datetime]] = {}
    for account, asset, start in keys:
        span = spans.setdefault((account, asset), [start, start])
        span[0], span[1] = min(span[0], start), max(span[1], start)
    table = level.model.__table__
    r = table.c
    query = select(table).where(
        or_(
            *(
                and_(r.asset == asset, r.account == account, r[level.start].between(lo, hi))
                for (account, asset), (lo, hi) in spans.items()
            )
        )
    )
    wanted = set(keys)
    stored = {}
    for row in db.session.execute(query):
        key = (row.account, row.asset, getattr(row, level.start))
        if key in wanted:
            stored[key] = Period.from_row(row)
    return stored


def fold(rows, floor: Callable[[datetime], datetime] = hour_floor) -> dict:
    """Rollups of snapshot rows (id, account, asset, timestamp, amount, price) by hour
    (or by the period `floor` gives)."""
    periods: dict[tuple, Period] = {}
    for id_, account, asset, at, amount, price in rows:
        key = (account, asset, floor(at))
        pick = Pick(id_, at, amount, price)
        period = periods.get(key)
        if period is None:
            periods[key] = Period(pick)
        else:
            period.add(pick)
    return periods


def _fold_chunk(chunk_rows: int) -> int:
    """Fold the next chunk above the watermark in one transaction; return its size."""
    mark = lock_watermark()
    bound = safe_bound(mark)
    rows = db.session.execute(
        select(*SNAPSHOT_COLUMNS)
        .where(Position.id > mark.folded_id, Position.id <= bound)
        .order_by(Position.id)
        .limit(chunk_rows)
    ).all()
    for level in LEVELS:
        periods = fold(rows, level.floor)
        for key, stored in _stored(level, periods).items():
            periods[key].merge(stored)
        upsert_periods(level, periods)
    # Below the bound, ids missing from a short chunk never committed.
    reached = rows[-1].id if len(rows) == chunk_rows else bound
    mark.folded_id = max(mark.folded_id, reached)
    db.session.commit()
    return len(rows)


def catch_up(max_rows: int | None = None, *, chunk_rows: int = CHUNK_ROWS) -> int:
    """Fold up to `max_rows` unfolded snapshots (all, without a limit); return how many.

    Each chunk is its own short transaction, committed before the next one starts.
    """
    folded = 0
    retried = False
    while max_rows is None or folded < max_rows:
        size = chunk_rows if max_rows is None else min(chunk_rows, max_rows - folded)
        done = _fold_chunk(size)
        folded += done
        if done < size:
            # PostgreSQL sees new ids one transaction before it may fold them: stop
            # after a chunk that folded nothing following one that was short.
            if is_sqlite() or (done == 0 and retried):
                return folded
            retried = done == 0
    return folded


def unfolded_count() -> int:
    """Snapshots not yet in the rollups."""
    return db.session.execute(
        select(func.count()).select_from(Position).where(Position.id > folded_id())
    ).scalar_one()


def far_behind(watermark: int, newest_id: int) -> bool:
    """Whether more than FAR_BEHIND_ROWS snapshots above the watermark wait to be folded.

    `newest_id` is `watermark.newest_drawn_id()`. Ids are drawn in order, so no more
    snapshots wait than ids were drawn since the watermark: only past that many are
    they counted (on PostgreSQL a count by id plans and probes every partition).
    """
    limit = FAR_BEHIND_ROWS
    if newest_id - watermark <= limit:
        return False
    waiting = select(Position.id).where(Position.id > watermark).limit(limit + 1)
    count = select(func.count()).select_from(waiting.subquery())
    return db.session.execute(count).scalar_one() > limit
