"""The reconciliation pages: every reconciled asset's state, and one asset's chart,
break history and its CSV."""

import csv
import io
import logging
from datetime import datetime, timedelta
from decimal import Decimal

from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from markupsafe import Markup

from app.auth.access import requires_role
from app.auth.models import Role
from app.db_types import EXACT, format_decimal, utcnow
from app.display import (
    MAX_DEFAULT_PRECISION,
    asset_precision,
    grouped,
    quantity,
    significant_decimals,
)
from app.extensions import db
from app.positions import series
from app.positions.csv_io import spreadsheet_safe
from app.positions.routes import UNSAFE_FILENAME
from app.recon import chart, queries
from app.recon.models import Reconciliation, ReconState
from app.templating import utc_iso, viewer_timezone

log = logging.getLogger(__name__)

bp = Blueprint("recon", __name__)

# The reconciliation page lists this many assets at most, breaks first (10 x 1,000
# assets would be 10,000 rows every refresh); the counts above it are of every asset.
PAGE_ROWS = 500
# The break history shown under the chart; the CSV has every transition.
HISTORY_ROWS = 200
# A break's chart window reaches this far (at least) either side of it.
BREAK_WINDOW_PAD = timedelta(minutes=30)
# The chart's from/to filters: wall time in the viewer's zone, as chart.js reads them.
LOCAL_INPUT = "%Y-%m-%d %H:%M"


def tolerance_text(absolute: Decimal | None, relative: Decimal | None, unit: str = "") -> str:
    """A tolerance as people read it: ±0.01 BTC, ±0.5 %, both, or an exact match."""
    parts = []
    if absolute is not None:
        parts.append(f"±{format_decimal(absolute)}{' ' + unit if unit else ''}")
    if relative is not None:
        parts.append(f"±{format_decimal(relative)} %")
    if not parts:
        return "none (an exact match)"
    return " and ".join(parts) + (" (a break is beyond both)" if len(parts) == 2 else "")


@bp.app_template_filter("recon_quantity")
def recon_quantity(value: Decimal | None, asset: str) -> Markup:
    """An amount as `quantity` shows it, with at least the decimals it needs (up to the
    display cap): a reconciliation page must not round 3.25 against 2.5 into 3.2 against
    2.5 and show a difference that does not add up."""
    needed = None if value is None else min(significant_decimals(value), MAX_DEFAULT_PRECISION)
    if needed is None or needed <= asset_precision(asset, value):
        return quantity(value, asset)
    css = "num neg" if value < 0 else "num"
    # Markup.format escapes each argument: the asset name comes from outside.
    return Markup('<span class="{}" title="{}">{} {}</span>').format(
        css, format_decimal(value), grouped(value, needed), asset
    )


def _row_or_404(recon_id: int, asset: str) -> tuple[Reconciliation, queries.ReconRow]:
    recon = db.session.get(Reconciliation, recon_id)
    if recon is None:
        abort(404)
    rows = queries.recon_rows(recon.name, asset=asset)
    if not rows:
        abort(404)
    return recon, rows[0]


@bp.route("")
@requires_role(Role.VIEWER)
def index():
    """Show the reconciled assets with both sides and their state, breaks first."""
    state = request.args.get("state") or None
    if state is not None and state not in ReconState.ORDER:
        abort(400, description=f"state must be one of {', '.join(ReconState.ORDER)}.")
    # One more than shown, to know whether there are more.
    rows = queries.recon_rows(state=state, limit=PAGE_ROWS + 1)
    # Their maximum ages, to mark a side that has gone quiet.
    reconciliations = {r.id: r for r in queries.reconciliations()}
    # The live refresh asks for the table alone; a normal visit gets the whole page.
    template = "recon/_status.html" if request.headers.get("HX-Request") else "recon/index.html"
    return render_template(
        template,
        rows=rows[:PAGE_ROWS],
        more=len(rows) > PAGE_ROWS,
        state=state,
        counts=queries.state_counts(),
        reconciliations=reconciliations,
        now=utcnow(),
    )


@bp.route("/<int:recon_id>/<path:asset>")
@requires_role(Role.VIEWER)
def detail(recon_id: int, asset: str):
    """Show one reconciled asset: both sides, its chart and its break history."""
    recon, row = _row_or_404(recon_id, asset)
    # The tolerances in force: the asset's own, else the reconciliation's.
    terms = queries.terms_of(recon, next(a for a in recon.assets if a.id == row.asset_id))
    tolerance = tolerance_text(terms.abs_tolerance, terms.rel_tolerance_percent, row.left_asset)
    history = queries.break_history(row.asset_id, limit=HISTORY_ROWS)
    now = utcnow()
    return render_template(
        "recon/detail.html",
        a=row,
        recon=recon,
        tolerance=tolerance,
        history=history,
        windows=break_windows(history, now),
        now=now,
    )


def break_windows(history_newest_first, now: datetime) -> dict[int, dict[str, str]]:
    """For each transition into a break, the chart window that shows it whole with some
    time either side, as the chart's from/to filters (wall time in the viewer's zone)."""
    zone = viewer_timezone()
    windows = {}
    ended = now
    for change in history_newest_first:
        if change.to_state == ReconState.BREAK:
            pad = max((ended - change.at) / 2, BREAK_WINDOW_PAD)
            windows[change.id] = {
                "from": (change.at - pad).astimezone(zone).strftime(LOCAL_INPUT),
                "to": min(ended + pad, now).astimezone(zone).strftime(LOCAL_INPUT),
            }
        ended = change.at
    return windows


def _recon_of_rule_or_404(rule_id: int, asset: str) -> Reconciliation:
    recon = db.session.execute(
        db.select(Reconciliation).where(Reconciliation.rule_id == rule_id)
    ).scalar_one_or_none()
    if recon is None or queries.recon_asset(recon.id, asset) is None:
        abort(404)
    return recon


@bp.route("/rule/<int:rule_id>/<path:asset>")
@requires_role(Role.VIEWER)
def for_alert(rule_id: int, asset: str):
    """Open the reconciled asset whose breaks the alert rule carries (from an alert's page)."""
    recon = _recon_of_rule_or_404(rule_id, asset)
    return redirect(url_for("recon.detail", recon_id=recon.id, asset=asset))


# As on the positions pages, the static tails win over the asset's path.
@bp.route("/<int:recon_id>/<path:asset>/series")
@requires_role(Role.VIEWER)
def asset_series(recon_id: int, asset: str):
    """Return both sides of one reconciled asset and its break spans as chart JSON."""
    return _series(recon_id, asset)


@bp.route("/rule/<int:rule_id>/<path:asset>/series")
@requires_role(Role.VIEWER)
def series_for_alert(rule_id: int, asset: str):
    """The same for the asset an alert of a reconciliation's rule is about (its chart)."""
    return _series(_recon_of_rule_or_404(rule_id, asset).id, asset)


def _series(recon_id: int, asset: str):
    try:
        start, end = series.parse_range(request.args)
    except series.BadParameter as exc:
        response = jsonify(error="bad_request", message=str(exc), parameter=exc.name)
        response.status_code = 400
        return response
    recon, row = _row_or_404(recon_id, asset)
    history = queries.break_history(row.asset_id)
    history.reverse()
    document = chart.chart_document(
        left_account=recon.left_account,
        asset=row.left_asset,
        right_account=recon.right_account,
        right_asset=row.right_asset,
        multiplier=row.multiplier,
        transitions=history,
        start=start,
        end=end,
    )
    return jsonify(document)


@bp.route("/<int:recon_id>/<path:asset>/history.csv")
@requires_role(Role.VIEWER)
def history_csv(recon_id: int, asset: str):
    """Download one reconciled asset's break history as CSV, amounts exact."""
    recon, row = _row_or_404(recon_id, asset)
    transitions = queries.break_history(row.asset_id)

    def lines():
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
                "at",
                "reconciliation",
                "asset",
                "right_asset",
                "multiplier",
                "from",
                "to",
                "as_of",
                "left_amount",
                "right_amount",
                "right_compared",
                "difference",
            ]
        )
        for t in transitions:
            compared = (
                None if t.right_amount is None else EXACT.multiply(t.right_amount, row.multiplier)
            )
            writer.writerow(
                [
                    utc_iso(t.at),
                    spreadsheet_safe(recon.name),
                    spreadsheet_safe(row.left_asset),
                    spreadsheet_safe(row.right_asset),
                    format_decimal(row.multiplier),
                    t.from_state,
                    t.to_state,
                    utc_iso(t.as_of),
                    "" if t.left_amount is None else format_decimal(t.left_amount),
                    "" if t.right_amount is None else format_decimal(t.right_amount),
                    "" if compared is None else format_decimal(compared),
                    "" if t.difference is None else format_decimal(t.difference),
                ]
            )
            yield out.getvalue()
            out.seek(0)
            out.truncate()

    response = Response(stream_with_context(lines()), mimetype="text/csv")
    filename = "-".join(UNSAFE_FILENAME.sub("_", n) for n in ("recon", recon.name, row.left_asset))
    response.headers.set("Content-Disposition", "attachment", filename=f"{filename}.csv")
    return response
