"""Buckets aligned on UTC hours, days or ISO weeks for long ranges: whole periods from
the rollups, the edges from the next finer level, the rest raw."""

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import (
    BigInteger,
    bindparam,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.orm import aliased

from app.extensions import db
from app.positions.buckets import (
    MICROSECOND,
    Downsampling,
    bucket_accounts,
    epoch_micros,
    epoch_seconds_exact,
    grouped_picks,
    read_grouped_picks,
)
from app.positions.models import Position
from app.positions.points import EPOCH, Point, point_columns, read_points
from app.positions.rollup import HOURLY, LEVELS, ROLES, Level

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US


@dataclass
class AlignedDownsampling:
    buckets: int
    start_us: int  # the period the selection's first timestamp falls in
    width_us: int  # a whole number of the level's periods
    level: Level = HOURLY


def plan_aligned(plan: Downsampling, level: Level) -> AlignedDownsampling | None:
    """The plan's buckets widened to whole UTC periods of `level`, if they span half a
    period or more.

    No more buckets than the plan: the width grows until the periods from the first
    row's to the last row's fit. From half a period to one, each bucket becomes one
    whole period read from its rollup row (a week's chart in hours, not in 40-minute
    buckets scanned from the snapshots), at most halving the buckets.
    """
    unit = level.width // MICROSECOND
    if 2 * plan.span_us < plan.buckets * unit:
        return None

    def floor_us(micros: int) -> int:
        # The start of the level's period holding the moment (a week's is a Monday).
        return (level.floor(EPOCH + micros * MICROSECOND) - EPOCH) // MICROSECOND

    start = floor_us(plan.start_us)
    periods = (floor_us(plan.start_us + plan.span_us) - start) // unit
    width = max(-(-plan.span_us // (plan.buckets * unit)), periods // plan.buckets + 1)
    return AlignedDownsampling(periods // width + 1, start, width * unit, level)


def plan_rollups(plan: Downsampling) -> AlignedDownsampling | None:
    """Buckets of the coarsest level whose periods they span half of or more: weeks, then
    days, then hours; else None."""
    for level in reversed(LEVELS):
        aligned = plan_aligned(plan, level)
        if aligned is not None:
            return aligned
    return None


def level_named(start: str) -> Level:
    """The level whose period start column is `start` (statements are cached by it)."""
    return next(level for level in LEVELS if level.start == start)


@cache
def _rollup_picks(level_start: str, from_lo: bool, to_hi: bool):
    """SQLite: the first, last, lowest and highest snapshot of each bucket's whole periods.

    The rollup rows hold a copy of each pick, so no snapshot is read: per bucket, four
    index ranges find the periods holding the picks, four rowid lookups read them (the
    covering index hands the rowid over with each period). Built once per level and
    shape, with every value a parameter (see `aligned_rows`). PostgreSQL groups instead
    (`_grouped_picks`).
    """
    level = level_named(level_start)
    start_us = bindparam("start_us", type_=BigInteger)
    width_us = bindparam("width_us", type_=BigInteger)
    held = bucket_accounts(
        bindparam("asset"),
        bindparam("accounts", expanding=True),
        bindparam("buckets", type_=BigInteger),
        lambda i: (start_us + i * width_us, start_us + (i + 1) * width_us),
    )
    r = level.model
    period = level.start_column()
    where = [r.asset == bindparam("asset"), r.account == held.c.account]
    where += [period >= held.c.lo, period < held.c.hi]
    if from_lo:
        where.append(period >= bindparam("full_lo"))
    if to_hi:
        where.append(period < bindparam("full_hi"))
    # Amounts are text on SQLite: ranked by their REAL value (`low_rank`, `high_rank`).
    low, high = r.low_rank, r.high_rank
    # The key each pick is read back by: its rowid, valid for this statement.
    key = literal_column(f"{r.__tablename__}.rowid")

    def period_of(*order):
        query = select(key).where(*where).order_by(*order).limit(1)
        return query.correlate(held).scalar_subquery()

    picks = (
        select(
            held.c.account,
            period_of(period).label("first"),
            period_of(period.desc()).label("last"),
            period_of(low, r.low_at).label("low"),
            period_of(high.desc(), r.high_at).label("high"),
        )
        .select_from(held)
        .cte("pick")
    )
    parts = []
    for role in ROLES:
        row = aliased(r, name=f"{role}_pick")
        parts.append(
            select(*_role_columns(row, role)).join_from(
                picks, row, literal_column(f"{role}_pick.rowid") == picks.c[role]
            )
        )
    return union_all(*parts)


def _role_columns(row, role: str) -> tuple:
    return point_columns(
        getattr(row, f"{role}_id"),
        row.account,
        getattr(row, f"{role}_at"),
        getattr(row, f"{role}_amount"),
        getattr(row, f"{role}_price"),
    )


def _every_pick(level: Level, asset, accounts, lo: datetime, hi: datetime) -> list[Point]:
    """Every pick of the periods in [lo, hi): the less-than-a-period edge of a coarser one."""
    r, period = level.model, level.start_column()
    where = (r.asset == asset, r.account.in_(accounts), period >= lo, period < hi)
    return read_points(
        union_all(*(select(*_role_columns(r, role)).where(*where) for role in ROLES))
    )


def _ceil(moment: datetime, level: Level) -> datetime:
    return level.floor(moment - MICROSECOND) + level.width


def waiting_points(asset, account: str | None, watermark: int, start=None, end=None):
    """The snapshots of the asset (of one account, in [start, end)) above the watermark:
    not in the rollups yet.

    Found by id: `|| ''` keeps the planner off the asset and account indexes, so it walks
    the few ids above the watermark instead of the whole range.
    """
    p = Position
    query = select(*point_columns(p.id, p.account, p.timestamp, p.amount, p.price))
    query = query.where(p.asset.concat("") == asset, p.id > watermark)
    if account:
        query = query.where(p.account.concat("") == account)
    if start is not None:
        query = query.where(p.timestamp >= start)
    if end is not None:
        query = query.where(p.timestamp < end)
    return read_points(query)


def aligned_rows(
    asset, accounts: list[str], plan: AlignedDownsampling, start, end, waiting: list[Point]
) -> list[Point]:
    """First, last, lowest and highest snapshot per (account, aligned bucket).

    The periods of the plan's level wholly inside [start, end) come from its rollups;
    the whole periods of the next finer level inside its two partial edge periods from
    that level's (a week's days, a day's hours), and so on down; the partial edge hours
    from the snapshots themselves, beside the snapshots not folded yet (`waiting`, from
    `waiting_points`). Candidates are compared exactly here, so the answer is the one
    the snapshots alone would give. (One caveat on SQLite, shared with
    `downsampled_rows`: across periods the extremes are ranked by their REAL value, so
    amounts that differ only past double precision count as a tie there.)
    """
    found: dict[int, Point] = {point.id: point for point in waiting if point.account in accounts}
    p = Position
    # Parts of the range not covered yet, each narrowed level by level.
    parts = [(start, end)]
    for level in reversed(LEVELS[: LEVELS.index(plan.level) + 1]):
        left = []
        for lo, hi in parts:
            whole_lo = None if lo is None else _ceil(lo, level)
            whole_hi = None if hi is None else level.floor(hi)
            if whole_lo is not None and whole_hi is not None and whole_lo >= whole_hi:
                left.append((lo, hi))
                continue
            if level is plan.level and (lo, hi) == (start, end):
                points = _bucket_picks(asset, accounts, plan, whole_lo, whole_hi)
            else:
                points = _every_pick(level, asset, accounts, whole_lo, whole_hi)
            found.update((point.id, point) for point in points)
            if lo is not None and lo < whole_lo:
                left.append((lo, whole_lo))
            if hi is not None and whole_hi < hi:
                left.append((whole_hi, hi))
        parts = left
    columns = point_columns(p.id, p.account, p.timestamp, p.amount, p.price)
    for lo, hi in parts:
        query = select(*columns).where(
            p.asset == asset, p.account.in_(accounts), p.timestamp >= lo, p.timestamp < hi
        )
        found.update((point.id, point) for point in read_points(query))
    return _pick_per_bucket(found.values(), plan)


def _bucket_picks(asset, accounts, plan: AlignedDownsampling, full_lo, full_hi) -> list[Point]:
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return _grouped_picks(asset, accounts, plan, full_lo, full_hi)
    statement = _rollup_picks(plan.level.start, full_lo is not None, full_hi is not None)
    parameters = {
        "asset": asset,
        "accounts": accounts,
        "buckets": plan.buckets,
        "start_us": plan.start_us,
        "width_us": plan.width_us,
    }
    if full_lo is not None:
        parameters["full_lo"] = full_lo
    if full_hi is not None:
        parameters["full_hi"] = full_hi
    return read_points(statement, parameters)


def _grouped_picks(asset, accounts, plan: AlignedDownsampling, full_lo, full_hi) -> list[Point]:
    """PostgreSQL: `_rollup_picks` in one pass over the periods, grouped by bucket.

    A first pick's time orders periods as their starts do, so choosing among the
    periods' own picks as among snapshots (`buckets.grouped_picks`) gives each bucket's
    picks: one index range for the whole range and no lookup per bucket, about half the
    time of the correlated form for a month in hours (bench/README.md, `scale.py`).
    """
    lo = EPOCH + plan.start_us * MICROSECOND
    hi = lo + plan.buckets * plan.width_us * MICROSECOND
    parameters = {
        "asset": asset,
        "accounts": accounts,
        "start_us": plan.start_us,
        "width_us": plan.width_us,
        "lo": lo if full_lo is None else max(lo, full_lo),
        "hi": hi if full_hi is None else min(hi, full_hi),
    }
    return read_grouped_picks(_grouped_rollup_statement(plan.level.start), parameters)


@cache
def _grouped_rollup_statement(level_start: str):
    """`_grouped_picks`' query, built once per level with every value a parameter."""
    level = level_named(level_start)
    r, period = level.model, level.start_column()

    def pick(role):
        return (
            epoch_seconds_exact(getattr(r, f"{role}_at")),
            getattr(r, f"{role}_id"),
            getattr(r, f"{role}_amount"),
            getattr(r, f"{role}_price"),
        )

    roles = {role: pick(role) for role in ROLES}
    start_us = bindparam("start_us", type_=BigInteger)
    bucket = (epoch_micros(period) - start_us) // bindparam("width_us", type_=BigInteger)
    return grouped_picks(
        r.account,
        roles,
        bucket,
        r.asset == bindparam("asset"),
        r.account.in_(bindparam("accounts", expanding=True)),
        period >= bindparam("lo"),
        period < bindparam("hi"),
    )


def _pick_per_bucket(points, plan: AlignedDownsampling) -> list[Point]:
    picked: dict[tuple[str, int], list[Point]] = {}
    ordered = sorted(points, key=lambda point: (point.at_us, point.account))
    for point in ordered:
        index = (point.at_us - plan.start_us) // plan.width_us
        # A snapshot newer than the planned extent would need one bucket too many.
        if not 0 <= index < plan.buckets:
            continue
        roles = picked.get((point.account, index))
        if roles is None:
            picked[point.account, index] = [point, point, point, point]
            continue
        # In time order: the last one seen is the last, and on ties the earliest stays.
        roles[1] = point
        if point.value < roles[2].value:
            roles[2] = point
        if point.value > roles[3].value:
            roles[3] = point
    keep = {point.id for roles in picked.values() for point in roles}
    return [point for point in ordered if point.id in keep]
