"""The account page: password, second factor, timezone, sessions and API tokens."""

import functools
import logging
import zoneinfo
from datetime import UTC, datetime, time

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, logout_user

from app.admin import users
from app.admin.audit import Action, record_event, user_target
from app.auth import sessions, tokens, totp
from app.auth.access import requires_role
from app.auth.forms import (
    ChangePasswordForm,
    CodeForm,
    PasswordConfirmForm,
    TimezoneForm,
    TokenForm,
    digest_form_for,
    require_confirmation,
)
from app.auth.models import ApiToken, Role, Scope, UserSession
from app.auth.passwords import (
    PasswordPolicyError,
    hash_password,
    verify_password,
)
from app.auth.policy import has_second_factor, second_factor_required
from app.auth.redirects import safe_next
from app.db_types import utcnow
from app.extensions import db
from app.templating import SHOW_UTC_KEY, showing_utc

log = logging.getLogger(__name__)

bp = Blueprint("account", __name__)


@functools.cache
def known_timezones() -> frozenset[str]:
    """Every IANA name zoneinfo can load here (read once: it walks the tz database)."""
    return frozenset(zoneinfo.available_timezones() | {"UTC"})


def _timezone_form() -> TimezoneForm:
    form = TimezoneForm(prefix="tz")
    form.timezone.choices = sorted(known_timezones())
    return form


def _token_form(**kwargs) -> TokenForm:
    return TokenForm(prefix="tok", **kwargs).offer_scopes(Scope.allowed_for(current_user.role))


def _second_factor(forms=None, recovery_codes=None) -> dict:
    """What the account page's second-factor section shows."""
    user = current_user.record
    secret = totp.pending_secret(user)
    forms = forms or {}
    return {
        # Users of the identity provider have no local password to pair a factor with.
        "provider": user.oidc_subject is not None,
        "enabled": has_second_factor(user),
        "enabled_at": user.totp_enabled_at,
        "required": second_factor_required(user),
        "secret": secret,
        "qr_code": totp.qr_code_data_uri(totp.provisioning_uri(user, secret)) if secret else None,
        "codes_left": totp.recovery_codes_left(user),
        "recovery_codes": recovery_codes,
        "start_form": forms.get("start") or PasswordConfirmForm(prefix="tf", formdata=None),
        "confirm_form": forms.get("confirm") or CodeForm(prefix="tfc", formdata=None),
        "remove_form": forms.get("remove") or PasswordConfirmForm(prefix="tfr", formdata=None),
        "codes_form": forms.get("codes") or PasswordConfirmForm(prefix="tfn", formdata=None),
    }


def render_account(
    password_form=None,
    timezone_form=None,
    token_form=None,
    new_secret=None,
    status=200,
    factor_forms=None,
    recovery_codes=None,
    digest_form=None,
):
    timezone_form = timezone_form or _timezone_form()
    if not timezone_form.is_submitted():
        timezone_form.timezone.data = current_user.timezone
    return (
        render_template(
            "auth/account.html",
            password_form=password_form or ChangePasswordForm(prefix="pw"),
            timezone_form=timezone_form,
            digest_form=digest_form or digest_form_for(current_user.record),
            token_form=token_form or _token_form(formdata=None),
            sessions=sessions.active_sessions(current_user),
            current_session=current_user.current_session,
            tokens=tokens.tokens_visible_to(current_user),
            new_secret=new_secret,
            second_factor=_second_factor(factor_forms, recovery_codes),
        ),
        status,
    )


@bp.route("")
@requires_role(Role.VIEWER)
def index():
    """Show the account page: password, timezone and active sessions."""
    return render_account()


@bp.route("/password", methods=["POST"])
@requires_role(Role.VIEWER)
def change_password():
    """Change my password and sign out my other sessions."""
    form = ChangePasswordForm(prefix="pw")
    if not form.validate_on_submit():
        return render_account(password_form=form, status=400)
    user = current_user.record
    if not verify_password(user.password_hash, form.current_password.data):
        form.current_password.errors.append("Current password is wrong.")
        return render_account(password_form=form, status=400)
    try:
        user.password_hash = hash_password(form.new_password.data)
    except PasswordPolicyError as exc:
        form.new_password.errors.append(str(exc))
        return render_account(password_form=form, status=400)
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
    return redirect(url_for("account.index"))


@bp.route("/timezone", methods=["POST"])
@requires_role(Role.VIEWER)
def change_timezone():
    """Choose the timezone my pages show times in."""
    form = _timezone_form()
    if not form.validate_on_submit():
        return render_account(timezone_form=form, status=400)
    user = current_user.record
    user.timezone = form.timezone.data
    user.timezone_chosen = True
    db.session.commit()
    flash(f"Times are now shown in {form.timezone.data}.", "success")
    return redirect(url_for("account.index"))


@bp.route("/timezone/browser", methods=["POST"])
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


@bp.route("/utc", methods=["POST"])
@requires_role(Role.VIEWER)
def toggle_utc():
    """Switch every time shown in this browser session between my timezone and UTC."""
    require_confirmation()
    session[SHOW_UTC_KEY] = not showing_utc()
    return redirect(safe_next(request.form.get("next")) or url_for("positions.overview"))


@bp.route("/sessions/<int:session_id>/revoke", methods=["POST"])
@requires_role(Role.VIEWER)
def revoke_session(session_id: int):
    """Sign out one of my other sessions."""
    row = db.session.get(UserSession, session_id)
    if row is None or row.user_id != current_user.id or row.revoked_at is not None:
        abort(404)
    users.revoke_session(row, "signed_out_by_user")
    db.session.commit()
    flash("Session signed out.", "success")
    if row.id == current_user.current_session.id:
        logout_user()
        session.clear()
        return redirect(url_for("auth.login"))
    return redirect(url_for("account.index"))


@bp.route("/sessions/revoke-others", methods=["POST"])
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
    return redirect(url_for("account.index"))


@bp.route("/tokens", methods=["POST"])
@requires_role(Role.VIEWER)
def create_token():
    """Create an API token for me; its secret is shown on this page once."""
    form = _token_form()
    if not form.validate_on_submit():
        return render_account(token_form=form, status=400)
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
    except tokens.ScopeNotAllowed as exc:
        tokens.record_refusal(current_user.record, form.name.data, form.scopes.data)
        db.session.commit()
        log.warning(
            "token refused: user=%s role=%s scopes=%s",
            current_user.username,
            current_user.role,
            ",".join(exc.scopes),
        )
        form.scopes.errors.append(str(exc))
        return render_account(token_form=form, status=403)
    except ValueError as exc:
        form.name.errors.append(str(exc))
        return render_account(token_form=form, status=400)
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
    return render_account(new_secret=(token, secret))


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@requires_role(Role.VIEWER)
def revoke_token(token_id: int):
    """Revoke one of my tokens (admins: anyone's)."""
    token = db.session.get(ApiToken, token_id)
    allowed = token is not None and (
        token.user_id == current_user.id or current_user.has_role(Role.ADMIN)
    )
    if not allowed or token.revoked_at is not None:
        abort(404)
    users.revoke_token(token)
    db.session.commit()
    log.info("token revoked: user=%s token=%s", current_user.username, token.id)
    flash(f"Token {token.name!r} revoked.", "success")
    return redirect(url_for("account.index"))
