"""Notification channels (admins): add, test, retarget, enable, disable, delete; dead-man beat."""

import logging

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from app.admin.audit import Action, record_event
from app.alerts.deadman import last_beat
from app.alerts.delivery import DeliveryError, send
from app.alerts.forms import ChannelForm, ChannelTargetForm
from app.alerts.models import Channel, Notification
from app.alerts.validation import target_problem
from app.auth.access import requires_role
from app.auth.models import Role
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("alert_channels", __name__)


def _channel_or_404(channel_id: int) -> Channel:
    return db.session.get(Channel, channel_id) or abort(404)


def _render(form: ChannelForm, status: int = 200, target_form: ChannelTargetForm | None = None):
    rows = db.session.execute(db.select(Channel).order_by(Channel.name)).scalars().all()
    recent = (
        db.session.execute(db.select(Notification).order_by(Notification.id.desc()).limit(50))
        .scalars()
        .all()
    )
    return render_template(
        "alerts/channels.html",
        form=form,
        target_form=target_form or ChannelTargetForm(),
        channels=rows,
        notifications=recent,
        deadman=last_beat(),
        deadman_configured=bool(current_app.config.get("DEADMAN_URL")),
    ), status


@bp.route("/channels", methods=["GET", "POST"])
@requires_role(Role.ADMIN)
def channels():
    """List notification channels and add one (admins)."""
    form = ChannelForm()
    if not form.is_submitted():
        return _render(form)
    if form.validate():
        problem = target_problem(form.kind.data, form.target.data)
        exists = db.session.execute(
            db.select(Channel.id).where(Channel.name == form.name.data.strip())
        ).first()
        if not problem and not exists:
            channel = Channel(
                name=form.name.data.strip(), kind=form.kind.data, target=form.target.data.strip()
            )
            db.session.add(channel)
            db.session.flush()
            # The target URL is left out: webhook URLs often carry a secret.
            record_event(
                Action.CHANNEL_CREATE,
                target=f"channel:{channel.id}",
                detail={"name": channel.name, "kind": channel.kind},
            )
            db.session.commit()
            log.info("channel added: user=%s channel=%s", current_user.username, channel.id)
            flash(f"Channel {channel.name!r} added.", "success")
            return redirect(url_for("alert_channels.channels"))
        form.target.errors.append(problem or "A channel with this name exists.")
    return _render(form, 400)


@bp.route("/channels/<int:channel_id>/target", methods=["POST"])
@requires_role(Role.ADMIN)
def change_target(channel_id: int):
    """Point a channel at a new URL or address (its rules keep it)."""
    channel = _channel_or_404(channel_id)
    target_form = ChannelTargetForm()
    problem = None
    if target_form.validate():
        problem = target_problem(channel.kind, target_form.target.data)
        if not problem:
            channel.target = target_form.target.data.strip()
            record_event(
                Action.CHANNEL_UPDATE,
                target=f"channel:{channel.id}",
                detail={"name": channel.name, "changed": "target"},
            )
            db.session.commit()
            log.info(
                "channel target changed: user=%s channel=%s", current_user.username, channel.id
            )
            flash(f"Channel {channel.name!r} now sends to {channel.masked_target()}.", "success")
            return redirect(url_for("alert_channels.channels"))
    flash(f"Channel {channel.name!r} not changed: {problem or 'give a target'}.", "error")
    return _render(ChannelForm(formdata=None), 400, target_form)


@bp.route("/channels/<int:channel_id>/toggle", methods=["POST"])
@requires_role(Role.ADMIN)
def toggle_channel(channel_id: int):
    """Disable a channel (nothing new is queued for it) or enable it again."""
    channel = _channel_or_404(channel_id)
    channel.enabled = not channel.enabled
    record_event(
        Action.CHANNEL_UPDATE,
        target=f"channel:{channel.id}",
        detail={"name": channel.name, "enabled": channel.enabled},
    )
    db.session.commit()
    state = "enabled" if channel.enabled else "disabled"
    log.info("channel %s: user=%s channel=%s", state, current_user.username, channel.id)
    flash(f"Channel {channel.name!r} {state}.", "success")
    return redirect(url_for("alert_channels.channels"))


@bp.route("/channels/<int:channel_id>/delete", methods=["POST"])
@requires_role(Role.ADMIN)
def delete_channel(channel_id: int):
    """Delete a channel, its queued notifications and its place in every rule."""
    channel = _channel_or_404(channel_id)
    name = channel.name
    db.session.delete(channel)
    record_event(Action.CHANNEL_DELETE, target=f"channel:{channel_id}", detail={"name": name})
    db.session.commit()
    log.info("channel deleted: user=%s channel=%s", current_user.username, channel_id)
    flash(f"Channel {name!r} deleted.", "success")
    return redirect(url_for("alert_channels.channels"))


@bp.route("/channels/<int:channel_id>/test", methods=["POST"])
@requires_role(Role.ADMIN)
def test_channel(channel_id: int):
    """Send a test notification to a channel now."""
    channel = _channel_or_404(channel_id)
    payload = {
        "version": "4",
        "groupKey": f"test/channel:{channel.id}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": channel.name,
        "groupLabels": {"alertname": "TradingMonitor test"},
        "commonLabels": {
            "alertname": "TradingMonitor test",
            "severity": "info",
            "account": "-",
            "asset": "-",
        },
        "commonAnnotations": {"description": "A test notification.", "value": "", "threshold": ""},
        "externalURL": "",
        "alerts": [],
        "tradingmonitor": {"kind": "test"},
    }
    try:
        detail = send(channel, payload)
        flash(f"Test notification sent to {channel.name!r}: {detail}.", "success")
    except DeliveryError as exc:
        flash(f"Test notification to {channel.name!r} failed: {exc}.", "error")
    return redirect(url_for("alert_channels.channels"))
