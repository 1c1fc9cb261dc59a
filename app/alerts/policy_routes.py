"""Escalation policies (operators define them, viewers look) and the step each open alert
is on."""

import logging

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from app.alerts import policies
from app.alerts.escalation import open_escalations
from app.alerts.forms import PolicyForm, StepForm
from app.alerts.models import Channel
from app.alerts.oncall_models import EscalationPolicy, EscalationStep
from app.auth.access import requires_role
from app.auth.models import Role
from app.db_types import utcnow
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("alert_policies", __name__)


def _policy_or_404(policy_id: int) -> EscalationPolicy:
    return db.session.get(EscalationPolicy, policy_id) or abort(404)


def _step_form() -> StepForm:
    form = StepForm()
    channels = db.session.execute(db.select(Channel).order_by(Channel.name)).scalars()
    form.channels.choices = [(c.id, f"{c.name} ({c.kind})") for c in channels]
    return form


def _render_list(form: PolicyForm, status: int = 200):
    return render_template(
        "alerts/policies.html",
        policies=policies.all_policies(),
        form=form,
        can_edit=current_user.has_role(Role.OPERATOR),
    ), status


def _render_policy(policy, form: PolicyForm, step_form: StepForm, status: int = 200):
    return render_template(
        "alerts/policy.html",
        policy=policy,
        rules=policies.rules_using(policy),
        form=form,
        step_form=step_form,
        can_edit=current_user.has_role(Role.OPERATOR),
    ), status


@bp.route("/policies")
@requires_role(Role.VIEWER)
def index():
    """List escalation policies and their steps."""
    return _render_list(PolicyForm(formdata=None))


@bp.route("/policies", methods=["POST"])
@requires_role(Role.OPERATOR)
def create():
    """Add an escalation policy (its steps are added on its page)."""
    form = PolicyForm()
    if not form.validate():
        return _render_list(form, 400)
    name = form.name.data.strip()
    if policies.name_taken(name):
        form.name.errors.append("A policy with this name exists.")
        return _render_list(form, 400)
    policy = policies.create_policy(name, (form.description.data or "").strip())
    db.session.commit()
    log.info("policy added: user=%s policy=%s", current_user.username, policy.id)
    flash(f"Policy {name!r} added; now give it steps.", "success")
    return redirect(url_for("alert_policies.policy", policy_id=policy.id))


@bp.route("/policies/<int:policy_id>")
@requires_role(Role.VIEWER)
def policy(policy_id: int):
    """Show one policy: its steps, the rules that use it and (operators) its forms."""
    policy = _policy_or_404(policy_id)
    return _render_policy(policy, PolicyForm(obj=policy, formdata=None), _step_form())


@bp.route("/policies/<int:policy_id>", methods=["POST"])
@requires_role(Role.OPERATOR)
def update(policy_id: int):
    """Rename a policy or change its description."""
    policy = _policy_or_404(policy_id)
    form = PolicyForm()
    if form.validate():
        name = form.name.data.strip()
        if not policies.name_taken(name, policy):
            policies.update_policy(policy, name, (form.description.data or "").strip())
            db.session.commit()
            flash(f"Policy {name!r} saved.", "success")
            return redirect(url_for("alert_policies.policy", policy_id=policy.id))
        form.name.errors.append("A policy with this name exists.")
    return _render_policy(policy, form, _step_form(), 400)


@bp.route("/policies/<int:policy_id>/steps", methods=["POST"])
@requires_role(Role.OPERATOR)
def add_step(policy_id: int):
    """Append a step to a policy: channels to notify, then a wait."""
    policy = _policy_or_404(policy_id)
    step_form = _step_form()
    valid = step_form.validate()
    if valid and not step_form.channels.data:
        step_form.channels.errors.append("Choose at least one channel.")
        valid = False
    if not valid:
        return _render_policy(policy, PolicyForm(obj=policy, formdata=None), step_form, 400)
    policies.add_step(policy, step_form.channels.data, step_form.wait_seconds.data)
    db.session.commit()
    log.info("policy step added: user=%s policy=%s", current_user.username, policy.id)
    flash(f"Step added to {policy.name!r}.", "success")
    return redirect(url_for("alert_policies.policy", policy_id=policy.id))


@bp.route("/policies/<int:policy_id>/steps/<int:step_id>/delete", methods=["POST"])
@requires_role(Role.OPERATOR)
def delete_step(policy_id: int, step_id: int):
    """Remove a step from a policy; the later steps move up."""
    policy = _policy_or_404(policy_id)
    step = db.session.get(EscalationStep, step_id)
    if step is None or step.policy_id != policy.id:
        abort(404)
    policies.remove_step(policy, step)
    db.session.commit()
    flash(f"Step removed from {policy.name!r}.", "success")
    return redirect(url_for("alert_policies.policy", policy_id=policy.id))


@bp.route("/policies/<int:policy_id>/delete", methods=["POST"])
@requires_role(Role.OPERATOR)
def delete(policy_id: int):
    """Delete a policy; its rules keep their own channels."""
    policy = _policy_or_404(policy_id)
    name = policy.name
    policies.delete_policy(policy)
    db.session.commit()
    log.info("policy deleted: user=%s policy=%s", current_user.username, policy_id)
    flash(f"Policy {name!r} deleted.", "success")
    return redirect(url_for("alert_policies.index"))


@bp.route("/escalations")
@requires_role(Role.VIEWER)
def escalations():
    """Which step of its policy each firing alert is on, and when the next is due."""
    return render_template("alerts/escalations.html", escalations=open_escalations(), now=utcnow())
