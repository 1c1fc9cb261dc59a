"""Hour-aligned buckets for long ranges: whole hours from the rollups, the rest raw."""

from dataclasses import dataclass
from functools import cache

from sqlalchemy import BigInteger, and_, bindparam, literal_column, select, union_all
from sqlalchemy.orm import aliased

from app.extensions import db
from app.positions.buckets import MICROSECOND, Downsampling, bucket_accounts
from app.positions.models import Position, PositionRollup
from app.positions.points import Point, point_columns, read_points
from app.positions.rollup import HOUR, ROLES, hour_floor

HOUR_US = 3_600_000_000


@dataclass
class HourlyDownsampling:
    buckets: int
    start_us: int  # the hour the selection's first timestamp falls in
    width_us: int  # a whole number of hours


def plan_hourly(plan: Downsampling) -> HourlyDownsampling | None:
    """The plan's buckets widened to whole UTC hours, if they span an hour or more.

    No more buckets than the plan: the width grows until the hours from the first
    row's to the last row's fit.
    """
    if plan.span_us < plan.buckets * HOUR_US:
        return None
    start = plan.start_us - plan.start_us % HOUR_US
    hours = (plan.start_us + plan.span_us) // HOUR_US - start // HOUR_US
    width = max(-(-plan.span_us // (plan.buckets * HOUR_US)), hours // plan.buckets + 1)
    return HourlyDownsampling(hours // width + 1, start, width * HOUR_US)


@cache
def _rollup_picks(dialect: str, from_lo: bool, to_hi: bool):
    """The first, last, lowest and highest snapshot of each bucket's whole hours.

    The rollup rows hold a copy of each pick, so no snapshot is read: per bucket, four
    index ranges find the hours holding the picks, four key lookups read them (on
    SQLite by rowid, which the covering index hands over with each hour). Built once
    per dialect and shape, with every value a parameter (see `hourly_rows`).
    """
    start_us = bindparam("start_us", type_=BigInteger)
    width_us = bindparam("width_us", type_=BigInteger)
    held = bucket_accounts(
        bindparam("asset"),
        bindparam("accounts", expanding=True),
        bindparam("buckets", type_=BigInteger),
        lambda i: (start_us + i * width_us, start_us + (i + 1) * width_us),
    )
    r = PositionRollup
    where = [
        r.asset == bindparam("asset"),
        r.account == held.c.account,
        r.hour_start >= held.c.lo,
        r.hour_start < held.c.hi,
    ]
    if from_lo:
        where.append(r.hour_start >= bindparam("full_lo"))
    if to_hi:
        where.append(r.hour_start < bindparam("full_hi"))
    sqlite = dialect == "sqlite"
    low, high = (r.low_rank, r.high_rank) if sqlite else (r.low_amount, r.high_amount)
    # The key each pick is read back by: a rowid (valid for this statement) or the hour.
    key = literal_column(f"{r.__tablename__}.rowid") if sqlite else r.hour_start

    def hour_of(*order):
        query = select(key).where(*where).order_by(*order).limit(1)
        return query.correlate(held).scalar_subquery()

    picks = (
        select(
            held.c.account,
            hour_of(r.hour_start).label("first"),
            hour_of(r.hour_start.desc()).label("last"),
            hour_of(low, r.low_at).label("low"),
            hour_of(high.desc(), r.high_at).label("high"),
        )
        .select_from(held)
        .cte("pick")
    )
    parts = []
    for role in ROLES:
        hour = aliased(PositionRollup, name=f"{role}_pick")
        columns = point_columns(
            getattr(hour, f"{role}_id"),
            hour.account,
            getattr(hour, f"{role}_at"),
            getattr(hour, f"{role}_amount"),
            getattr(hour, f"{role}_price"),
        )
        parts.append(
            select(*columns).join_from(
                picks,
                hour,
                literal_column(f"{role}_pick.rowid") == picks.c[role]
                if sqlite
                else and_(
                    hour.asset == bindparam("asset"),
                    hour.account == picks.c.account,
                    hour.hour_start == picks.c[role],
                ),
            )
        )
    return union_all(*parts)


def hourly_rows(
    asset, accounts: list[str], plan: HourlyDownsampling, start, end, watermark: int
) -> list[Point]:
    """First, last, lowest and highest snapshot per (account, hour-aligned bucket).

    The hours wholly inside [start, end) come from the rollups; the two partial edge
    hours and the snapshots not folded yet (ids above `watermark`, the caller's
    `rollup.folded_id()`) from the snapshots themselves. Candidates are compared
    exactly here, so the answer is the one the snapshots alone would give. (One
    caveat on SQLite, shared with `downsampled_rows`: across hours the extremes are
    ranked by their REAL value, so amounts that differ only past double precision
    count as a tie there.)
    """
    full_lo = None if start is None else hour_floor(start - MICROSECOND) + HOUR
    full_hi = None if end is None else hour_floor(end)
    found: dict[int, Point] = {}
    p = Position

    def collect(*where, by_id=False):
        # By id: `|| ''` keeps the planner off the asset and account indexes, so it
        # walks the few ids above the watermark instead of the whole range.
        asset_, account = (
            (p.asset.concat(""), p.account.concat("")) if by_id else (p.asset, p.account)
        )
        query = select(*point_columns(p.id, p.account, p.timestamp, p.amount, p.price))
        for point in read_points(query.where(asset_ == asset, account.in_(accounts), *where)):
            found[point.id] = point

    in_range = [] if start is None else [p.timestamp >= start]
    in_range += [] if end is None else [p.timestamp < end]
    if full_lo is not None and full_hi is not None and full_lo >= full_hi:
        collect(*in_range)
    else:
        dialect = db.session.get_bind().dialect.name
        statement = _rollup_picks(dialect, full_lo is not None, full_hi is not None)
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
        for point in read_points(statement, parameters):
            found[point.id] = point
        if full_lo is not None and start < full_lo:
            collect(p.timestamp >= start, p.timestamp < full_lo)
        if full_hi is not None and full_hi < end:
            collect(p.timestamp >= full_hi, p.timestamp < end)
        collect(p.id > watermark, *in_range, by_id=True)
    picked: dict[tuple[str, int], list[Point]] = {}
    ordered = sorted(found.values(), key=lambda point: (point.at_us, point.account))
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
