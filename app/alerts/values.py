"""What evaluation reads, loaded once: latest positions, window-ago amounts, open alerts.

A worker pass answers all its rules from one read of the latest positions and one
batched query for the amounts a window ago, instead of a few queries per rule and
per series. Ingest-time evaluation reads only the accounts its batch touched.
"""

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Integer, Row, String, bindparam, column, select, text

from app.alerts.models import ANY, Alert, AlertRule, AlertState, RuleKind
from app.db_types import EXACT, UTCDateTime
from app.extensions import db
from app.positions.models import LatestPosition, Position, notional

Series = tuple[str, str]
# (account, asset, moment): the amount a series had at that moment is wanted.
WindowKey = tuple[str, str, datetime]
# Percent changes are kept to a millionth of a percent, not 200 digits.
PERCENT_PLACES = Decimal("0.000001")
# Lookups per statement (a power of two): four parameters each, under SQLite's
# historic limit of 999 and its 500 terms of a compound SELECT.
WINDOW_LOOKUP_CHUNK = 128


@dataclass
class Readings:
    """The latest row of each series in scope, and the window-ago amounts rules need."""

    latest: dict[Series, Row]
    before: dict[WindowKey, Decimal | None] = field(default_factory=dict)

    def rows(self, rule: AlertRule) -> list[Row]:
        """The latest rows a rule looks at (gross exposure: every asset of its accounts)."""
        whole_account = rule.kind == RuleKind.GROSS_EXPOSURE_ABOVE
        if not whole_account and ANY not in (rule.account, rule.asset):
            row = self.latest.get((rule.account, rule.asset))
            return [] if row is None else [row]
        return [
            row
            for (account, asset), row in self.latest.items()
            if rule.account in (ANY, account) and (whole_account or rule.asset in (ANY, asset))
        ]

    def amount_before(self, key: WindowKey) -> Decimal | None:
        if key not in self.before:  # a rule the readings were not loaded for
            self.before.update(amounts_before({key}))
        return self.before[key]


def window_key(rule: AlertRule, latest: Row) -> WindowKey:
    moment = latest.timestamp - timedelta(seconds=rule.window_seconds)
    return (latest.account, latest.asset, moment)


def read(
    rules: Iterable[AlertRule],
    accounts: set[str] | None = None,
    only: set[Series] | None = None,
) -> Readings:
    """Load the latest rows (of these accounts, or all) and the rules' window lookups.

    With `only`, window lookups are made for those series alone (rows outside them
    still count towards gross exposure).
    """
    query = select(
        LatestPosition.account,
        LatestPosition.asset,
        LatestPosition.timestamp,
        LatestPosition.amount,
        LatestPosition.price,
    )
    if accounts is not None:
        query = query.where(LatestPosition.account.in_(sorted(accounts)))
    readings = Readings({(row.account, row.asset): row for row in db.session.execute(query)})
    keys = {
        window_key(rule, row)
        for rule in rules
        if rule.kind == RuleKind.CHANGE_OVER_WINDOW
        for row in readings.rows(rule)
        if only is None or (row.account, row.asset) in only
    }
    readings.before = amounts_before(keys)
    return readings


def amounts_before(keys: set[WindowKey]) -> dict[WindowKey, Decimal | None]:
    """The newest stored amount at or before each moment, for many series at once."""
    found: dict[WindowKey, Decimal | None] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), WINDOW_LOOKUP_CHUNK):
        chunk = ordered[start : start + WINDOW_LOOKUP_CHUNK]
        size = _lookup_size(len(chunk))
        params = {}
        for n in range(size):
            # Padding repeats the last key: its answer is the same.
            account, asset, moment = chunk[min(n, len(chunk) - 1)]
            params |= {
                f"n{n}": n,
                f"account{n}": account,
                f"asset{n}": asset,
                f"moment{n}": moment,
            }
        for n, before in db.session.execute(_window_lookup(size), params):
            if n < len(chunk):
                found[chunk[n]] = before
    return found


def _lookup_size(count: int) -> int:
    """Round up to a power of two, so a handful of statement shapes serve every batch."""
    return 1 << (count - 1).bit_length()


@functools.cache
def _window_lookup(size: int):
    """The amount at or before each of `size` (account, asset, moment) keys.

    Built and compiled once per size: a statement with hundreds of parameters costs
    more to build than to run.
    """
    rows = " UNION ALL ".join(
        f"SELECT :n{n} AS n, :account{n} AS account, :asset{n} AS asset, :moment{n} AS moment"
        for n in range(size)
    )
    wanted = (
        text(rows)
        .bindparams(*(bindparam(f"moment{n}", type_=UTCDateTime()) for n in range(size)))
        .columns(
            column("n", Integer),
            column("account", String(64)),
            column("asset", String(64)),
            column("moment", UTCDateTime()),
        )
        .cte("wanted")
    )
    # One indexed probe of (account, asset, timestamp) per key.
    amount = (
        select(Position.amount)
        .where(
            Position.account == wanted.c.account,
            Position.asset == wanted.c.asset,
            Position.timestamp <= wanted.c.moment,
        )
        .order_by(Position.timestamp.desc())
        .limit(1)
        .scalar_subquery()
    )
    return select(wanted.c.n, amount)


def rule_values(
    rule: AlertRule,
    now: datetime,
    only: set[Series] | None = None,
    readings: Readings | None = None,
) -> dict[Series, Decimal]:
    """The value each series matching the rule has now (series without data: absent)."""
    if readings is None:
        readings = read([rule])
    rows = readings.rows(rule)
    if rule.kind == RuleKind.GROSS_EXPOSURE_ABOVE:
        accounts = None if only is None else {account for account, _ in only}
        exposure: dict[str, Decimal] = defaultdict(Decimal)
        for latest in rows:
            size = notional_size(latest.amount, latest.price)
            if size is not None and (accounts is None or latest.account in accounts):
                exposure[latest.account] = EXACT.add(exposure[latest.account], size)
        return {(account, ANY): total for account, total in exposure.items()}
    found: dict[Series, Decimal] = {}
    for latest in rows:
        series = (latest.account, latest.asset)
        if only is not None and series not in only:
            continue
        value = _series_value(rule, latest, now, readings)
        if value is not None:
            found[series] = value
    return found


def _series_value(rule: AlertRule, latest: Row, now: datetime, readings: Readings):
    kind = rule.kind
    if kind in (RuleKind.POSITION_ABOVE, RuleKind.POSITION_BELOW):
        return latest.amount
    if kind == RuleKind.NOTIONAL_ABOVE:
        return notional_size(latest.amount, latest.price)
    if kind == RuleKind.STALE_FEED:
        return Decimal((now - latest.timestamp).total_seconds()).quantize(Decimal("0.001"))
    if kind == RuleKind.CHANGE_OVER_WINDOW:
        before = readings.amount_before(window_key(rule, latest))
        return None if before is None else window_change(rule, latest.amount, before)
    raise ValueError(f"unknown rule kind {kind!r}")


def notional_size(amount: Decimal, price: Decimal | None) -> Decimal | None:
    """The size of a position's notional value, long or short (None without a price):
    what notional and gross-exposure rules compare."""
    value = notional(amount, price)
    return None if value is None else value.copy_abs()


def window_change(rule: AlertRule, amount: Decimal, before: Decimal) -> Decimal | None:
    """The change since a window ago, absolute or in percent (None from zero)."""
    change = EXACT.subtract(amount, before)
    if not rule.change_percent:
        return change
    if before == 0:
        return None
    percent = EXACT.multiply(EXACT.divide(change, before.copy_abs()), 100)
    return percent.quantize(PERCENT_PLACES, context=EXACT)


def active_alerts(rule_ids: Iterable[int] | None = None) -> dict[int, dict[Series, Row]]:
    """Pending and firing alerts by rule and series, as plain rows (nothing locked)."""
    query = select(
        Alert.rule_id,
        Alert.account,
        Alert.asset,
        Alert.state,
        Alert.state_since,
        Alert.fired_at,
        Alert.acknowledged_at,
        Alert.last_notified_at,
    ).where(Alert.state.in_(AlertState.ACTIVE))
    if rule_ids is not None:
        query = query.where(Alert.rule_id.in_(list(rule_ids)))
    found: dict[int, dict[Series, Row]] = defaultdict(dict)
    for row in db.session.execute(query):
        found[row.rule_id][(row.account, row.asset)] = row
    return found
