"""Read queries of the positions room."""

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select

from app.extensions import db
from app.positions.models import LatestPosition, Position

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


# What a history page or an export reads of a snapshot.
SNAPSHOT_COLUMNS = (
    Position.id,
    Position.account,
    Position.asset,
    Position.timestamp,
    Position.amount,
    Position.price,
)


class BadCursor(ValueError):
    """A pagination cursor that was not made by us."""


@dataclass(frozen=True)
class Cursor:
    """Where a history page ends: the last row's (timestamp, id)."""

    timestamp: datetime
    id: int

    def encode(self) -> str:
        micros = (self.timestamp - EPOCH) // MICROSECOND
        return base64.urlsafe_b64encode(f"{micros}:{self.id}".encode()).decode()

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        try:
            micros, row_id = base64.urlsafe_b64decode(text.encode()).decode().split(":")
            return cls(EPOCH + int(micros) * MICROSECOND, int(row_id))
        except (ValueError, binascii.Error, UnicodeError, OverflowError, OSError):
            raise BadCursor("This page link is not valid; start from the newest.") from None


@dataclass
class HistoryPage:
    rows: list  # rows with id, account, asset, timestamp, amount, price
    next_cursor: Cursor | None


def latest_positions() -> list[LatestPosition]:
    """Every (account, asset) with its newest snapshot, from the latest-position rows."""
    return list(
        db.session.execute(
            select(LatestPosition).order_by(LatestPosition.asset, LatestPosition.account)
        ).scalars()
    )


def asset_exists(asset: str) -> bool:
    return (
        db.session.execute(
            select(LatestPosition.asset).where(LatestPosition.asset == asset).limit(1)
        ).first()
        is not None
    )


def accounts_for_asset(asset: str) -> list[str]:
    return list(
        db.session.execute(
            select(LatestPosition.account)
            .where(LatestPosition.asset == asset)
            .order_by(LatestPosition.account)
        ).scalars()
    )


def history_page(
    asset: str,
    *,
    account: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    cursor: Cursor | None = None,
    limit: int = 100,
) -> HistoryPage:
    """One page of an asset's snapshots, newest first, keyset-paginated on (timestamp, id)."""
    # Plain rows, not ORM objects: a page is read, never changed.
    query = select(*SNAPSHOT_COLUMNS).where(Position.asset == asset)
    if account:
        query = query.where(Position.account == account)
    if start is not None:
        query = query.where(Position.timestamp >= start)
    if end is not None:
        query = query.where(Position.timestamp < end)
    if cursor is not None:
        query = query.where(
            or_(
                Position.timestamp < cursor.timestamp,
                and_(Position.timestamp == cursor.timestamp, Position.id < cursor.id),
            )
        )
    query = query.order_by(Position.timestamp.desc(), Position.id.desc()).limit(limit + 1)
    rows = list(db.session.execute(query))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = Cursor(rows[-1].timestamp, rows[-1].id)
    return HistoryPage(rows, next_cursor)
