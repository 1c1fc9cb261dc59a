"""Password policy and argon2id hashing."""

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app


class PasswordPolicyError(ValueError):
    """A password that the policy refuses; the message says why."""


def _hasher() -> PasswordHasher:
    hasher = current_app.extensions.get("tm_password_hasher")
    if hasher is None:
        cfg = current_app.config
        hasher = PasswordHasher(
            time_cost=cfg["PASSWORD_TIME_COST"],
            memory_cost=cfg["PASSWORD_MEMORY_COST_KIB"],
            parallelism=cfg["PASSWORD_PARALLELISM"],
            type=Type.ID,
        )
        current_app.extensions["tm_password_hasher"] = hasher
    return hasher


def check_policy(password: str) -> None:
    """Raise PasswordPolicyError unless the password is acceptable."""
    cfg = current_app.config
    if len(password) < cfg["PASSWORD_MIN_LENGTH"]:
        raise PasswordPolicyError(
            f"Password must be at least {cfg['PASSWORD_MIN_LENGTH']} characters."
        )
    if len(password) > cfg["PASSWORD_MAX_LENGTH"]:
        raise PasswordPolicyError(
            f"Password must be at most {cfg['PASSWORD_MAX_LENGTH']} characters."
        )


def hash_password(password: str) -> str:
    """Hash a password that passed the policy."""
    check_policy(password)
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if the password matches; never raises for a wrong one."""
    if len(password) > current_app.config["PASSWORD_MAX_LENGTH"]:
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def burn_verification_time(password: str) -> None:
    """Spend the time a real check would, so unknown users answer like known ones."""
    dummy = current_app.extensions.get("tm_dummy_hash")
    if dummy is None:
        dummy = _hasher().hash("dummy-password-for-timing")
        current_app.extensions["tm_dummy_hash"] = dummy
    verify_password(dummy, password)
