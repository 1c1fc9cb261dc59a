"""What the reconciliation page, its detail page, the API and `flask recon status` read."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, case, func, select

from app.alerts.models import Alert
from app.db_types import EXACT, utcnow
from app.extensions import db
from app.recon.compare import Comparison, Terms, compare_all
from app.recon.models import ReconAsset, Reconciliation, ReconState, ReconTransition

# Differences in percent are kept to a millionth of a percent, not 200 digits.
PERCENT_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class ReconRow:
    """One reconciled asset: its state as last evaluated, both sides as of now.

    The amounts are read when asked (as-of comparison, see app.recon.compare), so they
    are current even where the state has not changed for days.
    """

    reconciliation_id: int
    name: str
    left_account: str
    left_label: str
    right_account: str
    right_label: str
    enabled: bool
    asset_id: int
    left_asset: str
    right_asset: str
    multiplier: Decimal
    state: str
    state_since: datetime
    as_of: datetime | None
    left_amount: Decimal | None
    left_at: datetime | None
    # As the right side reported it, and times the multiplier (what is compared).
    right_amount: Decimal | None
    right_compared: Decimal | None
    right_at: datetime | None
    # right_compared - left_amount, and that in percent of |left_amount| (None from 0).
    difference: Decimal | None
    difference_percent: Decimal | None
    evaluated_at: datetime | None
    # The alert carrying this asset's breaks (None until it first left "matched").
    alert_id: int | None


def difference_percent(difference: Decimal | None, left: Decimal | None) -> Decimal | None:
    """The difference in percent of the left amount; None without both, or from zero."""
    if difference is None or left is None or left == 0:
        return None
    percent = EXACT.multiply(EXACT.divide(difference, left.copy_abs()), 100)
    return percent.quantize(PERCENT_PLACES, context=EXACT)


def _state_rank():
    return case({state: n for n, state in enumerate(ReconState.ORDER)}, value=ReconAsset.state)


def recon_rows(
    name: str | None = None,
    *,
    state: str | None = None,
    asset: str | None = None,
    limit: int | None = None,
) -> list[ReconRow]:
    """Every reconciliation x asset, breaks and unknowns first; or those of one
    reconciliation, in one state, of one asset, and the first `limit` of them."""
    query = (
        select(Reconciliation, ReconAsset, Alert.id)
        .join(ReconAsset, ReconAsset.reconciliation_id == Reconciliation.id)
        .outerjoin(
            Alert,
            and_(
                Alert.rule_id == Reconciliation.rule_id,
                Alert.account == Reconciliation.left_account,
                Alert.asset == ReconAsset.left_asset,
            ),
        )
        .order_by(_state_rank(), Reconciliation.name, ReconAsset.left_asset)
        .limit(limit)
    )
    if name is not None:
        query = query.where(Reconciliation.name == name)
    if state is not None:
        query = query.where(ReconAsset.state == state)
    if asset is not None:
        query = query.where(ReconAsset.left_asset == asset)
    found = list(db.session.execute(query))
    now = utcnow()
    live = compare_all([terms_of(recon, asset) for recon, asset, _ in found], now)
    return [_row(recon, asset, alert_id, live[asset.id]) for recon, asset, alert_id in found]


def state_counts() -> dict[str, int]:
    """How many reconciled assets are in each state, every state named."""
    counts = dict.fromkeys(ReconState.ORDER, 0)
    query = select(ReconAsset.state, func.count()).group_by(ReconAsset.state)
    counts.update({state: n for state, n in db.session.execute(query)})
    return counts


def terms_of(recon: Reconciliation, asset: ReconAsset) -> Terms:
    """What comparing the asset needs, its own tolerances over the reconciliation's."""
    return Terms(
        asset_id=asset.id,
        left_account=recon.left_account,
        left_asset=asset.left_asset,
        right_account=recon.right_account,
        right_asset=asset.right_asset,
        multiplier=asset.multiplier,
        abs_tolerance=recon.abs_tolerance if asset.abs_tolerance is None else asset.abs_tolerance,
        rel_tolerance_percent=(
            recon.rel_tolerance_percent
            if asset.rel_tolerance_percent is None
            else asset.rel_tolerance_percent
        ),
        left_max_age_seconds=recon.left_max_age_seconds,
        right_max_age_seconds=recon.right_max_age_seconds,
    )


def _row(
    recon: Reconciliation, asset: ReconAsset, alert_id: int | None, live: Comparison
) -> ReconRow:
    """The stored state with the amounts as they are now (the state is as last evaluated)."""
    compared = (
        None if live.right_amount is None else EXACT.multiply(live.right_amount, asset.multiplier)
    )
    return ReconRow(
        reconciliation_id=recon.id,
        name=recon.name,
        left_account=recon.left_account,
        left_label=recon.left_label,
        right_account=recon.right_account,
        right_label=recon.right_label,
        enabled=recon.enabled,
        asset_id=asset.id,
        left_asset=asset.left_asset,
        right_asset=asset.right_asset,
        multiplier=asset.multiplier,
        state=asset.state,
        state_since=asset.state_since,
        as_of=live.as_of,
        left_amount=live.left_amount,
        left_at=live.left_at,
        right_amount=live.right_amount,
        right_compared=compared,
        right_at=live.right_at,
        difference=live.difference,
        difference_percent=difference_percent(live.difference, live.left_amount),
        evaluated_at=asset.evaluated_at,
        alert_id=alert_id,
    )


def reconciliations() -> list[Reconciliation]:
    """Every reconciliation by name (assets load with them)."""
    return list(db.session.execute(select(Reconciliation).order_by(Reconciliation.name)).scalars())


def reconciliation_by_name(name: str) -> Reconciliation | None:
    return db.session.execute(
        select(Reconciliation).where(Reconciliation.name == name)
    ).scalar_one_or_none()


def recon_asset(reconciliation_id: int, left_asset: str) -> ReconAsset | None:
    """One reconciled asset, by its reconciliation and its name on the left."""
    return db.session.execute(
        select(ReconAsset).where(
            ReconAsset.reconciliation_id == reconciliation_id,
            ReconAsset.left_asset == left_asset,
        )
    ).scalar_one_or_none()


def break_history(asset_id: int, limit: int | None = None) -> list[ReconTransition]:
    """One reconciled asset's state changes, newest first (all of them without a limit)."""
    query = (
        select(ReconTransition)
        .where(ReconTransition.recon_asset_id == asset_id)
        .order_by(ReconTransition.at.desc(), ReconTransition.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.execute(query).scalars())


def break_periods(
    asset_id: int, start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime | None]]:
    """The spans in [start, end] the asset was not matched: (state, from, to or None if open).

    For shading the chart: a span is clipped to the range; pending spans are included
    (the page may shade them lighter).
    """
    history = list(
        db.session.execute(
            select(ReconTransition)
            .where(ReconTransition.recon_asset_id == asset_id, ReconTransition.at <= end)
            .order_by(ReconTransition.at, ReconTransition.id)
        ).scalars()
    )
    spans: list[tuple[str, datetime, datetime | None]] = []
    for n, change in enumerate(history):
        if change.to_state == ReconState.MATCHED:
            continue
        until = history[n + 1].at if n + 1 < len(history) else None
        if until is not None and until < start:
            continue
        spans.append((change.to_state, max(change.at, start), until))
    return spans
