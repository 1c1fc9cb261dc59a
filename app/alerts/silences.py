"""Silences: which alerts are muted now."""

from datetime import datetime

from sqlalchemy import select

from app.admin.audit import Action, record_event
from app.alerts.models import Alert, Silence
from app.extensions import db


def active_silences(now: datetime) -> list[Silence]:
    return list(
        db.session.execute(
            select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now)
        ).scalars()
    )


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
