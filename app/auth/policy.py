"""The desk's sign-in policy: local passwords on or off, and which roles need a second factor."""

from sqlalchemy import select

from app.admin.audit import Action, record_event
from app.auth.models import AuthPolicy, Role, User
from app.db_types import utcnow
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
    """True when the policy makes the user's role sign in with a second factor.

    Only local accounts: a user of the identity provider signs in there, with
    whatever factors the provider asks for.
    """
    if getattr(user, "oidc_subject", None):
        return False
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


class PolicyError(ValueError):
    """A policy an admin may not set; the message says why."""


def update_policy(
    local_passwords: bool, second_factor_roles: list[str], *, actor: User | str | None = None
) -> bool:
    """Store the policy and audit what changed; False if nothing did. The caller commits."""
    unknown = [role for role in second_factor_roles if role not in Role.ALL]
    if unknown:
        raise PolicyError(f"Unknown role {unknown[0]!r}.")
    policy = current_policy()
    if not local_passwords and policy.local_passwords and not active_break_glass_admins():
        raise PolicyError(
            "Local passwords stay on: no active admin is marked break-glass, so nobody could "
            "sign in if the identity provider failed. Mark an admin as break-glass first."
        )
    roles = [role for role in Role.ALL if role in second_factor_roles]
    changes = {}
    if policy.local_passwords != local_passwords:
        # Not "local_passwords": the audit log drops keys that look like secrets.
        changes["local_sign_in"] = {"from": policy.local_passwords, "to": local_passwords}
    if list(policy.second_factor_roles or []) != roles:
        changes["second_factor_roles"] = {
            "from": list(policy.second_factor_roles or []),
            "to": roles,
        }
    if not changes:
        return False
    policy.local_passwords = local_passwords
    policy.second_factor_roles = roles
    policy.updated_at = utcnow()
    db.session.add(policy)
    event = record_event(
        Action.SIGN_IN_POLICY, target="sign_in_policy", detail=changes, actor=actor
    )
    policy.updated_by = event.actor_name
    return True
