"""The evaluation engine: what to evaluate when, and in which transactions.

One engine serves ingest-time evaluation (the series a batch changed, inside the
batch's transaction), the worker's periodic pass (every rule, every series: stale
feeds, pending periods, reminders) and rule preview. Rule values come from
`app.alerts.values`, the state machine from `app.alerts.state`.
"""

from datetime import datetime

from sqlalchemy import Row, or_, select, text
from sqlalchemy.orm import selectinload

from app.alerts import notify
from app.alerts.models import ANY, AlertRule, AlertState, RuleKind
from app.alerts.silences import active_silences
from app.alerts.state import Transition, apply, breaches, is_breached, next_state
from app.alerts.values import Series, active_alerts, read, rule_values
from app.db_types import utcnow
from app.extensions import db
from app.recon import evaluate as reconcile


def enabled_rules() -> list[AlertRule]:
    query = select(AlertRule).where(AlertRule.enabled.is_(True)).order_by(AlertRule.id)
    return list(db.session.execute(query).scalars())


def evaluate_series(changed: set[Series], now: datetime | None = None) -> list[Transition]:
    """Evaluate value rules and reconciliations for the series a batch just changed
    (inside its transaction)."""
    if not changed:
        return []
    now = now or utcnow()
    transitions = _evaluate_value_rules(changed, now)
    transitions.extend(reconcile.evaluate_changed(changed, now))
    return transitions


def _evaluate_value_rules(changed: set[Series], now: datetime) -> list[Transition]:
    kinds = [k for k in RuleKind.ALL if k not in RuleKind.TIME_BASED]
    accounts = {account for account, _ in changed}
    assets = {asset for _, asset in changed}
    # Only the rules that can see these series: most of a large rule set cannot.
    candidates = (
        select(AlertRule)
        .where(
            AlertRule.enabled.is_(True),
            AlertRule.kind.in_(kinds),
            AlertRule.account.in_([ANY, *sorted(accounts)]),
            or_(
                AlertRule.asset.in_([ANY, *sorted(assets)]),
                AlertRule.kind == RuleKind.GROSS_EXPOSURE_ABOVE,
            ),
        )
        .order_by(AlertRule.id)
    )
    scoped = []
    for rule in db.session.execute(candidates).scalars():
        relevant = {s for s in changed if rule.account in (ANY, s[0])}
        if rule.kind != RuleKind.GROSS_EXPOSURE_ABOVE:
            relevant = {s for s in relevant if rule.matches(*s)}
        if relevant:
            scoped.append((rule, relevant))
    if not scoped:
        return []
    db.session.flush()
    readings = read([rule for rule, _ in scoped], accounts, changed)
    active = active_alerts(rule.id for rule, _ in scoped)
    transitions = []
    for rule, relevant in scoped:
        values = rule_values(rule, now, relevant, readings)
        breached = {s for s, v in values.items() if is_breached(rule, v, False)}
        # Series with an active alert are evaluated even without a value now: only
        # pending and firing alerts move without a breach (clear, promote, remind).
        rule_accounts = {account for account, _ in relevant}
        existing = {
            s
            for s in active.get(rule.id, {})
            if s in relevant or (s[1] == ANY and s[0] in rule_accounts)
        }
        transitions.extend(apply(rule, now, breached | existing, values, refresh=True))
    return transitions


def _will_change(rule: AlertRule, alert: Row | None, value, now, silences) -> bool:
    """Whether evaluating this series would write anything: a transition or a notice."""
    if alert is None:  # no alert, or a normal or resolved one: only a breach moves it
        return breaches(rule, value, False)
    if next_state(rule, alert.state, alert.state_since, value, now) is not None:
        return True
    muted = any(silence.matches(alert) for silence in silences)
    return not muted and notify.repeat_due(alert, rule, now)


def plan_pass(now: datetime) -> dict[int, set[Series]]:
    """Read-only: the (rule, series) pairs a pass must write, by rule id.

    No lock is taken and nothing is written; the data may move before the pairs are
    locked, so `evaluate_all` evaluates them again under the lock.
    """
    rules = enabled_rules()
    if not rules:
        return {}
    readings = read(rules)
    active = active_alerts()
    silences = active_silences(now)
    # Reminders depend on a rule's channels: load them, in one query, where one fires.
    firing = {
        rule_id
        for rule_id, alerts in active.items()
        if any(alert.state == AlertState.FIRING for alert in alerts.values())
    }
    if firing:
        db.session.execute(
            select(AlertRule)
            .where(AlertRule.id.in_(sorted(firing)))
            .options(selectinload(AlertRule.channels))
        ).all()
    recon_rules = [rule for rule in rules if rule.kind == RuleKind.RECON_BREAK]
    plan = reconcile.plan(
        recon_rules,
        now,
        lambda rule, series, value: _will_change(
            rule, active.get(rule.id, {}).get(series), value, now, silences
        ),
    )
    for rule in rules:
        if rule.kind == RuleKind.RECON_BREAK:
            continue
        values = rule_values(rule, now, readings=readings)
        alerts = active.get(rule.id, {})
        changing = {
            series
            for series in set(values) | set(alerts)
            if _will_change(rule, alerts.get(series), values.get(series), now, silences)
        }
        if changing:
            plan[rule.id] = changing
    return plan


def _take_write_lock() -> None:
    """On SQLite, take the write lock before reading the alerts a rule will change.

    SQLite has no SELECT … FOR UPDATE: two workers could both read "pending" and both
    record "firing". A write statement that changes nothing, first in its transaction,
    takes the lock up front (waiting the busy timeout for it, like BEGIN IMMEDIATE).
    PostgreSQL locks the alert rows instead.
    """
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("UPDATE alert_rule SET id = id WHERE 1 = 0"))


def evaluate_all(now: datetime | None = None) -> list[Transition]:
    """One worker pass: every enabled rule over every series it matches.

    First a read-only scan decides which pairs change, holding no lock, so ingest never
    waits for it. Then each rule with changes gets one short transaction: take the write
    lock, evaluate its pairs again (the data may have moved), write, commit. A pass
    where nothing changes writes nothing. The caller's pending work is committed first.
    """
    now = now or utcnow()
    db.session.commit()
    plan = plan_pass(now)
    transitions = []
    for rule_id, pairs in plan.items():
        _take_write_lock()
        rule = db.session.get(AlertRule, rule_id, populate_existing=True)
        if rule is not None and rule.enabled and rule.kind == RuleKind.RECON_BREAK:
            transitions.extend(reconcile.evaluate_pairs(rule, now, pairs))
        elif rule is not None and rule.enabled:
            readings = read([rule], {account for account, _ in pairs}, pairs)
            values = rule_values(rule, now, pairs, readings)
            transitions.extend(apply(rule, now, pairs, values, refresh=False))
        db.session.commit()
    return transitions
