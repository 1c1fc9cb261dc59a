"""The overview's rows and what they add up to, per account and per asset.

Totals are computed from the very rows the table shows, in exact decimals. A
position without a price has no notional: it counts as a position (and its amount
in the asset's net amount) but not in any notional, and each total says how many
of its positions it left out that way, rather than counting them as 0.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from app.db_types import EXACT
from app.positions.models import notional


@dataclass(frozen=True)
class OverviewRow:
    """One latest position as the overview shows it."""

    account: str
    asset: str
    timestamp: datetime
    amount: Decimal
    price: Decimal | None
    notional: Decimal | None
    age: timedelta
    stale: bool
    firing: bool


def overview_rows(
    latest, now: datetime, stale_after: timedelta, firing: set[tuple[str, str]]
) -> list[OverviewRow]:
    """The latest positions with their notional, age and marks, in the order given.

    `firing` holds the (account, asset) pairs with a firing alert; asset "*" stands
    for an alert on the whole account.
    """
    return [
        OverviewRow(
            account=p.account,
            asset=p.asset,
            timestamp=p.timestamp,
            amount=p.amount,
            price=p.price,
            notional=notional(p.amount, p.price),
            age=now - p.timestamp,
            stale=now - p.timestamp > stale_after,
            firing=(p.account, p.asset) in firing or (p.account, "*") in firing,
        )
        for p in latest
    ]


@dataclass
class Total:
    """What a group of positions adds up to.

    Notionals are None while no position of the group has a price; `unpriced` counts
    the positions whose notional is unknown and so missing from both sums.
    """

    name: str
    positions: int = 0
    stale: int = 0
    firing: int = 0
    unpriced: int = 0
    net_notional: Decimal | None = None
    gross_notional: Decimal | None = None
    # Per asset only: the amounts summed across accounts (an amount needs no price).
    net_amount: Decimal = field(default_factory=Decimal)

    def add(self, row: OverviewRow) -> None:
        self.positions += 1
        self.stale += row.stale
        self.firing += row.firing
        self.net_amount = EXACT.add(self.net_amount, row.amount)
        if row.notional is None:
            self.unpriced += 1
            return
        self.net_notional = EXACT.add(self.net_notional or Decimal(0), row.notional)
        self.gross_notional = EXACT.add(self.gross_notional or Decimal(0), row.notional.copy_abs())


def _totals(rows: list[OverviewRow], key) -> list[Total]:
    groups: dict[str, Total] = {}
    for row in rows:
        name = key(row)
        total = groups.get(name)
        if total is None:
            total = groups[name] = Total(name)
        total.add(row)
    return [groups[name] for name in sorted(groups)]


def account_totals(rows: list[OverviewRow]) -> list[Total]:
    """Per account, by name: positions, stale and firing counts, net and gross notional."""
    return _totals(rows, lambda row: row.account)


def asset_totals(rows: list[OverviewRow]) -> list[Total]:
    """Per asset across accounts, by name: net amount, net and gross notional."""
    return _totals(rows, lambda row: row.asset)


def desk_total(rows: list[OverviewRow]) -> Total:
    """Every position of the desk together (its net amount mixes assets: unused)."""
    total = Total("All accounts")
    for row in rows:
        total.add(row)
    return total
