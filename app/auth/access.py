"""Who may use each route: every view declares it, and undeclared views are denied."""

import functools
import logging

from flask import abort, current_app, flash, g, jsonify, redirect, request, session, url_for
from flask_login import current_user

from app.auth import totp
from app.auth.models import Role, Scope
from app.auth.redirects import wants_json
from app.auth.tokens import TokenError, authenticate

log = logging.getLogger(__name__)

PUBLIC = "public"
TOKEN = "token"  # noqa: S105 (an access kind, not a secret)


def public(view):
    """Mark a view as open to anyone (login page, health checks)."""
    view.access = PUBLIC
    return view


def requires_role(role: str):
    """Mark a view as needing a logged-in user with at least `role`."""
    if role not in Role.ALL:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view):
        view.access = role
        return view

    return decorate


def requires_token(scope: str):
    """Mark an API view as needing a bearer token with `scope`; the session is ignored."""
    if scope not in Scope.ALL:
        raise ValueError(f"unknown scope {scope!r}")

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            try:
                g.api_token = authenticate(scope)
            except TokenError as exc:
                log.warning(
                    "token refused: route=%s status=%s reason=%s",
                    request.endpoint,
                    exc.status,
                    exc.message,
                )
                response = jsonify(
                    error="unauthorized" if exc.status == 401 else "forbidden", message=exc.message
                )
                response.status_code = exc.status
                if exc.status == 401:
                    response.headers["WWW-Authenticate"] = 'Bearer realm="tradingmonitor"'
                return response
            log.info(
                "token used: token=%s user=%s route=%s",
                g.api_token.id,
                g.api_token.user_id,
                request.endpoint,
            )
            return view(*args, **kwargs)

        wrapper.access = TOKEN
        return wrapper

    return decorate


# What a user whose password was reset may still reach before choosing a new one.
PASSWORD_CHANGE_ENDPOINTS = frozenset(
    {"account.index", "account.change_password", "auth.logout", "account.report_browser_timezone"}
)


def enforce_access():
    """before_request: apply the view's declared access; deny views that declare none;
    keep a user with a reset password on the password form until they change it, and
    one whose role needs a second factor on its set-up until they have one."""
    # Each name below is a proxy lookup; this runs on every request, so once each.
    endpoint = request.endpoint
    if endpoint is None or endpoint == "static":
        return None
    view = current_app.view_functions[endpoint]
    access = getattr(view, "access", None)
    if access in (PUBLIC, TOKEN):
        return None
    if access is None:
        log.error("route %s declares no access rule; denied", endpoint)
        abort(403)
    user = current_user._get_current_object()  # loads the session (a database read)
    if not user.is_authenticated:
        return unauthorized()
    if not user.has_role(access):
        log.warning(
            "access denied: user=%s role=%s route=%s needs=%s",
            user.username,
            user.role,
            endpoint,
            access,
        )
        abort(403)
    if user.must_change_password and endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        return password_change_required()
    # Set at sign-in in the signed cookie, beside the session token, and cleared by
    # the enrolment: no cookie of this session exists without it until then.
    if session.get(totp.ENROL_KEY) and endpoint not in totp.ENROL_ENDPOINTS:
        if totp.enrolment_required(user.record):
            return second_factor_enrolment_required()
        session.pop(totp.ENROL_KEY)  # the policy changed since sign-in
    return None


def second_factor_enrolment_required():
    """The answer to a user who must set up a second factor asking for anything else."""
    if wants_json():
        return jsonify(error="second_factor_required", message=totp.ENROL_MESSAGE), 403
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url_for("account.index")}
    flash(totp.ENROL_MESSAGE, "info")
    return redirect(url_for("account.index", _anchor="second-factor"))


def password_change_required():
    """The answer to a user with a reset password asking for anything else."""
    message = "Choose a new password before continuing."
    if wants_json():
        return jsonify(error="password_change_required", message=message), 403
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url_for("account.index")}
    flash(message, "info")
    return redirect(url_for("account.index"))


def unauthorized():
    """Anonymous request for a protected route: 401 for JSON, login redirect for pages."""
    if wants_json():
        response = jsonify(error="unauthorized", message="Log in or send a token.")
        response.status_code = 401
        return response
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=target))
