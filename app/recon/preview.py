"""Replay a reconciliation over stored history: the breaks it would have raised.

Read-only. Each snapshot of either side is evaluated at its own timestamp, as ingest
does when snapshots arrive one by one, with the same comparison (app.recon.compare)
and the same alert state machine (app.alerts.state.next_state), the grace period
being the rule's pending period. Sides going quiet between snapshots (unknown by max
age) are the worker's and not replayed.
"""

import bisect
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from app.alerts.models import AlertState
from app.alerts.state import next_state
from app.extensions import db
from app.positions.models import Position
from app.recon.compare import Comparison, Terms, compare_all
from app.recon.evaluate import Side, recon_state
from app.recon.models import Reconciliation, ReconState
from app.recon.queries import terms_of


@dataclass
class PreviewChange:
    """A change of state the reconciliation would have recorded."""

    asset: str
    at: datetime
    from_state: str
    to_state: str
    comparison: Comparison


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


def preview_reconciliation(
    recon: Reconciliation, start: datetime, end: datetime
) -> list[PreviewChange]:
    """Every state change of every asset of `recon` between start and end, oldest first."""
    if recon.rule is None:
        return []
    changes = []
    for asset in recon.assets:
        terms = terms_of(recon, asset)
        changes.extend(_replay(terms, recon.rule, asset.left_asset, start, end))
    return sorted(changes, key=lambda change: (change.at, change.asset))


def _replay(terms: Terms, rule, name: str, start: datetime, end: datetime):
    histories = {side: _history(*side, start, end) for side in (terms.left, terms.right)}
    times = {side: [s.timestamp for s in history] for side, history in histories.items()}

    def lookup(keys):
        """History lookups answered from the histories in memory."""
        return {
            (account, asset, moment): _amount_at(
                histories[(account, asset)], times[(account, asset)], moment
            )
            for account, asset, moment in keys
        }

    moments = sorted({t for side_times in times.values() for t in side_times if t >= start})
    alert, alert_since = AlertState.NORMAL, start
    state = ReconState.UNKNOWN
    changes = []
    for moment in moments:
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
            changes.append(PreviewChange(name, moment, state, new_state, comparison))
            state = new_state
    return changes
