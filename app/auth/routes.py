"""Login, logout and the account page."""

import functools
import logging
import zoneinfo
from datetime import UTC, datetime, time

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from app.admin.audit import Action, record_event, user_target
from app.auth import sessions, throttle, tokens
from app.auth.access import PUBLIC, TOKEN, public, requires_role
from app.auth.forms import (
    ChangePasswordForm,
    ConfirmForm,
    LoginForm,
    TimezoneForm,
    TokenForm,
)
from app.auth.models import ApiToken, Role, User, UserSession
from app.auth.passwords import (
    PasswordPolicyError,
    burn_verification_time,
    hash_password,
    verify_password,
)
from app.auth.redirects import safe_next, wants_json
from app.db_types import utcnow
from app.extensions import db
from app.templating import SHOW_UTC_KEY, showing_utc

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

LOGIN_FAILED = "Invalid username or password, or too many failed attempts."

# What a user whose password was reset may still reach before choosing a new one.
PASSWORD_CHANGE_ENDPOINTS = frozenset(
    {"auth.account", "auth.change_password", "auth.logout", "auth.report_browser_timezone"}
)


@bp.before_app_request
def require_password_change():
    """Keep a user with a reset password on the password form until they change it."""
    if request.endpoint is None or request.endpoint in PASSWORD_CHANGE_ENDPOINTS:
        return None
    view = current_app.view_functions.get(request.endpoint)
    # Public pages and token-only API routes do not depend on the browser session.
    if getattr(view, "access", None) in (PUBLIC, TOKEN):
        return None
    if not getattr(current_user, "must_change_password", False):
        return None
    message = "Choose a new password before continuing."
    if wants_json():
        return jsonify(error="password_change_required", message=message), 403
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url_for("auth.account")}
    flash(message, "info")
    return redirect(url_for("auth.account"))


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
    record_event(Action.LOGIN_SUCCESS, target=user_target(user), actor=user)
    db.session.commit()
    log.info("login: user=%s address=%s", user.username, address)
    if user.must_change_password:
        flash("Your password was reset. Choose a new one to continue.", "info")
        return redirect(url_for("auth.account"))
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


@functools.cache
def known_timezones() -> frozenset[str]:
    """Every IANA name zoneinfo can load here (read once: it walks the tz database)."""
    return frozenset(zoneinfo.available_timezones() | {"UTC"})


def _timezone_form() -> TimezoneForm:
    form = TimezoneForm(prefix="tz")
    form.timezone.choices = sorted(known_timezones())
    return form


def _render_account(
    password_form=None, timezone_form=None, token_form=None, new_secret=None, status=200
):
    timezone_form = timezone_form or _timezone_form()
    if not timezone_form.is_submitted():
        timezone_form.timezone.data = current_user.timezone
    return (
        render_template(
            "auth/account.html",
            password_form=password_form or ChangePasswordForm(prefix="pw"),
            timezone_form=timezone_form,
            token_form=token_form or TokenForm(prefix="tok", formdata=None),
            confirm_form=ConfirmForm(),
            sessions=sessions.active_sessions(current_user),
            current_session=current_user.current_session,
            tokens=tokens.tokens_visible_to(current_user),
            new_secret=new_secret,
        ),
        status,
    )


@bp.route("/account")
@requires_role(Role.VIEWER)
def account():
    """Show the account page: password, timezone and active sessions."""
    return _render_account()


@bp.route("/account/password", methods=["POST"])
@requires_role(Role.VIEWER)
def change_password():
    """Change my password and sign out my other sessions."""
    form = ChangePasswordForm(prefix="pw")
    if not form.validate_on_submit():
        return _render_account(password_form=form, status=400)
    user = current_user.record
    if not verify_password(user.password_hash, form.current_password.data):
        form.current_password.errors.append("Current password is wrong.")
        return _render_account(password_form=form, status=400)
    try:
        user.password_hash = hash_password(form.new_password.data)
    except PasswordPolicyError as exc:
        form.new_password.errors.append(str(exc))
        return _render_account(password_form=form, status=400)
    user.password_changed_at = utcnow()
    user.must_change_password = False
    ended = sessions.revoke_all(user, "password_changed", keep=current_user.current_session)
    record_event(
        Action.PASSWORD_CHANGE,
        target=user_target(current_user),
        detail={"other_sessions_ended": ended},
    )
    db.session.commit()
    log.info("password changed: user=%s other_sessions_ended=%d", current_user.username, ended)
    flash(f"Password changed. {ended} other session(s) signed out.", "success")
    return redirect(url_for("auth.account"))


@bp.route("/account/timezone", methods=["POST"])
@requires_role(Role.VIEWER)
def change_timezone():
    """Choose the timezone my pages show times in."""
    form = _timezone_form()
    if not form.validate_on_submit():
        return _render_account(timezone_form=form, status=400)
    user = current_user.record
    user.timezone = form.timezone.data
    user.timezone_chosen = True
    db.session.commit()
    flash(f"Times are now shown in {form.timezone.data}.", "success")
    return redirect(url_for("auth.account"))


@bp.route("/account/timezone/browser", methods=["POST"])
@requires_role(Role.VIEWER)
def report_browser_timezone():
    """Take the browser's timezone as mine, unless I chose one on the account page."""
    payload = request.get_json(silent=True) or {}
    name = payload.get("timezone")
    if not isinstance(name, str) or name not in known_timezones():
        return jsonify(error="bad_request", message="Not a known IANA timezone name."), 400
    user = current_user.record
    applied = not user.timezone_chosen
    if applied and user.timezone != name:
        user.timezone = name
        db.session.commit()
    return jsonify(timezone=user.timezone, applied=applied)


@bp.route("/account/utc", methods=["POST"])
@requires_role(Role.VIEWER)
def toggle_utc():
    """Switch every time shown in this browser session between my timezone and UTC."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, description="The form expired; reload the page and try again.")
    session[SHOW_UTC_KEY] = not showing_utc()
    return redirect(safe_next(request.form.get("next")) or url_for("positions.overview"))


@bp.route("/account/sessions/<int:session_id>/revoke", methods=["POST"])
@requires_role(Role.VIEWER)
def revoke_session(session_id: int):
    """Sign out one of my other sessions."""
    row = db.session.get(UserSession, session_id)
    if row is None or row.user_id != current_user.id or row.revoked_at is not None:
        abort(404)
    sessions.revoke(row, "signed_out_by_user")
    record_event(
        Action.SESSION_REVOKE, target=f"session:{row.id}", detail={"user": current_user.username}
    )
    db.session.commit()
    flash("Session signed out.", "success")
    if row.id == current_user.current_session.id:
        logout_user()
        session.clear()
        return redirect(url_for("auth.login"))
    return redirect(url_for("auth.account"))


@bp.route("/account/sessions/revoke-others", methods=["POST"])
@requires_role(Role.VIEWER)
def revoke_other_sessions():
    """Sign out every session of mine except this one."""
    ended = sessions.revoke_all(
        current_user, "signed_out_by_user", keep=current_user.current_session
    )
    record_event(
        Action.SESSION_REVOKE,
        target=user_target(current_user),
        detail={"user": current_user.username, "other_sessions_ended": ended},
    )
    db.session.commit()
    flash(f"{ended} other session(s) signed out.", "success")
    return redirect(url_for("auth.account"))


@bp.route("/account/tokens", methods=["POST"])
@requires_role(Role.VIEWER)
def create_token():
    """Create an API token for me; its secret is shown on this page once."""
    form = TokenForm(prefix="tok")
    if not form.validate_on_submit():
        return _render_account(token_form=form, status=400)
    accounts = [a.strip() for a in (form.accounts.data or "").split(",") if a.strip()]
    expires = (
        datetime.combine(form.expires.data, time.min, tzinfo=UTC) if form.expires.data else None
    )
    try:
        token, secret = tokens.create_token(
            current_user.record,
            form.name.data,
            form.scopes.data,
            accounts=accounts,
            expires_at=expires,
        )
    except ValueError as exc:
        form.name.errors.append(str(exc))
        return _render_account(token_form=form, status=400)
    db.session.flush()
    record_event(
        Action.TOKEN_CREATE,
        target=f"token:{token.id}",
        detail={"name": token.name, "owner": current_user.username, "scopes": token.scopes},
    )
    db.session.commit()
    log.info(
        "token created: user=%s token=%s scopes=%s",
        current_user.username,
        token.id,
        ",".join(token.scopes),
    )
    # Rendered, not redirected: the secret must not travel through the session cookie.
    return _render_account(new_secret=(token, secret))


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@requires_role(Role.VIEWER)
def revoke_token(token_id: int):
    """Revoke one of my tokens (admins: anyone's)."""
    token = db.session.get(ApiToken, token_id)
    allowed = token is not None and (
        token.user_id == current_user.id or current_user.has_role(Role.ADMIN)
    )
    if not allowed or token.revoked_at is not None:
        abort(404)
    tokens.revoke_token(token)
    record_event(
        Action.TOKEN_REVOKE,
        target=f"token:{token.id}",
        detail={"name": token.name, "owner": token.user.username},
    )
    db.session.commit()
    log.info("token revoked: user=%s token=%s", current_user.username, token.id)
    flash(f"Token {token.name!r} revoked.", "success")
    return redirect(url_for("auth.account"))
