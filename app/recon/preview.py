"""Replay a reconciliation over stored history: the breaks it would have raised.

Read-only. Each snapshot of either side is evaluated at its own timestamp, as ingest
does when snapshots arrive one by one, with the same comparison (app.recon.compare)
and the same alert state machine (app.alerts.state.next_state), the grace period
being the rule's pending period. What the worker does as time passes is replayed
too, at the moment it becomes due: a grace period running out, and a side going
unknown once its latest snapshot is older than its maximum age.

The definition replayed is a saved reconciliation (`preview_reconciliation`) or one
as typed on the form and not saved (`preview_spec`).
"""

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from app.alerts.models import AlertRule, AlertState, RuleKind
from app.alerts.state import next_state
from app.extensions import db
from app.positions.models import Position
from app.recon.compare import Comparison, Terms, compare_all
from app.recon.define import ReconSpec
from app.recon.evaluate import recon_state
from app.recon.models import Reconciliation, ReconState
from app.recon.queries import terms_of
from app.recon.targets import Side

# A side is stale strictly after its max age (compare._stale_side): replayed just past it.
JUST_AFTER = timedelta(microseconds=1)


@dataclass
class PreviewChange:
    """A change of state the reconciliation would have recorded."""

    asset: str
    # The asset's name on the right side, where the comparison's right amount counts.
    right_asset: str
    at: datetime
    from_state: str
    to_state: str
    comparison: Comparison


def preview_reconciliation(
    recon: Reconciliation, start: datetime, end: datetime
) -> list[PreviewChange]:
    """Every state change of every asset of `recon` between start and end, oldest first."""
    if recon.rule is None:
        return []
    return _preview(
        [terms_of(recon, asset) for asset in recon.assets], recon.rule.pending_seconds, start, end
    )


def preview_spec(
    spec: ReconSpec, start: datetime, end: datetime, only_asset: str | None = None
) -> list[PreviewChange]:
    """The same for a definition as typed (unsaved); `only_asset` replays that one alone."""
    terms = [
        Terms(
            asset_id=n,
            left_account=spec.left_account,
            left_asset=asset.left_asset,
            right_account=spec.right_account,
            right_asset=asset.right_asset or asset.left_asset,
            multiplier=asset.multiplier,
            abs_tolerance=(
                spec.abs_tolerance if asset.abs_tolerance is None else asset.abs_tolerance
            ),
            rel_tolerance_percent=(
                spec.rel_tolerance_percent
                if asset.rel_tolerance_percent is None
                else asset.rel_tolerance_percent
            ),
            left_max_age_seconds=spec.left_max_age_seconds,
            right_max_age_seconds=spec.right_max_age_seconds,
        )
        for n, asset in enumerate(spec.assets)
        if only_asset is None or asset.left_asset == only_asset
    ]
    return _preview(terms, spec.grace_seconds, start, end)


def _preview(terms: list[Terms], grace_seconds: int, start: datetime, end: datetime):
    # The rule as save_reconciliation makes it; never added to the session.
    rule = AlertRule(
        kind=RuleKind.RECON_BREAK, threshold=Decimal(0), pending_seconds=grace_seconds
    )
    changes = []
    for asset_terms in terms:
        changes.extend(_replay(asset_terms, rule, start, end))
    return sorted(changes, key=lambda change: (change.at, change.asset))


def _history(account: str, asset: str, start: datetime, end: datetime) -> list[Side]:
    """The side's snapshots in [start, end], and the last one before start."""
    columns = (Position.timestamp, Position.amount)
    mine = (Position.account == account, Position.asset == asset)
    before = db.session.execute(
        select(*columns)
        .where(*mine, Position.timestamp < start)
        .order_by(Position.timestamp.desc())
        .limit(1)
    ).all()
    rows = db.session.execute(
        select(*columns)
        .where(*mine, Position.timestamp >= start, Position.timestamp <= end)
        .order_by(Position.timestamp)
    ).all()
    return [Side(account, asset, at, amount) for at, amount in [*before, *rows]]


def _amount_at(history: list[Side], times: list[datetime], moment: datetime) -> Decimal | None:
    n = bisect.bisect_right(times, moment)
    return history[n - 1].amount if n else None


def _replay(terms: Terms, rule: AlertRule, start: datetime, end: datetime):
    histories = {side: _history(*side, start, end) for side in (terms.left, terms.right)}
    times = {side: [s.timestamp for s in history] for side, history in histories.items()}
    max_age = {
        terms.left: timedelta(seconds=terms.left_max_age_seconds),
        terms.right: timedelta(seconds=terms.right_max_age_seconds),
    }

    def lookup(keys):
        """History lookups answered from the histories in memory."""
        return {
            (account, asset, moment): _amount_at(
                histories[(account, asset)], times[(account, asset)], moment
            )
            for account, asset, moment in keys
        }

    # Snapshots, and the moments a side would go stale if nothing followed.
    moments = {t for side_times in times.values() for t in side_times}
    moments |= {t + max_age[side] + JUST_AFTER for side, ts in times.items() for t in ts}
    moments = sorted(t for t in moments if start <= t <= end)
    alert, alert_since = AlertState.NORMAL, start
    state = ReconState.UNKNOWN
    changes = []

    def evaluate(moment: datetime) -> None:
        nonlocal alert, alert_since, state
        latest = {}
        for side, history in histories.items():
            n = bisect.bisect_right(times[side], moment)
            if n:
                latest[side] = history[n - 1]
        comparison = compare_all([terms], moment, latest, lookup)[terms.asset_id]
        moved = next_state(rule, alert, alert_since, comparison.excess, moment)
        if moved is not None:
            alert, alert_since = moved, moment
        new_state = recon_state(comparison, alert)
        if new_state != state:
            changes.append(
                PreviewChange(
                    terms.left_asset, terms.right_asset, moment, state, new_state, comparison
                )
            )
            state = new_state

    def grace_ends_before(moment: datetime) -> datetime | None:
        due = alert_since + timedelta(seconds=rule.pending_seconds)
        return due if alert == AlertState.PENDING and due < moment else None

    # A grace period ends once at most between two moments: the state leaves pending then.
    for moment in moments:
        if (due := grace_ends_before(moment)) is not None:
            evaluate(due)
        evaluate(moment)
    if (due := grace_ends_before(end + JUST_AFTER)) is not None:
        evaluate(due)
    return changes
