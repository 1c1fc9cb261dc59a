"""Login, logout, and the forced password change after a reset."""

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
from flask_login import current_user, login_user, logout_user

from app.admin.audit import Action, record_event, user_target
from app.auth import sessions, throttle
from app.auth.access import public
from app.auth.forms import (
    LoginForm,
)
from app.auth.models import User
from app.auth.passwords import (
    burn_verification_time,
    verify_password,
)
from app.auth.redirects import safe_next
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

LOGIN_FAILED = "Invalid username or password, or too many failed attempts."


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    """Show the login form and sign the user in."""
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("positions.overview"))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form, next_url=next_url)

    address = request.remote_addr or "unknown"
    retry_after = throttle.address_retry_after(address)
    if retry_after is not None:
        log.warning("login refused: too many failures from address %s", address)
        record_event(
            Action.LOGIN_LOCKED,
            target=f"user:{form.username.data.strip().lower()[:64]}",
            detail={"reason": "address_throttled"},
        )
        db.session.commit()
        flash("Too many failed logins from your address. Try again later.", "error")
        response = render_template("auth/login.html", form=form, next_url=next_url)
        return response, 429, {"Retry-After": str(retry_after)}

    username = form.username.data.strip().lower()
    user = db.session.execute(
        db.select(User).where(User.username == username)
    ).scalar_one_or_none()
    locked = throttle.username_locked(username)
    if user is None:
        burn_verification_time(form.password.data)
        ok = False
    else:
        ok = verify_password(user.password_hash, form.password.data)
    if not ok or locked or not user.active:
        throttle.note_failure(username, address)
        if locked:
            reason = "username_locked"
        elif user is None:
            reason = "unknown_user"
        else:
            reason = "wrong_password" if not ok else "disabled"
        # Committed with the failure count, though the login itself fails.
        record_event(
            Action.LOGIN_LOCKED if locked else Action.LOGIN_FAILURE,
            target=f"user:{username}",
            detail={"reason": reason},
        )
        db.session.commit()
        log.warning("login failed: username=%r address=%s locked=%s", username, address, locked)
        flash(LOGIN_FAILED, "error")
        return render_template("auth/login.html", form=form, next_url=next_url)

    throttle.clear_failures(username)
    # Nothing from the anonymous session survives into the logged-in one.
    session.clear()
    sessions.start_session(user)
    login_user(user)
    # The new session's CSRF secret goes out with the login response. Added by the
    # first page instead, it would make that page rewrite the cookie, and every page
    # asked for with the login cookie (a script, a client that keeps no cookies) would
    # make a new secret and re-sign the cookie.
    session[current_app.config["WTF_CSRF_FIELD_NAME"]] = secrets.token_hex(32)
    record_event(Action.LOGIN_SUCCESS, target=user_target(user), actor=user)
    db.session.commit()
    log.info("login: user=%s address=%s", user.username, address)
    if user.must_change_password:
        flash("Your password was reset. Choose a new one to continue.", "info")
        return redirect(url_for("account.index"))
    return redirect(next_url or url_for("positions.overview"))


@bp.route("/logout", methods=["POST"])
@public
def logout():
    """End the current session, server-side and in the cookie."""
    if current_user.is_authenticated and current_user.current_session is not None:
        sessions.revoke(current_user.current_session, "logout")
        record_event(Action.LOGOUT, target=user_target(current_user))
        db.session.commit()
        log.info("logout: user=%s", current_user.username)
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
