"""Delivering the outbox: webhook, Slack-compatible webhook, e-mail, Alertmanager; retries.

The promise: at least once, in order per alert and channel. A worker claims one
notification at a time with a conditional UPDATE, so two workers never send the same
one at once, and only the oldest undelivered message of an alert and channel can be
claimed: a later one (resolved after firing) waits until the earlier one is delivered.
A worker killed mid-send loses its claim when the lease runs out and the message is
sent again with the same idempotency key, for the receiver to drop the repeat.
"""

import json
import smtplib
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from email.message import EmailMessage

from flask import current_app
from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import aliased

from app.alerts.alertmanager import api_url, to_alertmanager
from app.alerts.messages import chat_text, email_message
from app.alerts.models import (
    Channel,
    ChannelKind,
    DeliveryAttempt,
    Notification,
    NotificationStatus,
    new_idempotency_key,
)
from app.db_types import utcnow
from app.extensions import db


class DeliveryError(Exception):
    """A receiver that is down or said no; the notification will be retried."""


def backoff(attempts: int) -> timedelta:
    """Exponential: base, 2 x base, 4 x base, … up to the cap."""
    cfg = current_app.config
    seconds = cfg["NOTIFY_RETRY_BASE_SECONDS"] * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, cfg["NOTIFY_RETRY_MAX_SECONDS"]))


def post_json(url: str, body: dict | list, idempotency_key: str) -> str:
    """POST a JSON body; the answer's status, or DeliveryError."""
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
    request = urllib.request.Request(  # noqa: S310 (http/https checked when saved)
        url, data=data, method="POST", headers=headers
    )
    timeout = current_app.config["NOTIFY_TIMEOUT_SECONDS"]
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"unreachable: {getattr(exc, 'reason', exc)}") from None


def _send_email(address: str, payload: dict, idempotency_key: str) -> str:
    return send_email(email_message(address, payload, idempotency_key))


def send_email(message: EmailMessage) -> str:
    """Hand one e-mail to the configured SMTP server; DeliveryError when it fails."""
    cfg = current_app.config
    try:
        with smtplib.SMTP(
            cfg["SMTP_HOST"], cfg["SMTP_PORT"], timeout=cfg["NOTIFY_TIMEOUT_SECONDS"]
        ) as smtp:
            if cfg["SMTP_STARTTLS"]:
                smtp.starttls()
            if cfg.get("SMTP_USERNAME"):
                smtp.login(cfg["SMTP_USERNAME"], cfg["SMTP_PASSWORD"])
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP: {exc}") from None
    return "accepted by SMTP server"


def send(channel: Channel, payload: dict, idempotency_key: str | None = None) -> str:
    """Deliver one payload to one channel; raise DeliveryError on failure.

    Without a key (a channel test) the message gets a fresh one.
    """
    key = idempotency_key or new_idempotency_key()
    if channel.kind == ChannelKind.WEBHOOK:
        return post_json(channel.target, {**payload, "idempotencyKey": key}, key)
    if channel.kind == ChannelKind.SLACK:
        # Chat hooks take a fixed body; the key travels as the header alone.
        return post_json(channel.target, {"text": chat_text(payload)}, key)
    if channel.kind == ChannelKind.EMAIL:
        return _send_email(channel.target, payload, key)
    if channel.kind == ChannelKind.ALERTMANAGER:
        # endsAt of a firing alert is counted from the send, so a retried one is not stale.
        return post_json(api_url(channel.target), to_alertmanager(payload, utcnow()), key)
    raise DeliveryError(f"unknown channel kind {channel.kind!r}")


def _claimable(now: datetime):
    """Pending, due, not leased, and no earlier message of its alert and channel waiting."""
    earlier = aliased(Notification)
    return (
        Notification.status == NotificationStatus.PENDING,
        Notification.next_attempt_at <= now,
        or_(Notification.claimed_until.is_(None), Notification.claimed_until < now),
        # Delivered is final, so a claim that sees the earlier one delivered is safe
        # whatever another worker does meanwhile.
        ~exists().where(
            earlier.alert_id == Notification.alert_id,
            earlier.channel_id == Notification.channel_id,
            earlier.status == NotificationStatus.PENDING,
            earlier.id < Notification.id,
        ),
    )


def _claim(notification_id: int, now: datetime) -> bool:
    lease = timedelta(seconds=current_app.config["NOTIFY_LEASE_SECONDS"])
    result = db.session.execute(
        update(Notification)
        .where(Notification.id == notification_id, *_claimable(now))
        .values(claimed_until=now + lease)
    )
    db.session.commit()
    return result.rowcount == 1


def _due(limit: int) -> list[int]:
    query = select(Notification.id).where(*_claimable(utcnow()))
    due = list(db.session.execute(query.order_by(Notification.id).limit(limit)).scalars())
    db.session.commit()
    return due


def _attempt(notification: Notification) -> bool:
    """Send a claimed notification once; record the attempt and its outcome."""
    try:
        detail, ok = (
            send(notification.channel, notification.payload, notification.idempotency_key),
            True,
        )
    except DeliveryError as exc:
        detail, ok = str(exc), False
    finished = utcnow()
    notification.attempts += 1
    notification.claimed_until = None
    db.session.add(
        DeliveryAttempt(notification_id=notification.id, at=finished, ok=ok, detail=detail[:500])
    )
    if ok:
        notification.status = NotificationStatus.SENT
        notification.sent_at = finished
        notification.last_error = None
    else:
        notification.last_error = detail[:500]
        notification.next_attempt_at = finished + backoff(notification.attempts)
    db.session.commit()
    return ok


def deliver_due(limit: int = 100) -> tuple[int, int]:
    """Try every notification that is due, up to `limit` attempts; return (sent, failed).

    Delivering a message frees the next one of its alert, so the scan repeats while
    it delivers: firing and resolved queued during an outage go out in one pass.
    """
    sent = failed = 0
    while sent + failed < limit:
        delivered = False
        for notification_id in _due(limit - sent - failed):
            if not _claim(notification_id, utcnow()):
                continue  # another worker has it, or an earlier message came due first
            if _attempt(db.session.get(Notification, notification_id)):
                sent, delivered = sent + 1, True
            else:
                failed += 1
        if not delivered:
            break
    return sent, failed
