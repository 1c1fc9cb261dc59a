"""The limits screen: each limit rule's current value, how much of it is used, and what is left.

Values come from the alert engine's own code (`app.alerts.values`): the page shows what
the next evaluation compares, from the same latest positions.

Utilisation is the share of the limit a value uses, 1 (100 %) exactly at the limit and
more past it; it never goes below 0. Two shapes of limit exist:

- a cap, where the value grows towards the limit: "amount above 40" (a long limit),
  "notional above 1M", "gross exposure above 5M", and "amount below -100" (a short
  limit: a short of 80 uses 80 % of it). Utilisation is value / limit.
- a floor, where the value falls towards a limit on its own side of zero: "amount below
  10" (hold at least 10), "amount above -100" (stay short at least 100). Utilisation is
  limit / value: 10 held against a floor of 10 is 100 %, 20 held is 50 %. A value at or
  past zero is past the floor and has no finite utilisation.

A limit of zero has no utilisation either ("amount below 0": any short breaches).
Headroom is how far the value can move before it breaches, in the rule's unit:
limit - value for an upper bound, value - limit for a lower one (negative once
breached). For notional and gross exposure, whose values are sizes, that is
limit - |value|.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from app.alerts.models import ANY, AlertRule, RuleKind
from app.alerts.queries import limit_rules
from app.alerts.state import is_breached
from app.alerts.values import Series, active_alerts, read, rule_values
from app.db_types import EXACT

# Utilisation is kept to a millionth of a percent.
RATIO_PLACES = Decimal("1e-8")
AMOUNT, NOTIONAL = "amount", "notional"
INFINITY = Decimal("Infinity")


def metric_of(rule: AlertRule) -> str:
    """What a limit caps: an amount of the asset, or a notional in the quote currency."""
    if rule.kind in (RuleKind.POSITION_ABOVE, RuleKind.POSITION_BELOW):
        return AMOUNT
    return NOTIONAL


def is_lower_bound(kind: str) -> bool:
    return kind in RuleKind.BELOW


def utilisation(kind: str, limit: Decimal, value: Decimal) -> Decimal | None:
    """The share of the limit the value uses (see the module's docstring); None when
    it has no finite share (a limit of zero, or a value past a floor's zero)."""
    if limit == 0:
        return None
    lower = is_lower_bound(kind)
    # A cap: the limit lies where the value breaches by growing away from zero.
    is_cap = (limit < 0) if lower else (limit > 0)
    if is_cap:
        ratio = EXACT.divide(value, limit)
    elif value == 0 or (value < 0) != (limit < 0):
        return None
    else:
        ratio = EXACT.divide(limit, value)
    share = max(ratio, Decimal(0)).quantize(RATIO_PLACES, context=EXACT)
    return Decimal(format(share.normalize(), "f"))  # 0.75, not 0.75000000


def headroom(kind: str, limit: Decimal, value: Decimal) -> Decimal:
    """How far the value can move before it breaches the limit (negative: past it)."""
    if is_lower_bound(kind):
        return EXACT.subtract(value, limit)
    return EXACT.subtract(limit, value)


@dataclass(frozen=True)
class LimitRow:
    """One rule on one series it applies to (gross exposure: an account, asset "*")."""

    rule: AlertRule
    account: str
    asset: str
    metric: str
    value: Decimal | None  # None: nothing to compare (no price for a notional)
    utilisation: Decimal | None
    headroom: Decimal | None
    breached: bool
    as_of: datetime  # the oldest snapshot behind the value
    stale: bool
    unpriced: int  # positions with no price, so not in a notional or exposure
    state: str | None  # the alert's, while pending or firing

    @property
    def limit(self) -> Decimal:
        return self.rule.threshold

    @property
    def meter(self) -> Decimal:
        """The bar's fill, 0 to 1: full once breached."""
        if self.breached:
            return Decimal(1)
        if self.utilisation is None:
            return Decimal(0)
        return min(self.utilisation, Decimal(1))

    def sort_key(self):
        """Nearest to breach first: breached, then by utilisation, then by headroom."""
        if self.utilisation is not None:
            share = -self.utilisation
        else:
            share = -INFINITY if self.breached else INFINITY
        room = INFINITY if self.headroom is None else self.headroom
        return (not self.breached, share, room, self.rule.id, self.account, self.asset)


def _series_rows(rule: AlertRule, readings) -> dict[Series, list]:
    """The latest rows behind each series of the rule (gross exposure: per account)."""
    grouped: dict[Series, list] = defaultdict(list)
    for row in readings.rows(rule):
        asset = ANY if rule.kind == RuleKind.GROSS_EXPOSURE_ABOVE else row.asset
        grouped[(row.account, asset)].append(row)
    return grouped


def limit_rows(now: datetime, stale_after: timedelta) -> list[LimitRow]:
    """Every enabled limit rule on every series it applies to, nearest to breach first."""
    rules = limit_rules()
    if not rules:
        return []
    readings = read(rules)
    active = active_alerts(rule.id for rule in rules)
    rows = []
    for rule in rules:
        values = rule_values(rule, now, readings=readings)
        alerts = active.get(rule.id, {})
        metric = metric_of(rule)
        for series, latest in _series_rows(rule, readings).items():
            value = values.get(series)
            as_of = min(row.timestamp for row in latest)
            alert = alerts.get(series)
            rows.append(
                LimitRow(
                    rule=rule,
                    account=series[0],
                    asset=series[1],
                    metric=metric,
                    value=value,
                    utilisation=None
                    if value is None
                    else utilisation(rule.kind, rule.threshold, value),
                    headroom=None if value is None else headroom(rule.kind, rule.threshold, value),
                    breached=value is not None and is_breached(rule, value, False),
                    as_of=as_of,
                    stale=now - as_of > stale_after,
                    unpriced=0
                    if metric == AMOUNT
                    else sum(1 for row in latest if row.price is None),
                    state=None if alert is None else alert.state,
                )
            )
    rows.sort(key=LimitRow.sort_key)
    return rows
