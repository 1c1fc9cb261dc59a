"""Value over time: the mark-to-market value of the positions held, per account and desk."""

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from app.auth.access import requires_role
from app.auth.models import Role
from app.db_types import format_decimal, utcnow
from app.positions.buckets import epoch_seconds
from app.positions.value import DEFAULT_RANGE, RANGES, value_figures, value_over_time

bp = Blueprint("value", __name__)

RANGE_ERROR = f"'range' must be one of {', '.join(RANGES)}."


def _range_key() -> str | None:
    """The `range` query parameter (empty: the default); None when it names no range."""
    key = request.args.get("range", "") or DEFAULT_RANGE
    return key if key in RANGES else None


@bp.route("/value")
@requires_role(Role.VIEWER)
def index():
    """Show the value of the positions held over a range, per account and for the desk."""
    key = _range_key()
    if key is None:
        abort(400, description=RANGE_ERROR)
    # The figures only: the chart asks /value/series for the range's grid.
    report = value_figures(utcnow(), key)
    return render_template("positions/value.html", report=report, ranges=list(RANGES))


def _texts(values) -> list:
    return [None if value is None else format_decimal(value) for value in values]


@bp.route("/value/series")
@requires_role(Role.VIEWER)
def series():
    """Return the value over a range per account and for the desk as JSON (exact decimals)."""
    key = _range_key()
    if key is None:
        # In JSON whatever the client accepts, as the chart series answers a bad parameter.
        return jsonify(error="bad_request", message=RANGE_ERROR, parameter="range"), 400
    report = value_over_time(utcnow(), key)
    return jsonify(
        range=report.range_key,
        currency=current_app.config.get("QUOTE_CURRENCY", "USD"),
        times=[epoch_seconds(moment) for moment in report.moments],
        desk=_texts(report.desk),
        accounts=[
            {"account": name, "values": _texts(values)}
            for name, values in sorted(report.accounts.items())
        ],
        unpriced=[{"account": a, "asset": s} for a, s in report.unpriced],
    )
