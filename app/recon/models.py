"""Reconciliations, their assets with each one's current state, and its history."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.alerts.models import AlertRule, Severity
from app.db_types import ExactDecimal, UTCDateTime, utcnow
from app.extensions import db

DEFAULT_MAX_AGE_SECONDS = 600


class ReconState:
    """Where a reconciled asset stands.

    pending: beyond tolerance, inside the grace period (not yet a break).
    unknown: a side has no amount at the compared moment, or is older than its max age.
    """

    MATCHED = "matched"
    PENDING = "pending"
    BREAK = "break"
    UNKNOWN = "unknown"
    ALL = (MATCHED, PENDING, BREAK, UNKNOWN)
    # Pages, API and CLI list the worst first.
    ORDER = (BREAK, UNKNOWN, PENDING, MATCHED)
    # `flask recon status` exits non-zero while any asset is in one of these.
    FAILING = (BREAK, UNKNOWN)


class Reconciliation(db.Model):
    """Two accounts that should hold the same positions: a book and a venue, say."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    left_account: Mapped[str] = mapped_column(String(64))
    left_label: Mapped[str] = mapped_column(String(32), default="book")
    right_account: Mapped[str] = mapped_column(String(64))
    right_label: Mapped[str] = mapped_column(String(32), default="venue")
    # Defaults for assets that set none. Absolute: in the left asset's unit; relative:
    # percent of the left amount. With both, a break is beyond both (the larger allowance).
    abs_tolerance: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    rel_tolerance_percent: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    grace_seconds: Mapped[int] = mapped_column(default=0)
    left_max_age_seconds: Mapped[int] = mapped_column(default=DEFAULT_MAX_AGE_SECONDS)
    right_max_age_seconds: Mapped[int] = mapped_column(default=DEFAULT_MAX_AGE_SECONDS)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    severity: Mapped[str] = mapped_column(String(16), default=Severity.CRITICAL)
    # The alert rule that carries this reconciliation's breaks through the alert engine.
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_rule.id", ondelete="SET NULL"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    rule: Mapped[AlertRule | None] = relationship()
    assets: Mapped[list["ReconAsset"]] = relationship(
        back_populates="reconciliation",
        cascade="all, delete-orphan",
        order_by="ReconAsset.left_asset",
    )


class ReconAsset(db.Model):
    """One asset of a reconciliation: its names on both sides and its current state.

    The right amount times `multiplier` is compared with the left amount (contracts to
    coins, say); the difference is right * multiplier - left.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    reconciliation_id: Mapped[int] = mapped_column(
        ForeignKey("reconciliation.id", ondelete="CASCADE")
    )
    left_asset: Mapped[str] = mapped_column(String(64))
    right_asset: Mapped[str] = mapped_column(String(64))
    multiplier: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(1))
    # None: the reconciliation's default.
    abs_tolerance: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    rel_tolerance_percent: Mapped[Decimal | None] = mapped_column(ExactDecimal)

    # Current state, as of the last evaluation.
    state: Mapped[str] = mapped_column(String(16), default=ReconState.UNKNOWN)
    state_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The moment both sides were compared at, and what each side held then.
    as_of: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_amount: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    right_amount: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    right_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    difference: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    reconciliation: Mapped[Reconciliation] = relationship(back_populates="assets")
    transitions: Mapped[list["ReconTransition"]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", order_by="ReconTransition.id"
    )

    __table_args__ = (
        UniqueConstraint("reconciliation_id", "left_asset"),
        UniqueConstraint("reconciliation_id", "right_asset"),
    )


class ReconTransition(db.Model):
    """One change of a reconciled asset's state, with both sides' values at the time.

    right_amount is as the right side reported it (before the multiplier).
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    recon_asset_id: Mapped[int] = mapped_column(ForeignKey("recon_asset.id", ondelete="CASCADE"))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    as_of: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_amount: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    right_amount: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    difference: Mapped[Decimal | None] = mapped_column(ExactDecimal)

    asset: Mapped[ReconAsset] = relationship(back_populates="transitions")

    __table_args__ = (Index(None, "recon_asset_id", "at"),)
