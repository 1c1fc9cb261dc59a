"""Write the audit log: `record_event` adds a row to the caller's unit of work."""

import logging

from flask import has_request_context, request
from flask_login import current_user

from app.admin.models import AuditEvent
from app.auth.models import User
from app.extensions import db

log = logging.getLogger(__name__)


class Action:
    """Every action the audit log knows; the page's action filter lists them."""

    LOGIN_SUCCESS = "login.success"
    LOGIN_FAILURE = "login.failure"
    # Refused without checking the password: the username or the address is throttled.
    LOGIN_LOCKED = "login.locked"
    LOGOUT = "logout"
    PASSWORD_CHANGE = "password.change"  # noqa: S105 (an action name)
    PASSWORD_RESET = "password.reset"  # noqa: S105 (an action name)
    USER_CREATE = "user.create"
    USER_ROLE = "user.role"
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    SESSION_REVOKE = "session.revoke"
    TOKEN_CREATE = "token.create"  # noqa: S105 (an action name)
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 (an action name)
    # A token asked for scopes beyond its owner's role; nothing was created.
    TOKEN_REFUSE = "token.refuse"  # noqa: S105 (an action name)
    # Company sign-in (OpenID Connect) succeeded; a sign-in refused after the provider
    # or the password answered (a disabled user, no role, local passwords off); an
    # admin marked or unmarked a break-glass admin.
    LOGIN_OIDC = "login.oidc"
    LOGIN_REFUSED = "login.refused"
    USER_BREAK_GLASS = "user.break_glass"
    RULE_CREATE = "rule.create"
    RULE_UPDATE = "rule.update"
    RULE_DELETE = "rule.delete"
    RULE_ENABLE = "rule.enable"
    RULE_DISABLE = "rule.disable"
    SILENCE_CREATE = "silence.create"
    SILENCE_EXPIRE = "silence.expire"
    CHANNEL_CREATE = "channel.create"
    CHANNEL_UPDATE = "channel.update"
    CHANNEL_DELETE = "channel.delete"
    ALERT_ACK = "alert.ack"
    # Escalation policies (app.alerts.policy_routes) and each step an alert escalated to.
    POLICY_CREATE = "policy.create"
    POLICY_UPDATE = "policy.update"
    POLICY_DELETE = "policy.delete"
    ALERT_ESCALATE = "alert.escalate"
    # A channel's grouping (labels, group wait, interval, repeat) changed.
    CHANNEL_GROUPING = "channel.grouping"
    POSITIONS_DELETE = "positions.delete"
    # Bulk writes from the shell: one entry per command run, with counts.
    POSITIONS_IMPORT = "positions.import"
    POSITIONS_PRUNE = "positions.prune"
    # The second factor: sign-in with a code, its enrolment, removal and admin reset.
    LOGIN_CODE_FAILURE = "login.code_failure"
    SECOND_FACTOR_ENROL = "second_factor.enrol"
    SECOND_FACTOR_REMOVE = "second_factor.remove"
    SECOND_FACTOR_RESET = "second_factor.reset"
    RECOVERY_CODES_REPLACE = "second_factor.recovery_codes"
    # The desk's sign-in policy (local passwords, roles that need a second factor).
    SIGN_IN_POLICY = "sign_in_policy.change"
    # Reconciliations (a pair of accounts compared), defined on the page or with `flask recon`.
    RECON_CREATE = "recon.create"
    RECON_UPDATE = "recon.update"
    RECON_DELETE = "recon.delete"

    ALL: tuple[str, ...]  # every action above, set below the class


# In the order written (the audit filter lists them so): a new action is one line, and
# `record_event` can never refuse one that was declared.
Action.ALL = tuple(value for name, value in vars(Action).items() if name.isupper())


CLI_ACTOR = "cli"
ANONYMOUS_ACTOR = "anonymous"

# Detail keys that could carry a secret are dropped whatever the caller passes.
SECRET_MARKERS = ("password", "secret", "cookie", "token_hash", "session_token", "authorization")


def _scrub(detail: dict | None) -> dict | None:
    if not detail:
        return None
    kept = {}
    for key, value in detail.items():
        if any(marker in key.lower() for marker in SECRET_MARKERS):
            log.error("audit detail key %r dropped: it may hold a secret", key)
            continue
        kept[key] = value
    return kept or None


def _actor(actor: User | str | None) -> tuple[int | None, str]:
    if isinstance(actor, User):
        return actor.id, actor.username
    if isinstance(actor, str):
        return None, actor[:64]
    if has_request_context() and getattr(current_user, "is_authenticated", False):
        return current_user.id, current_user.username
    return None, ANONYMOUS_ACTOR


def record_event(
    action: str,
    *,
    target: str | None = None,
    detail: dict | None = None,
    actor: User | str | None = None,
) -> AuditEvent:
    """Add an audit row to the current session; the caller commits it.

    `actor` is a User, a name such as "cli", or None for the request's user
    (anonymous when nobody is logged in). `detail` must never hold a secret.
    """
    if action not in Action.ALL:
        raise ValueError(f"unknown audit action {action!r}")
    actor_id, actor_name = _actor(actor)
    address = agent = None
    if has_request_context():
        address = (request.remote_addr or "")[:64] or None
        agent = (request.user_agent.string or "")[:255] or None
    event = AuditEvent(
        actor_id=actor_id,
        actor_name=actor_name,
        action=action,
        target=target[:200] if target else None,
        detail=_scrub(detail),
        ip_address=address,
        user_agent=agent,
    )
    db.session.add(event)
    return event


def user_target(user: User) -> str:
    return f"user:{user.username}"
