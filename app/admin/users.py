"""User administration: each change is checked, applied and audited; the caller commits."""

import secrets
import string

from flask import current_app
from sqlalchemy import func, select

from app.admin.audit import Action, record_event, user_target
from app.auth import sessions, tokens, totp
from app.auth.models import (
    ApiToken,
    Role,
    User,
    UsernameError,
    UserSession,
    normalise_username,
)
from app.auth.passwords import hash_password
from app.auth.policy import active_break_glass_admins, current_policy
from app.extensions import db

# No look-alike characters: a generated password is read off the screen and typed.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "Il1O0o")
GENERATED_PASSWORD_LENGTH = 20


class AdminError(ValueError):
    """A change an admin may not make; the message says why."""


def list_users() -> list[tuple[User, int, int]]:
    """Every user with their number of live sessions and usable tokens."""
    live = (
        select(func.count())
        .where(UserSession.user_id == User.id, UserSession.revoked_at.is_(None))
        .correlate(User)
        .scalar_subquery()
    )
    active_tokens = (
        select(func.count())
        .where(ApiToken.user_id == User.id, ApiToken.revoked_at.is_(None))
        .correlate(User)
        .scalar_subquery()
    )
    query = select(User, live, active_tokens).order_by(User.username)
    return [tuple(row) for row in db.session.execute(query)]


def user_tokens(user: User) -> list[ApiToken]:
    return list(
        db.session.execute(
            select(ApiToken)
            .where(ApiToken.user_id == user.id)
            .order_by(ApiToken.created_at.desc())
        ).scalars()
    )


def new_username(raw: str) -> str:
    """The stored form of a username no one has, or AdminError saying what is wrong."""
    try:
        name = normalise_username(raw)
    except UsernameError as exc:
        raise AdminError(str(exc)) from None
    if db.session.execute(select(User.id).where(User.username == name)).first():
        raise AdminError(f"A user named {name!r} exists.")
    return name


def generate_password() -> str:
    length = max(GENERATED_PASSWORD_LENGTH, current_app.config["PASSWORD_MIN_LENGTH"])
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def create_user(
    username: str, role: str, password: str | None, *, must_change_password: bool
) -> tuple[User, str | None]:
    """Add a user; return it and the generated password (None if one was given).

    Raises AdminError for a bad username and PasswordPolicyError for a bad password.
    """
    name = new_username(username)
    if role not in Role.ALL:
        raise AdminError("Unknown role.")
    generated = None if password else generate_password()
    user = User(
        username=name,
        password_hash=hash_password(password or generated),
        role=role,
        must_change_password=must_change_password,
    )
    db.session.add(user)
    record_event(
        Action.USER_CREATE,
        target=user_target(user),
        detail={
            "role": role,
            "generated_initial": generated is not None,
            "must_change": must_change_password,
        },
    )
    return user, generated


def _other_active_admins(user: User) -> int:
    # Every active admin's row is locked (PostgreSQL), the user's own included and in
    # one order: two admins demoting each other then run one after the other, and the
    # second sees the first's change and is refused. Locking only the other admins'
    # rows let both pass the check and then deadlock on each other's update.
    ids = db.session.execute(
        select(User.id)
        .where(User.role == Role.ADMIN, User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).scalars()
    return sum(1 for admin_id in ids if admin_id != user.id)


def _check_keeps_an_admin(actor: User, user: User, what: str) -> None:
    if user.id == actor.id:
        raise AdminError(f"You cannot {what} yourself; ask another admin.")
    if user.role == Role.ADMIN and user.active and _other_active_admins(user) == 0:
        raise AdminError("At least one active admin must remain.")


def change_role(actor: User, user: User, role: str) -> bool:
    """Give the user a role; False if it is the one they have."""
    if role not in Role.ALL:
        raise AdminError("Unknown role.")
    if role == user.role:
        return False
    if user.role == Role.ADMIN:
        _check_keeps_an_admin(actor, user, "remove the admin role from")
    old = user.role
    user.role = role
    record_event(Action.USER_ROLE, target=user_target(user), detail={"from": old, "to": role})
    return True


def disable_user(actor: User, user: User) -> int:
    """Disable the user and end their live sessions now; return how many ended."""
    if not user.active:
        raise AdminError(f"{user.username!r} is already disabled.")
    _check_keeps_an_admin(actor, user, "disable")
    user.active = False
    ended = sessions.revoke_all(user, "user_disabled")
    record_event(Action.USER_DISABLE, target=user_target(user), detail={"sessions_ended": ended})
    return ended


def enable_user(user: User) -> None:
    if user.active:
        raise AdminError(f"{user.username!r} is already enabled.")
    user.active = True
    record_event(Action.USER_ENABLE, target=user_target(user))


def set_break_glass(user: User, on: bool, *, actor: User | str | None = None) -> bool:
    """Mark or unmark a break-glass admin, who may still use a local password when local
    passwords are switched off; False if nothing changed."""
    if user.break_glass == on:
        return False
    if on and user.role != Role.ADMIN:
        raise AdminError("Only an admin can be a break-glass admin.")
    if on and user.oidc_subject is not None:
        raise AdminError(
            f"{user.username!r} signs in through the company's provider and has no local password."
        )
    if not on and not current_policy().local_passwords:
        others = [u for u in active_break_glass_admins() if u.id != user.id]
        if not others:
            raise AdminError(
                "Local passwords are switched off: the last break-glass admin stays until "
                "another is marked or local passwords are switched on."
            )
    user.break_glass = on
    record_event(Action.USER_BREAK_GLASS, target=user_target(user), detail={"on": on}, actor=actor)
    return True


def reset_password(actor: User, user: User) -> str:
    """Give the user a temporary password they must change at next login; return it.

    Their sessions end; their API tokens keep working.
    """
    if user.id == actor.id:
        raise AdminError("Change your own password on the account page.")
    temporary = generate_password()
    user.password_hash = hash_password(temporary)
    user.must_change_password = True
    ended = sessions.revoke_all(user, "password_reset")
    record_event(Action.PASSWORD_RESET, target=user_target(user), detail={"sessions_ended": ended})
    return temporary


def revoke_session(row: UserSession, reason: str, *, actor: User | str | None = None) -> None:
    """End one session and audit it (actor: the request's user by default)."""
    sessions.revoke(row, reason)
    record_event(
        Action.SESSION_REVOKE,
        target=f"session:{row.id}",
        detail={"user": row.user.username},
        actor=actor,
    )


def revoke_token(token: ApiToken, *, actor: User | str | None = None) -> None:
    """Revoke one API token and audit it (actor: the request's user by default)."""
    tokens.revoke_token(token)
    record_event(
        Action.TOKEN_REVOKE,
        target=f"token:{token.id}",
        detail={"name": token.name, "owner": token.user.username},
        actor=actor,
    )


def reset_second_factor(user: User, *, actor: User | str | None = None) -> int:
    """Remove the user's second factor and end their sessions; return how many ended.

    For a user who lost their device: they sign in with the password alone next
    time (and enrol again if their role must use a factor).
    """
    if actor is not None and getattr(actor, "id", None) == user.id:
        raise AdminError("Remove your own second factor on the account page.")
    if user.totp_secret is None:
        raise AdminError(f"{user.username!r} has no second factor.")
    totp.remove(user)
    ended = sessions.revoke_all(user, "second_factor_reset")
    record_event(
        Action.SECOND_FACTOR_RESET,
        target=user_target(user),
        detail={"sessions_ended": ended},
        actor=actor,
    )
    return ended
