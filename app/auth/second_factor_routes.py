"""The second step of a password sign-in: the authenticator's code or a recovery code."""

import logging
import secrets

from flask import (
    Blueprint,
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
from app.auth import sessions, throttle, totp
from app.auth.access import public, unauthorized
from app.auth.forms import CodeForm
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("second_factor", __name__)

CODE_FAILED = "That code is not valid. Enter the current code from your app, or a recovery code."


@bp.route("/code", methods=["GET", "POST"])
@public
def code():
    """Ask for the second factor after a correct password, then sign the user in."""
    if current_user.is_authenticated:
        return redirect(url_for("positions.overview"))
    waiting = totp.pending()
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
