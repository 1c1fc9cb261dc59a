"""The evaluation engine: rule values per series, the alert state machine, transitions.

One engine serves ingest-time evaluation (the series a batch changed), the worker's
periodic pass (every rule, every series: stale feeds and pending periods) and, later,
rule preview. The caller owns the transaction and commits.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite

from app.alerts import notify
from app.alerts.models import ANY, Alert, AlertRule, AlertState, AlertTransition, RuleKind
from app.db_types import EXACT, utcnow
from app.extensions import db
from app.positions.models import LatestPosition, Position

Series = tuple[str, str]
# Percent changes are kept to a millionth of a percent, not 200 digits.
PERCENT_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class Transition:
    alert_id: int
    rule_id: int
    account: str
    asset: str
    from_state: str
    to_state: str
    value: Decimal | None


def _notional(latest: LatestPosition) -> Decimal | None:
    value = latest.notional
    return None if value is None else abs(value)


def _amount_before(account: str, asset: str, moment: datetime) -> Decimal | None:
    return db.session.execute(
        select(Position.amount)
        .where(Position.account == account, Position.asset == asset, Position.timestamp <= moment)
        .order_by(Position.timestamp.desc())
        .limit(1)
    ).scalar_one_or_none()


def _latest_rows(rule: AlertRule) -> list[LatestPosition]:
    query = select(LatestPosition)
    if rule.account != ANY:
        query = query.where(LatestPosition.account == rule.account)
    if rule.asset != ANY and rule.kind != RuleKind.GROSS_EXPOSURE_ABOVE:
        query = query.where(LatestPosition.asset == rule.asset)
    return list(db.session.execute(query).scalars())


def rule_values(
    rule: AlertRule, now: datetime, only: set[Series] | None = None
) -> dict[Series, Decimal]:
    """The value each series matching the rule has now (series without data: absent)."""
    rows = _latest_rows(rule)
    values: dict[Series, Decimal] = {}
    if rule.kind == RuleKind.GROSS_EXPOSURE_ABOVE:
        accounts = None if only is None else {account for account, _ in only}
        exposure: dict[str, Decimal] = defaultdict(Decimal)
        for latest in rows:
            notional = _notional(latest)
            if notional is not None and (accounts is None or latest.account in accounts):
                exposure[latest.account] = EXACT.add(exposure[latest.account], notional)
        return {(account, ANY): total for account, total in exposure.items()}
    for latest in rows:
        series = (latest.account, latest.asset)
        if only is not None and series not in only:
            continue
        value = _series_value(rule, latest, now)
        if value is not None:
            values[series] = value
    return values


def _series_value(rule: AlertRule, latest: LatestPosition, now: datetime) -> Decimal | None:
    kind = rule.kind
    if kind in (RuleKind.POSITION_ABOVE, RuleKind.POSITION_BELOW):
        return latest.amount
    if kind == RuleKind.NOTIONAL_ABOVE:
        return _notional(latest)
    if kind == RuleKind.STALE_FEED:
        return Decimal((now - latest.timestamp).total_seconds()).quantize(Decimal("0.001"))
    if kind == RuleKind.CHANGE_OVER_WINDOW:
        before = _amount_before(
            latest.account, latest.asset, latest.timestamp - timedelta(seconds=rule.window_seconds)
        )
        return None if before is None else window_change(rule, latest.amount, before)
    raise ValueError(f"unknown rule kind {kind!r}")


def window_change(rule: AlertRule, amount: Decimal, before: Decimal) -> Decimal | None:
    """The change since a window ago, absolute or in percent (None from zero)."""
    change = EXACT.subtract(amount, before)
    if not rule.change_percent:
        return change
    if before == 0:
        return None
    return EXACT.multiply(EXACT.divide(change, abs(before)), 100).quantize(PERCENT_PLACES)


def is_breached(rule: AlertRule, value: Decimal, active: bool) -> bool:
    """Whether the value breaks the rule; an active alert clears only past the clear level."""
    limit = rule.threshold
    if active and rule.clear_threshold is not None:
        limit = rule.clear_threshold
    if rule.kind in RuleKind.BELOW:
        return value < limit
    if rule.kind == RuleKind.CHANGE_OVER_WINDOW:
        return abs(value) > limit
    return value > limit


def _insert_ignore(values: dict):
    dialect = db.session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return (
        module.insert(Alert)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["rule_id", "account", "asset"])
    )


def _locked_alert(rule: AlertRule, series: Series, create: bool, now: datetime) -> Alert | None:
    """The rule's alert for the series, locked for this transaction; created if asked."""
    account, asset = series
    query = (
        select(Alert)
        .where(Alert.rule_id == rule.id, Alert.account == account, Alert.asset == asset)
        .with_for_update()
    )
    alert = db.session.execute(query).scalar_one_or_none()
    if alert is None and create:
        # Another worker may insert the same row at the same moment: the unique
        # constraint keeps one, and both then lock and evaluate that one.
        db.session.execute(
            _insert_ignore(
                {
                    "rule_id": rule.id,
                    "account": account,
                    "asset": asset,
                    "state": AlertState.NORMAL,
                    "state_since": now,
                }
            )
        )
        alert = db.session.execute(query).scalar_one()
    return alert


def next_state(
    rule: AlertRule, state: str, state_since: datetime, value: Decimal | None, now: datetime
) -> str | None:
    """The state an alert moves to for this value now, or None to stay.

    The one state machine: live evaluation and rule preview both call it.
    """
    breached = value is not None and is_breached(rule, value, state in AlertState.ACTIVE)
    if breached and state in (AlertState.NORMAL, AlertState.RESOLVED):
        return AlertState.PENDING if rule.pending_seconds else AlertState.FIRING
    if breached and state == AlertState.PENDING:
        waited = now - state_since >= timedelta(seconds=rule.pending_seconds)
        return AlertState.FIRING if waited else None
    if not breached and state == AlertState.PENDING:
        return AlertState.NORMAL
    if not breached and state == AlertState.FIRING:
        return AlertState.RESOLVED
    return None


def advance(
    alert: Alert, rule: AlertRule, value: Decimal | None, now: datetime
) -> list[tuple[str, str]]:
    """Move the alert through the state machine, record the transition, queue notices."""
    new_state = next_state(rule, alert.state, alert.state_since, value, now)
    alert.evaluated_at = now
    alert.value = value
    if new_state is None:
        notify.queue_repeat(alert, rule, now)
        return []
    old_state = alert.state
    db.session.add(
        AlertTransition(
            alert_id=alert.id, from_state=old_state, to_state=new_state, value=value, at=now
        )
    )
    alert.state = new_state
    alert.state_since = now
    if new_state == AlertState.FIRING:
        alert.fired_at = now
        alert.resolved_at = None
        # A new firing needs a new acknowledgement.
        alert.acknowledged_by_id = alert.acknowledged_at = alert.acknowledgement = None
    elif new_state == AlertState.RESOLVED:
        alert.resolved_at = now
    notify.on_transition(alert, rule, new_state, now)
    return [(old_state, new_state)]


def _evaluate_rule(rule: AlertRule, now: datetime, only: set[Series] | None) -> list[Transition]:
    values = rule_values(rule, now, only)
    # Series that have an alert must be re-evaluated even if they have no value now.
    # Only pending and firing alerts can move without a breach (clear, promote, remind).
    existing = {
        (account, asset)
        for account, asset in db.session.execute(
            select(Alert.account, Alert.asset).where(
                Alert.rule_id == rule.id, Alert.state.in_(AlertState.ACTIVE)
            )
        )
    }
    if only is not None:
        accounts = {account for account, _ in only}
        existing = {s for s in existing if s in only or (s[1] == ANY and s[0] in accounts)}
    transitions = []
    for series in sorted(set(values) | existing):
        value = values.get(series)
        breached = value is not None and is_breached(rule, value, False)
        if not breached and series not in existing:
            continue  # quiet series: nothing can change, so nothing to lock or write
        alert = _locked_alert(rule, series, create=breached, now=now)
        if alert is None:
            continue
        for from_state, to_state in advance(alert, rule, value, now):
            transitions.append(Transition(alert.id, rule.id, *series, from_state, to_state, value))
    return transitions


def enabled_rules(kinds: Iterable[str] | None = None) -> list[AlertRule]:
    query = select(AlertRule).where(AlertRule.enabled.is_(True)).order_by(AlertRule.id)
    if kinds is not None:
        query = query.where(AlertRule.kind.in_(list(kinds)))
    return list(db.session.execute(query).scalars())


def evaluate_series(changed: set[Series], now: datetime | None = None) -> list[Transition]:
    """Evaluate value rules for the series a batch just changed (inside its transaction)."""
    if not changed:
        return []
    now = now or utcnow()
    kinds = [k for k in RuleKind.ALL if k not in RuleKind.TIME_BASED]
    transitions = []
    for rule in enabled_rules(kinds):
        relevant = {s for s in changed if rule.account in (ANY, s[0])}
        if rule.kind != RuleKind.GROSS_EXPOSURE_ABOVE:
            relevant = {s for s in relevant if rule.matches(*s)}
        if relevant:
            db.session.flush()
            transitions.extend(_evaluate_rule(rule, now, relevant))
    return transitions


def _take_write_lock() -> None:
    """On SQLite, take the write lock before reading the alerts a rule will change.

    SQLite has no SELECT … FOR UPDATE: two workers could both read "pending" and both
    record "firing". A write statement that changes nothing takes the lock up front.
    PostgreSQL locks the alert rows instead.
    """
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("UPDATE alert_rule SET id = id WHERE 1 = 0"))


def evaluate_all(now: datetime | None = None) -> list[Transition]:
    """One worker pass: every enabled rule over every series it matches.

    Commits after each rule, so a long pass never holds SQLite's write lock for more
    than one rule: ingest requests slip in between (holding it for the whole pass made
    them wait seconds).
    """
    now = now or utcnow()
    transitions = []
    for rule_id in [rule.id for rule in enabled_rules()]:
        _take_write_lock()
        rule = db.session.get(AlertRule, rule_id)
        if rule is not None and rule.enabled:
            transitions.extend(_evaluate_rule(rule, now, None))
        db.session.commit()
    return transitions
