"""Who a company sign-in makes: the user found, created or updated from the provider's
claims, or a refusal saying why; every change is audited, the caller commits."""

import logging
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.admin.audit import Action, record_event, user_target
from app.auth import sessions
from app.auth.models import (
    USERNAME_MAX_LENGTH,
    Role,
    User,
    UsernameError,
    normalise_username,
)
from app.auth.oidc import OIDCSettings, SignInRefused, groups_from_claims, provider, role_for
from app.auth.passwords import hash_password
from app.auth.policy import current_policy
from app.extensions import db

log = logging.getLogger(__name__)

# The audit log's actor for what the provider's answer changed.
OIDC_ACTOR = "oidc"
FALLBACK_USERNAME = "oidc-user"
# Groups named in an audit row, at most.
AUDIT_GROUPS = 20


def account_for(settings: OIDCSettings, claims: dict) -> User:
    """The user the validated claims sign in: found by (issuer, subject), created on the
    first sign-in, their role set from their groups at each one.

    Raises SignInRefused for a disabled user or one whose groups give no role. A role
    lowered at the provider ends the user's sessions, which had the higher role.
    """
    issuer, subject = claims["iss"], claims["sub"]
    groups = groups_from_claims(claims, settings.groups_claim)
    role = role_for(settings, groups)
    user = db.session.execute(
        select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject)
    ).scalar_one_or_none()
    if user is not None and not user.active:
        # The provider vouches for who they are, not for whether they may use this desk.
        raise SignInRefused(
            "disabled",
            "Your account here is disabled. Ask an admin.",
            user=user.username,
        )
    if role is None:
        if user is not None:
            _end_sessions(user, "role_removed")
        raise _no_role(settings, groups, user)
    if user is None:
        return _create(issuer, subject, claims, role, groups)
    if user.role != role:
        _change_role(user, role, groups)
    return user


def _no_role(settings: OIDCSettings, groups: list[str] | None, user: User | None):
    if groups is None:
        return SignInRefused(
            "no_groups_claim",
            f"Your sign-in at {settings.provider_name} did not say which groups you are in, "
            "so it gives you no role here. Ask an admin.",
            claim=settings.groups_claim,
            user=user.username if user else None,
        )
    return SignInRefused(
        "no_mapped_group",
        f"None of your groups at {settings.provider_name} gives access to TradingMonitor. "
        "Ask an admin.",
        groups=groups[:AUDIT_GROUPS],
        user=user.username if user else None,
    )


def _create(issuer: str, subject: str, claims: dict, role: str, groups) -> User:
    user = User(
        username=unique_username(claims),
        # The hash of a secret nobody is shown: no password matches it, and a password
        # tried against it takes as long as against anyone's.
        password_hash=hash_password(secrets.token_urlsafe(32)),
        role=role,
        # Set here, not left to the column default: login_user reads it before a flush.
        active=True,
        oidc_issuer=issuer,
        oidc_subject=subject,
    )
    try:
        # Two first sign-ins of one person at once (two tabs): the second finds the
        # subject or the name taken and is refused instead of failing.
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError:
        raise SignInRefused(
            "sign_in_clash", "Another sign-in of yours was under way. Try again."
        ) from None
    record_event(
        Action.USER_CREATE,
        target=user_target(user),
        detail={
            "role": role,
            "source": "oidc",
            "subject": subject[:100],
            "groups": (groups or [])[:AUDIT_GROUPS],
        },
        actor=OIDC_ACTOR,
    )
    log.info("oidc: created user %s role=%s", user.username, role)
    return user


def _change_role(user: User, role: str, groups) -> None:
    old = user.role
    user.role = role
    ended = 0
    if Role.rank(role) < Role.rank(old):
        ended = _end_sessions(user, "role_lowered")
    record_event(
        Action.USER_ROLE,
        target=user_target(user),
        detail={
            "from": old,
            "to": role,
            "source": "oidc",
            "groups": (groups or [])[:AUDIT_GROUPS],
            "sessions_ended": ended,
        },
        actor=OIDC_ACTOR,
    )
    log.info("oidc: user %s role %s -> %s, %d session(s) ended", user.username, old, role, ended)


def _end_sessions(user: User, reason: str) -> int:
    return sessions.revoke_all(user, reason)


def _candidate_name(claims: dict) -> str:
    for key in ("preferred_username", "email"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return f"oidc-{claims['sub']}"


def unique_username(claims: dict) -> str:
    """A valid username no one has, from preferred_username or email (the subject if
    neither): spaces become dashes, and a taken name gets -2, -3, … ."""
    raw = "".join(
        "-" if c.isspace() or not c.isprintable() else c for c in _candidate_name(claims).strip()
    )
    try:
        base = normalise_username(raw[:USERNAME_MAX_LENGTH])
    except UsernameError:
        base = FALLBACK_USERNAME
    name, number = base, 1
    while db.session.execute(select(User.id).where(User.username == name)).first():
        number += 1
        suffix = f"-{number}"
        name = base[: USERNAME_MAX_LENGTH - len(suffix)] + suffix
    return name


def record_refusal(refusal: SignInRefused) -> None:
    """Audit a refused company sign-in with its reason (the caller commits)."""
    detail = {"reason": refusal.reason, "method": "oidc"}
    detail.update({key: value for key, value in refusal.detail.items() if value is not None})
    user = refusal.detail.get("user")
    record_event(
        Action.LOGIN_REFUSED,
        target=f"user:{user}" if user else None,
        detail=detail,
    )
    log.warning("oidc sign-in refused: reason=%s detail=%s", refusal.reason, refusal.detail)


def password_sign_in_allowed(user: User) -> bool:
    """May this user sign in with a local password? Not a provider's user, and with local
    passwords switched off, only a break-glass admin."""
    if user.oidc_subject is not None:
        return False
    if current_policy().local_passwords:
        return True
    return user.break_glass and user.role == Role.ADMIN


def password_refusal_message(user: User) -> str:
    """What a person whose password was right, but may not be used, is told."""
    prov = provider()
    where = f"Sign in with {prov.settings.provider_name}" if prov else "Ask an admin"
    if user.oidc_subject is not None:
        return f"Your account signs in through the company's provider. {where}."
    return f"Local passwords are switched off. {where}."
