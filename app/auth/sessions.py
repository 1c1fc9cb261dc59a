"""Server-side sessions: the cookie holds a random token, the database its hash."""

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import NamedTuple

from flask import current_app, request
from sqlalchemy import bindparam, select, update

from app.auth.models import Role, User, UserSession
from app.db_reads import DriverRead
from app.db_types import driver_utc, utcnow
from app.extensions import db


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(user: User) -> str:
    """Create a session row for the user and return its raw token (256 bits)."""
    token = secrets.token_urlsafe(32)
    row = UserSession(
        user=user,
        token_hash=hash_token(token),
        ip_address=request.remote_addr,
        user_agent=(request.user_agent.string or "")[:255],
    )
    db.session.add(row)
    user.session_token = token
    user.current_session = row
    return token


class SessionUser:
    """The user of a live session, as the session check read them this request.

    Plain values from one Core row, no ORM objects: every page needs the role, name
    and timezone, few change anything. A route that changes the user or the session
    row takes them from `record` and `current_session`, loaded on first use. The
    values are read again on every request, so a revocation, a disabled account or a
    new role applies to the very next one.
    """

    is_authenticated = True
    is_anonymous = False

    def __init__(self, row: "SessionRow", token: str):
        self.id = row.user_id
        self.username = row.username
        self.role = row.role
        self.active = row.active
        self.timezone = row.timezone
        self.timezone_chosen = row.timezone_chosen
        self.must_change_password = row.must_change_password
        self.session_id = row.session_id
        self.session_token = token
        self._record = None
        self._session_row = None

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        """Flask-Login keeps this in the cookie: the session token, not the user id."""
        return self.session_token

    def has_role(self, role: str) -> bool:
        return Role.rank(self.role) >= Role.rank(role)

    @property
    def record(self) -> User:
        """The user's ORM row, for routes that change it (the caller commits)."""
        if self._record is None:
            self._record = db.session.get(User, self.id)
        return self._record

    @property
    def current_session(self) -> UserSession:
        """The ORM row of the session serving this request."""
        if self._session_row is None:
            self._session_row = db.session.get(UserSession, self.session_id)
        return self._session_row

    def __repr__(self) -> str:
        return f"<SessionUser {self.username} {self.role}>"


class SessionRow(NamedTuple):
    """A session and its user, as the session check reads them."""

    session_id: int
    user_id: int
    created_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None
    username: str
    role: str
    active: bool
    timezone: str
    timezone_chosen: bool
    must_change_password: bool

    @classmethod
    def from_driver(cls, values: tuple) -> "SessionRow":
        """From the driver's values: times as text and flags as 0/1 on SQLite."""
        row = cls._make(values)
        return row._replace(
            created_at=driver_utc(row.created_at),
            last_seen_at=driver_utc(row.last_seen_at),
            revoked_at=driver_utc(row.revoked_at),
            active=bool(row.active),
            timezone_chosen=bool(row.timezone_chosen),
            must_change_password=bool(row.must_change_password),
        )


# Runs on every request: read on the driver's cursor (app.db_reads), one row of
# table columns, no ORM objects.
_session = UserSession.__table__.c
_user = User.__table__.c
SESSION_BY_TOKEN_HASH = DriverRead(
    select(
        _session.id,
        _session.user_id,
        _session.created_at,
        _session.last_seen_at,
        _session.revoked_at,
        _user.username,
        _user.role,
        _user.active,
        _user.timezone,
        _user.timezone_chosen,
        _user.must_change_password,
    )
    .join_from(UserSession.__table__, User.__table__, _session.user_id == _user.id)
    .where(_session.token_hash == bindparam("token_hash"))
)
TOUCH_SESSION = (
    update(UserSession.__table__)
    .where(_session.id == bindparam("session_id"))
    .values(last_seen_at=bindparam("now"))
)
EXPIRE_SESSION = (
    update(UserSession.__table__)
    .where(_session.id == bindparam("session_id"), _session.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"), revoked_reason=bindparam("reason"))
)


def load_session_user(token: str) -> SessionUser | None:
    """Return the user of a live session, or None if it is revoked, expired or unknown."""
    found = SESSION_BY_TOKEN_HASH.first(token_hash=hash_token(token))
    if found is None:
        return None
    row = SessionRow.from_driver(found)
    if row.revoked_at is not None or not row.active:
        return None
    cfg = current_app.config
    now = utcnow()
    if now - row.last_seen_at > timedelta(seconds=cfg["SESSION_IDLE_TIMEOUT_SECONDS"]):
        _expire(row.session_id, now, "idle")
        return None
    if now - row.created_at > timedelta(seconds=cfg["SESSION_ABSOLUTE_TIMEOUT_SECONDS"]):
        _expire(row.session_id, now, "expired")
        return None
    # The live pages' own refreshes do not count as activity: an unattended screen
    # still reaches the idle limit.
    touched = now - row.last_seen_at > timedelta(seconds=cfg["SESSION_TOUCH_INTERVAL_SECONDS"])
    if touched and request.headers.get("X-Background-Refresh") != "1":
        db.session.execute(TOUCH_SESSION, {"session_id": row.session_id, "now": now})
        db.session.commit()
    return SessionUser(row, token)


def _expire(session_id: int, now: datetime, reason: str) -> None:
    db.session.execute(EXPIRE_SESSION, {"session_id": session_id, "now": now, "reason": reason})
    db.session.commit()


def revoke(row: UserSession, reason: str) -> None:
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        row.revoked_reason = reason


def revoke_all(user: User | SessionUser, reason: str, *, keep: UserSession | None = None) -> int:
    """Revoke every live session of the user except `keep`; return how many."""
    count = 0
    for row in active_sessions(user):
        if keep is not None and row.id == keep.id:
            continue
        revoke(row, reason)
        count += 1
    return count


def active_sessions(user: User | SessionUser) -> list[UserSession]:
    return list(
        db.session.execute(
            db.select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .order_by(UserSession.last_seen_at.desc())
        ).scalars()
    )
