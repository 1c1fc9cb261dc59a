"""What app.recon.evaluate reads: the reconciled assets to evaluate, each with its
terms, its stored state and both sides' latest positions, in one join.

At ingest on PostgreSQL the database first answers the common batch's question itself
(`anything_to_evaluate`): does any asset the batch touched need more than a look?
"""

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Integer,
    String,
    and_,
    any_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased

from app.alerts.values import Series
from app.db_types import UTCDateTime, driver_utc
from app.extensions import db
from app.positions.models import LatestPosition
from app.recon.compare import Terms
from app.recon.models import ReconAsset, Reconciliation, ReconState


@dataclass(slots=True)
class Target:
    """One reconciled asset to evaluate: its terms, its rule and its stored state."""

    terms: Terms
    rule_id: int
    stored_state: str

    @property
    def series(self) -> Series:
        return self.terms.left


@dataclass(slots=True)
class Side:
    """A side's latest snapshot, as compare.compare_all reads it."""

    account: str
    asset: str
    timestamp: datetime
    amount: Decimal


@dataclass(slots=True)
class Settings:
    """What a reconciliation gives each of its assets: read once, not once an asset."""

    rule_id: int
    left_account: str
    right_account: str
    abs_tolerance: Decimal | None
    rel_tolerance_percent: Decimal | None
    left_max_age_seconds: int
    right_max_age_seconds: int


def settings(*where) -> dict[int, Settings]:
    """The enabled reconciliations with a rule (and `where`), by id."""
    query = select(
        Reconciliation.id,
        Reconciliation.rule_id,
        Reconciliation.left_account,
        Reconciliation.right_account,
        Reconciliation.abs_tolerance,
        Reconciliation.rel_tolerance_percent,
        Reconciliation.left_max_age_seconds,
        Reconciliation.right_max_age_seconds,
    ).where(Reconciliation.enabled.is_(True), Reconciliation.rule_id.is_not(None), *where)
    return {id_: Settings(*rest) for id_, *rest in db.session.execute(query)}


def _sides():
    """The two sides' latest rows: latest_position twice, under names of their own."""
    return aliased(LatestPosition, name="left_side"), aliased(LatestPosition, name="right_side")


def _assets_with_sides(left, right, *columns):
    """select(columns) over the enabled reconciliations' assets joined with both sides'
    latest rows, `left` and `right` (from _sides)."""
    return (
        select(*columns)
        .join(Reconciliation, ReconAsset.reconciliation_id == Reconciliation.id)
        .outerjoin(
            left,
            and_(left.account == Reconciliation.left_account, left.asset == ReconAsset.left_asset),
        )
        .outerjoin(
            right,
            and_(
                right.account == Reconciliation.right_account,
                right.asset == ReconAsset.right_asset,
            ),
        )
        .where(Reconciliation.enabled.is_(True), Reconciliation.rule_id.is_not(None))
    )


@functools.cache
def targets_select():
    """The assets joined with both sides' latest positions, built once per process
    (building it cost more than running it for a batch of a few hundred assets).

    Columns in the order read_targets unpacks them: a plain tuple per row, read by
    position, is a third of what reading twenty attributes by name cost per row."""
    left, right = _sides()
    return _assets_with_sides(
        left,
        right,
        ReconAsset.id,
        ReconAsset.reconciliation_id,
        ReconAsset.state,
        ReconAsset.left_asset,
        ReconAsset.right_asset,
        ReconAsset.multiplier,
        ReconAsset.abs_tolerance,
        ReconAsset.rel_tolerance_percent,
        # As the driver gives them, converted below: SQLAlchemy's SQLite DATETIME
        # parsing was most of this query's time in bench/recon.py.
        type_coerce(left.timestamp, String).label("left_at"),
        left.amount.label("left_amount"),
        type_coerce(right.timestamp, String).label("right_at"),
        right.amount.label("right_amount"),
    )


def _touching(dialect: str):
    """The conditions for some reconciliations' assets named on either side.

    On PostgreSQL the names travel as one array parameter (`= ANY(:assets)`): as an
    IN list a batch's thousand placeholders cost psycopg more to prepare than the
    query costs PostgreSQL to run (bench/README.md, recon.py). SQLite has no arrays.
    """
    if dialect == "postgresql":
        names = bindparam("assets", type_=postgresql.ARRAY(String))
        reconciliations = bindparam("reconciliations", type_=postgresql.ARRAY(Integer))
        return (
            ReconAsset.reconciliation_id == any_(reconciliations),
            or_(ReconAsset.left_asset == any_(names), ReconAsset.right_asset == any_(names)),
        )
    names = bindparam("assets", expanding=True)
    return (
        ReconAsset.reconciliation_id.in_(bindparam("reconciliations", expanding=True)),
        or_(ReconAsset.left_asset.in_(names), ReconAsset.right_asset.in_(names)),
    )


@functools.cache
def changed_select(dialect: str):
    """targets_select for some reconciliations' assets named on either side."""
    return targets_select().where(*_touching(dialect))


def _unsettled_select():
    """On PostgreSQL: of some reconciliations' assets named on either side, those that
    are not plainly matched, by both sides' series.

    Plainly matched: stored as matched, both sides reported within their max age
    (at :now), and the latest amounts within tolerance. compare.py reads such an asset
    as matched without looking back in history, and a batch of only such assets
    _evaluate ends without writing anything. The tolerance is compare.allowance times
    100, so that no division rounds:
    |right * multiplier - left| * 100 <= max(0, abs tolerance * 100, |left| * percent).
    NUMERIC is exact on PostgreSQL; SQLite would compare floats, so there Python does.
    """
    left, right = _sides()
    now = bindparam("now", type_=UTCDateTime())
    second = literal_column("interval '1 second'")
    hundred = Decimal(100)
    abs_tolerance = func.coalesce(ReconAsset.abs_tolerance, Reconciliation.abs_tolerance)
    percent = func.coalesce(ReconAsset.rel_tolerance_percent, Reconciliation.rel_tolerance_percent)
    difference = right.amount * ReconAsset.multiplier - left.amount
    plainly_matched = and_(
        ReconAsset.state == ReconState.MATCHED,
        left.timestamp >= now - Reconciliation.left_max_age_seconds * second,
        right.timestamp >= now - Reconciliation.right_max_age_seconds * second,
        func.abs(difference) * hundred
        <= func.greatest(0, abs_tolerance * hundred, func.abs(left.amount) * percent),
    )
    return _assets_with_sides(
        left,
        right,
        Reconciliation.left_account,
        ReconAsset.left_asset,
        Reconciliation.right_account,
        ReconAsset.right_asset,
    ).where(
        *_touching("postgresql"),
        # A side missing makes it NULL: not plainly matched either.
        plainly_matched.is_not(true()),
    )


def anything_to_evaluate(changed: set[Series], params: dict, now: datetime) -> bool:
    """On PostgreSQL: whether any asset of `changed` (among those `params` select for
    changed_select) is not plainly matched. False: evaluating them would write nothing.
    """
    found = db.session.execute(_unsettled_select(), {**params, "now": now}).all()
    return any(
        (left_account, left_asset) in changed or (right_account, right_asset) in changed
        for left_account, left_asset, right_account, right_asset in found
    )


def read_targets(
    query, params: dict | None = None, settings_by_id: dict[int, Settings] | None = None
) -> tuple[list[Target], dict[Series, Side]]:
    """The enabled reconciled assets the query selects, and both sides' latest rows."""
    if settings_by_id is None:
        settings_by_id = settings()
    targets, latest = [], {}
    for (
        asset_id,
        reconciliation_id,
        state,
        left_asset,
        right_asset,
        multiplier,
        abs_tolerance,
        rel_tolerance_percent,
        left_at,
        left_amount,
        right_at,
        right_amount,
    ) in db.session.execute(query, params or {}):
        recon = settings_by_id.get(reconciliation_id)
        if recon is None:  # enabled or given its rule since the settings were read
            continue
        terms = Terms(
            asset_id=asset_id,
            left_account=recon.left_account,
            left_asset=left_asset,
            right_account=recon.right_account,
            right_asset=right_asset,
            multiplier=multiplier,
            abs_tolerance=recon.abs_tolerance if abs_tolerance is None else abs_tolerance,
            rel_tolerance_percent=(
                recon.rel_tolerance_percent
                if rel_tolerance_percent is None
                else rel_tolerance_percent
            ),
            left_max_age_seconds=recon.left_max_age_seconds,
            right_max_age_seconds=recon.right_max_age_seconds,
        )
        targets.append(Target(terms, recon.rule_id, state))
        if left_at is not None:
            latest[terms.left] = Side(*terms.left, driver_utc(left_at), left_amount)
        if right_at is not None:
            latest[terms.right] = Side(*terms.right, driver_utc(right_at), right_amount)
    return targets, latest
