"""API tokens: random secrets shown once, stored as hashes, scoped and revocable."""

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import request

from app.admin.audit import Action, record_event, user_target
from app.auth.models import ApiToken, Scope, User
from app.db_types import utcnow
from app.extensions import db

TOKEN_PREFIX = "tm_"  # noqa: S105 (a public prefix)
# last_used_at is written at most this often, so reads stay cheap.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class TokenError(Exception):
    """Why a request's token was refused; `status` is 401 or 403."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ScopeNotAllowed(ValueError):
    """A token asked for scopes its owner's role may not hold."""

    def __init__(self, user: User, scopes: list[str]):
        self.scopes = scopes
        super().__init__(
            f"A {user.role} may not hold the {', '.join(scopes)} scope; "
            f"allowed: {', '.join(Scope.allowed_for(user.role)) or 'none'}."
        )


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    user: User,
    name: str,
    scopes: list[str],
    *,
    accounts: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Add a token for the user; return it and its secret, which is never stored.

    Raises ScopeNotAllowed for scopes beyond the user's role, ValueError for bad input.
    """
    unknown = set(scopes) - set(Scope.ALL)
    if not scopes or unknown:
        raise ValueError(f"scopes must be some of {', '.join(Scope.ALL)}")
    if not user.active:
        raise ValueError(f"{user.username} is disabled and may hold no token")
    beyond = sorted(set(scopes) - set(Scope.allowed_for(user.role)))
    if beyond:
        raise ScopeNotAllowed(user, beyond)
    name = name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise ValueError("token name must be 1 to 64 printable characters")
    if expires_at is not None and expires_at <= utcnow():
        raise ValueError("expiry must be in the future")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        name=name,
        prefix=secret[:10],
        token_hash=hash_secret(secret),
        scopes=sorted(set(scopes)),
        accounts=sorted(set(accounts)) if accounts else None,
        expires_at=expires_at,
    )
    db.session.add(token)
    return token, secret


def record_refusal(
    user: User, name: str, scopes: list[str], *, actor: User | str | None = None
) -> None:
    """Audit a token refused for scopes beyond its owner's role; the caller commits."""
    record_event(
        Action.TOKEN_REFUSE,
        target=user_target(user),
        detail={"name": name, "role": user.role, "scopes": sorted(set(scopes))},
        actor=actor,
    )


def revoke_token(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()


def bearer_secret() -> str:
    """The secret from `Authorization: Bearer …`; tokens anywhere else are refused."""
    for name in ("token", "access_token", "api_key", "apikey"):
        if name in request.args:
            raise TokenError(401, "Send the token in the Authorization header, not the URL.")
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise TokenError(401, "Send an API token as 'Authorization: Bearer <token>'.")
    return secret.strip()


def authenticate(scope: str) -> ApiToken:
    """Return the request's usable token with `scope`, or raise TokenError."""
    secret = bearer_secret()
    token = db.session.execute(
        db.select(ApiToken).where(ApiToken.token_hash == hash_secret(secret))
    ).scalar_one_or_none()
    now = utcnow()
    if token is None or not token.is_usable(now):
        raise TokenError(401, "The token is unknown, revoked or expired.")
    if scope not in token.scopes:
        raise TokenError(403, f"The token lacks the '{scope}' scope.")
    # Checked at every use, so a demoted owner's tokens narrow at the next request.
    if scope not in token.effective_scopes():
        raise TokenError(403, f"The token's owner may no longer use the '{scope}' scope.")
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    return token


def tokens_visible_to(user: User) -> list[ApiToken]:
    """The user's own tokens; admins see everyone's."""
    query = db.select(ApiToken).order_by(ApiToken.created_at.desc())
    if not user.has_role("admin"):
        query = query.where(ApiToken.user_id == user.id)
    return list(db.session.execute(query).scalars())
