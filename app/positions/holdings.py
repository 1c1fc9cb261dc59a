"""What each (account, asset) series held at given moments: its latest snapshot at or
before each, looked up with bounds so PostgreSQL plans only the months they span."""

from datetime import datetime, timedelta

from sqlalchemy import BigInteger, bindparam, literal, select, true, type_coerce, union_all
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import aliased
from sqlalchemy.types import NullType

from app.db_types import UTCDateTime
from app.extensions import db
from app.positions.buckets import micros_as_column_value, to_micros
from app.positions.hourly import waiting_points
from app.positions.models import LatestPosition, Position, PositionDailyRollup
from app.positions.points import MICROSECOND
from app.positions.rollup import day_floor, far_behind
from app.positions.watermark import folded_id, newest_drawn_id

# How far before the earliest moment a lookup looks first (see held_at).
LOOKBACK = timedelta(days=1)


def held_at(
    start: datetime, step: timedelta, count: int, extra: list[datetime] = ()
) -> dict[tuple[str, str], list]:
    """Per (account, asset) series: its latest (amount, price) at or before each of `count`
    moments `step` apart from `start`, then at each `extra` moment (None where it had no
    snapshot yet).

    Every lookup has bounds, so on PostgreSQL it plans and reads only the months they
    span: planned without them, each statement cost as much as the page again at 100M
    snapshots (bench/README.md). The first moment and the extra ones look back to
    LOOKBACK before the earliest of them; a series with nothing there is found at that
    point by `_held_at_moment`. The later grid moments look back only to the first: the
    latest they find after it is the latest, and where they find none the first
    moment's stands.
    """
    size = count + len(extra)
    firsts = [start, *extra]
    slots = [0, *range(count, size)]
    since = min(firsts) - LOOKBACK
    found: dict[tuple[str, str], list] = {}
    for i, account, asset, amount, price in _latest_at(firsts, (since, max(firsts))):
        found.setdefault((account, asset), [None] * size)[slots[i]] = (amount, price)
    latest = _latest_rows()
    missing = [key for key in latest if key not in found or None in [found[key][i] for i in slots]]
    # Where a series had nothing since then, its latest snapshot is its latest before.
    for key, held in _held_at_moment(since, missing, latest).items():
        snapshots = found.setdefault(key, [None] * size)
        for i in slots:
            snapshots[i] = snapshots[i] or held
    later = {}
    if count > 1:
        for i, account, asset, amount, price in _latest_in_range(start, step, count):
            later[account, asset, i] = (amount, price)
    # A series may begin after the first moment.
    for account, asset, _ in later:
        found.setdefault((account, asset), [None] * size)
    for (account, asset), snapshots in found.items():
        for i in range(1, count):
            snapshots[i] = later.get((account, asset, i), snapshots[0])
    return found


def _latest_rows() -> dict:
    """Every series' latest snapshot (timestamp, amount, price), by (account, asset): the
    columns alone, not whole rows, as a desk may hold very many series."""
    lp = LatestPosition
    rows = db.session.execute(select(lp.account, lp.asset, lp.timestamp, lp.amount, lp.price))
    return {(account, asset): row for account, asset, *row in rows}


def _held_at_moment(moment: datetime, keys, latest: dict) -> dict[tuple[str, str], tuple]:
    """(amount, price) of each series' latest snapshot at or before `moment`, where it
    has one, without a lookup over the whole history; `latest` is `_latest_rows()`.

    A series whose latest snapshot is no later than the moment holds it there. Else its
    latest folded day before the moment's day bounds the lookup from below: a snapshot
    of that day is no later than the moment and later than anything before the day.
    With no such day, only the moment's own day can hold one, or a snapshot not folded
    yet (read by id, as the charts read them). Unbounded, a series that began after the
    moment scanned the asset's whole history at 100M snapshots (bench/README.md).
    """
    held, looked_up = {}, []
    for key in keys:
        timestamp, amount, price = latest[key]
        if timestamp <= moment:
            held[key] = (amount, price)
        else:
            looked_up.append(key)
    if not looked_up:
        return held
    watermark, newest_id = folded_id(), newest_drawn_id()
    p, day = Position, PositionDailyRollup
    for account, asset in looked_up:
        bound = db.session.scalar(
            select(day.day_start)
            .where(day.asset == asset, day.account == account)
            .where(day.day_start < day_floor(moment))
            .order_by(day.day_start.desc())
            .limit(1)
        )
        candidates = []
        if bound is None:
            bound = day_floor(moment)
            if newest_id > watermark:
                waiting = None
                if not far_behind(watermark, newest_id):
                    waiting = waiting_points(asset, account, watermark, end=bound)
                if waiting is None:
                    bound = None  # too many wait to be read by id: look up unbounded
                else:
                    candidates = [(point.at_us, point.value, point.price) for point in waiting]
        lookup = select(p.timestamp, p.amount, p.price).where(
            p.account == account, p.asset == asset, p.timestamp <= moment
        )
        if bound is not None:
            lookup = lookup.where(p.timestamp >= bound)
        found = db.session.execute(lookup.order_by(p.timestamp.desc()).limit(1)).first()
        if found is not None:
            candidates.append((to_micros(found.timestamp), found.amount, found.price))
        if candidates:
            _, amount, price = max(candidates, key=lambda candidate: candidate[0])
            held[account, asset] = (amount, price)
    return held


def _latest_at(moments: list[datetime], within=None):
    """(moment index, account, asset, amount, price): each series' latest snapshot at or
    before each moment, where it has one (inside `within`, (after, up to), if given)."""
    parts = [
        select(literal(n, BigInteger).label("i"), literal(moment, UTCDateTime()).label("moment"))
        for n, moment in enumerate(moments)
    ]
    moment = union_all(*parts).cte("moment") if len(parts) > 1 else parts[0].cte("moment")
    return _snapshots_at(moment, within=within)


def _latest_in_range(start: datetime, step: timedelta, count: int):
    """(grid index, account, asset, amount, price): each series' latest snapshot after
    `start` and at or before each later grid moment (index 1 to count - 1)."""
    index = select(literal(1, BigInteger).label("i")).cte("grid_index", recursive=True)
    index = index.union_all(select(index.c.i + 1).where(index.c.i < bindparam("count") - 1))
    moment_us = bindparam("start_us", type_=BigInteger) + index.c.i * bindparam("step_us")
    moment = select(index.c.i, micros_as_column_value(moment_us).label("moment")).cte("moment")
    parameters = {"count": count, "start_us": to_micros(start), "step_us": step // MICROSECOND}
    # The range as plain bounds too: PostgreSQL plans only the partitions in it.
    return _snapshots_at(moment, parameters, (start, start + (count - 1) * step))


def _snapshots_at(moment, parameters=None, within=None):
    """Each series' latest snapshot at or before each moment of the `moment` CTE, where
    it has one, and inside `within` (after, up to) if given: one indexed lookup per
    series and moment.

    SQLite looks up the snapshot's id and reads the row by it. PostgreSQL takes the
    amount and the price from the lookup itself, in the (asset, timestamp, ...) index:
    joined by id, it hashed the whole history instead (40 s at 100M snapshots,
    bench/README.md).
    """
    p = aliased(Position)

    def latest(column):
        query = select(column).where(
            p.account == LatestPosition.account,
            p.asset == LatestPosition.asset,
            p.timestamp <= moment.c.moment,
        )
        if within is not None:
            query = query.where(p.timestamp > within[0], p.timestamp <= within[1])
        query = query.order_by(p.timestamp.desc()).limit(1)
        return query.correlate(LatestPosition, moment).scalar_subquery()

    if db.session.get_bind().dialect.name == "sqlite":
        picks = (
            select(moment.c.i, latest(p.id).label("position_id"))
            .select_from(LatestPosition)
            .join(moment, true())
            .cte("pick")
        )
        q = Position
        query = select(picks.c.i, q.account, q.asset, q.amount, q.price)
        return db.session.execute(query.join(q, q.id == picks.c.position_id), parameters or {})
    # The amount and the price in one lookup, as a NUMERIC array (the price may be NULL),
    # the driver's exact Decimals as they come.
    held = latest(type_coerce(array([p.amount, p.price]), NullType()))
    query = select(moment.c.i, LatestPosition.account, LatestPosition.asset, held)
    rows = db.session.execute(query.join(moment, true()), parameters or {})
    # NULL: no snapshot there.
    return [(i, account, asset, *pair) for i, account, asset, pair in rows if pair is not None]
