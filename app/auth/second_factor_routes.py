"""The second factor over HTTP: the code after the password (/login/code), and setting
it up, removing it and replacing recovery codes from the account page."""

import logging
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user

from app.admin.audit import Action, record_event, user_target
from app.auth import oidc_accounts, sessions, throttle, totp
from app.auth.access import public, requires_role, unauthorized
from app.auth.account_routes import render_account
from app.auth.forms import CodeForm, PasswordConfirmForm
from app.auth.models import Role
from app.auth.passwords import verify_password
from app.auth.policy import has_second_factor, second_factor_required
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("second_factor", __name__)

# A code used once (at set-up, or a moment ago) is refused too: the next one works.
CODE_FAILED = (
    "That code is not valid. Each code works once: enter the next code your app shows, "
    "or a recovery code."
)


@bp.route("/login/code", methods=["GET", "POST"])
@public
def code():
    """Ask for the second factor after a correct password, then sign the user in."""
    if current_user.is_authenticated:
        return redirect(url_for("positions.overview"))
    waiting = totp.pending()
    # Local passwords switched off since the password was right count as no password.
    if waiting is not None and not oidc_accounts.password_sign_in_allowed(waiting[0]):
        session.pop(totp.PENDING_KEY, None)
        waiting = None
    if waiting is None:
        # No password was right a moment ago: this page grants nothing, ask for one.
        return unauthorized()
    user, next_url = waiting
    form = CodeForm()
    if not form.validate_on_submit():
        return render_template("auth/code.html", form=form), 400 if form.is_submitted() else 200

    address = request.remote_addr or "unknown"
    # Counted and committed before the code is checked, as passwords are.
    from_address = throttle.address_attempt(address)
    db.session.commit()
    attempt = throttle.code_attempt(user.username)
    db.session.commit()
    if from_address.locked or attempt.locked:
        reason = "address_throttled" if from_address.locked else "code_throttled"
        record_event(Action.LOGIN_LOCKED, target=user_target(user), detail={"reason": reason})
        db.session.commit()
        log.warning("code refused: user=%s address=%s %s", user.username, address, reason)
        locked = from_address if from_address.locked else attempt
        flash(throttle.lockout_message(locked), "error")
        response = render_template("auth/code.html", form=form)
        return response, 429, {"Retry-After": str(locked.retry_after_seconds())}

    method = totp.check(user, form.code.data)
    if method is None:
        record_event(
            Action.LOGIN_CODE_FAILURE, target=user_target(user), detail={"reason": "wrong_code"}
        )
        db.session.commit()
        log.warning("code failed: user=%s address=%s", user.username, address)
        flash(CODE_FAILED, "error")
        return render_template("auth/code.html", form=form)

    throttle.succeeded(attempt, from_address)
    # As after a password alone: a fresh session, its CSRF secret sent with this response.
    session.clear()
    sessions.start_session(user, method=method)
    login_user(user)
    session[current_app.config["WTF_CSRF_FIELD_NAME"]] = secrets.token_hex(32)
    detail = {"method": method}
    if method == totp.METHOD_RECOVERY:
        detail["recovery_codes_left"] = totp.recovery_codes_left(user)
    record_event(Action.LOGIN_SUCCESS, target=user_target(user), detail=detail, actor=user)
    db.session.commit()
    log.info("login: user=%s method=%s address=%s", user.username, method, address)
    if method == totp.METHOD_RECOVERY:
        flash(
            f"Signed in with a recovery code; {detail['recovery_codes_left']} left. "
            "Each works once: make new ones on the account page if you are running out.",
            "info",
        )
    if user.must_change_password:
        flash("Your password was reset. Choose a new one to continue.", "info")
        return redirect(url_for("account.index"))
    return redirect(next_url or url_for("positions.overview"))


def _password_confirmed(form: PasswordConfirmForm) -> bool:
    if not form.validate_on_submit():
        return False
    if not verify_password(current_user.record.password_hash, form.current_password.data):
        form.current_password.errors.append("Current password is wrong.")
        return False
    return True


@bp.route("/account/second-factor/start", methods=["POST"])
@requires_role(Role.VIEWER)
def start():
    """Begin setting up an authenticator app: a new secret, shown as a QR code."""
    form = PasswordConfirmForm(prefix="tf")
    if not _password_confirmed(form):
        return render_account(factor_forms={"start": form}, status=400)
    try:
        totp.start_enrolment(current_user.record)
    except totp.SecondFactorError as exc:
        form.current_password.errors.append(str(exc))
        return render_account(factor_forms={"start": form}, status=400)
    db.session.commit()
    return redirect(url_for("account.index", _anchor="second-factor"))


@bp.route("/account/second-factor/confirm", methods=["POST"])
@requires_role(Role.VIEWER)
def confirm():
    """Switch the second factor on with a first code; recovery codes are shown once."""
    form = CodeForm(prefix="tfc")
    if not form.validate_on_submit():
        return render_account(factor_forms={"confirm": form}, status=400)
    user = current_user.record
    try:
        codes = totp.confirm_enrolment(user, form.code.data)
    except totp.SecondFactorError as exc:
        form.code.errors.append(str(exc))
        return render_account(factor_forms={"confirm": form}, status=400)
    # Whoever holds another session of this account signed in without the factor.
    ended = sessions.revoke_all(user, "second_factor_enrolled", keep=current_user.current_session)
    record_event(
        Action.SECOND_FACTOR_ENROL,
        target=user_target(current_user),
        detail={"other_sessions_ended": ended},
    )
    db.session.commit()
    session.pop(totp.ENROL_KEY, None)
    log.info("second factor enrolled: user=%s other_sessions_ended=%d", user.username, ended)
    flash(f"Second factor on. {ended} other session(s) signed out.", "success")
    # Rendered, not redirected: the codes must not travel through the session cookie.
    return render_account(recovery_codes=codes)


@bp.route("/account/second-factor/remove", methods=["POST"])
@requires_role(Role.VIEWER)
def remove():
    """Switch my second factor off (with my password) and sign out my other sessions."""
    form = PasswordConfirmForm(prefix="tfr")
    if not _password_confirmed(form):
        return render_account(factor_forms={"remove": form}, status=400)
    user = current_user.record
    totp.remove(user)
    ended = sessions.revoke_all(user, "second_factor_removed", keep=current_user.current_session)
    record_event(
        Action.SECOND_FACTOR_REMOVE,
        target=user_target(current_user),
        detail={"other_sessions_ended": ended},
    )
    db.session.commit()
    log.info("second factor removed: user=%s other_sessions_ended=%d", user.username, ended)
    flash(f"Second factor off. {ended} other session(s) signed out.", "success")
    if second_factor_required(user):
        session[totp.ENROL_KEY] = True
        flash(totp.ENROL_MESSAGE, "info")
    return redirect(url_for("account.index", _anchor="second-factor"))


@bp.route("/account/second-factor/recovery-codes", methods=["POST"])
@requires_role(Role.VIEWER)
def recovery_codes():
    """Replace my recovery codes (with my password); the new ones are shown once."""
    form = PasswordConfirmForm(prefix="tfn")
    if not _password_confirmed(form):
        return render_account(factor_forms={"codes": form}, status=400)
    user = current_user.record
    if not has_second_factor(user):
        abort(404)
    codes = totp.replace_recovery_codes(user)
    record_event(Action.RECOVERY_CODES_REPLACE, target=user_target(current_user))
    db.session.commit()
    log.info("recovery codes replaced: user=%s", user.username)
    return render_account(recovery_codes=codes)
