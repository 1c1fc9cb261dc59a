"""Hour-aligned buckets for long ranges: whole hours from the rollups, the rest raw."""

from bisect import bisect_right
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, select, union_all
from sqlalchemy.orm import aliased

from app.extensions import db
from app.positions.buckets import EPOCH, MICROSECOND, Downsampling, bucket_accounts
from app.positions.models import Position, PositionRollup
from app.positions.rollup import HOUR, ROLES, folded_id, hour_floor

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


def _rollup_picks(asset, accounts, plan: HourlyDownsampling, full_lo, full_hi):
    """The first, last, lowest and highest snapshot of each bucket's whole hours.

    The rollup rows hold a copy of each pick, so no snapshot is read: per bucket, four
    index ranges find the hours holding the picks, four key lookups read them.
    """
    held = bucket_accounts(
        asset,
        accounts,
        plan.buckets,
        lambda i: (plan.start_us + i * plan.width_us, plan.start_us + (i + 1) * plan.width_us),
    )
    r = PositionRollup
    where = [
        r.asset == asset,
        r.account == held.c.account,
        r.hour_start >= held.c.lo,
        r.hour_start < held.c.hi,
    ]
    if full_lo is not None:
        where.append(r.hour_start >= full_lo)
    if full_hi is not None:
        where.append(r.hour_start < full_hi)
    sqlite = db.session.get_bind().dialect.name == "sqlite"
    low, high = (r.low_rank, r.high_rank) if sqlite else (r.low_amount, r.high_amount)

    def hour_of(*order):
        query = select(r.hour_start).where(*where).order_by(*order).limit(1)
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
        hour = aliased(PositionRollup)
        parts.append(
            select(
                getattr(hour, f"{role}_id").label("id"),
                hour.account,
                getattr(hour, f"{role}_at").label("timestamp"),
                getattr(hour, f"{role}_amount").label("amount"),
                getattr(hour, f"{role}_price").label("price"),
            ).join_from(
                picks,
                hour,
                and_(
                    hour.asset == asset,
                    hour.account == picks.c.account,
                    hour.hour_start == picks.c[role],
                ),
            )
        )
    return union_all(*parts)


def hourly_rows(asset, accounts: list[str], plan: HourlyDownsampling, start, end):
    """First, last, lowest and highest snapshot per (account, hour-aligned bucket).

    The hours wholly inside [start, end) come from the rollups; the two partial edge
    hours and the snapshots not folded yet (ids above the watermark) from the
    snapshots themselves. Candidates are compared exactly here, so the answer is the
    one the snapshots alone would give. (One caveat on SQLite, shared with
    `downsampled_rows`: across hours the extremes are ranked by their REAL value, so
    amounts that differ only past double precision count as a tie there.)
    """
    watermark = folded_id()
    full_lo = None if start is None else hour_floor(start - MICROSECOND) + HOUR
    full_hi = None if end is None else hour_floor(end)
    found = {}
    p = Position

    def read(query):
        # Core rows straight off the connection: the ORM layer adds nothing here.
        for row in db.session.connection().execute(query):
            found[row.id] = row

    def collect(*where, by_id=False):
        # By id: `|| ''` keeps the planner off the asset and account indexes, so it
        # walks the few ids above the watermark instead of the whole range.
        asset_, account = (
            (p.asset.concat(""), p.account.concat("")) if by_id else (p.asset, p.account)
        )
        read(
            select(p.id, p.account, p.timestamp, p.amount, p.price).where(
                asset_ == asset, account.in_(accounts), *where
            )
        )

    in_range = [] if start is None else [p.timestamp >= start]
    in_range += [] if end is None else [p.timestamp < end]
    if full_lo is not None and full_hi is not None and full_lo >= full_hi:
        collect(*in_range)
    else:
        read(_rollup_picks(asset, accounts, plan, full_lo, full_hi))
        if full_lo is not None and start < full_lo:
            collect(p.timestamp >= start, p.timestamp < full_lo)
        if full_hi is not None and full_hi < end:
            collect(p.timestamp >= full_hi, p.timestamp < end)
        collect(p.id > watermark, *in_range, by_id=True)
    # Bucket edges as moments: bisecting them is cheaper than dividing each timestamp.
    origin = EPOCH + timedelta(microseconds=plan.start_us)
    edges = [origin + timedelta(microseconds=i * plan.width_us) for i in range(plan.buckets + 1)]
    picked: dict[tuple[str, int], list] = {}
    ordered = sorted(found.values(), key=lambda row: (row.timestamp, row.account))
    for row in ordered:
        index = bisect_right(edges, row.timestamp) - 1
        # A snapshot newer than the planned extent would need one bucket too many.
        if not 0 <= index < plan.buckets:
            continue
        roles = picked.get((row.account, index))
        if roles is None:
            picked[row.account, index] = [row, row, row, row]
            continue
        # In time order: the last one seen is the last, and on ties the earliest stays.
        roles[1] = row
        if row.amount < roles[2].amount:
            roles[2] = row
        if row.amount > roles[3].amount:
            roles[3] = row
    keep = {row.id for roles in picked.values() for row in roles}
    return [row for row in ordered if row.id in keep]
