"""The second factor: TOTP enrolment, codes after the password, single-use recovery codes.

A code is accepted for the current 30-second step or the one either side of it, and
only for a step later than the last one accepted: the step is written with a
conditional UPDATE, so the same code sent twice, even at the same moment, is
accepted once. Recovery codes are 50 random bits each, stored as SHA-256 hashes,
and spent with the same kind of conditional UPDATE.

Between a correct password and a correct code the browser holds only a pending
marker in its Flask session (the user's id and when the password was right): it is
not a login, so every protected page still answers as to an anonymous visitor.
"""

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
import segno
from flask import current_app, session
from sqlalchemy import delete, func, or_, select, update

from app.auth.models import RecoveryCode, User
from app.auth.policy import has_second_factor, second_factor_required
from app.db_types import utcnow
from app.extensions import db

RECOVERY_CODE_COUNT = 10
# Lower case letters and digits without look-alikes: read off paper and typed.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_CODE_LENGTH = 10  # 31^10: about 50 bits

# Flask session keys: the half-logged-in marker, and "enrol before anything else".
PENDING_KEY = "second_factor_pending"
ENROL_KEY = "second_factor_enrol"

METHOD_TOTP = "password+totp"
METHOD_RECOVERY = "recovery-code"


class SecondFactorError(ValueError):
    """A second-factor change that cannot be made; the message says why."""


# Enrolment.


def start_enrolment(user: User) -> str:
    """Give the user a new secret, in force once confirmed with a first code; return it."""
    if has_second_factor(user):
        raise SecondFactorError("A second factor is already set up; remove it first.")
    user.totp_secret = pyotp.random_base32()
    user.totp_last_step = None
    return user.totp_secret


def pending_secret(user) -> str | None:
    """The secret of an enrolment started but not yet confirmed."""
    if user.totp_secret and user.totp_enabled_at is None:
        return user.totp_secret
    return None


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// URI authenticator apps read from the QR code."""
    issuer = current_app.config["SECOND_FACTOR_ISSUER"]
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=issuer)


def qr_code_data_uri(uri: str) -> str:
    """The QR code of `uri` as an SVG data: URI (the CSP allows data: images)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=4)


def confirm_enrolment(user: User, code: str) -> list[str]:
    """Switch the factor on if `code` fits the pending secret; return new recovery codes."""
    secret = pending_secret(user)
    if secret is None:
        raise SecondFactorError("Start setting up the second factor first.")
    step = matching_step(secret, code, after=None)
    if step is None:
        raise SecondFactorError("That code does not match. Check the device's clock and retry.")
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    return replace_recovery_codes(user)


def remove(user: User) -> None:
    """Switch the factor off: secret, last step and recovery codes go."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


# Codes.


def _clean(code: str) -> str:
    return "".join((code or "").split()).replace("-", "").lower()


def matching_step(secret: str, code: str, *, after: int | None, now: datetime | None = None):
    """The time step (now or one either side) whose code is `code` and later than `after`."""
    code = _clean(code)
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now or utcnow())
    for step in (current - 1, current, current + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def accept_code(user: User, code: str) -> bool:
    """True if `code` is a valid TOTP code of the user never accepted before; spends it."""
    if not has_second_factor(user):
        return False
    step = matching_step(user.totp_secret, code, after=user.totp_last_step)
    if step is None:
        return False
    # Two requests with the same code: the database lets only one of them move the step.
    moved = db.session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        return False
    user.totp_last_step = step
    return True


def _hash_recovery_code(code: str) -> str:
    return hashlib.sha256(_clean(code).encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    half = RECOVERY_CODE_LENGTH // 2
    return f"{raw[:half]}-{raw[half:]}"


def replace_recovery_codes(user: User) -> list[str]:
    """Drop the user's recovery codes and make new ones; return them (shown once)."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(
        RecoveryCode(user_id=user.id, code_hash=_hash_recovery_code(code)) for code in codes
    )
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    """True if `code` is one of the user's unused recovery codes; it is spent."""
    if not has_second_factor(user) or len(_clean(code)) != RECOVERY_CODE_LENGTH:
        return False
    spent = db.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _hash_recovery_code(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    return spent == 1


def check(user: User, code: str) -> str | None:
    """How `code` signs the user in ("password+totp" or "recovery-code"), or None."""
    if accept_code(user, code):
        return METHOD_TOTP
    if use_recovery_code(user, code):
        return METHOD_RECOVERY
    return None


def recovery_codes_left(user) -> int:
    return db.session.execute(
        select(func.count()).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).scalar_one()


# The half-logged-in state.


def begin_pending(user: User, next_url: str | None) -> None:
    """Forget the anonymous session and remember that this user's password was right."""
    session.clear()
    session[PENDING_KEY] = {
        "user": user.id,
        "at": int(utcnow().timestamp()),
        "next": next_url,
    }


def pending() -> tuple[User, str | None] | None:
    """The user whose password was right a moment ago and where they were going, or None.

    The marker expires after SECOND_FACTOR_PENDING_SECONDS; a user disabled or
    without a factor since then is not waiting for a code any more.
    """
    marker = session.get(PENDING_KEY)
    if not isinstance(marker, dict):
        return None
    age = utcnow().timestamp() - marker.get("at", 0)
    user = db.session.get(User, marker.get("user"))
    limit = current_app.config["SECOND_FACTOR_PENDING_SECONDS"]
    if not 0 <= age <= limit or user is None or not user.active or not has_second_factor(user):
        session.pop(PENDING_KEY, None)
        return None
    return user, marker.get("next")


# "Enrol before anything else": set at sign-in for a role that must use a factor.

ENROL_MESSAGE = "Your role must use a second factor. Set it up below to continue."

# What a user who must enrol may still reach before doing so.
ENROL_ENDPOINTS = frozenset(
    {
        "account.index",
        "second_factor.start",
        "second_factor.confirm",
        "account.report_browser_timezone",
        "auth.logout",
    }
)


def enrolment_required(user: User) -> bool:
    """True when the user's role must use a second factor and they have none yet."""
    return second_factor_required(user) and not has_second_factor(user)
