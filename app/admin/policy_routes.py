"""The admin page of the desk's sign-in policy: local passwords, and who needs a second factor."""

import logging

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from app.admin.forms import SignInPolicyForm
from app.auth import policy
from app.auth.access import requires_role
from app.auth.models import Role
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("sign_in_policy", __name__)


def _render_policy(form: SignInPolicyForm | None = None, status: int = 200):
    stored = policy.current_policy()
    if form is None:
        form = SignInPolicyForm(formdata=None)
        form.local_passwords.data = stored.local_passwords
        form.second_factor_roles.data = list(stored.second_factor_roles or [])
    return (
        render_template(
            "admin/sign_in_policy.html",
            form=form,
            policy=stored,
            break_glass=policy.active_break_glass_admins(),
        ),
        status,
    )


@bp.route("")
@requires_role(Role.ADMIN)
def show():
    """Show the sign-in policy: local passwords, and roles that need a second factor."""
    return _render_policy()


@bp.route("", methods=["POST"])
@requires_role(Role.ADMIN)
def update():
    """Switch local passwords on or off and choose the roles that need a second factor."""
    form = SignInPolicyForm()
    if not form.validate_on_submit():
        return _render_policy(form, status=400)
    try:
        changed = policy.update_policy(form.local_passwords.data, form.second_factor_roles.data)
    except policy.PolicyError as exc:
        db.session.rollback()
        form.local_passwords.errors.append(f"{exc} Nothing was saved.")
        return _render_policy(form, status=400)
    db.session.commit()
    if changed:
        log.info("sign-in policy changed: admin=%s", current_user.username)
        flash("Sign-in policy saved.", "success")
    else:
        flash("Nothing changed.", "info")
    return redirect(url_for("sign_in_policy.show"))
