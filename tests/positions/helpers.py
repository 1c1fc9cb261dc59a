"""Snapshot builders for positions tests."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.extensions import db
from app.positions.ingest import Snapshot, record
from app.positions.models import LatestPosition

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Two amounts that are both 1.0 as doubles, and twenty amounts in two halves of ten
# that only an exact ranking orders right: the lowest of the first half is the earlier
# ONE (index 2), the highest of the second the earlier -ONE (index 12); an equal
# amount of another scale ("1.50", ONE + "0", "3.0") loses to the earlier one.
ONE = "1.000000000000000000000000000000000001"
TWO = "1.000000000000000000000000000000000002"
EXACT_RANKING = [TWO, "1.5", ONE, "1.50", "3", ONE + "0", "3.0", TWO, ONE, "1.5"]
EXACT_RANKING += ["-" + TWO, "-1.5", "-" + ONE, "-1.50", "-3", "-" + ONE + "0", "-3.0"]
EXACT_RANKING += ["-" + ONE, "-" + TWO, "-2"]


def snap(account="main", asset="BTC", minutes=0, amount="1.5", price="100", at=None):
    return Snapshot(
        account=account,
        asset=asset,
        timestamp=at or T0 + timedelta(minutes=minutes),
        amount=Decimal(amount),
        price=None if price is None else Decimal(price),
    )


def store(app, snapshots):
    with app.app_context():
        result = record(snapshots)
        db.session.commit()
        return result


def store_exact_ranking(app, step: timedelta):
    """EXACT_RANKING in "main" and "hedge", one snapshot every `step` from T0."""
    store(
        app,
        [
            snap(account=account, at=T0 + i * step, amount=amount, price="2.000000000000000000001")
            for account in ("main", "hedge")
            for i, amount in enumerate(EXACT_RANKING)
        ],
    )


def latest(app, account="main", asset="BTC"):
    with app.app_context():
        return db.session.get(LatestPosition, (account, asset))
