"""Rule pages: list, create, edit (with preview), enable, delete."""

import logging
from datetime import datetime, timedelta

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from app.admin.audit import Action, record_event
from app.alerts.cli import rule_problem
from app.alerts.escalation import chosen_policy, policy_choices
from app.alerts.forms import RuleForm
from app.alerts.models import ANY, AlertRule, Channel, RuleKind
from app.alerts.preview import chart_asset, preview_days, preview_rule, preview_spans
from app.alerts.timeline import iso_spans, limit_lines
from app.alerts.validation import target_problem
from app.auth.access import requires_role
from app.auth.models import Role
from app.db_types import utcnow
from app.extensions import db

log = logging.getLogger(__name__)

# Mounted at /alerts beside the alerts list: /alerts/rules.
bp = Blueprint("alert_rules", __name__)

RULE_FIELDS = [
    "name",
    "kind",
    "asset",
    "account",
    "threshold",
    "clear_threshold",
    "window_seconds",
    "change_percent",
    "pending_seconds",
    "severity",
    "description",
    "runbook_url",
    "repeat_interval_seconds",
    "send_resolved",
    "enabled",
]

# The fields a preview replays the rule with (not its text or channels).
PREVIEW_FIELDS = [
    name for name in RULE_FIELDS if name not in ("description", "runbook_url", "enabled")
]


def _rule_form(rule: AlertRule | None = None) -> RuleForm:
    form = RuleForm(obj=rule) if rule is not None and request.method == "GET" else RuleForm()
    channels = db.session.execute(db.select(Channel).order_by(Channel.name)).scalars()
    form.channels.choices = [(c.id, f"{c.name} ({c.kind})") for c in channels]
    form.escalation_policy_id.choices = policy_choices()
    if rule is not None and request.method == "GET":
        form.channels.data = [c.id for c in rule.channels]
        form.escalation_policy_id.data = rule.escalation_policy_id or 0
    return form


def _apply(form: RuleForm, rule: AlertRule) -> str | None:
    """Copy the form into the rule; return what is wrong with it, if anything."""
    for name in RULE_FIELDS:
        setattr(rule, name, getattr(form, name).data)
    rule.name = rule.name.strip()
    rule.asset = (rule.asset or ANY).strip()
    rule.account = (rule.account or ANY).strip()
    rule.description = rule.description or ""
    rule.runbook_url = rule.runbook_url or None
    if rule.runbook_url and target_problem("webhook", rule.runbook_url):
        return "The runbook link must be an http:// or https:// URL."
    for value in (rule.threshold, rule.clear_threshold):
        if value is not None and not value.is_finite():
            return "Thresholds must be finite numbers."
    rule.channels = [db.session.get(Channel, i) for i in form.channels.data or []]
    rule.escalation_policy_id, problem = chosen_policy(form.escalation_policy_id.data)
    return problem or rule_problem(rule)


@bp.route("/rules")
@requires_role(Role.VIEWER)
def rules():
    """List alert rules."""
    rows = db.session.execute(db.select(AlertRule).order_by(AlertRule.name)).scalars().all()
    return render_template(
        "alerts/rules.html", rules=rows, can_act=current_user.has_role(Role.OPERATOR)
    )


def _reconciliation_owned(rule: AlertRule | None):
    """A reconciliation's rule changes with its reconciliation only: send the user there."""
    if rule is None or rule.kind != RuleKind.RECON_BREAK:
        return None
    flash(
        f"Rule {rule.name!r} belongs to a reconciliation: change, disable or delete it "
        "with the reconciliation.",
        "error",
    )
    return redirect(url_for("recon_definitions.index"))


@bp.route("/rules/new", methods=["GET", "POST"])
@bp.route("/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@requires_role(Role.OPERATOR)
def edit_rule(rule_id: int | None = None):
    """Create or change a rule."""
    rule = db.session.get(AlertRule, rule_id) if rule_id else None
    if rule_id and rule is None:
        abort(404)
    if owned := _reconciliation_owned(rule):
        return owned
    form = _rule_form(rule)
    if form.validate_on_submit() and request.form.get("action") == "preview":
        return _render_preview(form, rule)
    if form.validate_on_submit():
        target = rule or AlertRule(created_by_id=current_user.id)
        with db.session.no_autoflush:
            problem = _apply(form, target)
        if problem is None:
            db.session.add(target)
            db.session.flush()
            record_event(
                Action.RULE_UPDATE if rule else Action.RULE_CREATE,
                target=f"rule:{target.id}",
                detail={"name": target.name, "kind": target.kind, "enabled": target.enabled},
            )
            db.session.commit()
            log.info("rule saved: user=%s rule=%s", current_user.username, target.id)
            flash(f"Rule {target.name!r} saved.", "success")
            return redirect(url_for("alert_rules.rules"))
        db.session.rollback()
        flash(problem, "error")
    status = 400 if form.is_submitted() else 200
    return render_template("alerts/rule_form.html", form=form, rule=rule), status


def _typed_rule(form: RuleForm, days: int, now: datetime):
    """The rule as typed (unsaved) and its replay over the last days: (rule, preview,
    problem), with the preview None when there is a problem."""
    candidate = AlertRule()
    with db.session.no_autoflush:
        problem = _apply(form, candidate)
    result = None
    if problem is None:
        try:
            result = preview_rule(candidate, days, now)
        except ValueError as exc:
            problem = str(exc)
    db.session.rollback()
    return candidate, result, problem


def _overlay_args(form: RuleForm, days: int, asset: str) -> dict:
    """The query string that gives the preview chart's overlay the rule as typed."""
    args = {"preview_days": days, "chart_asset": asset}
    for name in PREVIEW_FIELDS:
        raw = getattr(form, name).raw_data
        if raw and raw[0] not in (None, ""):
            args[name] = raw[0]
    return args


def _render_preview(form: RuleForm, rule: AlertRule | None):
    """Replay the rule as typed (unsaved) over the last days of history."""
    days, now = preview_days(request.form), utcnow()
    candidate, result, problem = _typed_rule(form, days, now)
    if problem:
        flash(problem, "error")
    asset = chart_asset(candidate, result) if result is not None else None
    chart = None
    if asset:
        chart = {
            "asset": asset,
            "from": now - timedelta(days=days),
            "to": now,
            "overlay": url_for("alert_rules.preview_overlay", **_overlay_args(form, days, asset)),
        }
    status = 200 if result is not None else 400
    page = render_template(
        "alerts/rule_form.html",
        form=form,
        rule=rule,
        preview=result,
        preview_days=days,
        chart=chart,
        typed=candidate,
    )
    return page, status


@bp.route("/rules/preview.json")
@requires_role(Role.OPERATOR)
def preview_overlay():
    """Return a typed rule's limit lines and where it would have fired, as JSON."""
    form = RuleForm(formdata=request.args, meta={"csrf": False})
    form.channels.choices = []
    if not form.validate():
        return jsonify(
            error="bad_request", message="The rule is not valid.", fields=form.errors
        ), 400
    candidate, result, problem = _typed_rule(form, preview_days(request.args), utcnow())
    if problem:
        return jsonify(error="bad_request", message=problem), 400
    asset = request.args.get("chart_asset") or chart_asset(candidate, result)
    return jsonify(
        limits=limit_lines(candidate),
        spans=iso_spans(preview_spans(result, asset)) if asset else [],
    )


@bp.route("/rules/<int:rule_id>/toggle", methods=["POST"])
@requires_role(Role.OPERATOR)
def toggle_rule(rule_id: int):
    """Enable or disable a rule."""
    rule = db.session.get(AlertRule, rule_id) or abort(404)
    if owned := _reconciliation_owned(rule):
        return owned
    rule.enabled = not rule.enabled
    record_event(
        Action.RULE_ENABLE if rule.enabled else Action.RULE_DISABLE,
        target=f"rule:{rule.id}",
        detail={"name": rule.name},
    )
    db.session.commit()
    log.info(
        "rule %s: user=%s rule=%s",
        "enabled" if rule.enabled else "disabled",
        current_user.username,
        rule.id,
    )
    flash(f"Rule {rule.name!r} {'enabled' if rule.enabled else 'disabled'}.", "success")
    return redirect(url_for("alert_rules.rules"))


@bp.route("/rules/<int:rule_id>/delete", methods=["POST"])
@requires_role(Role.OPERATOR)
def delete_rule(rule_id: int):
    """Delete a rule with its alerts and their history."""
    rule = db.session.get(AlertRule, rule_id) or abort(404)
    if owned := _reconciliation_owned(rule):
        return owned
    db.session.delete(rule)
    record_event(Action.RULE_DELETE, target=f"rule:{rule_id}", detail={"name": rule.name})
    db.session.commit()
    log.info("rule deleted: user=%s rule=%s", current_user.username, rule_id)
    flash(f"Rule {rule.name!r} deleted.", "success")
    return redirect(url_for("alert_rules.rules"))
