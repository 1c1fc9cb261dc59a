"""Hourly rollups: each hour's first, last, lowest and highest snapshot, folded in the background.

Snapshots are folded in id order up to a watermark. Ids grow with insertion, so the
rows above the watermark are exactly the ones not folded yet, whatever their
timestamps: late and backfilled snapshots are folded like any other. Ingest is left
alone; `flask alerts run` folds a bounded chunk each pass.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.positions.models import Position, PositionRollup, RollupWatermark
from app.positions.queries import SNAPSHOT_COLUMNS

HOUR = timedelta(hours=1)
# Snapshots per transaction: SQLite has one writer, so ingest waits for one chunk at most.
CHUNK_ROWS = 5_000
WATERMARK_ID = 1
# Past this backlog (no worker running?) charts read the snapshots directly: fetching
# that many unfolded rows would cost more than the raw downsampling query.
FAR_BEHIND_ROWS = 20_000
ROLES = ("first", "last", "low", "high")


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass
class Pick:
    id: int
    at: datetime
    amount: Decimal
    price: Decimal | None


class Hour:
    """The rollup of one (account, asset, hour) while it is being folded."""

    __slots__ = ("first", "high", "last", "low", "rows")

    def __init__(self, pick: Pick, rows: int = 1):
        self.rows = rows
        self.first = self.last = self.low = self.high = pick

    @classmethod
    def from_row(cls, row) -> "Hour":
        hour = cls(Pick(row.first_id, row.first_at, row.first_amount, row.first_price), row.rows)
        hour.last = Pick(row.last_id, row.last_at, row.last_amount, row.last_price)
        hour.low = Pick(row.low_id, row.low_at, row.low_amount, row.low_price)
        hour.high = Pick(row.high_id, row.high_at, row.high_amount, row.high_price)
        return hour

    def add(self, pick: Pick) -> None:
        """Fold one more snapshot; ties on the amount go to the earliest, as in buckets.py."""
        self.rows += 1
        self.take(pick, pick, pick, pick)

    def merge(self, other: "Hour") -> None:
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

    def values(self, key) -> dict:
        account, asset, hour_start = key
        row = {"asset": asset, "account": account, "hour_start": hour_start, "rows": self.rows}
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


def _is_sqlite() -> bool:
    return db.session.get_bind().dialect.name == "sqlite"


def folded_id() -> int:
    """The watermark: every snapshot with an id up to it is in the rollups."""
    mark = db.session.get(RollupWatermark, WATERMARK_ID)
    return 0 if mark is None else mark.folded_id


def _lock_watermark() -> RollupWatermark:
    """Start the write transaction by taking the watermark row.

    A write first: SQLite then holds its write lock for the whole fold (a read that
    later upgrades could fail on a stale snapshot), and two folders take turns.
    """
    table = RollupWatermark.__table__
    values = {"id": WATERMARK_ID, "folded_id": 0}
    insert = (sqlite if _is_sqlite() else postgresql).insert(table).values(values)
    db.session.execute(insert.on_conflict_do_nothing(index_elements=["id"]))
    db.session.execute(
        update(RollupWatermark)
        .where(RollupWatermark.id == WATERMARK_ID)
        .values(folded_id=RollupWatermark.folded_id)
    )
    mark = db.session.get(RollupWatermark, WATERMARK_ID, populate_existing=True)
    assert mark is not None
    return mark


# Transactions (virtual ids) holding a write lock on the snapshot table, ours aside.
WRITERS = text(
    "SELECT coalesce(string_agg(DISTINCT virtualtransaction, ','), '') FROM pg_locks"
    " WHERE relation = 'position'::regclass AND mode = 'RowExclusiveLock'"
    " AND pid <> pg_backend_pid()"
)
STILL_RUNNING = text(
    "SELECT count(*) FROM pg_locks WHERE virtualtransaction = ANY(string_to_array(:ids, ','))"
)


def _safe_bound(mark: RollupWatermark) -> int:
    """The highest id whose snapshot, and every one below it, is committed or never will be.

    SQLite commits one writer at a time, so ids commit in order. PostgreSQL may commit
    id 101 before id 100. A transaction takes its write lock on the table before it
    draws an id, so any id below the newest one seen now belongs to a transaction
    holding that lock now: the newest id is folded once those transactions have ended.
    """
    if _is_sqlite():
        return db.session.execute(select(func.max(Position.id))).scalar() or 0
    bound = mark.folded_id
    if mark.pending_id is not None:
        writers = mark.pending_writers or ""
        if not writers or not db.session.execute(STILL_RUNNING, {"ids": writers}).scalar():
            bound = max(bound, mark.pending_id)
            mark.pending_writers = ""
    # A new candidate once the last one is folded through. The newest id first, then
    # the writers: whoever drew an id below it still holds the lock when they are read.
    if mark.pending_id is None or mark.folded_id >= mark.pending_id:
        newest = db.session.execute(select(func.max(Position.id))).scalar() or 0
        if newest > mark.folded_id:
            mark.pending_id = newest
            mark.pending_writers = db.session.execute(WRITERS).scalar()
            if not mark.pending_writers:
                bound = newest  # nobody is writing: nothing below it can still appear
    return bound


def _upsert(hours: dict) -> None:
    if not hours:
        return
    table = PositionRollup.__table__
    insert = (sqlite if _is_sqlite() else postgresql).insert(table)
    keys = [c.name for c in table.primary_key.columns]
    insert = insert.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys},
    )
    db.session.execute(insert, [hour.values(key) for key, hour in hours.items()])


def _stored_hours(keys) -> dict:
    """The rollup rows already stored for these (account, asset, hour) keys, in one query."""
    if not keys:
        return {}
    spans: dict[tuple[str, str], list[datetime]] = {}
    for account, asset, hour_start in keys:
        span = spans.setdefault((account, asset), [hour_start, hour_start])
        span[0], span[1] = min(span[0], hour_start), max(span[1], hour_start)
    r = PositionRollup.__table__.c
    query = select(PositionRollup.__table__).where(
        or_(
            *(
                and_(r.asset == asset, r.account == account, r.hour_start.between(lo, hi))
                for (account, asset), (lo, hi) in spans.items()
            )
        )
    )
    wanted = set(keys)
    stored = {}
    for row in db.session.execute(query):
        key = (row.account, row.asset, row.hour_start)
        if key in wanted:
            stored[key] = Hour.from_row(row)
    return stored


def fold(rows) -> dict:
    """Rollups of snapshot rows (id, account, asset, timestamp, amount, price) by hour."""
    hours: dict[tuple, Hour] = {}
    for id_, account, asset, at, amount, price in rows:
        key = (account, asset, hour_floor(at))
        pick = Pick(id_, at, amount, price)
        hour = hours.get(key)
        if hour is None:
            hours[key] = Hour(pick)
        else:
            hour.add(pick)
    return hours


def _fold_chunk(chunk_rows: int) -> int:
    """Fold the next chunk above the watermark in one transaction; return its size."""
    mark = _lock_watermark()
    bound = _safe_bound(mark)
    rows = db.session.execute(
        select(*SNAPSHOT_COLUMNS)
        .where(Position.id > mark.folded_id, Position.id <= bound)
        .order_by(Position.id)
        .limit(chunk_rows)
    ).all()
    hours = fold(rows)
    for key, stored in _stored_hours(hours).items():
        hours[key].merge(stored)
    _upsert(hours)
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
            if _is_sqlite() or (done == 0 and retried):
                return folded
            retried = done == 0
    return folded


def unfolded_count() -> int:
    """Snapshots not yet in the rollups."""
    return db.session.execute(
        select(func.count()).select_from(Position).where(Position.id > folded_id())
    ).scalar_one()


def far_behind(watermark: int) -> bool:
    """Whether more than FAR_BEHIND_ROWS snapshots above the watermark wait to be folded."""
    limit = FAR_BEHIND_ROWS
    waiting = select(Position.id).where(Position.id > watermark).limit(limit + 1)
    count = select(func.count()).select_from(waiting.subquery())
    return db.session.execute(count).scalar_one() > limit


def refold_hours(first: datetime, last: datetime, *, series: tuple[str, str] | None = None):
    """Rebuild the rollups of the hours `first` to `last` from the snapshots left in them,
    of one (account, asset) `series` or of all; the caller commits."""
    mark = _lock_watermark()
    r, p = PositionRollup, Position
    in_hours = [r.hour_start >= first, r.hour_start <= last]
    if series is not None:
        in_hours += [r.account == series[0], r.asset == series[1]]
    # By asset, so the read is a range of the (asset, timestamp) index, not a scan.
    assets = list(db.session.scalars(select(r.asset).where(*in_hours).distinct()))
    db.session.execute(delete(PositionRollup).where(*in_hours))
    if not assets:
        return
    # The end of the last hour, written so that it never overflows.
    end = last.replace(minute=59, second=59, microsecond=999_999)
    rows = select(*SNAPSHOT_COLUMNS).where(
        p.asset.in_(assets), p.timestamp >= first, p.timestamp <= end, p.id <= mark.folded_id
    )
    if series is not None:
        rows = rows.where(p.account == series[0])
    _upsert(fold(db.session.execute(rows).all()))


def drop_hours_before(moment: datetime) -> None:
    """Delete the rollups of hours that ended at or before `moment`."""
    db.session.execute(delete(PositionRollup).where(PositionRollup.hour_start <= moment - HOUR))
    db.session.commit()
