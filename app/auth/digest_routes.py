"""The account page's daily digest settings (the e-mail itself: app.alerts.digest)."""

import logging

from flask import Blueprint, flash, redirect, url_for
from flask_login import current_user

from app.auth.access import requires_role
from app.auth.account_routes import render_account
from app.auth.forms import DigestForm
from app.auth.models import Role
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("digest_settings", __name__)


@bp.route("/digest", methods=["POST"])
@requires_role(Role.VIEWER)
def change_digest():
    """Switch my daily digest on or off and choose its address and my local time for it."""
    form = DigestForm(prefix="dg")
    if not form.validate_on_submit():
        return render_account(digest_form=form, status=400)
    # Always the signed-in user's own row: nothing in the request names a user.
    user = current_user.record
    user.email = form.email.data or None
    user.digest_enabled = form.enabled.data
    user.digest_at = form.send_at.data.replace(second=0, microsecond=0)
    db.session.commit()
    log.info("digest settings: user=%s enabled=%s", current_user.username, user.digest_enabled)
    if user.digest_enabled:
        at = user.digest_at.strftime("%H:%M")
        flash(f"The daily digest goes to {user.email} at {at} ({user.timezone}).", "success")
    else:
        flash("The daily digest is off.", "success")
    return redirect(url_for("account.index", _anchor="digest"))
