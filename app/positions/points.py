"""Snapshots read for a chart as plain points, straight from the driver's values.

A chart answers a few thousand rows per request. SQLAlchemy's per-value result
processing (the exact-decimal and UTC-time types) cost more than the query itself,
so chart queries select their columns through `point_columns` and `read_points`
turns each row into a `Point` in one step. The values stay exact: on SQLite an
amount is read as the text it was stored as; on PostgreSQL the driver's Decimal is
formatted as `ExactDecimal` would.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import String, type_coerce

from app.db_types import format_decimal
from app.extensions import db
from app.positions.models import notional

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# SQLite stores a UTCDateTime as naive UTC text.
NAIVE_EPOCH = EPOCH.replace(tzinfo=None)


class Point(NamedTuple):
    id: int
    account: str
    at_us: int  # epoch microseconds, UTC
    amount: str  # plain notation, every digit the trading system sent
    value: Decimal  # the same amount, for exact comparison
    price: Decimal | None

    def chart_point(self) -> list:
        """[epoch seconds, amount, notional or None], as the series JSON carries it."""
        value = notional(self.value, self.price)
        return [
            self.at_us / 1_000_000,
            self.amount,
            None if value is None else format_decimal(value),
        ]


def point_columns(id_, account, timestamp, amount, price) -> tuple:
    """The five columns a point is read from, labelled and without result processing."""
    return (
        id_.label("id"),
        account.label("account"),
        type_coerce(timestamp, String).label("timestamp"),
        type_coerce(amount, String).label("amount"),
        type_coerce(price, String).label("price"),
    )


def read_points(statement, parameters=None) -> list[Point]:
    """Execute a statement selecting `point_columns` and return its rows as points."""
    connection = db.session.connection()
    make = _sqlite_point if connection.dialect.name == "sqlite" else _driver_point
    return [make(*row) for row in connection.execute(statement, parameters).all()]


def _sqlite_point(id_, account, timestamp, amount, price) -> Point:
    # Text as UTCDateTime and ExactDecimal store it: naive UTC, plain-notation decimals.
    at = datetime.fromisoformat(timestamp)
    return Point(
        id_,
        account,
        (at - NAIVE_EPOCH) // MICROSECOND,
        amount,
        Decimal(amount),
        None if price is None else Decimal(price),
    )


def _driver_point(id_, account, timestamp, amount, price) -> Point:
    # PostgreSQL: an aware datetime and an exact Decimal from the driver.
    return Point(
        id_, account, (timestamp - EPOCH) // MICROSECOND, format_decimal(amount), amount, price
    )
