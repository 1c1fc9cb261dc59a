"""Users, their server-side sessions, API tokens and the login attempt counters."""

from datetime import datetime, time

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    String,
    Time,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db_types import UTCDateTime, utcnow
from app.extensions import db


class Role:
    """Roles in ascending order of rights; each includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    ALL = (VIEWER, OPERATOR, ADMIN)

    @classmethod
    def rank(cls, role: str) -> int:
        return cls.ALL.index(role)


USERNAME_MAX_LENGTH = 64
EMAIL_MAX_LENGTH = 254
# When a user's daily digest goes out until they choose a time (their local time).
DEFAULT_DIGEST_AT = time(8, 0)


class UsernameError(ValueError):
    """A username that cannot be stored; the message says why."""


def normalise_username(raw: str) -> str:
    """The stored form of a username (trimmed, lower case), or UsernameError saying why not."""
    name = (raw or "").strip().lower()
    if not name or len(name) > USERNAME_MAX_LENGTH:
        raise UsernameError(f"Username must be 1 to {USERNAME_MAX_LENGTH} characters.")
    if any(c.isspace() or not c.isprintable() for c in name):
        raise UsernameError("Username must not contain spaces or control characters.")
    return name


class User(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased: usernames are case-insensitive everywhere.
    username: Mapped[str] = mapped_column(String(USERNAME_MAX_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.VIEWER)
    active: Mapped[bool] = mapped_column(default=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # False until the user picks a zone on the account page; until then the
    # browser's own zone, reported by the page, replaces `timezone`.
    timezone_chosen: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set by an admin's password reset: every page but the password form is closed
    # to the user's sessions until they choose a new password.
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Company sign-in: who the identity provider says this user is. Both are set on
    # the first OpenID Connect sign-in; a user with them has no usable local password.
    oidc_issuer: Mapped[str | None] = mapped_column(String(255))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    # With local passwords switched off for everyone, the admins who may still use
    # theirs (so a broken identity provider does not lock the desk out).
    break_glass: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The second factor (TOTP): the base32 secret, set when enrolment starts and
    # in force once confirmed with a first code (totp_enabled_at). The time step of
    # the last accepted code is kept so no code is ever accepted twice.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # The daily digest (app.alerts.digest): the address it goes to, whether the user
    # wants it, and at what time of day in their own timezone.
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX_LENGTH))
    digest_enabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    digest_at: Mapped[time] = mapped_column(
        Time, default=DEFAULT_DIGEST_AT, server_default=DEFAULT_DIGEST_AT.isoformat()
    )

    sessions: Mapped[list["UserSession"]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject"),)

    # The raw session token of the request being served; never stored.
    session_token = None
    current_session = None

    # Flask-Login protocol.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str | None:
        """Flask-Login keeps this in the cookie: the session token, not the user id."""
        return self.session_token

    def has_role(self, role: str) -> bool:
        return Role.rank(self.role) >= Role.rank(role)

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"


class UserSession(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    # How the session was signed in: "password", "password+totp", "recovery-code", "oidc".
    method: Mapped[str | None] = mapped_column(String(32))

    user: Mapped[User] = relationship(back_populates="sessions")

    __table_args__ = (Index(None, "user_id", "revoked_at"),)


class RecoveryCode(db.Model):
    """A single-use second-factor recovery code; only its hash is kept."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index(None, "user_id"),)


class AuthPolicy(db.Model):
    """The desk's sign-in policy, set by admins: one row (id 1), defaults when absent."""

    id: Mapped[int] = mapped_column(primary_key=True)
    # False: only break-glass admins may sign in with a local password.
    local_passwords: Mapped[bool] = mapped_column(default=True, server_default=true())
    # Roles whose local users must use a second factor (enrol at next sign-in).
    second_factor_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class LoginCounter(db.Model):
    """Login attempts in the current window for one key ("user:<name>" or "address:<ip>").

    One row per key, bumped by a single upsert before the password is checked: the
    database serialises the bumps, so parallel attempts each get their own number.
    """

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    attempts: Mapped[int]
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Scope:
    """What an API token may do."""

    INGEST = "ingest"
    READ = "read"
    ALL = (INGEST, READ)
    # What each role may hold. Pushing snapshots feeds every alert and every page, so
    # only admins may; a token is cut back to its owner's current role at every use.
    BY_ROLE = {
        Role.VIEWER: (READ,),
        Role.OPERATOR: (READ,),
        Role.ADMIN: (INGEST, READ),
    }

    @classmethod
    def allowed_for(cls, role: str) -> tuple[str, ...]:
        return cls.BY_ROLE.get(role, ())


class ApiToken(db.Model):
    """A bearer token for the trading system and other tools; only its hash is kept."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    # The first characters of the secret, shown in lists so people can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    # None: any account; otherwise the only accounts this token may write.
    accounts: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    __table_args__ = (Index(None, "user_id"),)

    def is_usable(self, now: datetime) -> bool:
        return (
            self.revoked_at is None
            and (self.expires_at is None or self.expires_at > now)
            and self.user.active
        )

    def effective_scopes(self) -> list[str]:
        """The scopes this token grants now: its own, cut to what its owner may hold."""
        if not self.user.active:
            return []
        allowed = Scope.allowed_for(self.user.role)
        return [scope for scope in self.scopes if scope in allowed]

    def may_write(self, account: str) -> bool:
        return self.accounts is None or account in self.accounts
