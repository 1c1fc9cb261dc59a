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

from sqlalchemy import BigInteger, bindparam, literal, select, true, union_all
from sqlalchemy.orm import aliased

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
    snapshot yet). One indexed probe per series and moment, in one statement."""
    index = select(literal(0, BigInteger).label("i")).cte("grid_index", recursive=True)
    index = index.union_all(select(index.c.i + 1).where(index.c.i < bindparam("count") - 1))
    offset = bindparam("start_us", type_=BigInteger) + index.c.i * bindparam("step_us")
    parts = [select(index.c.i, micros_as_column_value(offset).label("moment"))]
    parts += [
        select(literal(count + n, BigInteger), literal(moment, UTCDateTime()))
        for n, moment in enumerate(extra)
    ]
    moment = union_all(*parts).cte("moment") if len(parts) > 1 else parts[0].cte("moment")
    p = aliased(Position)
    latest_id = (
        select(p.id)
        .where(
            p.account == LatestPosition.account,
            p.asset == LatestPosition.asset,
            p.timestamp <= moment.c.moment,
        )
        .order_by(p.timestamp.desc())
        .limit(1)
        .correlate(LatestPosition, moment)
        .scalar_subquery()
    )
    picks = (
        select(moment.c.i, latest_id.label("position_id"))
        .select_from(LatestPosition)
        .join(moment, true())
        .cte("pick")
    )
    query = select(picks.c.i, Position.account, Position.asset, Position.amount, Position.price)
    query = query.join(Position, Position.id == picks.c.position_id)
    parameters = {
        "count": count,
        "start_us": to_micros(start),
        "step_us": step // MICROSECOND,
    }
    size = count + len(extra)
    found: dict[tuple[str, str], list] = {}
    for i, account, asset, amount, price in db.session.execute(query, parameters):
        found.setdefault((account, asset), [None] * size)[i] = (amount, price)
    return found


def _add(total: Decimal | None, value: Decimal) -> Decimal:
    return value if total is None else EXACT.add(total, value)


def _change(values: list[Decimal | None], now_index: int, then_index: int) -> Decimal | None:
    now, then = values[now_index], values[then_index]
    return None if now is None or then is None else EXACT.subtract(now, then)


@dataclass
class ValueOverTime:
    """The value of each account and of the desk at each moment, and its changes."""

    range_key: str
    moments: list[datetime]  # the grid, oldest first; the last is now
    accounts: dict[str, list[Decimal | None]]
    desk: list[Decimal | None]
    # Per account and for the desk ("" key): change over "1h", "24h" and "range".
    changes: dict[str, dict[str, Decimal | None]] = field(default_factory=dict)
    unpriced: list[tuple[str, str]] = field(default_factory=list)  # held now, no price

    @property
    def now(self) -> Decimal | None:
        return self.desk[-1]

    def figures(self) -> list[tuple[str, Decimal | None, dict[str, Decimal | None]]]:
        """(account, value now, changes) per account by name, then the desk ("")."""
        accounts = sorted(self.accounts.items())
        rows = [(name, values[-1], self.changes[name]) for name, values in accounts]
        return [*rows, ("", self.desk[-1], self.changes[""])]


def value_over_time(now: datetime, range_key: str = DEFAULT_RANGE) -> ValueOverTime:
    """Value per account and for the desk over the range ending now (see the module)."""
    span, step = RANGES[range_key]
    moments = grid(now, span, step)
    # The 1 h and 24 h changes: a grid moment, or one more lookup where the grid misses.
    extra: list[datetime] = []
    change_at = {}
    for key, ago in CHANGE_SPANS.items():
        then = now - ago
        if then in moments:
            change_at[key] = moments.index(then)
        else:
            change_at[key] = len(moments) + len(extra)
            extra.append(then)
    size = len(moments) + len(extra)
    accounts: dict[str, list[Decimal | None]] = {}
    desk: list[Decimal | None] = [None] * size
    unpriced = []
    lookups = held_at(moments[0], step, len(moments), extra)
    for (account, asset), snapshots in sorted(lookups.items()):
        values = accounts.setdefault(account, [None] * size)
        for i, snapshot in enumerate(snapshots):
            if snapshot is None:
                continue
            amount, price = snapshot
            if price is None:
                if i == len(moments) - 1:
                    unpriced.append((account, asset))
                continue
            worth = EXACT.multiply(amount, price)
            values[i] = _add(values[i], worth)
            desk[i] = _add(desk[i], worth)
    last = len(moments) - 1
    changes = {}
    for name, values in [("", desk), *accounts.items()]:
        changes[name] = {key: _change(values, last, index) for key, index in change_at.items()}
        changes[name]["range"] = _change(values, last, 0)
    return ValueOverTime(
        range_key=range_key,
        moments=moments,
        accounts={name: values[: len(moments)] for name, values in accounts.items()},
        desk=desk[: len(moments)],
        changes=changes,
        unpriced=unpriced,
    )
