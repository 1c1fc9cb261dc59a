"""The daily digest's record: one row per user and local day, also its outbox entry."""

from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.alerts.models import NotificationStatus, new_idempotency_key
from app.db_types import UTCDateTime, utcnow
from app.extensions import db


class DigestDelivery(db.Model):
    """A user's digest for one day of theirs: composed once when queued, then sent.

    The unique (user, local date) pair is what makes it once a day: the worker that
    inserts the row queues the digest; every other worker's insert is a no-op.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    # The day in the user's timezone at the moment it was due.
    local_date: Mapped[date] = mapped_column(Date)
    address: Mapped[str] = mapped_column(String(254))
    # What the e-mail says (app.alerts.digest.compose), rendered at every attempt alike.
    content: Mapped[dict] = mapped_column(JSON)
    idempotency_key: Mapped[str] = mapped_column(
        String(64), unique=True, default=new_idempotency_key
    )
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A worker's claim, as on the notification outbox.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("user_id", "local_date"),
        Index(None, "status", "next_attempt_at"),
    )
