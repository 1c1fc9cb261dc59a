"""Read queries of the positions room."""

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, Select, func, or_, select

from app.extensions import db
from app.positions.models import LatestPosition, Position
from app.positions.points import EPOCH, MICROSECOND

# What a history page or an export reads of a snapshot.
SNAPSHOT_COLUMNS = (
    Position.id,
    Position.account,
    Position.asset,
    Position.timestamp,
    Position.amount,
    Position.price,
)


# How far back from a page's newest moment it is looked for, in turn, before the whole
# history: a series reporting every minute fills a page within the first.
HISTORY_WINDOWS = (timedelta(days=1), timedelta(days=8), timedelta(days=64), timedelta(days=512))


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
    rows: list[Row]  # id, account, asset, timestamp, amount, price (SNAPSHOT_COLUMNS)
    next_cursor: Cursor | None


def latest_positions() -> list[LatestPosition]:
    """Every (account, asset) with its newest snapshot, from the latest-position rows."""
    return list(
        db.session.execute(
            select(LatestPosition).order_by(LatestPosition.asset, LatestPosition.account)
        ).scalars()
    )


def latest_position_rows() -> list[Row]:
    """The same as latest_positions, as rows of (account, asset, timestamp, amount,
    price) for pages that only show them."""
    return list(
        db.session.execute(
            select(
                LatestPosition.account,
                LatestPosition.asset,
                LatestPosition.timestamp,
                LatestPosition.amount,
                LatestPosition.price,
            ).order_by(LatestPosition.asset, LatestPosition.account)
        )
    )


def asset_exists(asset: str) -> bool:
    found = db.session.scalar(
        select(LatestPosition.asset).where(LatestPosition.asset == asset).limit(1)
    )
    return found is not None


def accounts_for_asset(asset: str) -> list[str]:
    return list(
        db.session.scalars(
            select(LatestPosition.account)
            .where(LatestPosition.asset == asset)
            .order_by(LatestPosition.account)
        )
    )


def history_query(
    asset: str,
    *,
    account: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    cursor: Cursor | None = None,
) -> Select:
    """An asset's snapshots, newest first, after `cursor`: served by the index on
    (asset, timestamp, id), which holds every column read."""
    query = select(*SNAPSHOT_COLUMNS).where(Position.asset == asset)
    if account:
        query = query.where(Position.account == account)
    if start is not None:
        query = query.where(Position.timestamp >= start)
    if end is not None:
        query = query.where(Position.timestamp < end)
    if cursor is not None:
        # `timestamp <=` is a range the index can seek to; the OR only steps past the
        # rows of the cursor's moment already shown.
        query = query.where(
            Position.timestamp <= cursor.timestamp,
            or_(Position.timestamp < cursor.timestamp, Position.id < cursor.id),
        )
    return query.order_by(Position.timestamp.desc(), Position.id.desc())


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
    query = history_query(asset, account=account, start=start, end=end, cursor=cursor)
    for lower in _page_windows(asset, account, start, end, cursor):
        rows = list(db.session.execute(query.where(Position.timestamp >= lower).limit(limit + 1)))
        if len(rows) > limit:
            break
    else:
        rows = list(db.session.execute(query.limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = Cursor(rows[-1].timestamp, rows[-1].id)
    return HistoryPage(rows, next_cursor)


def _page_windows(asset, account, start, end, cursor) -> list[datetime]:
    """Lower time bounds to read a page within, narrowest first; none on SQLite.

    On PostgreSQL the history is partitioned by month and the planner plans every
    partition a query may touch: with years of months, planning a page without a lower
    bound cost more than reading it (bench/README.md, scale.py). The rows of a window
    that holds a whole page are the page, since every row outside it is older.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return []
    newest = cursor.timestamp if cursor is not None else end
    if newest is None:
        query = select(func.max(LatestPosition.timestamp)).where(LatestPosition.asset == asset)
        if account:
            query = query.where(LatestPosition.account == account)
        newest = db.session.scalar(query)
    if newest is None:
        return []
    bounds = (newest - span for span in HISTORY_WINDOWS)
    return [bound for bound in bounds if start is None or bound > start]
