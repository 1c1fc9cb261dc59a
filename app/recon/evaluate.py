"""Reconciliation breaks through the alert engine.

Each reconciliation owns one alert rule (kind recon_break); each reconciled asset is
one series of it, (left account, left asset). The alert's value is how far the
difference goes beyond tolerance, None when a side is unknown (a breach too), so the
engine's state machine, notifications, silences and acknowledgements apply as they
are. The grace period is the rule's pending period: beyond tolerance for less than
that is "pending", then "break".

app.alerts.engine calls in here: at ingest for the series a batch changed, and in
the worker's pass for what time changes (a grace period ending, a side going stale).
Beside the alert, each asset keeps its reconciliation state (matched, pending, break,
unknown) and a history of its changes with both sides' values.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import or_, select

from app.alerts.models import AlertRule, AlertState
from app.alerts.state import Transition, apply, breaches
from app.alerts.values import Series, active_alerts
from app.extensions import db
from app.recon.compare import Comparison, compare_all
from app.recon.models import ReconAsset, Reconciliation, ReconState, ReconTransition
from app.recon.targets import (
    Side,
    Target,
    anything_to_evaluate,
    changed_select,
    read_targets,
    settings,
    targets_select,
)


def evaluate_changed(changed: set[Series], now: datetime) -> list[Transition]:
    """At ingest: evaluate the reconciled assets whose left or right series just changed."""
    accounts = sorted({account for account, _ in changed})
    assets = sorted({asset for _, asset in changed})
    # The few reconciliations on these accounts first: a batch of accounts nobody
    # reconciles costs this one small query, and the assets are then found by index.
    touched = settings(
        or_(Reconciliation.left_account.in_(accounts), Reconciliation.right_account.in_(accounts))
    )
    if not touched:
        return []
    dialect = db.session.get_bind().dialect.name
    params = {"reconciliations": sorted(touched), "assets": assets}
    # The common batch, where every asset it touched was matched and still is, writes
    # nothing. On PostgreSQL the database tells it apart (exactly: NUMERIC), so such a
    # batch does not carry every asset's terms and both sides into Python to learn it
    # (bench/README.md, recon.py).
    if dialect == "postgresql" and not anything_to_evaluate(changed, params, now):
        return []
    targets, latest = read_targets(changed_select(dialect), params, touched)
    targets = [t for t in targets if t.terms.left in changed or t.terms.right in changed]
    return _evaluate(targets, latest, now, refresh=True)


def evaluate_reconciliation(reconciliation_id: int, now: datetime) -> list[Transition]:
    """Evaluate every asset of one reconciliation (after it was defined or changed)."""
    targets, latest = read_targets(targets_select().where(Reconciliation.id == reconciliation_id))
    return _evaluate(targets, latest, now, refresh=True)


def plan(
    rules: Iterable[AlertRule],
    now: datetime,
    will_change: Callable[[AlertRule, Series, object], bool],
) -> dict[int, set[Series]]:
    """Read-only, for the worker's pass: the series of each recon rule that would change.

    A series changes when its alert would (will_change, the engine's test) or when its
    reconciliation state would without the alert moving (a break whose side went stale).
    """
    rules = {rule.id: rule for rule in rules}
    if not rules:
        return {}
    query = targets_select().where(Reconciliation.rule_id.in_(sorted(rules)))
    targets, latest = read_targets(query)
    comparisons = compare_all([t.terms for t in targets], now, latest)
    found: dict[int, set[Series]] = defaultdict(set)
    for target in targets:
        comparison = comparisons[target.terms.asset_id]
        rule = rules[target.rule_id]
        if will_change(rule, target.series, comparison.excess) or _reading(
            comparison
        ) != _stored_reading(target.stored_state):
            found[rule.id].add(target.series)
    return dict(found)


def evaluate_pairs(rule: AlertRule, now: datetime, pairs: set[Series]) -> list[Transition]:
    """For the worker's pass, under its lock: evaluate these series of one recon rule."""
    targets, latest = read_targets(targets_select().where(Reconciliation.rule_id == rule.id))
    targets = [t for t in targets if t.series in pairs]
    return _evaluate(targets, latest, now, refresh=False)


def _reading(comparison: Comparison) -> str:
    if comparison.unknown:
        return ReconState.UNKNOWN
    return "beyond" if comparison.beyond else ReconState.MATCHED


def _stored_reading(state: str) -> str:
    return "beyond" if state in (ReconState.PENDING, ReconState.BREAK) else state


def recon_state(comparison: Comparison, alert_state: str) -> str:
    """The asset's state from its comparison and its alert's state after evaluation."""
    if comparison.unknown:
        return ReconState.UNKNOWN
    if not comparison.beyond:
        return ReconState.MATCHED
    return ReconState.BREAK if alert_state == AlertState.FIRING else ReconState.PENDING


def _evaluate(
    targets: list[Target], latest: dict[Series, Side], now: datetime, refresh: bool
) -> list[Transition]:
    if not targets:
        return []
    comparisons = compare_all([t.terms for t in targets], now, latest)
    # Every asset matched and stored as matched: no alert can move (an asset's state and
    # its alert change together, in one evaluation), so the rules and alerts are not
    # read. The common batch: the book and the venue agree.
    if all(
        t.stored_state == ReconState.MATCHED
        and _reading(comparisons[t.terms.asset_id]) == ReconState.MATCHED
        for t in targets
    ):
        return []
    by_rule: dict[int, list[Target]] = defaultdict(list)
    for target in targets:
        by_rule[target.rule_id].append(target)
    rules = {
        rule.id: rule
        for rule in db.session.execute(
            select(AlertRule).where(AlertRule.id.in_(sorted(by_rule)))
        ).scalars()
    }
    active = active_alerts(sorted(by_rule))
    transitions = []
    for rule_id, group in sorted(by_rule.items()):
        rule = rules.get(rule_id)
        if rule is None or not rule.enabled:
            continue
        values = {t.series: comparisons[t.terms.asset_id].excess for t in group}
        open_alerts = active.get(rule_id, {})
        candidates = {s for s, v in values.items() if breaches(rule, v, False)}
        candidates |= set(open_alerts) & set(values)
        made = apply(rule, now, candidates, values, refresh)
        transitions.extend(made)
        alert_states = {series: row.state for series, row in open_alerts.items()}
        alert_states.update({(t.account, t.asset): t.to_state for t in made})
        for target in group:
            comparison = comparisons[target.terms.asset_id]
            state = recon_state(comparison, alert_states.get(target.series, AlertState.NORMAL))
            if state != target.stored_state:
                record_state(target, comparison, state, now)
    return transitions


def record_state(target: Target, comparison: Comparison, state: str, now: datetime) -> None:
    """Store the asset's new state and the change, with both sides' values.

    The row is locked first and read fresh: two ingests of both sides at once record
    one change, not two (the second finds the state already moved).
    """
    asset = db.session.get(
        ReconAsset, target.terms.asset_id, with_for_update=True, populate_existing=True
    )
    if asset is None or asset.state == state:
        return
    db.session.add(
        ReconTransition(
            recon_asset_id=asset.id,
            from_state=asset.state,
            to_state=state,
            at=now,
            as_of=comparison.as_of,
            left_amount=comparison.left_amount,
            right_amount=comparison.right_amount,
            difference=comparison.difference,
        )
    )
    asset.state = state
    asset.state_since = now
    asset.as_of = comparison.as_of
    asset.left_amount, asset.left_at = comparison.left_amount, comparison.left_at
    asset.right_amount, asset.right_at = comparison.right_amount, comparison.right_at
    asset.difference = comparison.difference
    asset.evaluated_at = now
