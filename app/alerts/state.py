"""The alert state machine, and writing its transitions under a lock.

The one state machine (`next_state`) serves live evaluation and rule preview alike;
`apply` locks the alerts a rule may change, advances them and records what happened.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from app.alerts import notify
from app.alerts.models import Alert, AlertRule, AlertState, AlertTransition, RuleKind
from app.alerts.values import Series
from app.extensions import db


@dataclass(frozen=True)
class Transition:
    alert_id: int
    rule_id: int
    account: str
    asset: str
    from_state: str
    to_state: str
    value: Decimal | None


def is_breached(rule: AlertRule, value: Decimal, active: bool) -> bool:
    """Whether the value breaks the rule; an active alert clears only past the clear level."""
    limit = rule.threshold
    if active and rule.clear_threshold is not None:
        limit = rule.clear_threshold
    if rule.kind in RuleKind.BELOW:
        return value < limit
    if rule.kind == RuleKind.CHANGE_OVER_WINDOW:
        return value.copy_abs() > limit
    return value > limit


def breaches(rule: AlertRule, value: Decimal | None, active: bool) -> bool:
    """is_breached, where no value breaks only the kinds that treat it as unknown."""
    if value is None:
        return rule.kind in RuleKind.BREACHED_WITHOUT_VALUE
    return is_breached(rule, value, active)


def next_state(
    rule: AlertRule, state: str, state_since: datetime, value: Decimal | None, now: datetime
) -> str | None:
    """The state an alert moves to for this value now, or None to stay.

    The one state machine: live evaluation and rule preview both call it.
    """
    breached = breaches(rule, value, state in AlertState.ACTIVE)
    # A reconciled asset with a side unknown (no value) has had its grace already: the
    # side's max age. The pending period is the grace of a difference only.
    at_once = value is None and rule.kind in RuleKind.BREACHED_WITHOUT_VALUE
    if breached and state in (AlertState.NORMAL, AlertState.RESOLVED):
        return AlertState.PENDING if rule.pending_seconds and not at_once else AlertState.FIRING
    if breached and state == AlertState.PENDING:
        waited = at_once or now - state_since >= timedelta(seconds=rule.pending_seconds)
        return AlertState.FIRING if waited else None
    if not breached and state == AlertState.PENDING:
        return AlertState.NORMAL
    if not breached and state == AlertState.FIRING:
        return AlertState.RESOLVED
    return None


def advance(
    alert: Alert, rule: AlertRule, value: Decimal | None, now: datetime, refresh: bool = True
) -> list[tuple[str, str]]:
    """Move the alert through the state machine, record the transition, queue notices.

    With refresh, the value and evaluation time are stored even when the state stays
    (ingest does, in the transaction it holds anyway); the worker writes nothing then.
    """
    new_state = next_state(rule, alert.state, alert.state_since, value, now)
    if new_state is None:
        if refresh or notify.repeat_due(alert, rule, now):
            alert.evaluated_at, alert.value = now, value
        notify.queue_repeat(alert, rule, now)
        return []
    alert.evaluated_at, alert.value = now, value
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
        # Whatever this session saw before the lock is stale: another worker may have
        # moved the alert since.
        .execution_options(populate_existing=True)
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


def apply(
    rule: AlertRule,
    now: datetime,
    candidates: Iterable[Series],
    values: dict[Series, Decimal],
    refresh: bool,
) -> list[Transition]:
    """Lock the candidates' alerts (creating breached ones), advance them, list transitions."""
    transitions = []
    for series in sorted(candidates):
        value = values.get(series)
        breached = breaches(rule, value, False)
        alert = _locked_alert(rule, series, create=breached, now=now)
        if alert is None:
            continue
        for from_state, to_state in advance(alert, rule, value, now, refresh):
            transitions.append(Transition(alert.id, rule.id, *series, from_state, to_state, value))
    return transitions
