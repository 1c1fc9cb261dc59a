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

from app.db_types import EXACT
from app.positions.holdings import held_at

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
