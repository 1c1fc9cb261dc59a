"""Login throttling counted in the database, so every worker sees the same count."""

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from app.auth.models import LoginFailure
from app.db_types import utcnow
from app.extensions import db


def _window_start():
    return utcnow() - timedelta(seconds=current_app.config["LOGIN_FAILURE_WINDOW_SECONDS"])


def _count(column, value) -> int:
    return db.session.execute(
        select(func.count())
        .select_from(LoginFailure)
        .where(column == value, LoginFailure.failed_at > _window_start())
    ).scalar_one()


def username_locked(username: str) -> bool:
    """Too many recent failures for this username, whoever is asking."""
    limit = current_app.config["LOGIN_MAX_FAILURES_PER_USER"]
    return _count(LoginFailure.username, username) >= limit


def address_retry_after(address: str) -> int | None:
    """Seconds until this client address may try again, or None if it may now."""
    limit = current_app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    if _count(LoginFailure.ip_address, address) < limit:
        return None
    oldest = db.session.execute(
        select(LoginFailure.failed_at)
        .where(
            LoginFailure.ip_address == address,
            LoginFailure.failed_at > _window_start(),
        )
        .order_by(LoginFailure.failed_at.desc())
        .offset(limit - 1)
        .limit(1)
    ).scalar_one()
    window = timedelta(seconds=current_app.config["LOGIN_FAILURE_WINDOW_SECONDS"])
    return max(1, int((oldest + window - utcnow()).total_seconds()) + 1)


def note_failure(username: str, address: str) -> None:
    db.session.add(LoginFailure(username=username[:64], ip_address=address[:64]))


def clear_failures(username: str) -> None:
    db.session.execute(delete(LoginFailure).where(LoginFailure.username == username))
