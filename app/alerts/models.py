"""Alert rules, one alert per rule and series, and every transition it went through."""

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db_types import ExactDecimal, UTCDateTime, utcnow
from app.extensions import db

ANY = "*"


class RuleKind:
    POSITION_ABOVE = "position_above"
    POSITION_BELOW = "position_below"
    NOTIONAL_ABOVE = "notional_above"
    CHANGE_OVER_WINDOW = "change_over_window"
    GROSS_EXPOSURE_ABOVE = "gross_exposure_above"
    STALE_FEED = "stale_feed"
    ALL = (
        POSITION_ABOVE,
        POSITION_BELOW,
        NOTIONAL_ABOVE,
        CHANGE_OVER_WINDOW,
        GROSS_EXPOSURE_ABOVE,
        STALE_FEED,
    )
    # Breached when the value is below the threshold; every other kind: above.
    BELOW = (POSITION_BELOW,)
    # Evaluated by the worker as time passes, not only when snapshots arrive.
    TIME_BASED = (STALE_FEED,)
    # A reconciliation's breaks (app.recon): one rule per reconciliation, made with it,
    # not offered on the rule form. Its value is how far a difference goes beyond
    # tolerance; no value means a side is unknown, which is a breach too.
    RECON_BREAK = "recon_break"
    BREACHED_WITHOUT_VALUE = (RECON_BREAK,)


class Severity:
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    ALL = (INFO, WARNING, CRITICAL)


class AlertState:
    NORMAL = "normal"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    ALL = (NORMAL, PENDING, FIRING, RESOLVED)
    ACTIVE = (PENDING, FIRING)


class AlertRule(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(32))
    asset: Mapped[str] = mapped_column(String(64), default=ANY)
    account: Mapped[str] = mapped_column(String(64), default=ANY)
    threshold: Mapped[Decimal] = mapped_column(ExactDecimal)
    # Hysteresis: once breached, the alert stays active until the value crosses this.
    clear_threshold: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    window_seconds: Mapped[int | None]
    change_percent: Mapped[bool] = mapped_column(default=False)
    pending_seconds: Mapped[int] = mapped_column(default=0)
    severity: Mapped[str] = mapped_column(String(16), default=Severity.WARNING)
    description: Mapped[str] = mapped_column(Text, default="")
    runbook_url: Mapped[str | None] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(default=True)
    repeat_interval_seconds: Mapped[int] = mapped_column(default=3600)
    send_resolved: Mapped[bool] = mapped_column(default=True)
    # Besides its bare channels, a rule may page an escalation policy's steps in turn.
    escalation_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("escalation_policy.id", ondelete="SET NULL")
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    alerts: Mapped[list["Alert"]] = relationship(
        back_populates="rule", cascade="all, delete-orphan"
    )
    channels: Mapped[list["Channel"]] = relationship(secondary="rule_channel")

    def matches(self, account: str, asset: str) -> bool:
        return self.account in (ANY, account) and self.asset in (ANY, asset)


class Alert(db.Model):
    """The state of one rule for one series: (account, asset), or (account, *)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rule.id", ondelete="CASCADE"))
    account: Mapped[str] = mapped_column(String(64))
    asset: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=AlertState.NORMAL)
    value: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    state_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL")
    )
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledgement: Mapped[str | None] = mapped_column(String(500))
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The escalation policy step notified last in this firing (None: no policy paged),
    # and when the next step is due unless the alert is acknowledged or resolves.
    escalation_step: Mapped[int | None]
    escalation_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    rule: Mapped[AlertRule] = relationship(back_populates="alerts")
    transitions: Mapped[list["AlertTransition"]] = relationship(
        back_populates="alert", cascade="all, delete-orphan", order_by="AlertTransition.id"
    )

    __table_args__ = (
        # One alert per rule and series: two workers can never open a second one.
        UniqueConstraint("rule_id", "account", "asset"),
        Index(None, "state"),
    )


class AlertTransition(db.Model):
    """One change of an alert's state, with the value that caused it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    value: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    alert: Mapped[Alert] = relationship(back_populates="transitions")

    __table_args__ = (Index(None, "alert_id", "at"),)


class ChannelKind:
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"
    # An Alertmanager's base URL; alerts go to its API v2 (app.alerts.alertmanager).
    ALERTMANAGER = "alertmanager"
    ALL = (WEBHOOK, SLACK, EMAIL, ALERTMANAGER)


class Channel(db.Model):
    """Where notifications go: a webhook URL, a Slack-compatible hook or an address."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Webhook and Slack URLs often carry a secret: shown back only in part.
    target: Mapped[str] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Grouping (app.alerts.grouping): comma-separated labels (rule, account, asset,
    # severity); "" sends one message per alert as it happens.
    group_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    group_wait_seconds: Mapped[int] = mapped_column(default=30, server_default="30")
    group_interval_seconds: Mapped[int] = mapped_column(default=300, server_default="300")
    group_repeat_seconds: Mapped[int] = mapped_column(default=3600, server_default="3600")

    def masked_target(self) -> str:
        if self.kind == ChannelKind.EMAIL:
            return self.target
        keep = self.target.split("/")[:3]
        return "/".join(keep) + "/…"


rule_channel = db.Table(
    "rule_channel",
    db.Column("rule_id", ForeignKey("alert_rule.id", ondelete="CASCADE"), primary_key=True),
    db.Column("channel_id", ForeignKey("channel.id", ondelete="CASCADE"), primary_key=True),
)


class NotificationKind:
    FIRING = "firing"
    RESOLVED = "resolved"
    REPEAT = "repeat"
    TEST = "test"


class NotificationStatus:
    PENDING = "pending"
    SENT = "sent"


def new_idempotency_key() -> str:
    """A key no other message of any install shares (row ids restart; uuids do not)."""
    return f"tm-{uuid.uuid4()}"


class Notification(db.Model):
    """The outbox: written with the transition it announces, delivered by the worker.

    Per alert and channel, rows are delivered in id order: ids follow the order of the
    transitions because every transition of an alert is written under its row lock.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id", ondelete="CASCADE"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"))
    # A grouped channel's message lists several alerts: it names its group, not an alert.
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("notification_group.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))
    # One notification per transition and channel, whoever evaluates it.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    # Sent with every attempt (header and payload field), so a receiver can drop the
    # repeat of a message a worker delivered but could not mark as sent.
    idempotency_key: Mapped[str] = mapped_column(
        String(64), unique=True, default=new_idempotency_key
    )
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A worker's claim; one that dies mid-delivery loses it when the lease runs out.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    channel: Mapped[Channel] = relationship()

    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        # The claim's check for an earlier undelivered message of the same alert.
        Index(None, "alert_id", "channel_id", "status"),
        # A group's next message waits until its previous one is delivered.
        Index(None, "group_id", "status"),
    )


class DeliveryAttempt(db.Model):
    """One try at delivering a notification, for the delivery log."""

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ok: Mapped[bool]
    detail: Mapped[str] = mapped_column(String(500))

    __table_args__ = (Index(None, "notification_id"),)


class Silence(db.Model):
    """While active, matching alerts are still evaluated and shown, but not notified."""

    id: Mapped[int] = mapped_column(primary_key=True)
    # None matches every rule; "*" matches every asset or account.
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("alert_rule.id", ondelete="CASCADE"))
    asset: Mapped[str] = mapped_column(String(64), default=ANY)
    account: Mapped[str] = mapped_column(String(64), default=ANY)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str] = mapped_column(String(500))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    rule: Mapped[AlertRule | None] = relationship()

    __table_args__ = (Index(None, "ends_at"),)

    def matches(self, alert: "Alert") -> bool:
        return (
            self.rule_id in (None, alert.rule_id)
            and self.asset in (ANY, alert.asset)
            and self.account in (ANY, alert.account)
        )

    def is_active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


class WorkerHeartbeat(db.Model):
    """The last pass of each `flask alerts run` worker: who watches the watcher."""

    # host:pid, so two workers on two hosts each keep their own row.
    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_pass_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    interval_seconds: Mapped[float]
    passes: Mapped[int] = mapped_column(default=0)
    # The worker's last beat to the dead man's switch (app.alerts.deadman), if one is set.
    deadman_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadman_status: Mapped[str | None] = mapped_column(String(16))
    deadman_detail: Mapped[str | None] = mapped_column(String(200))
