"""Server-side sessions: the cookie holds a random token, the database its hash."""

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app, request
from sqlalchemy import Row, select, update

from app.auth.models import Role, User, UserSession
from app.db_types import utcnow
from app.extensions import db


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(user: User, method: str = "password") -> str:
    """Create a session row for the user and return its raw token (256 bits).

    `method` records how the user signed in: "password", "password+totp",
    "recovery-code" or "oidc".
    """
    token = secrets.token_urlsafe(32)
    row = UserSession(
        user=user,
        method=method,
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

    Every page needs the role, name and timezone, few change anything: a route that
    changes the user or the session row takes them from `record` and
    `current_session`, loaded on first use. The values are read again on every
    request, so a revocation, a disabled account or a new role applies to the very
    next one.
    """

    is_authenticated = True
    is_anonymous = False

    def __init__(self, row: Row, token: str):
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


def _session_by_token_hash(token_hash: str) -> Row | None:
    """The session with this token hash and the user's fields the pages show."""
    return db.session.execute(
        select(
            UserSession.id.label("session_id"),
            UserSession.user_id,
            UserSession.created_at,
            UserSession.last_seen_at,
            UserSession.revoked_at,
            User.username,
            User.role,
            User.active,
            User.timezone,
            User.timezone_chosen,
            User.must_change_password,
        )
        .join(User, UserSession.user_id == User.id)
        .where(UserSession.token_hash == token_hash)
    ).first()


def load_session_user(token: str) -> SessionUser | None:
    """Return the user of a live session, or None if it is revoked, expired or unknown."""
    row = _session_by_token_hash(hash_token(token))
    if row is None:
        return None
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
        db.session.execute(
            update(UserSession).where(UserSession.id == row.session_id).values(last_seen_at=now)
        )
        db.session.commit()
    return SessionUser(row, token)


def _expire(session_id: int, now: datetime, reason: str) -> None:
    db.session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
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
