"""On-call: notification groups per channel and escalation policies with their steps."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.alerts.models import Channel
from app.db_types import UTCDateTime, utcnow
from app.extensions import db


class GroupLabel:
    """What a channel may group alerts by."""

    RULE = "rule"
    ACCOUNT = "account"
    ASSET = "asset"
    SEVERITY = "severity"
    ALL = (RULE, ACCOUNT, ASSET, SEVERITY)


class NotificationGroup(db.Model):
    """The alerts of one channel that share the channel's group labels, and when the
    group's next message is due (app.alerts.grouping)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id", ondelete="CASCADE"))
    # "rule=3,severity=critical": the labels' values, in the channel's order.
    key: Mapped[str] = mapped_column(String(300))
    labels: Mapped[dict] = mapped_column(JSON)
    # When the group's next reminder is due (set by the worker that flushes it); its
    # pending changes are its members whose state differs from what it last told.
    next_flush_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by the worker that flushes: the claim, and each message's dedupe key.
    version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    channel: Mapped[Channel] = relationship()
    members: Mapped[list["NotificationGroupAlert"]] = relationship(
        back_populates="group", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        UniqueConstraint("channel_id", "key"),
        Index(None, "next_flush_at"),
    )


class NotificationGroupAlert(db.Model):
    """An alert in a group: its state now and the state the group last announced."""

    group_id: Mapped[int] = mapped_column(
        ForeignKey("notification_group.id", ondelete="CASCADE"), primary_key=True
    )
    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alert.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))
    # The firing this membership is about; a new firing is a new change.
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # None: not announced yet in this firing.
    notified_state: Mapped[str | None] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    group: Mapped[NotificationGroup] = relationship(back_populates="members")

    __table_args__ = (Index(None, "alert_id"),)


escalation_step_channel = db.Table(
    "escalation_step_channel",
    db.Column("step_id", ForeignKey("escalation_step.id", ondelete="CASCADE"), primary_key=True),
    db.Column("channel_id", ForeignKey("channel.id", ondelete="CASCADE"), primary_key=True),
)


class EscalationPolicy(db.Model):
    """Who is paged, in turn, while a firing alert stays unacknowledged."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    steps: Mapped[list["EscalationStep"]] = relationship(
        back_populates="policy",
        cascade="all, delete-orphan",
        order_by="EscalationStep.position",
        passive_deletes=True,
    )


class EscalationStep(db.Model):
    """One step: its channels are notified, then it waits for an acknowledgement."""

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("escalation_policy.id", ondelete="CASCADE"))
    # 0 is notified when the alert fires, 1 after step 0's wait, …
    position: Mapped[int]
    wait_seconds: Mapped[int] = mapped_column(default=900)

    policy: Mapped[EscalationPolicy] = relationship(back_populates="steps")
    channels: Mapped[list[Channel]] = relationship(
        secondary=escalation_step_channel, order_by=Channel.name
    )

    __table_args__ = (UniqueConstraint("policy_id", "position"),)
