"""Snapshot builders for positions tests."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.extensions import db
from app.positions.ingest import Snapshot, record
from app.positions.models import LatestPosition

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


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


def latest(app, account="main", asset="BTC"):
    with app.app_context():
        return db.session.get(LatestPosition, (account, asset))
