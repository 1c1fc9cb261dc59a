"""Admin pages: users, their sessions and tokens, and the audit log."""

import logging

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from app.admin import queries, users
from app.admin.audit import Action
from app.admin.forms import CreateUserForm, RoleForm
from app.auth import sessions
from app.auth.access import requires_role
from app.auth.forms import require_confirmation
from app.auth.models import ApiToken, Role, User, UserSession
from app.auth.passwords import PasswordPolicyError
from app.extensions import db
from app.positions.queries import BadCursor
from app.templating import FilterError

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__)


def _render_users(form: CreateUserForm | None = None, created=None, status: int = 200):
    return (
        render_template(
            "admin/users.html",
            rows=users.list_users(),
            form=form or CreateUserForm(formdata=None),
            created=created,
        ),
        status,
    )


def _render_user(user: User, role_form: RoleForm | None = None, temporary=None, status=200):
    if role_form is None:
        role_form = RoleForm(formdata=None)
        role_form.role.data = user.role
    return (
        render_template(
            "admin/user.html",
            user=user,
            role_form=role_form,
            sessions=sessions.active_sessions(user),
            tokens=users.user_tokens(user),
            temporary=temporary,
        ),
        status,
    )


@bp.route("/")
@requires_role(Role.ADMIN)
def index():
    """Open the admin area at the user list."""
    return redirect(url_for("admin.user_list"))


@bp.route("/users")
@requires_role(Role.ADMIN)
def user_list():
    """List users with their role, status, sessions and tokens."""
    return _render_users()


@bp.route("/users", methods=["POST"])
@requires_role(Role.ADMIN)
def create_user():
    """Create a user; a generated password is shown on this page once."""
    form = CreateUserForm()
    if not form.validate_on_submit():
        return _render_users(form, status=400)
    try:
        user, generated = users.create_user(
            form.username.data,
            form.role.data,
            form.password.data or None,
            must_change_password=form.must_change_password.data,
        )
    except users.AdminError as exc:
        form.username.errors.append(str(exc))
        return _render_users(form, status=400)
    except PasswordPolicyError as exc:
        form.password.errors.append(str(exc))
        return _render_users(form, status=400)
    db.session.commit()
    log.info("user created: admin=%s user=%s role=%s", current_user.username, user.id, user.role)
    if generated is None:
        flash(f"Created {user.role} {user.username!r}.", "success")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    # Rendered, not redirected: the password must not travel through the session cookie.
    return _render_users(created=(user, generated))


@bp.route("/users/<int:user_id>")
@requires_role(Role.ADMIN)
def user_detail(user_id: int):
    """Show one user: role, status, password reset, sessions and tokens."""
    return _render_user(db.get_or_404(User, user_id))


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@requires_role(Role.ADMIN)
def change_role(user_id: int):
    """Change a user's role."""
    user = db.get_or_404(User, user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return _render_user(user, role_form=form, status=400)
    try:
        changed = users.change_role(current_user, user, form.role.data)
    except users.AdminError as exc:
        db.session.rollback()
        form.role.errors.append(str(exc))
        return _render_user(user, role_form=form, status=400)
    db.session.commit()
    if changed:
        log.info(
            "role changed: admin=%s user=%s role=%s", current_user.username, user.id, user.role
        )
        flash(f"{user.username!r} is now {user.role}.", "success")
    else:
        flash(f"{user.username!r} already is {user.role}.", "info")
    return redirect(url_for("admin.user_detail", user_id=user.id))


def _refused(user: User, exc: users.AdminError):
    db.session.rollback()
    flash(str(exc), "error")
    return _render_user(user, status=400)


@bp.route("/users/<int:user_id>/disable", methods=["POST"])
@requires_role(Role.ADMIN)
def disable_user(user_id: int):
    """Disable a user: no more logins, their live sessions end now."""
    user = db.get_or_404(User, user_id)
    require_confirmation()
    try:
        ended = users.disable_user(current_user, user)
    except users.AdminError as exc:
        return _refused(user, exc)
    db.session.commit()
    log.info("user disabled: admin=%s user=%s", current_user.username, user.id)
    flash(f"Disabled {user.username!r}; {ended} session(s) signed out.", "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/enable", methods=["POST"])
@requires_role(Role.ADMIN)
def enable_user(user_id: int):
    """Let a disabled user log in again."""
    user = db.get_or_404(User, user_id)
    require_confirmation()
    try:
        users.enable_user(user)
    except users.AdminError as exc:
        return _refused(user, exc)
    db.session.commit()
    log.info("user enabled: admin=%s user=%s", current_user.username, user.id)
    flash(f"Enabled {user.username!r}.", "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/break-glass/on", methods=["POST"])
@requires_role(Role.ADMIN)
def mark_break_glass(user_id: int):
    """Let an admin sign in with a password while local passwords are switched off."""
    return _set_break_glass(user_id, True)


@bp.route("/users/<int:user_id>/break-glass/off", methods=["POST"])
@requires_role(Role.ADMIN)
def unmark_break_glass(user_id: int):
    """Stop an admin signing in with a password while local passwords are switched off."""
    return _set_break_glass(user_id, False)


def _set_break_glass(user_id: int, on: bool):
    user = db.get_or_404(User, user_id)
    require_confirmation()
    try:
        users.set_break_glass(user, on)
    except users.AdminError as exc:
        return _refused(user, exc)
    db.session.commit()
    log.info("break-glass %s: admin=%s user=%s", on, current_user.username, user.id)
    flash(
        f"{user.username!r} is {'now' if user.break_glass else 'no longer'} a break-glass admin.",
        "success",
    )
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/reset-password", methods=["POST"])
@requires_role(Role.ADMIN)
def reset_password(user_id: int):
    """Set a temporary password, shown once, that the user must change at next login."""
    user = db.get_or_404(User, user_id)
    require_confirmation()
    try:
        temporary = users.reset_password(current_user, user)
    except users.AdminError as exc:
        return _refused(user, exc)
    db.session.commit()
    log.info("password reset: admin=%s user=%s", current_user.username, user.id)
    # Rendered, not redirected: the password must not travel through the session cookie.
    return _render_user(user, temporary=temporary)


@bp.route("/users/<int:user_id>/reset-second-factor", methods=["POST"])
@requires_role(Role.ADMIN)
def reset_second_factor(user_id: int):
    """Remove a user's second factor (a lost device) and sign them out everywhere."""
    user = db.get_or_404(User, user_id)
    require_confirmation()
    try:
        ended = users.reset_second_factor(user, actor=current_user)
    except users.AdminError as exc:
        return _refused(user, exc)
    db.session.commit()
    log.info("second factor reset: admin=%s user=%s", current_user.username, user.id)
    flash(f"Second factor of {user.username!r} removed; {ended} session(s) signed out.", "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/sessions/<int:session_id>/revoke", methods=["POST"])
@requires_role(Role.ADMIN)
def revoke_session(user_id: int, session_id: int):
    """Sign out one of a user's sessions."""
    user = db.get_or_404(User, user_id)
    require_confirmation()
    row = db.session.get(UserSession, session_id)
    if row is None or row.user_id != user.id or row.revoked_at is not None:
        abort(404)
    users.revoke_session(row, "revoked_by_admin")
    db.session.commit()
    log.info("session revoked: admin=%s session=%s", current_user.username, row.id)
    flash("Session signed out.", "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/tokens/<int:token_id>/revoke", methods=["POST"])
@requires_role(Role.ADMIN)
def revoke_token(user_id: int, token_id: int):
    """Revoke one of a user's API tokens."""
    user = db.get_or_404(User, user_id)
    require_confirmation()
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id or token.revoked_at is not None:
        abort(404)
    users.revoke_token(token)
    db.session.commit()
    log.info("token revoked: admin=%s token=%s", current_user.username, token.id)
    flash(f"Token {token.name!r} revoked.", "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


def _filter_args() -> dict:
    return {k: v for k, v in request.args.items() if k in queries.FILTER_ARGS and v}


@bp.route("/audit")
@requires_role(Role.ADMIN)
def audit():
    """Show the audit log, newest first, filtered by actor, action and time."""
    status = 200
    try:
        filters = queries.parse_filters(request.args)
        cursor = queries.parse_cursor(request.args.get("cursor"))
    except (FilterError, BadCursor) as exc:
        flash(str(exc), "error")
        filters, cursor, status = queries.AuditFilters(), None, 400
    limit = current_app.config["AUDIT_PAGE_SIZE"]
    page = queries.audit_page(filters, cursor, limit)
    return (
        render_template(
            "admin/audit.html",
            page=page,
            args=_filter_args(),
            actions=Action.ALL,
            detail_text=queries.detail_text,
            is_first_page=cursor is None,
        ),
        status,
    )


@bp.route("/audit.csv")
@requires_role(Role.ADMIN)
def audit_csv():
    """Download the filtered audit log as CSV."""
    try:
        filters = queries.parse_filters(request.args)
    except FilterError as exc:
        abort(400, description=str(exc))
    response = Response(stream_with_context(queries.audit_csv(filters)), mimetype="text/csv")
    response.headers.set("Content-Disposition", "attachment", filename="audit-log.csv")
    return response
