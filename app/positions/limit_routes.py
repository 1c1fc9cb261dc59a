"""The limits screen: every limit rule with its value, utilisation and headroom."""

from datetime import timedelta

from flask import Blueprint, current_app, render_template, request

from app.auth.access import requires_role
from app.auth.models import Role
from app.db_types import utcnow
from app.positions.limits import limit_rows

bp = Blueprint("limits", __name__)


@bp.route("/limits")
@requires_role(Role.VIEWER)
def index():
    """Show every limit rule on every series it applies to, nearest to breach first."""
    now = utcnow()
    stale_after = timedelta(seconds=current_app.config["STALE_AFTER_SECONDS"])
    rows = limit_rows(now, stale_after)
    # The live refresh asks for the table alone; a normal visit gets the whole page.
    if request.headers.get("HX-Request"):
        return render_template("positions/_limits.html", rows=rows, now=now)
    return render_template("positions/limits.html", rows=rows, now=now)
