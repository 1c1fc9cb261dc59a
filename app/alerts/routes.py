"""The alerts page: what is firing or pending, and acknowledging it."""

import logging

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from app.alerts import queries
from app.alerts.forms import AcknowledgeForm
from app.alerts.models import Alert, AlertState
from app.auth.access import requires_role
from app.auth.models import Role
from app.db_types import utcnow
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("alerts", __name__)


@bp.route("/")
@requires_role(Role.VIEWER)
def index():
    """Show firing and pending alerts, firing first."""
    return render_template(
        "alerts/index.html",
        alerts=queries.open_alerts(),
        form=AcknowledgeForm(),
        can_act=current_user.has_role(Role.OPERATOR),
    )


@bp.route("/<int:alert_id>/acknowledge", methods=["POST"])
@requires_role(Role.OPERATOR)
def acknowledge(alert_id: int):
    """Acknowledge a firing alert: it stays listed, repeat notifications stop."""
    form = AcknowledgeForm()
    if not form.validate_on_submit():
        abort(400, description="The comment is at most 500 characters.")
    alert = db.session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        abort(404)
    if alert.state != AlertState.FIRING:
        flash("Only a firing alert can be acknowledged; this one is not firing.", "error")
        return redirect(url_for("alerts.index"))
    alert.acknowledged_by_id = current_user.id
    alert.acknowledged_at = utcnow()
    alert.acknowledgement = (form.comment.data or "").strip() or None
    db.session.commit()
    log.info("alert acknowledged: user=%s alert=%s", current_user.username, alert.id)
    flash(f"Acknowledged {alert.rule.name} on {alert.account}/{alert.asset}.", "success")
    return redirect(url_for("alerts.index"))
