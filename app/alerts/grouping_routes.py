"""Each channel's grouping (admins, as channels are): labels, group wait, interval, repeat."""

import logging

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from app.admin.audit import Action, record_event
from app.alerts.forms import GroupingForm
from app.alerts.grouping import UNGROUPED_KINDS, labels_of
from app.alerts.models import Channel
from app.auth.access import requires_role
from app.auth.models import Role
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("alert_grouping", __name__)

SETTINGS = ("group_wait_seconds", "group_interval_seconds", "group_repeat_seconds")


def _forms(failed: Channel | None = None, failed_form: GroupingForm | None = None) -> list:
    channels = db.session.execute(db.select(Channel).order_by(Channel.name)).scalars()
    rows = []
    for channel in channels:
        if channel == failed:
            rows.append((channel, failed_form))
            continue
        form = GroupingForm(formdata=None, obj=channel, prefix=f"c{channel.id}")
        form.group_by.data = labels_of(channel)
        rows.append((channel, form))
    return rows


@bp.route("/grouping")
@requires_role(Role.ADMIN)
def index():
    """Every channel's grouping settings, each with its form."""
    return render_template("alerts/grouping.html", rows=_forms(), ungrouped_kinds=UNGROUPED_KINDS)


@bp.route("/channels/<int:channel_id>/grouping", methods=["POST"])
@requires_role(Role.ADMIN)
def change(channel_id: int):
    """Change how a channel groups its messages (no labels: one message per alert)."""
    channel = db.session.get(Channel, channel_id) or abort(404)
    form = GroupingForm(prefix=f"c{channel.id}")
    if not form.validate() or (form.group_by.data and channel.kind in UNGROUPED_KINDS):
        if form.group_by.data and channel.kind in UNGROUPED_KINDS:
            form.group_by.errors.append("An Alertmanager channel groups by itself.")
        page = render_template(
            "alerts/grouping.html", rows=_forms(channel, form), ungrouped_kinds=UNGROUPED_KINDS
        )
        return page, 400
    channel.group_by = ",".join(form.group_by.data or [])
    for name in SETTINGS:
        setattr(channel, name, getattr(form, name).data)
    record_event(
        Action.CHANNEL_GROUPING,
        target=f"channel:{channel.id}",
        detail={"name": channel.name, "group_by": channel.group_by}
        | {name: getattr(channel, name) for name in SETTINGS},
    )
    db.session.commit()
    log.info("channel grouping changed: user=%s channel=%s", current_user.username, channel.id)
    grouped = channel.group_by or "nothing (one message per alert)"
    flash(f"Channel {channel.name!r} now groups by {grouped}.", "success")
    return redirect(url_for("alert_grouping.index"))
