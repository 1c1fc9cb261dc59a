"""Position snapshots and the latest position per (account, asset)."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db_types import EXACT, ExactDecimal, UTCDateTime, utcnow
from app.extensions import db

# SQLite only auto-increments a column declared exactly INTEGER.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Position(db.Model):
    """What the trading system reported holding at one moment."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    asset: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    price: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("account", "asset", "timestamp"),
        # Serves the history page: one asset, newest first, keyset on (timestamp, id).
        Index(None, "asset", "timestamp", "id"),
    )


class LatestPosition(db.Model):
    """The newest snapshot per (account, asset), so the overview never scans history."""

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    asset: Mapped[str] = mapped_column(String(64), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    price: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def notional(self) -> Decimal | None:
        return notional(self.amount, self.price)


def notional(amount: Decimal, price: Decimal | None) -> Decimal | None:
    """amount * price, exactly; None without a price."""
    return None if price is None else EXACT.multiply(amount, price)
