"""Server-side sessions: the cookie holds a random token, the database its hash."""

import hashlib
import secrets
from datetime import timedelta

from flask import current_app, request
from sqlalchemy import bindparam, select

from app.auth.models import User, UserSession
from app.db_types import utcnow
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


# Runs on every request, so it is built once: SQLAlchemy then reuses the statement's
# cache key and compiled form instead of rebuilding them. A plain inner join loads
# both rows; joinedload's eager-loading machinery cost more than the query itself.
SESSION_BY_TOKEN_HASH = (
    select(UserSession, User)
    .join(UserSession.user)
    .where(UserSession.token_hash == bindparam("token_hash"))
)


def load_session_user(token: str) -> User | None:
    """Return the user of a live session, or None if it is revoked, expired or unknown."""
    found = db.session.execute(SESSION_BY_TOKEN_HASH, {"token_hash": hash_token(token)}).first()
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or not user.active:
        return None
    cfg = current_app.config
    now = utcnow()
    idle = timedelta(seconds=cfg["SESSION_IDLE_TIMEOUT_SECONDS"])
    absolute = timedelta(seconds=cfg["SESSION_ABSOLUTE_TIMEOUT_SECONDS"])
    if now - row.last_seen_at > idle:
        revoke(row, "idle")
        db.session.commit()
        return None
    if now - row.created_at > absolute:
        revoke(row, "expired")
        db.session.commit()
        return None
    # The live pages' own refreshes do not count as activity: an unattended screen
    # still reaches the idle limit.
    touched = now - row.last_seen_at > timedelta(seconds=cfg["SESSION_TOUCH_INTERVAL_SECONDS"])
    if touched and request.headers.get("X-Background-Refresh") != "1":
        row.last_seen_at = now
        db.session.commit()
    user.session_token = token
    user.current_session = row
    return user


def revoke(row: UserSession, reason: str) -> None:
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        row.revoked_reason = reason


def revoke_all(user: User, reason: str, *, keep: UserSession | None = None) -> int:
    """Revoke every live session of the user except `keep`; return how many."""
    count = 0
    for row in active_sessions(user):
        if keep is not None and row.id == keep.id:
            continue
        revoke(row, reason)
        count += 1
    return count


def active_sessions(user: User) -> list[UserSession]:
    return list(
        db.session.execute(
            db.select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .order_by(UserSession.last_seen_at.desc())
        ).scalars()
    )
