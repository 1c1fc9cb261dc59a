"""Rule preview: replay a rule over stored history with the live state machine.

Each snapshot is evaluated at its own timestamp, as ingest-time evaluation does
when snapshots arrive one by one, so preview and live evaluation agree.
"""

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import reduce

from sqlalchemy import select

from app.alerts.models import ANY, AlertRule, AlertState, RuleKind
from app.alerts.state import next_state
from app.alerts.values import notional_size, window_change
from app.db_types import EXACT
from app.extensions import db
from app.positions.models import Position


@dataclass
class PreviewTransition:
    at: datetime
    account: str
    asset: str
    from_state: str
    to_state: str
    value: Decimal | None


@dataclass
class Preview:
    transitions: list[PreviewTransition] = field(default_factory=list)
    notifications: int = 0
    snapshots: int = 0


@dataclass
class _SeriesState:
    state: str = AlertState.NORMAL
    since: datetime | None = None
    fired_at: datetime | None = None
    last_notified: datetime | None = None


def _snapshots(rule: AlertRule, start: datetime):
    query = select(
        Position.account, Position.asset, Position.timestamp, Position.amount, Position.price
    ).where(Position.timestamp >= start)
    # An unsaved rule has no column defaults yet: empty scope means every one.
    account, asset = rule.account or ANY, rule.asset or ANY
    if account != ANY:
        query = query.where(Position.account == account)
    if asset != ANY and rule.kind != RuleKind.GROSS_EXPOSURE_ABOVE:
        query = query.where(Position.asset == asset)
    return db.session.execute(
        query.order_by(Position.timestamp, Position.id).execution_options(yield_per=5000)
    )


def preview_days(values) -> int:
    """The days a preview replays, from a form or query string: 7 unless given, 1 to 90."""
    return max(1, min(values.get("preview_days", type=int) or 7, 90))


def preview_rule(rule: AlertRule, days: int, now: datetime) -> Preview:
    """Transitions and notifications the rule would have produced over the last days."""
    if rule.kind == RuleKind.STALE_FEED:
        return _preview_stale(rule, days, now)
    result = Preview()
    states: dict[tuple[str, str], _SeriesState] = defaultdict(_SeriesState)
    history: dict[tuple[str, str], tuple[list[datetime], list[Decimal]]] = defaultdict(
        lambda: ([], [])
    )
    exposure: dict[str, dict[str, Decimal]] = defaultdict(dict)
    channels = max(1, len(rule.channels))
    for account, asset, at, amount, price in _snapshots(rule, now - timedelta(days=days)):
        result.snapshots += 1
        if rule.kind == RuleKind.GROSS_EXPOSURE_ABOVE:
            size = notional_size(amount, price)
            if size is not None:
                exposure[account][asset] = size
            else:
                exposure[account].pop(asset, None)
            # Summed exactly, as the engine does: sum() would round to 28 digits.
            series, value = (
                (account, ANY),
                reduce(EXACT.add, exposure[account].values(), Decimal(0)),
            )
        else:
            series = (account, asset)
            value = _value(rule, amount, price, at, history[series])
        state = states[series]
        to_state = next_state(rule, state.state, state.since or at, value, at)
        if to_state is None:
            result.notifications += _repeat(rule, state, at) * channels
            continue
        result.transitions.append(
            PreviewTransition(at, series[0], series[1], state.state, to_state, value)
        )
        state.state, state.since = to_state, at
        if to_state == AlertState.FIRING:
            state.fired_at = state.last_notified = at
            result.notifications += channels
        elif to_state == AlertState.RESOLVED and rule.send_resolved:
            result.notifications += channels
    return result


def _value(rule, amount, price, at, history) -> Decimal | None:
    times, amounts = history
    times.append(at)
    amounts.append(amount)
    if rule.kind in (RuleKind.POSITION_ABOVE, RuleKind.POSITION_BELOW):
        return amount
    if rule.kind == RuleKind.NOTIONAL_ABOVE:
        return notional_size(amount, price)
    # change over a window: the latest amount at or before `at - window`.
    index = bisect.bisect_right(times, at - timedelta(seconds=rule.window_seconds)) - 1
    if index < 0:
        return None
    return window_change(rule, amount, amounts[index])


def _repeat(rule: AlertRule, state: _SeriesState, at: datetime) -> int:
    """1 if a repeat reminder would be due at this snapshot, else 0."""
    interval = timedelta(seconds=rule.repeat_interval_seconds)
    if state.state != AlertState.FIRING or interval <= timedelta(0):
        return 0
    if at - state.last_notified < interval:
        return 0
    state.last_notified = at
    return 1


def _preview_stale(rule: AlertRule, days: int, now: datetime) -> Preview:
    """A stale feed fires in the gaps: threshold seconds after a snapshot with no next one.

    Times are those of a worker evaluating continuously; a real worker fires at its
    first pass after them (every --interval seconds).
    """
    result = Preview()
    channels = max(1, len(rule.channels))
    threshold = timedelta(seconds=float(rule.threshold))
    pending = timedelta(seconds=rule.pending_seconds or 0)
    repeat = timedelta(seconds=rule.repeat_interval_seconds or 0)
    last_seen: dict[tuple[str, str], datetime] = {}

    def gap(series, since, until, closed):
        quiet_at = since + threshold
        if until <= quiet_at:
            return
        account, asset = series
        age = lambda at: Decimal((at - since).total_seconds()).quantize(Decimal("0.001"))  # noqa: E731
        fire_at = quiet_at + pending
        if pending:
            result.transitions.append(
                PreviewTransition(quiet_at, account, asset, "normal", "pending", age(quiet_at))
            )
            if until <= fire_at:
                if closed:
                    result.transitions.append(
                        PreviewTransition(until, account, asset, "pending", "normal", age(until))
                    )
                return
        result.transitions.append(
            PreviewTransition(
                fire_at, account, asset, "pending" if pending else "normal", "firing", age(fire_at)
            )
        )
        result.notifications += channels
        if repeat > timedelta(0):
            result.notifications += int((until - fire_at) / repeat) * channels
        if closed:
            result.transitions.append(
                PreviewTransition(until, account, asset, "firing", "resolved", Decimal(0))
            )
            if rule.send_resolved:
                result.notifications += channels

    for account, asset, at, _amount, _price in _snapshots(rule, now - timedelta(days=days)):
        result.snapshots += 1
        series = (account, asset)
        if series in last_seen:
            gap(series, last_seen[series], at, closed=True)
        last_seen[series] = at
    for series, since in last_seen.items():
        gap(series, since, now, closed=False)
    result.transitions.sort(key=lambda t: (t.at, t.account, t.asset))
    return result


def chart_asset(rule: AlertRule, preview: Preview) -> str | None:
    """The asset a preview's chart shows: the rule's own, else the first one it would
    have fired on; None for an account-wide rule (gross exposure has no asset chart)."""
    if rule.kind == RuleKind.GROSS_EXPOSURE_ABOVE:
        return None
    if rule.asset and rule.asset != ANY:
        return rule.asset
    fired = (t.asset for t in preview.transitions if t.to_state == AlertState.FIRING)
    return next(fired, None)


def preview_spans(preview: Preview, asset: str) -> list[dict]:
    """Where the rule would have fired on `asset` and when it would have resolved, per
    account, oldest first: the chart's spans ("to": None while still firing at the end)."""
    spans, firing = [], {}
    for t in preview.transitions:
        if t.asset != asset:
            continue
        if t.to_state == AlertState.FIRING:
            firing[t.account] = {
                "from": t.at,
                "to": None,
                "label": f"would fire · {t.account}",
                "kind": "preview",
            }
            spans.append(firing[t.account])
        elif t.from_state == AlertState.FIRING and t.account in firing:
            firing.pop(t.account)["to"] = t.at
    return spans
