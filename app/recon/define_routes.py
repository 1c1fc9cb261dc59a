"""The reconciliation definitions: everyone may read them, admins change them."""

import logging
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from app.alerts.models import Channel
from app.alerts.preview import preview_days
from app.auth.access import requires_role
from app.auth.forms import require_confirmation
from app.auth.models import Role
from app.db_types import format_decimal, utcnow
from app.extensions import db
from app.positions import series
from app.recon import chart, queries
from app.recon.define import (
    AssetSpec,
    DefinitionError,
    ReconSpec,
    check,
    delete_reconciliation,
    save_reconciliation,
)
from app.recon.forms import MAX_ASSET_LINES, SPARE_ASSET_LINES, ReconciliationForm
from app.recon.models import Reconciliation, ReconState
from app.recon.preview import preview_spec
from app.recon.routes import tolerance_text
from app.user_input import parse_decimal

log = logging.getLogger(__name__)

# Mounted at /recon/definitions.
bp = Blueprint("recon_definitions", __name__)

# A preview replays this many assets at most (each is two reads of history).
PREVIEW_ASSETS = 200
# The preview's changes listed on the page.
PREVIEW_ROWS = 200


@bp.route("")
@requires_role(Role.VIEWER)
def index():
    """List every reconciliation with its assets, tolerances, grace and maximum ages."""
    return render_template(
        "recon/definitions.html",
        reconciliations=queries.reconciliations(),
        can_define=current_user.has_role(Role.ADMIN),
        tolerance_text=tolerance_text,
    )


def _form_for(recon: Reconciliation | None) -> ReconciliationForm:
    """The form, filled from the reconciliation on a GET, with spare asset lines."""
    form = ReconciliationForm()
    channels = db.session.execute(db.select(Channel).order_by(Channel.name)).scalars()
    form.channels.choices = [(c.id, f"{c.name} ({c.kind})") for c in channels]
    if request.method == "GET" and recon is not None:
        for name in (
            "name",
            "left_account",
            "left_label",
            "right_account",
            "right_label",
            "grace_seconds",
            "left_max_age_seconds",
            "right_max_age_seconds",
            "severity",
            "enabled",
        ):
            getattr(form, name).data = getattr(recon, name)
        form.tolerance_abs.data = _text(recon.abs_tolerance)
        form.tolerance_rel.data = _text(recon.rel_tolerance_percent)
        form.channels.data = [] if recon.rule is None else [c.id for c in recon.rule.channels]
        for line in recon.assets if assets_on_page(recon) else ():
            form.assets.append_entry(
                {
                    "asset": line.left_asset,
                    "right_asset": "" if line.right_asset == line.left_asset else line.right_asset,
                    "multiplier": "" if line.multiplier == 1 else _text(line.multiplier),
                    "tolerance_abs": _text(line.abs_tolerance),
                    "tolerance_rel": _text(line.rel_tolerance_percent),
                }
            )
    if not assets_on_page(recon):
        return form
    # Blank lines to add assets with; on a refused POST every typed line is kept.
    blank = sum(1 for entry in form.assets if entry.form.is_blank())
    while blank < SPARE_ASSET_LINES and len(form.assets) < form.assets.max_entries:
        form.assets.append_entry()
        blank += 1
    return form


def _text(value: Decimal | None) -> str:
    return "" if value is None else format_decimal(value)


def _decimal(text: str | None) -> Decimal | None:
    text = (text or "").strip()
    return parse_decimal(text) if text else None


def assets_on_page(recon: Reconciliation | None) -> bool:
    """Whether the form lists the assets (a long list is left to `flask recon update`)."""
    return recon is None or len(recon.assets) + SPARE_ASSET_LINES <= MAX_ASSET_LINES


def _spec(form: ReconciliationForm, recon: Reconciliation | None) -> ReconSpec:
    """The definition as typed (the form has checked each number's spelling)."""
    if assets_on_page(recon):
        assets = tuple(
            AssetSpec(
                left_asset=(line.asset.data or "").strip(),
                right_asset=(line.right_asset.data or "").strip() or None,
                multiplier=_decimal(line.multiplier.data) or Decimal(1),
                abs_tolerance=_decimal(line.tolerance_abs.data),
                rel_tolerance_percent=_decimal(line.tolerance_rel.data),
            )
            for line in form.asset_lines()
        )
    else:
        assets = tuple(
            AssetSpec(
                a.left_asset, a.right_asset, a.multiplier, a.abs_tolerance, a.rel_tolerance_percent
            )
            for a in recon.assets
        )
    return ReconSpec(
        name=form.name.data.strip(),
        left_account=form.left_account.data.strip(),
        left_label=(form.left_label.data or "").strip() or "book",
        right_account=form.right_account.data.strip(),
        right_label=(form.right_label.data or "").strip() or "venue",
        assets=assets,
        abs_tolerance=_decimal(form.tolerance_abs.data),
        rel_tolerance_percent=_decimal(form.tolerance_rel.data),
        grace_seconds=form.grace_seconds.data,
        left_max_age_seconds=form.left_max_age_seconds.data,
        right_max_age_seconds=form.right_max_age_seconds.data,
        severity=form.severity.data,
        enabled=form.enabled.data,
        channel_ids=tuple(form.channels.data or ()),
    )


@bp.route("/new", methods=["GET", "POST"])
@bp.route("/<int:recon_id>/edit", methods=["GET", "POST"])
@requires_role(Role.ADMIN)
def edit(recon_id: int | None = None):
    """Create or change a reconciliation and its assets."""
    recon = db.session.get(Reconciliation, recon_id) if recon_id else None
    if recon_id and recon is None:
        abort(404)
    form = _form_for(recon)
    problem = None
    if form.validate_on_submit():
        if request.form.get("action") == "preview":
            return _render_preview(form, recon)
        try:
            with db.session.no_autoflush:
                saved = save_reconciliation(_spec(form, recon), recon, actor=current_user.record)
        except DefinitionError as exc:
            db.session.rollback()
            problem = str(exc)
        else:
            db.session.commit()
            log.info("reconciliation saved: user=%s recon=%s", current_user.username, saved.id)
            flash(f"Reconciliation {saved.name!r} saved.", "success")
            return redirect(url_for("recon_definitions.index", _anchor=f"recon-{saved.id}"))
    elif form.is_submitted():
        problem = "Nothing was saved: correct the fields marked below."
    status = 400 if form.is_submitted() else 200
    return render_template(
        "recon/definition_form.html",
        form=form,
        recon=recon,
        problem=problem,
        spare=SPARE_ASSET_LINES,
        assets_on_page=assets_on_page(recon),
    ), status


def _render_preview(form: ReconciliationForm, recon: Reconciliation | None):
    """Replay the definition as typed (unsaved) over the last days of history."""
    days, now = preview_days(request.form), utcnow()
    spec = _spec(form, recon)
    problem, changes, chart_asset = None, [], None
    try:
        check(spec)
    except DefinitionError as exc:
        problem = str(exc)
    else:
        replayed = spec.assets[:PREVIEW_ASSETS]
        changes = preview_spec(replace(spec, assets=replayed), now - timedelta(days=days), now)
        breaking = [c.asset for c in changes if c.to_state == ReconState.BREAK]
        chart_asset = breaking[0] if breaking else replayed[0].left_asset
    chart_doc = None
    if chart_asset is not None:
        line = next(a for a in spec.assets if a.left_asset == chart_asset)
        chart_doc = {
            "asset": chart_asset,
            "from": now - timedelta(days=days),
            "to": now,
            "series_url": url_for(
                "recon_definitions.preview_series", **_typed_args(spec, line, days)
            ),
        }
    return render_template(
        "recon/definition_form.html",
        form=form,
        recon=recon,
        problem=problem,
        spare=SPARE_ASSET_LINES,
        assets_on_page=assets_on_page(recon),
        preview=changes,
        preview_days=days,
        preview_assets=min(len(spec.assets), PREVIEW_ASSETS),
        preview_rows=PREVIEW_ROWS,
        skipped_assets=max(0, len(spec.assets) - PREVIEW_ASSETS),
        chart=chart_doc,
    ), 200 if problem is None else 400


def _typed_args(spec: ReconSpec, line: AssetSpec, days: int) -> dict:
    """The form's fields for one asset as a query string: what the preview chart replays."""
    args = {
        "preview_days": days,
        "name": spec.name,
        "left_account": spec.left_account,
        "right_account": spec.right_account,
        "tolerance_abs": _text(spec.abs_tolerance),
        "tolerance_rel": _text(spec.rel_tolerance_percent),
        "grace_seconds": spec.grace_seconds,
        "left_max_age_seconds": spec.left_max_age_seconds,
        "right_max_age_seconds": spec.right_max_age_seconds,
        "severity": spec.severity,
        "assets-0-asset": line.left_asset,
        "assets-0-right_asset": line.right_asset or "",
        "assets-0-multiplier": _text(line.multiplier),
        "assets-0-tolerance_abs": _text(line.abs_tolerance),
        "assets-0-tolerance_rel": _text(line.rel_tolerance_percent),
    }
    return {key: value for key, value in args.items() if value not in ("", None)}


@bp.route("/preview/series")
@requires_role(Role.ADMIN)
def preview_series():
    """Return both sides of one asset of a typed definition and where it would have broken."""
    form = ReconciliationForm(formdata=request.args, meta={"csrf": False})
    form.channels.choices = []
    try:
        start, end = series.parse_range(request.args)
    except series.BadParameter as exc:
        return jsonify(error="bad_request", message=str(exc), parameter=exc.name), 400
    if not form.validate() or len(form.asset_lines()) != 1:
        return jsonify(
            error="bad_request", message="The definition is not valid.", fields=form.errors
        ), 400
    spec = _spec(form, None)
    try:
        check(spec)
    except DefinitionError as exc:
        return jsonify(error="bad_request", message=str(exc)), 400
    now = utcnow()
    line = spec.assets[0]
    changes = preview_spec(spec, now - timedelta(days=preview_days(request.args)), now)
    return jsonify(
        chart.chart_document(
            left_account=spec.left_account,
            asset=line.left_asset,
            right_account=spec.right_account,
            right_asset=line.right_asset or line.left_asset,
            multiplier=line.multiplier,
            transitions=changes,
            start=start,
            end=end,
        )
    )


@bp.route("/<int:recon_id>/delete", methods=["POST"])
@requires_role(Role.ADMIN)
def delete(recon_id: int):
    """Delete a reconciliation, its assets' states and their history."""
    recon = db.session.get(Reconciliation, recon_id)
    if recon is None:
        abort(404)
    require_confirmation()
    name = recon.name
    delete_reconciliation(recon, actor=current_user.record)
    db.session.commit()
    log.info("reconciliation deleted: user=%s name=%s", current_user.username, name)
    flash(f"Reconciliation {name!r} deleted.", "success")
    return redirect(url_for("recon_definitions.index"))
