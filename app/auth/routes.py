"""Login, logout, and the forced password change after a reset."""

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
from flask_login import current_user, login_user, logout_user

from app.admin.audit import Action, record_event, user_target
from app.auth import oidc, oidc_accounts, sessions, throttle, totp
from app.auth.access import public
from app.auth.forms import (
    LoginForm,
)
from app.auth.models import User
from app.auth.passwords import (
    burn_verification_time,
    verify_password,
)
from app.auth.policy import current_policy, has_second_factor
from app.auth.redirects import safe_next
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

LOGIN_FAILED = "Invalid username or password."


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
    username = form.username.data.strip().lower()
    # Each attempt is counted and committed before any password is checked, so parallel
    # attempts cannot all pass a count taken before any of them failed.
    from_address = throttle.address_attempt(address)
    db.session.commit()
    if from_address.locked:
        log.warning("login refused: too many failures from address %s", address)
        record_event(
            Action.LOGIN_LOCKED,
            target=f"user:{username[:64]}",
            detail={"reason": "address_throttled"},
        )
        db.session.commit()
        flash("Too many failed logins from your address. Try again later.", "error")
        response = render_template("auth/login.html", form=form, next_url=next_url)
        return response, 429, {"Retry-After": str(from_address.retry_after_seconds())}

    attempt = throttle.user_attempt(username)
    db.session.commit()
    if attempt.locked:
        # Decided before looking the user up: a name nobody has is locked the same way.
        record_event(
            Action.LOGIN_LOCKED, target=f"user:{username}", detail={"reason": "username_locked"}
        )
        db.session.commit()
        log.warning("login refused: username=%r address=%s locked", username, address)
        flash(throttle.lockout_message(attempt), "error")
        return render_template("auth/login.html", form=form, next_url=next_url)

    user = db.session.execute(
        db.select(User).where(User.username == username)
    ).scalar_one_or_none()
    if user is None:
        burn_verification_time(form.password.data)
        reason = "unknown_user"
    elif not verify_password(user.password_hash, form.password.data):
        reason = "wrong_password"
    else:
        reason = None if user.active else "disabled"
    if reason is not None:
        # The attempt stays counted; the audit row says why it failed.
        record_event(Action.LOGIN_FAILURE, target=f"user:{username}", detail={"reason": reason})
        db.session.commit()
        log.warning("login failed: username=%r address=%s", username, address)
        flash(LOGIN_FAILED, "error")
        return render_template("auth/login.html", form=form, next_url=next_url)

    if not oidc_accounts.password_sign_in_allowed(user):
        # Told only to someone who knew the password, so it reveals nothing to others.
        # The attempt stays counted: this form is not how this user signs in.
        record_event(
            Action.LOGIN_REFUSED,
            target=user_target(user),
            detail={"reason": "local_password_not_allowed", "method": "password"},
        )
        db.session.commit()
        flash(oidc_accounts.password_refusal_message(user), "error")
        return render_template("auth/login.html", form=form, next_url=next_url)

    throttle.succeeded(attempt, from_address)
    if has_second_factor(user):
        # The password was right; nothing is granted until the code is too.
        totp.begin_pending(user, next_url)
        db.session.commit()
        return redirect(url_for("second_factor.code"))
    # Nothing from the anonymous session survives into the logged-in one.
    session.clear()
    sessions.start_session(user)
    login_user(user)
    # The new session's CSRF secret goes out with the login response. Added by the
    # first page instead, it would make that page rewrite the cookie, and every page
    # asked for with the login cookie (a script, a client that keeps no cookies) would
    # make a new secret and re-sign the cookie.
    session[current_app.config["WTF_CSRF_FIELD_NAME"]] = secrets.token_hex(32)
    enrol_first = totp.enrolment_required(user)
    if enrol_first:
        session[totp.ENROL_KEY] = True
    record_event(Action.LOGIN_SUCCESS, target=user_target(user), actor=user)
    db.session.commit()
    log.info("login: user=%s address=%s", user.username, address)
    if user.must_change_password:
        flash("Your password was reset. Choose a new one to continue.", "info")
        return redirect(url_for("account.index"))
    if enrol_first:
        flash(totp.ENROL_MESSAGE, "info")
        return redirect(url_for("account.index", _anchor="second-factor"))
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


@bp.context_processor
def sign_in_choices():
    """The login page's company sign-in button, and whether passwords are the main way."""
    prov = oidc.provider()
    return {
        "oidc_provider_name": prov.settings.provider_name if prov else None,
        "local_passwords": current_policy().local_passwords,
    }


@bp.route("/login/oidc")
@public
def oidc_login():
    """Send the browser to the company's identity provider to sign in."""
    prov = oidc.provider()
    if prov is None:
        abort(404)
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("positions.overview"))
    session["oidc_next"] = next_url
    try:
        return oidc.authorize_redirect(prov, url_for("auth.oidc_callback", _external=True))
    except oidc.SignInRefused as refusal:
        return _oidc_refused(refusal)


@bp.route("/login/oidc/callback")
@public
def oidc_callback():
    """Finish a company sign-in: check the provider's answer, then start a session."""
    prov = oidc.provider()
    if prov is None:
        abort(404)
    try:
        claims = oidc.complete_sign_in(prov)
        user = oidc_accounts.account_for(prov.settings, claims)
    except oidc.SignInRefused as refusal:
        return _oidc_refused(refusal)
    next_url = safe_next(session.get("oidc_next"))
    # As for the password: nothing from the anonymous session survives.
    session.clear()
    sessions.start_session(user, method="oidc")
    login_user(user)
    session[current_app.config["WTF_CSRF_FIELD_NAME"]] = secrets.token_hex(32)
    record_event(
        Action.LOGIN_OIDC,
        target=user_target(user),
        detail={"role": user.role, "subject": user.oidc_subject[:100]},
        actor=user,
    )
    db.session.commit()
    log.info("login: user=%s method=oidc address=%s", user.username, request.remote_addr)
    return redirect(next_url or url_for("positions.overview"))


def _oidc_refused(refusal: oidc.SignInRefused):
    """Audit a refused company sign-in and tell the person why on the login page."""
    oidc_accounts.record_refusal(refusal)
    db.session.commit()
    session.pop("oidc_next", None)
    flash(refusal.message, "error")
    return redirect(url_for("auth.login"))
