"""Login throttling: an attempt is counted in the database before its password is checked.

Each attempt bumps its counter row with one upsert that returns the new count. The
database serialises the bumps per row (SQLite's single writer, PostgreSQL's row lock on
ON CONFLICT), so N parallel attempts get the numbers 1..N, in every worker and host,
and only those within the limit go on to a password check.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import case, delete, update
from sqlalchemy.dialects import postgresql, sqlite

from app.auth.models import LoginCounter
from app.db_types import utcnow
from app.extensions import db

INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@dataclass(frozen=True)
class Attempt:
    """A reserved attempt: its number in the window, the limit, and when the window ends."""

    key: str
    number: int
    limit: int
    window_ends_at: datetime

    @property
    def locked(self) -> bool:
        return self.number > self.limit

    def retry_after_seconds(self) -> int:
        return max(1, math.ceil((self.window_ends_at - utcnow()).total_seconds()))


def _window() -> timedelta:
    return timedelta(seconds=current_app.config["LOGIN_FAILURE_WINDOW_SECONDS"])


def _reserve(key: str, limit: int) -> Attempt:
    """Count one attempt for `key` and return its number; the caller commits at once."""
    now, window = utcnow(), _window()
    table = LoginCounter.__table__
    # In ON CONFLICT ... SET, the table's columns are the stored row's values.
    expired = table.c.window_started_at <= now - window
    insert = INSERTS[db.engine.dialect.name](table).values(
        key=key, attempts=1, window_started_at=now
    )
    statement = insert.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "attempts": case((expired, 1), else_=table.c.attempts + 1),
            "window_started_at": case((expired, now), else_=table.c.window_started_at),
        },
    ).returning(table.c.attempts, table.c.window_started_at)
    number, started = db.session.execute(statement).one()
    return Attempt(key, number, limit, started + window)


def user_attempt(username: str) -> Attempt:
    """Reserve an attempt at this username, whoever is asking."""
    return _reserve(f"user:{username[:64]}", current_app.config["LOGIN_MAX_FAILURES_PER_USER"])


def address_attempt(address: str) -> Attempt:
    """Reserve an attempt from this client address, whatever username it tries."""
    limit = current_app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    return _reserve(f"address:{address[:64]}", limit)


def code_attempt(username: str) -> Attempt:
    """Reserve a second-factor attempt for this username; counted apart from passwords."""
    return _reserve(f"code:{username[:64]}", current_app.config["LOGIN_MAX_FAILURES_PER_USER"])


def succeeded(user: Attempt, address: Attempt) -> None:
    """A right password or code: its counter restarts and the address gets its attempt back."""
    db.session.execute(delete(LoginCounter).where(LoginCounter.key == user.key))
    db.session.execute(
        update(LoginCounter)
        .where(LoginCounter.key == address.key, LoginCounter.attempts > 0)
        .values(attempts=LoginCounter.attempts - 1)
    )


def lockout_message(attempt: Attempt) -> str:
    """What a locked username is told; the same words whether or not the user exists."""
    minutes = math.ceil(attempt.retry_after_seconds() / 60)
    return (
        "This account is temporarily locked after too many failed logins. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )
