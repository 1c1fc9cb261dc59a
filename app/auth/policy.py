"""The desk's sign-in policy: local passwords on or off, and which roles need a second factor."""

from sqlalchemy import select

from app.auth.models import AuthPolicy, Role, User
from app.extensions import db

POLICY_ID = 1


def current_policy() -> AuthPolicy:
    """The stored policy (row 1), or an unsaved default: local passwords on, no factor required."""
    policy = db.session.get(AuthPolicy, POLICY_ID)
    if policy is None:
        policy = AuthPolicy(id=POLICY_ID, local_passwords=True, second_factor_roles=[])
    return policy


def has_second_factor(user) -> bool:
    """True once the user confirmed a TOTP enrolment with a first code."""
    return getattr(user, "totp_enabled_at", None) is not None


def second_factor_required(user) -> bool:
    """True when the policy makes the user's role sign in with a second factor."""
    return user.role in (current_policy().second_factor_roles or [])


def active_break_glass_admins() -> list[User]:
    """Admins who may still use a local password when local passwords are off."""
    return list(
        db.session.execute(
            select(User)
            .where(User.role == Role.ADMIN, User.active.is_(True), User.break_glass.is_(True))
            .order_by(User.username)
        ).scalars()
    )
