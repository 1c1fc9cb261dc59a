"""Reconciliations and snapshots of both sides for recon tests."""

from datetime import timedelta
from decimal import Decimal

from app.db_types import utcnow
from app.extensions import db
from app.positions.ingest import Snapshot, record
from app.recon.define import AssetSpec, ReconSpec, save_reconciliation
from app.recon.models import ReconAsset

# Recent enough that no side is stale by default, never in the future.
NOW = utcnow().replace(microsecond=0) - timedelta(minutes=5)


def at(seconds: float = 0):
    return NOW + timedelta(seconds=seconds)


def book(asset="XBT", amount="5", seconds=0) -> Snapshot:
    return Snapshot("main", asset, at(seconds), Decimal(amount))


def venue(asset="BTC", amount="5", seconds=0) -> Snapshot:
    return Snapshot("main@binance", asset, at(seconds), Decimal(amount))


def define(app, *assets: AssetSpec, now=None, **settings) -> int:
    """Save a reconciliation main (book) vs main@binance (venue); XBT=BTC unless told."""
    spec = ReconSpec(
        name=settings.pop("name", "binance"),
        left_account="main",
        right_account="main@binance",
        assets=assets or (AssetSpec("XBT", "BTC"),),
        **settings,
    )
    with app.app_context():
        recon = save_reconciliation(spec, actor="test", now=now or at())
        db.session.commit()
        return recon.id


# The engine's clock in recon tests (tests/recon/conftest.py freezes it here).
CLOCK = {"now": NOW}


def ingest(app, *snapshots, now=None):
    """Record snapshots through the one write path and commit, as the API does.

    The engine's clock stands at `now`, or at the newest snapshot sent.
    """
    CLOCK["now"] = now or max(s.timestamp for s in snapshots)
    with app.app_context():
        result = record(snapshots)
        db.session.commit()
        return result


def state(app, left_asset="XBT") -> str:
    with app.app_context():
        return db.session.execute(
            db.select(ReconAsset.state).where(ReconAsset.left_asset == left_asset)
        ).scalar_one()
