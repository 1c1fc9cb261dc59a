"""Overview of every position and the history of one asset."""

import re
from datetime import datetime, timedelta

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    render_template,
    request,
    stream_with_context,
)

from app.alerts.queries import alerts_for_asset, firing_series
from app.auth.access import requires_role
from app.auth.models import Role
from app.db_types import utcnow
from app.positions import csv_io, queries, series, sparklines
from app.positions.models import notional
from app.positions.totals import account_totals, asset_totals, desk_total, overview_rows
from app.templating import FilterError, parse_local_datetime

bp = Blueprint("positions", __name__)

# What may appear of a name in a download's file name; anything else becomes "_".
UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@bp.route("/")
@requires_role(Role.VIEWER)
def overview():
    """Show the latest position of every (account, asset) and what they add up to."""
    stale_after = timedelta(seconds=current_app.config["STALE_AFTER_SECONDS"])
    _, firing = firing_series()
    rows = overview_rows(queries.latest_position_rows(), utcnow(), stale_after, firing)
    # The live refresh asks for its region alone; a normal visit gets the whole page.
    template = (
        "positions/_overview.html"
        if request.headers.get("HX-Request")
        else "positions/overview.html"
    )
    return render_template(
        template,
        rows=rows,
        accounts=account_totals(rows),
        assets=asset_totals(rows),
        desk=desk_total(rows),
        stale_after=stale_after,
    )


# The history chart's range buttons: windows ending now, so a shared link always shows
# the latest data. Table, chart and CSV read the same parameters.
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def _time_range(args) -> tuple[datetime | None, datetime | None]:
    """The page's from/to filters, read in the viewer's timezone, else its range."""
    start = parse_local_datetime(args.get("from", ""), "from")
    end = parse_local_datetime(args.get("to", ""), "to")
    if start and end and start >= end:
        raise FilterError("'from' must be before 'to'.")
    span = args.get("range", "")
    # An explicit from/to is more precise than a range and wins over it.
    if span and span != "all" and start is None and end is None:
        if span not in RANGES:
            raise FilterError(f"'range' must be one of {', '.join(RANGES)} or all.")
        start = utcnow() - RANGES[span]
    return start, end


@bp.route("/positions/<path:asset>")
@requires_role(Role.VIEWER)
def history(asset: str):
    """Show one asset's snapshots, newest first, 100 a page."""
    # Accounts holding the asset feed the filter; none at all means no such asset.
    accounts = queries.accounts_for_asset(asset)
    if not accounts:
        return render_template("positions/unknown_asset.html", asset=asset), 404
    args = request.args
    account = args.get("account", "").strip() or None
    status = 200
    try:
        start, end = _time_range(args)
        cursor = queries.Cursor.decode(args["cursor"]) if args.get("cursor") else None
    except (FilterError, queries.BadCursor) as exc:
        flash(str(exc), "error")
        start = end = cursor = None
        status = 400
    page = queries.history_page(
        asset,
        account=account,
        start=start,
        end=end,
        cursor=cursor,
        limit=current_app.config["HISTORY_PAGE_SIZE"],
    )
    filters = {k: v for k, v in args.items() if k in ("account", "from", "to", "range") and v}
    return render_template(
        "positions/history.html",
        asset=asset,
        account=account,
        accounts=accounts,
        filters=filters,
        alerts=alerts_for_asset(asset),
        page=page,
        is_first_page=cursor is None,
        notional=notional,
    ), status


@bp.route("/positions.csv")
@requires_role(Role.VIEWER)
def export_csv():
    """Download an asset's snapshots, filtered as on its history page, as CSV."""
    args = request.args
    asset = args.get("asset", "")
    if not asset:
        abort(400, description="Name the asset to download: /positions.csv?asset=BTC.")
    if not queries.asset_exists(asset):
        abort(404, description=f"No data for {asset}.")
    account = args.get("account", "").strip() or None
    try:
        start, end = _time_range(args)
    except FilterError as exc:
        abort(400, description=str(exc))
    rows = csv_io.export_rows(asset=asset, account=account, start=start, end=end)
    # Names that a spreadsheet would run as formulas get a leading quote here (not
    # in `flask positions export`, which stays raw for a lossless round trip).
    chunks = csv_io.csv_chunks(rows, for_spreadsheet=True)
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    filename = "-".join(
        UNSAFE_FILENAME.sub("_", name) for name in ("positions", asset, account) if name
    )
    response.headers.set("Content-Disposition", "attachment", filename=f"{filename}.csv")
    return response


def _json_error(status: int, error: str, message: str, **extra):
    response = jsonify(error=error, message=message, **extra)
    response.status_code = status
    return response


# Werkzeug prefers this rule's static "/series" tail to the history route's bare path,
# so "/positions/BTC/USD/series" is the series of "BTC/USD" (tests pin it).
@bp.route("/positions/<path:asset>/series")
@requires_role(Role.VIEWER)
def asset_series(asset: str):
    """Return one asset's chart series, alert markers, limit lines and spans as JSON."""
    try:
        start, end = series.parse_range(request.args)
        rule_id = series.parse_rule(request.args)
    except series.BadParameter as exc:
        return _json_error(400, "bad_request", str(exc), parameter=exc.name)
    if not queries.asset_exists(asset):
        return _json_error(404, "not_found", f"No data for {asset}.")
    account = request.args.get("account", "").strip() or None
    document = series.chart_document(asset, account=account, start=start, end=end, rule_id=rule_id)
    return jsonify(document)


@bp.route("/overview/sparklines")
@requires_role(Role.VIEWER)
def overview_sparklines():
    """Return the last 24 hours of every position, a point per half hour, as JSON."""
    return jsonify(series=sparklines.sparklines(utcnow()))
