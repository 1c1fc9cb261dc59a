"""Read queries of the positions room."""

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import bindparam, or_, select

from app.db_reads import DriverRead
from app.db_types import driver_decimal, driver_utc
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


class SnapshotRow(NamedTuple):
    """A snapshot as a history page or the API reads it."""

    id: int
    account: str
    asset: str
    timestamp: datetime  # aware, UTC
    amount: Decimal
    price: Decimal | None


@dataclass
class HistoryPage:
    rows: list  # rows with id, account, asset, timestamp, amount, price
    next_cursor: Cursor | None


# The pages' statements are built once (per shape, for history) with bound
# parameters: SQLAlchemy then skips rebuilding them and computing their cache key on
# every request. They name table columns, not ORM attributes, so the rows come back
# through Core alone; a page reads them and never changes them.
_latest = LatestPosition.__table__.c
_position = Position.__table__.c

LATEST_ROWS = DriverRead(
    select(
        _latest.account, _latest.asset, _latest.timestamp, _latest.amount, _latest.price
    ).order_by(_latest.asset, _latest.account)
)
ASSET_EXISTS = DriverRead(
    select(_latest.asset).where(_latest.asset == bindparam("asset")).limit(1)
)
ACCOUNTS_FOR_ASSET = DriverRead(
    select(_latest.account).where(_latest.asset == bindparam("asset")).order_by(_latest.account)
)


def latest_positions() -> list[LatestPosition]:
    """Every (account, asset) with its newest snapshot, from the latest-position rows."""
    return list(
        db.session.execute(
            select(LatestPosition).order_by(LatestPosition.asset, LatestPosition.account)
        ).scalars()
    )


class LatestRow(NamedTuple):
    """The latest snapshot of one (account, asset), as the overview reads it."""

    account: str
    asset: str
    timestamp: datetime  # aware, UTC
    amount: Decimal
    price: Decimal | None


def latest_position_rows() -> list[LatestRow]:
    """The same as latest_positions, as read-only rows: the overview loads no objects
    it would never change."""
    return _rows_from_driver(LATEST_ROWS.rows(), _latest_rows, _latest_row)


def _latest_row(account, asset, at, amount, price) -> LatestRow:
    return LatestRow(account, asset, driver_utc(at), driver_decimal(amount), driver_decimal(price))


def asset_exists(asset: str) -> bool:
    return ASSET_EXISTS.first(asset=asset) is not None


def accounts_for_asset(asset: str) -> list[str]:
    return [account for (account,) in ACCOUNTS_FOR_ASSET.rows(asset=asset)]


_history_statements: dict[tuple[bool, bool, bool, bool], DriverRead] = {}


def _history_statement(account: bool, start: bool, end: bool, cursor: bool) -> DriverRead:
    """The history read for one combination of filters, built on first use."""
    shape = (account, start, end, cursor)
    query = _history_statements.get(shape)
    if query is not None:
        return query
    c = _position
    # Read as the driver gives them and finished in _snapshot_rows: the columns' own
    # types would convert each value through two Python-level processors. The asset is
    # the one asked for; the driver makes a Python object of every value it returns.
    query = select(c.id, c.account, c.timestamp, c.amount, c.price).where(
        c.asset == bindparam("asset")
    )
    if account:
        query = query.where(c.account == bindparam("account"))
    if start:
        query = query.where(c.timestamp >= bindparam("start"))
    if end:
        query = query.where(c.timestamp < bindparam("end"))
    if cursor:
        # `timestamp <=` is a range the (asset, timestamp, id) index can seek to; the
        # OR only steps past the rows of the cursor's moment already shown.
        query = query.where(
            c.timestamp <= bindparam("cursor_timestamp"),
            or_(
                c.timestamp < bindparam("cursor_timestamp"),
                c.id < bindparam("cursor_id"),
            ),
        )
    read = DriverRead(query.order_by(c.timestamp.desc(), c.id.desc()).limit(bindparam("limit")))
    _history_statements[shape] = read
    return read


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
    query = _history_statement(
        bool(account), start is not None, end is not None, cursor is not None
    )
    params = {"asset": asset, "account": account, "start": start, "end": end, "limit": limit + 1}
    if cursor is not None:
        params["cursor_timestamp"] = cursor.timestamp
        params["cursor_id"] = cursor.id
    rows = _snapshot_rows(query.rows(**params), asset)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = Cursor(rows[-1].timestamp, rows[-1].id)
    return HistoryPage(rows, next_cursor)


# Rows as made before from the text SQLite gave: a stored snapshot never changes, so
# the same text always makes the same row, and a page read again (every visit, every
# refresh) skips the parsing and gets the same row objects, which lets
# positions.tables reuse their rendering. Only text is a key: PostgreSQL's Decimals
# compare equal across scales (1.0 == 1.00), and its rows need little parsing. Each
# cache is cleared when full.
ROW_CACHE_SIZE = 10_000
_snapshots: dict[tuple, SnapshotRow] = {}
_latest_rows: dict[tuple, LatestRow] = {}


def _rows_from_driver(result, cache: dict, make) -> list:
    """make(*values) for each of the driver's tuples, the same row for the same text."""
    rows = []
    for values in result:
        row = cache.get(values)
        if row is None:
            row = make(*values)
            if not any(isinstance(value, Decimal) for value in values):
                if len(cache) >= ROW_CACHE_SIZE:
                    cache.clear()
                cache[values] = row
        rows.append(row)
    return rows


def _snapshot_rows(result, asset: str) -> list[SnapshotRow]:
    """Snapshots of `asset` from the driver's rows, with what UTCDateTime and ExactDecimal
    make of the stored values: aware UTC datetimes and exact Decimals. The rows are
    remembered without the asset: the id alone names a snapshot."""

    def snapshot_row(row_id, account, at, amount, price) -> SnapshotRow:
        return SnapshotRow(
            row_id, account, asset, driver_utc(at), driver_decimal(amount), driver_decimal(price)
        )

    return _rows_from_driver(result, _snapshots, snapshot_row)
