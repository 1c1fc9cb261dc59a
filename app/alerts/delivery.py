"""Delivering the outbox: webhook, Slack-compatible webhook, e-mail; retries with backoff.

A worker claims one notification at a time with a conditional UPDATE, so two workers
never send the same one; a worker killed mid-send loses its claim when the lease
runs out and the notification is tried again. Receivers get the dedupe key (the
Alertmanager `groupKey` plus our `tradingmonitor.kind`) to drop a rare repeat.
"""

import json
import smtplib
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from email.message import EmailMessage

from flask import current_app
from sqlalchemy import or_, select, update

from app.alerts.models import (
    Channel,
    ChannelKind,
    DeliveryAttempt,
    Notification,
    NotificationStatus,
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


def _post_json(url: str, body: dict) -> str:
    data = json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (http/https checked when saved)
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    timeout = current_app.config["NOTIFY_TIMEOUT_SECONDS"]
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"unreachable: {getattr(exc, 'reason', exc)}") from None


def slack_text(payload: dict) -> str:
    labels, notes = payload["commonLabels"], payload["commonAnnotations"]
    status = payload["status"].upper()
    kind = payload.get("tradingmonitor", {}).get("kind", "")
    prefix = "REMINDER " if kind == "repeat" else ""
    return (
        f"{prefix}[{status}] {labels['alertname']} ({labels['severity']}) "
        f"{labels['account']}/{labels['asset']}: value {notes.get('value') or 'n/a'}, "
        f"threshold {notes.get('threshold')}"
        + (f"\nRunbook: {notes['runbook_url']}" if notes.get("runbook_url") else "")
    )


def _send_email(address: str, payload: dict) -> str:
    cfg = current_app.config
    message = EmailMessage()
    message["From"] = cfg["MAIL_FROM"]
    message["To"] = address
    message["Subject"] = slack_text(payload).splitlines()[0][:200]
    message.set_content(slack_text(payload) + "\n\n" + json.dumps(payload, indent=2))
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


def send(channel: Channel, payload: dict) -> str:
    """Deliver one payload to one channel; raise DeliveryError on failure."""
    if channel.kind == ChannelKind.WEBHOOK:
        return _post_json(channel.target, payload)
    if channel.kind == ChannelKind.SLACK:
        return _post_json(channel.target, {"text": slack_text(payload)})
    if channel.kind == ChannelKind.EMAIL:
        return _send_email(channel.target, payload)
    raise DeliveryError(f"unknown channel kind {channel.kind!r}")


def _claim(notification_id: int, now: datetime) -> bool:
    lease = timedelta(seconds=current_app.config["NOTIFY_LEASE_SECONDS"])
    result = db.session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.status == NotificationStatus.PENDING,
            or_(Notification.claimed_until.is_(None), Notification.claimed_until < now),
        )
        .values(claimed_until=now + lease)
    )
    db.session.commit()
    return result.rowcount == 1


def deliver_due(limit: int = 100) -> tuple[int, int]:
    """Try every notification that is due; return (sent, failed)."""
    now = utcnow()
    due = list(
        db.session.execute(
            select(Notification.id)
            .where(
                Notification.status == NotificationStatus.PENDING,
                Notification.next_attempt_at <= now,
                or_(Notification.claimed_until.is_(None), Notification.claimed_until < now),
            )
            .order_by(Notification.id)
            .limit(limit)
        ).scalars()
    )
    db.session.commit()
    sent = failed = 0
    for notification_id in due:
        if not _claim(notification_id, utcnow()):
            continue  # another worker has it
        notification = db.session.get(Notification, notification_id)
        try:
            detail, ok = send(notification.channel, notification.payload), True
        except DeliveryError as exc:
            detail, ok = str(exc), False
        finished = utcnow()
        notification.attempts += 1
        notification.claimed_until = None
        db.session.add(
            DeliveryAttempt(
                notification_id=notification.id, at=finished, ok=ok, detail=detail[:500]
            )
        )
        if ok:
            notification.status = NotificationStatus.SENT
            notification.sent_at = finished
            notification.last_error = None
            sent += 1
        else:
            notification.last_error = detail[:500]
            notification.next_attempt_at = finished + backoff(notification.attempts)
            failed += 1
        db.session.commit()
    return sent, failed
