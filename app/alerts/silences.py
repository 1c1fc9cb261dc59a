"""Silences: which alerts are muted now."""

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from app.admin.audit import Action, record_event
from app.alerts.models import Alert, Silence
from app.extensions import db
from app.templating import parse_local_datetime


def active_silences(now: datetime) -> list[Silence]:
    return list(
        db.session.execute(
            select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now)
        ).scalars()
    )


def silenced_ids(alerts: list[Alert], now: datetime) -> set[int]:
    """The ids of the alerts an active silence mutes (one read of the silences)."""
    active = active_silences(now)
    return {a.id for a in alerts if any(s.matches(a) for s in active)}


def silence_for(alert: Alert, now: datetime) -> Silence | None:
    """The first active silence that mutes this alert, if any."""
    return next((s for s in active_silences(now) if s.matches(alert)), None)


def matching_alerts(silence: Silence, alerts: list[Alert]) -> list[Alert]:
    """Which of these alerts the silence would mute (for the form's preview)."""
    return [a for a in alerts if silence.matches(a)]


def store_silence(silence: Silence, hours, *, actor: str | None = None) -> None:
    """Store a new silence with its audit entry, from the page or the CLI (caller commits)."""
    db.session.add(silence)
    db.session.flush()
    record_event(
        Action.SILENCE_CREATE,
        target=f"silence:{silence.id}",
        detail={
            "rule_id": silence.rule_id,
            "account": silence.account,
            "asset": silence.asset,
            "hours": f"{hours:g}",
        },
        actor=actor,
    )


def quick_silence(alert: Alert, hours: Decimal, user, now: datetime) -> Silence:
    """Silence the alert's rule, asset and account from now for some hours, with its
    audit entry (the alert's one-click silence; the caller commits)."""
    silence = Silence(
        rule_id=alert.rule_id,
        asset=alert.asset,
        account=alert.account,
        starts_at=now,
        ends_at=now + timedelta(hours=float(hours)),
        comment=f"Silenced from the alert by {user.username}",
        created_by_id=user.id,
    )
    db.session.add(silence)
    db.session.flush()
    record_event(
        Action.SILENCE_CREATE,
        target=f"silence:{silence.id}",
        detail={"alert": alert.id, "hours": str(hours)},
    )
    return silence


def silence_start(field, now: datetime) -> datetime:
    """When a typed silence starts: the moment in the field, read in the viewer's zone
    (never before now), or now when empty; an unreadable one becomes the field's error."""
    try:
        starts = parse_local_datetime(field.data or "", "Starts")
    except ValueError as exc:
        field.errors = [str(exc)]
        return now
    return now if starts is None else max(starts, now)
