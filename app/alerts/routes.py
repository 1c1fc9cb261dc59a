"""The alerts page: what is firing or pending, and acknowledging it."""

import csv
import io
import logging
from datetime import timedelta
from decimal import Decimal

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from app.admin.audit import Action, record_event
from app.alerts import queries, timeline
from app.alerts.forms import AcknowledgeForm, QuickSilenceForm, SilenceForm
from app.alerts.models import ANY, Alert, AlertRule, AlertState, Silence
from app.alerts.silences import (
    matching_alerts,
    quick_silence,
    silence_for,
    silence_start,
    silenced_ids,
    store_silence,
)
from app.auth.access import requires_role
from app.auth.models import Role
from app.db_types import utcnow
from app.extensions import db
from app.positions.csv_io import spreadsheet_safe
from app.templating import duration, parse_local_datetime, utc_iso

log = logging.getLogger(__name__)

bp = Blueprint("alerts", __name__)


HISTORY_PAGE = 200
HISTORY_ARGS = ("rule", "asset", "state", "from", "to")


@bp.app_template_filter("seconds")
def seconds_filter(value: Decimal | None) -> str:
    """A number of seconds as a compact duration (a stale feed's age): 3m 12s."""
    return "" if value is None else duration(timedelta(seconds=int(value)))


@bp.route("/")
@requires_role(Role.VIEWER)
def index():
    """Show firing and pending alerts, the most urgent first (queries.alerts_by_urgency)."""
    open_alerts = queries.alerts_by_urgency()
    now = utcnow()
    # htmx polls for the table alone; a normal visit gets the whole page.
    template = "alerts/_table.html" if request.headers.get("HX-Request") else "alerts/index.html"
    return render_template(
        template,
        alerts=open_alerts,
        silenced=silenced_ids(open_alerts, now),
        can_act=current_user.has_role(Role.OPERATOR),
        now=now,
    )


@bp.route("/badge")
@requires_role(Role.VIEWER)
def firing_badge():
    """Render the navigation's firing-alerts badge alone, for its live refresh."""
    return render_template("alerts/_badge.html")


@bp.route("/<int:alert_id>")
@requires_role(Role.VIEWER)
def detail(alert_id: int):
    """Show one alert: its state, its timeline and the chart around it."""
    alert = db.session.get(Alert, alert_id) or abort(404)
    now = utcnow()
    steps = timeline.transitions(alert)
    start, end = timeline.chart_window(steps, now)
    runbook = alert.rule.runbook_url or ""
    return render_template(
        "alerts/detail.html",
        alert=alert,
        rule=alert.rule,
        events=timeline.alert_timeline(alert, now),
        chart_from=start,
        chart_to=end,
        runbook=runbook if runbook.lower().startswith(("http://", "https://")) else None,
        silence=silence_for(alert, now),
        form=AcknowledgeForm(),
        can_act=current_user.has_role(Role.OPERATOR),
        now=now,
    )


@bp.route("/<int:alert_id>/overlay.json")
@requires_role(Role.VIEWER)
def overlay(alert_id: int):
    """Return the alert's rule limit lines and its firing spans for its chart, as JSON."""
    alert = db.session.get(Alert, alert_id) or abort(404)
    return jsonify(timeline.alert_overlay(alert))


def _back_to(alert: Alert):
    """Back to the page the action came from: the alert's own page or the list."""
    if request.form.get("return_to") == "detail":
        return redirect(url_for("alerts.detail", alert_id=alert.id))
    return redirect(url_for("alerts.index"))


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
        return _back_to(alert)
    alert.acknowledged_by_id = current_user.id
    alert.acknowledged_at = utcnow()
    alert.acknowledgement = (form.comment.data or "").strip() or None
    record_event(
        Action.ALERT_ACK,
        target=f"alert:{alert.id}",
        detail={"rule": alert.rule.name, "account": alert.account, "asset": alert.asset},
    )
    db.session.commit()
    log.info("alert acknowledged: user=%s alert=%s", current_user.username, alert.id)
    flash(f"Acknowledged {alert.rule.name} on {alert.account}/{alert.asset}.", "success")
    return _back_to(alert)


@bp.route("/<int:alert_id>/silence", methods=["POST"])
@requires_role(Role.OPERATOR)
def silence_alert(alert_id: int):
    """Silence this alert's rule, asset and account for some hours, in one click."""
    form = QuickSilenceForm()
    if not form.validate_on_submit():
        abort(400, description="Hours must be between 0.01 and 2160.")
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        abort(404)
    silence = quick_silence(alert, form.hours.data, current_user, utcnow())
    db.session.commit()
    log.info(
        "silence created: user=%s silence=%s alert=%s", current_user.username, silence.id, alert.id
    )
    flash(f"Silenced {alert.rule.name} on {alert.account}/{alert.asset}.", "success")
    return _back_to(alert)


def _silence_form() -> SilenceForm:
    form = SilenceForm()
    rules = db.session.execute(db.select(AlertRule).order_by(AlertRule.name)).scalars()
    form.rule_id.choices = [(0, "Any rule")] + [(r.id, r.name) for r in rules]
    return form


@bp.route("/silences", methods=["GET", "POST"])
@requires_role(Role.VIEWER)
def silences():
    """List silences (expired ones too); operators create them, with a preview."""
    form = _silence_form()
    now = utcnow()
    preview = None
    status = 200
    if form.is_submitted():
        if not current_user.has_role(Role.OPERATOR):
            abort(403)
        valid = form.validate()  # first: validating clears the fields' errors
        starts = silence_start(form.starts, now)
        if valid and not form.starts.errors:
            silence = Silence(
                rule_id=form.rule_id.data or None,
                asset=form.asset.data.strip() or ANY,
                account=form.account.data.strip() or ANY,
                starts_at=starts,
                ends_at=starts + timedelta(hours=float(form.hours.data)),
                comment=form.comment.data.strip(),
                created_by_id=current_user.id,
            )
            if request.form.get("action") == "preview":
                preview = matching_alerts(silence, queries.open_alerts())
            else:
                store_silence(silence, form.hours.data)
                db.session.commit()
                log.info("silence created: user=%s silence=%s", current_user.username, silence.id)
                flash("Silence created.", "success")
                return redirect(url_for("alerts.silences"))
        else:
            status = 400
    rows = (
        db.session.execute(db.select(Silence).order_by(Silence.ends_at.desc()).limit(200))
        .scalars()
        .all()
    )
    return (
        render_template(
            "alerts/silences.html",
            form=form,
            silences=rows,
            now=now,
            preview=preview,
            can_act=current_user.has_role(Role.OPERATOR),
        ),
        status,
    )


@bp.route("/silences/<int:silence_id>/expire", methods=["POST"])
@requires_role(Role.OPERATOR)
def expire_silence(silence_id: int):
    """End a silence now; it stays in the list."""
    silence = db.session.get(Silence, silence_id)
    if silence is None:
        abort(404)
    now = utcnow()
    if silence.ends_at > now:
        silence.ends_at = max(now, silence.starts_at)
        record_event(Action.SILENCE_EXPIRE, target=f"silence:{silence.id}")
        db.session.commit()
        log.info("silence expired: user=%s silence=%s", current_user.username, silence.id)
    flash("Silence ended.", "success")
    return redirect(url_for("alerts.silences"))


def _history_filters():
    """Read the history filters from the query string; raise ValueError if bad."""
    args = request.args
    filters = {
        "rule_id": args.get("rule", type=int),
        "asset": args.get("asset", "").strip() or None,
        "state": args.get("state", "").strip() or None,
        "start": None,
        "end": None,
    }
    if filters["state"] and filters["state"] not in AlertState.ALL:
        raise ValueError(f"state must be one of {', '.join(AlertState.ALL)}")
    for key, name in (("start", "from"), ("end", "to")):
        if args.get(name):
            filters[key] = parse_local_datetime(args[name], name)
    return filters


@bp.route("/history")
@requires_role(Role.VIEWER)
def history():
    """Every transition, newest first, filterable by rule, asset, state and time."""
    status = 200
    try:
        filters = _history_filters()
    except ValueError as exc:
        flash(str(exc), "error")
        filters, status = {}, 400
    before = request.args.get("before", type=int)
    rows = list(queries.transitions(**filters, before_id=before, limit=HISTORY_PAGE + 1))
    older = rows[HISTORY_PAGE - 1][0].id if len(rows) > HISTORY_PAGE else None
    rules = db.session.execute(db.select(AlertRule).order_by(AlertRule.name)).scalars().all()
    args = {k: v for k, v in request.args.items() if k in HISTORY_ARGS and v}
    return (
        render_template(
            "alerts/history.html",
            rows=rows[:HISTORY_PAGE],
            rules=rules,
            states=AlertState.ALL,
            args=args,
            older=older,
        ),
        status,
    )


@bp.route("/history.csv")
@requires_role(Role.VIEWER)
def history_csv():
    """Download the filtered transitions as CSV."""
    try:
        filters = _history_filters()
    except ValueError as exc:
        abort(400, description=str(exc))

    def lines():
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["at", "rule", "severity", "account", "asset", "from", "to", "value"])
        for transition, alert, rule in queries.transitions(**filters, limit=None):
            writer.writerow(
                [
                    utc_iso(transition.at),
                    spreadsheet_safe(rule.name),
                    rule.severity,
                    spreadsheet_safe(alert.account),
                    spreadsheet_safe(alert.asset),
                    transition.from_state,
                    transition.to_state,
                    "" if transition.value is None else format(transition.value, "f"),
                ]
            )
            yield out.getvalue()
            out.seek(0)
            out.truncate()

    response = Response(stream_with_context(lines()), mimetype="text/csv")
    response.headers.set("Content-Disposition", "attachment", filename="alert-history.csv")
    return response
