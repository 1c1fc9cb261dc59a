"""Mark-to-market value over time: amount x price of the positions held, per account and desk.

Sampled on a regular grid of moments ending now. At each moment every (account, asset)
series counts with its latest snapshot at or before it (its last value carried
forward): amount x that snapshot's price. A snapshot without a price contributes
nothing (its earlier price is not carried over), and neither does a series with no
snapshot yet. An account (or the desk) with nothing contributing at a moment has no
value there (None), not zero; a change needs a value at both ends.

This is the value change of the positions held, marked to the stored prices: not
trading PnL (no fills, fees or cash).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import BigInteger, bindparam, literal, select, true, type_coerce, union_all
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import aliased
from sqlalchemy.types import NullType

from app.db_types import EXACT, UTCDateTime
from app.extensions import db
from app.positions.buckets import micros_as_column_value, to_micros
from app.positions.models import LatestPosition, Position
from app.positions.points import MICROSECOND

# The ranges a viewer picks from: the window, and the grid step that samples it.
RANGES = {
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "24h": (timedelta(days=1), timedelta(minutes=15)),
    "7d": (timedelta(days=7), timedelta(hours=1)),
    "30d": (timedelta(days=30), timedelta(hours=4)),
}
DEFAULT_RANGE = "24h"
# How far before the earliest moment a lookup looks first (see held_at).
LOOKBACK = timedelta(days=1)
# The changes every view shows beside the range's own.
CHANGE_SPANS = {"1h": timedelta(hours=1), "24h": timedelta(days=1)}


def grid(now: datetime, span: timedelta, step: timedelta) -> list[datetime]:
    """Moments from now - span to now, `step` apart, oldest first (now is the last)."""
    count = span // step
    return [now - (count - k) * step for k in range(count + 1)]


def held_at(
    start: datetime, step: timedelta, count: int, extra: list[datetime] = ()
) -> dict[tuple[str, str], list]:
    """Per (account, asset) series: its latest (amount, price) at or before each of `count`
    moments `step` apart from `start`, then at each `extra` moment (None where it had no
    snapshot yet).

    Every lookup has bounds, so on PostgreSQL it plans and reads only the months they
    span: planned without them, each statement cost as much as the page again at 100M
    snapshots (bench/README.md). The first moment and the extra ones look back to
    LOOKBACK before the earliest of them; a series with nothing there is looked up once
    more without a bound, at that point. The later grid moments look back only to the
    first: the latest they find after it is the latest, and where they find none the
    first moment's stands.
    """
    size = count + len(extra)
    firsts = [start, *extra]
    slots = [0, *range(count, size)]
    since = min(firsts) - LOOKBACK
    found: dict[tuple[str, str], list] = {}
    for i, account, asset, amount, price in _latest_at(firsts, (since, max(firsts))):
        found.setdefault((account, asset), [None] * size)[slots[i]] = (amount, price)
    every = db.session.execute(select(LatestPosition.account, LatestPosition.asset))
    if any(
        key not in found or None in [found[key][i] for i in slots] for key in map(tuple, every)
    ):
        # Where a series had nothing since then, its latest snapshot is its latest before.
        for _, account, asset, amount, price in _latest_at([since]):
            snapshots = found.setdefault((account, asset), [None] * size)
            for i in slots:
                snapshots[i] = snapshots[i] or (amount, price)
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


def _add(total: Decimal | None, value: Decimal) -> Decimal:
    return value if total is None else EXACT.add(total, value)


def _change(values: list[Decimal | None], now_index: int, then_index: int) -> Decimal | None:
    now, then = values[now_index], values[then_index]
    return None if now is None or then is None else EXACT.subtract(now, then)


@dataclass
class ValueOverTime:
    """The value of each account and of the desk at each moment of a range's grid."""

    range_key: str
    moments: list[datetime]  # the grid, oldest first; the last is now
    accounts: dict[str, list[Decimal | None]]
    desk: list[Decimal | None]
    unpriced: list[tuple[str, str]] = field(default_factory=list)  # held now, no price


@dataclass
class ValueFigures:
    """The value now of each account and of the desk, and its changes over 1 h, 24 h and
    the range: what the value page shows beside its chart."""

    range_key: str
    now: dict[str, Decimal | None]  # per account, and for the desk ("")
    # Per account and for the desk: change over "1h", "24h" and "range".
    changes: dict[str, dict[str, Decimal | None]]
    unpriced: list[tuple[str, str]] = field(default_factory=list)  # held now, no price

    def figures(self) -> list[tuple[str, Decimal | None, dict[str, Decimal | None]]]:
        """(account, value now, changes) per account by name, then the desk ("")."""
        names = sorted(name for name in self.now if name)
        return [(name, self.now[name], self.changes[name]) for name in [*names, ""]]


def _values(lookups: dict, size: int, now_index: int):
    """Per account and for the desk, the value at each of `size` moments from the
    series' lookups (`held_at`); and the series held at `now_index` without a price."""
    accounts: dict[str, list[Decimal | None]] = {}
    desk: list[Decimal | None] = [None] * size
    unpriced = []
    for (account, asset), snapshots in sorted(lookups.items()):
        values = accounts.setdefault(account, [None] * size)
        for i, snapshot in enumerate(snapshots):
            if snapshot is None:
                continue
            amount, price = snapshot
            if price is None:
                if i == now_index:
                    unpriced.append((account, asset))
                continue
            worth = EXACT.multiply(amount, price)
            values[i] = _add(values[i], worth)
            desk[i] = _add(desk[i], worth)
    return accounts, desk, unpriced


def value_over_time(now: datetime, range_key: str = DEFAULT_RANGE) -> ValueOverTime:
    """Value per account and for the desk at each moment of the range's grid (the chart)."""
    span, step = RANGES[range_key]
    moments = grid(now, span, step)
    lookups = held_at(moments[0], step, len(moments))
    accounts, desk, unpriced = _values(lookups, len(moments), len(moments) - 1)
    return ValueOverTime(range_key, moments, accounts, desk, unpriced)


def value_figures(now: datetime, range_key: str = DEFAULT_RANGE) -> ValueFigures:
    """Value now per account and for the desk, and its changes over 1 h, 24 h and the
    range: four lookups a series, not the grid (the page's chart asks for that)."""
    span, step = RANGES[range_key]
    then = {key: now - ago for key, ago in CHANGE_SPANS.items()}
    then["range"] = now - span
    # A range of 1 h or 24 h starts where one of the changes does.
    moments = [now, *dict.fromkeys(then.values())]
    lookups = held_at(moments[0], step, 1, moments[1:])
    accounts, desk, unpriced = _values(lookups, len(moments), 0)
    at = {moment: i for i, moment in enumerate(moments)}
    values_now, changes = {}, {}
    for name, values in [("", desk), *accounts.items()]:
        values_now[name] = values[0]
        changes[name] = {key: _change(values, 0, at[moment]) for key, moment in then.items()}
    return ValueFigures(range_key, values_now, changes, unpriced)
