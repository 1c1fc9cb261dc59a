"""The daily digest: an opt-in e-mail per user at their chosen local time, once a day.

Each worker pass calls `send_due_digests(now)`. A user's digest is due from their
digest time (in their own timezone, so 08:00 in London is 08:00 UTC in winter and
07:00 UTC in summer) for LATE_LIMIT; a worker that was down longer skips that day
rather than mail yesterday's news. Queuing inserts a DigestDelivery row keyed by
(user, local date): the unique key lets one worker of many queue it, whatever the
race. The row is then delivered like the notification outbox: claimed with a
conditional UPDATE, sent through the same SMTP code, retried with the same backoff.
"""

import logging
import zoneinfo
from datetime import date, datetime, timedelta, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime

from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from app.alerts.delivery import DeliveryError, backoff, send_email
from app.alerts.digest_content import compose
from app.alerts.digest_models import DigestDelivery
from app.alerts.models import NotificationStatus
from app.auth.models import User
from app.db_types import utcnow
from app.extensions import db

log = logging.getLogger(__name__)

# How long after its time a digest may still go out (a worker catching up).
LATE_LIMIT = timedelta(hours=3)


def user_zone(user: User) -> tzinfo:
    """The user's timezone; UTC when the stored name cannot be loaded."""
    try:
        return zoneinfo.ZoneInfo(user.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def scheduled_at(user: User, day: date) -> datetime:
    """The UTC moment of the user's digest on `day` of their calendar.

    A time the clocks skip (spring forward) falls an hour later, as zoneinfo reads it.
    """
    local = datetime.combine(day, user.digest_at, tzinfo=user_zone(user))
    return local.astimezone(zoneinfo.ZoneInfo("UTC"))


def due_day(user: User, now: datetime) -> date | None:
    """The local day whose digest is due at `now`, or None."""
    today = now.astimezone(user_zone(user)).date()
    # A late-evening time's window reaches past midnight into the next local day.
    for day in (today, today - timedelta(days=1)):
        at = scheduled_at(user, day)
        if at <= now < at + LATE_LIMIT:
            return day
    return None


def subscribers() -> list[User]:
    """Active users with the digest switched on and an address to send it to."""
    return list(
        db.session.execute(
            select(User)
            .where(User.digest_enabled, User.active, User.email.is_not(None))
            .order_by(User.id)
        ).scalars()
    )


def _already_queued(user_id: int, day: date) -> bool:
    query = select(DigestDelivery.id).where(
        DigestDelivery.user_id == user_id, DigestDelivery.local_date == day
    )
    return db.session.execute(query).first() is not None


def queue_digest(user: User, day: date, content: dict, now: datetime) -> bool:
    """Insert the user's digest for `day` unless one is there; whether this call did."""
    module = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        module.insert(DigestDelivery)
        .values(
            user_id=user.id,
            local_date=day,
            address=user.email,
            content=content,
            status=NotificationStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["user_id", "local_date"])
    )
    return (db.session.execute(statement).rowcount or 0) == 1


def queue_due_digests(now: datetime) -> int:
    """Queue every digest due at `now` that no worker queued yet; how many this one did."""
    queued = 0
    # Readers in one zone due in one pass get the same e-mail: composed once.
    composed: dict[tuple[str, date], dict] = {}
    for user in subscribers():
        day = due_day(user, now)
        # Checked first so a pass composes nothing for digests already queued.
        if day is None or _already_queued(user.id, day):
            continue
        zone = user_zone(user)
        key = (str(zone), day)
        try:
            content = composed.get(key) or compose(now, zone, day.isoformat())
        except SQLAlchemyError:
            raise  # the database is away: the worker's pass backs off and retries
        except Exception:
            # A digest that cannot be written must not stop the worker's pass (and
            # with it alert delivery and the heartbeat); the next pass tries again.
            log.exception("daily digest for %s could not be composed", user.username)
            db.session.rollback()
            continue
        composed[key] = content
        if queue_digest(user, day, content, now):
            queued += 1
            log.info("daily digest queued: user=%s day=%s", user.username, day)
        db.session.commit()
    return queued


def digest_message(address: str, content: dict, idempotency_key: str) -> EmailMessage:
    """The digest as a multipart/alternative e-mail: plain text, then HTML."""
    cfg = current_app.config
    message = EmailMessage()
    message["From"] = cfg["MAIL_FROM"]
    message["To"] = address
    alerts = content["alerts"]
    message["Subject"] = (
        f"TradingMonitor daily digest {content['date']}: {alerts['open']} firing, "
        f"{alerts['unacknowledged']} unacknowledged"
    )
    message["Date"] = format_datetime(datetime.now().astimezone())
    domain = cfg["MAIL_FROM"].rpartition("@")[2] or "tradingmonitor"
    message["Message-ID"] = f"<{idempotency_key}@{domain}>"
    message["Idempotency-Key"] = idempotency_key
    # Straight from the app's loader, as the alert e-mails: no request, no page context.
    env = current_app.jinja_env
    message.set_content(env.get_template("alerts/email/digest.txt").render(**content))
    html = env.get_template("alerts/email/digest.html").render(**content)
    message.add_alternative(html, subtype="html")
    return message


def _claimable(now: datetime):
    return (
        DigestDelivery.status == NotificationStatus.PENDING,
        DigestDelivery.next_attempt_at <= now,
        or_(DigestDelivery.claimed_until.is_(None), DigestDelivery.claimed_until < now),
    )


def _claim(delivery_id: int, now: datetime) -> bool:
    lease = timedelta(seconds=current_app.config["NOTIFY_LEASE_SECONDS"])
    result = db.session.execute(
        update(DigestDelivery)
        .where(DigestDelivery.id == delivery_id, *_claimable(now))
        .values(claimed_until=now + lease)
    )
    db.session.commit()
    return result.rowcount == 1


def _attempt(delivery: DigestDelivery) -> bool:
    """Send a claimed digest once and record the outcome."""
    try:
        send_email(digest_message(delivery.address, delivery.content, delivery.idempotency_key))
        ok, error = True, None
    except DeliveryError as exc:
        ok, error = False, str(exc)[:500]
    finished = utcnow()
    delivery.attempts += 1
    delivery.claimed_until = None
    delivery.last_error = error
    if ok:
        delivery.status = NotificationStatus.SENT
        delivery.sent_at = finished
    else:
        delivery.next_attempt_at = finished + backoff(delivery.attempts)
        log.warning(
            "daily digest %s not sent (attempt %d): %s", delivery.id, delivery.attempts, error
        )
    db.session.commit()
    return ok


def deliver_due_digests(now: datetime) -> tuple[int, int]:
    """Try every queued digest that is due; return (sent, failed)."""
    due = list(
        db.session.execute(
            select(DigestDelivery.id).where(*_claimable(now)).order_by(DigestDelivery.id)
        ).scalars()
    )
    db.session.commit()
    sent = failed = 0
    for delivery_id in due:
        if not _claim(delivery_id, now):
            continue  # another worker has it
        if _attempt(db.session.get(DigestDelivery, delivery_id)):
            sent += 1
        else:
            failed += 1
    return sent, failed


def send_due_digests(now: datetime) -> int:
    """Queue the digests due at `now` and deliver what is queued; how many were sent."""
    queue_due_digests(now)
    sent, _ = deliver_due_digests(now)
    return sent


def preview(user: User, now: datetime) -> EmailMessage:
    """The e-mail the user's digest would be at `now`, queued or not (for the CLI)."""
    day = now.astimezone(user_zone(user)).date()
    content = compose(now, user_zone(user), day.isoformat())
    return digest_message(user.email or "", content, f"preview-{user.id}-{day.isoformat()}")
