"""Comparing both sides of a reconciled asset at the same moment, exactly.

The two sides report at their own moments, so their latest snapshots are never
compared as they stand. Each side is a step function (it holds its last amount until
it reports again), and the pair is compared at two moments:

- as of the LATER of the two latest timestamps: both latest amounts (the side that
  has not reported since holds its last one);
- as of the OLDER one: the side that reported since is read back, from its history,
  to what it held when the other side last reported.

A difference counts only when it shows at both moments. A fill that lands between
the two sides' snapshots shows at one of them only (the side that has not caught up
yet), whichever side reports first; a real break shows at both. The comparison kept
(its moment, amounts and difference) is the one that explains the state: the later
one when it is within tolerance (the history is then not read at all), else the one
nearer to matching. A side with nothing at or before the older moment (it began
reporting since) is compared at the later moment alone.

Tolerance: right * multiplier - left is a break only when it is beyond EVERY tolerance
configured, that is beyond the larger allowance of the absolute one and the relative
one (percent of |left|): "0.01 BTC or 0.1 %, whichever is larger", so small positions
are not flagged over dust and large ones not over rounding. With no tolerance at all,
any difference is a break.

Unknown: a side with no snapshot, or whose latest snapshot is older than its max age
at evaluation time. A silent feed never reads as matched.

Decimals stay Decimal from the stored text to the difference (app.db_types.EXACT);
magnitudes are taken with copy_abs(), since abs() rounds to the default context's
28 digits and amounts arrive with up to 40.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Row, select

from app.alerts.values import amounts_before
from app.db_types import EXACT
from app.extensions import db
from app.positions.models import LatestPosition


# Plain slotted classes: a batch builds hundreds of each, and frozen dataclasses are
# slower to build.
@dataclass(slots=True)
class Terms:
    """What comparing one asset needs from its reconciliation and its own settings."""

    asset_id: int
    left_account: str
    left_asset: str
    right_account: str
    right_asset: str
    multiplier: Decimal
    abs_tolerance: Decimal | None
    rel_tolerance_percent: Decimal | None
    left_max_age_seconds: int
    right_max_age_seconds: int
    # (account, asset) of each side, made once.
    left: tuple[str, str] = field(init=False)
    right: tuple[str, str] = field(init=False)

    def __post_init__(self):
        self.left = (self.left_account, self.left_asset)
        self.right = (self.right_account, self.right_asset)


@dataclass(slots=True)
class Comparison:
    """Both sides as of one moment, their difference and what it means."""

    as_of: datetime | None
    left_amount: Decimal | None
    left_at: datetime | None
    # As the right side reported it, before the multiplier.
    right_amount: Decimal | None
    right_at: datetime | None
    difference: Decimal | None
    # |difference| minus the allowance: above zero is beyond tolerance. None: unknown.
    excess: Decimal | None
    # Why the comparison is unknown ("" when it is not).
    unknown_reason: str = ""

    @property
    def unknown(self) -> bool:
        return self.excess is None

    @property
    def beyond(self) -> bool:
        return self.excess is not None and self.excess > 0


def allowance(
    left: Decimal, abs_tolerance: Decimal | None, rel_tolerance_percent: Decimal | None
) -> Decimal:
    """How far the right side may be from the left: the larger tolerance configured."""
    allowed = Decimal(0)
    if abs_tolerance is not None:
        allowed = max(allowed, abs_tolerance)
    if rel_tolerance_percent is not None:
        relative = EXACT.divide(EXACT.multiply(left.copy_abs(), rel_tolerance_percent), 100)
        allowed = max(allowed, relative)
    return allowed


def difference_of(terms: Terms, left: Decimal, right: Decimal) -> Decimal:
    """right * multiplier - left, exactly."""
    return EXACT.subtract(EXACT.multiply(right, terms.multiplier), left)


def excess_of(terms: Terms, left: Decimal, right: Decimal) -> Decimal:
    """How far the difference goes beyond the allowance (zero or less: within)."""
    difference = difference_of(terms, left, right)
    allowed = allowance(left, terms.abs_tolerance, terms.rel_tolerance_percent)
    return EXACT.subtract(difference.copy_abs(), allowed)


def latest_rows(series: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Row]:
    """The latest position rows of these (account, asset) series, one query per account."""
    by_account: dict[str, set[str]] = {}
    for account, asset in series:
        by_account.setdefault(account, set()).add(asset)
    found: dict[tuple[str, str], Row] = {}
    for account, assets in sorted(by_account.items()):
        query = select(
            LatestPosition.account,
            LatestPosition.asset,
            LatestPosition.timestamp,
            LatestPosition.amount,
        ).where(LatestPosition.account == account, LatestPosition.asset.in_(sorted(assets)))
        for row in db.session.execute(query):
            found[(row.account, row.asset)] = row
    return found


def compare_all(
    terms: Iterable[Terms],
    now: datetime,
    latest: dict[tuple[str, str], Row] | None = None,
    lookup=amounts_before,
) -> dict[int, Comparison]:
    """Compare many assets at once, by asset id: one read of the latest rows (unless
    given, with every side of `terms`), one batch of history lookups for the pairs
    whose latest amounts disagree (agreeing ones are matched without looking back).
    `lookup` answers those: {(account, asset, moment): amount at or before it, or None}."""
    terms = list(terms)
    if latest is None:
        latest = latest_rows([side for t in terms for side in (t.left, t.right)])
    pairs, wanted = [], set()
    for t in terms:
        left, right = latest.get(t.left), latest.get(t.right)
        later = None
        if left is not None and right is not None:
            later = _at(
                t, max(left.timestamp, right.timestamp), left, right, left.amount, right.amount
            )
            if left.timestamp != right.timestamp and later.beyond:
                newer = left if left.timestamp > right.timestamp else right
                wanted.add((newer.account, newer.asset, min(left.timestamp, right.timestamp)))
        pairs.append((t, left, right, later))
    before = lookup(wanted) if wanted else {}
    return {
        t.asset_id: _compare(t, left, right, later, before, now) for t, left, right, later in pairs
    }


def _compare(
    terms: Terms, left: Row | None, right: Row | None, later: Comparison | None, before, now
) -> Comparison:
    if left is None or right is None or later is None:
        missing = terms.left_account if left is None else terms.right_account
        return _unknown(left, right, f"no position in {missing}")
    stale = _stale_side(terms, left, right, now)
    older_moment = min(left.timestamp, right.timestamp)
    if left.timestamp == right.timestamp or not later.beyond:
        # Within tolerance at the later moment: matched whatever the older one shows.
        kept = later
    else:
        left_then = left.amount if left.timestamp == older_moment else None
        right_then = right.amount if right.timestamp == older_moment else None
        if left_then is None:
            left_then = before.get(_key(left, older_moment))
        if right_then is None:
            right_then = before.get(_key(right, older_moment))
        kept = later
        if left_then is not None and right_then is not None:
            older = _at(terms, older_moment, left, right, left_then, right_then)
            # On a tie the later moment: the more current picture.
            kept = min(later, older, key=lambda c: c.excess)
    if stale:
        return replace(kept, excess=None, unknown_reason=stale)
    return kept


def _at(terms: Terms, moment, left: Row, right: Row, left_amount, right_amount) -> Comparison:
    difference = difference_of(terms, left_amount, right_amount)
    allowed = allowance(left_amount, terms.abs_tolerance, terms.rel_tolerance_percent)
    return Comparison(
        as_of=moment,
        left_amount=left_amount,
        left_at=left.timestamp,
        right_amount=right_amount,
        right_at=right.timestamp,
        difference=difference,
        excess=EXACT.subtract(difference.copy_abs(), allowed),
    )


def _key(row: Row, moment: datetime) -> tuple[str, str, datetime]:
    return (row.account, row.asset, moment)


def _stale_side(terms: Terms, left: Row, right: Row, now: datetime) -> str:
    """Which side is older than its max age, as a reason ("" when neither is)."""
    for account, row, max_age in (
        (terms.left_account, left, terms.left_max_age_seconds),
        (terms.right_account, right, terms.right_max_age_seconds),
    ):
        if now - row.timestamp > timedelta(seconds=max_age):
            return f"{account} has not reported for over {max_age} s"
    return ""


def _unknown(left, right, reason: str, as_of: datetime | None = None) -> Comparison:
    return Comparison(
        as_of=as_of,
        left_amount=None if left is None else left.amount,
        left_at=None if left is None else left.timestamp,
        right_amount=None if right is None else right.amount,
        right_at=None if right is None else right.timestamp,
        difference=None,
        excess=None,
        unknown_reason=reason,
    )
