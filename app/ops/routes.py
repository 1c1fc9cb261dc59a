"""Health checks for load balancers and orchestration."""

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.auth.access import public
from app.extensions import db
from app.ops import metrics
from app.ops.assets import add_static_version

bp = Blueprint("ops", __name__)
bp.app_url_defaults(add_static_version)
bp.before_app_request(metrics.start_timer)
bp.after_app_request(metrics.observe_request)


@bp.route("/healthz")
@public
def healthz():
    """Answer 200 while the process is alive; touches nothing else."""
    return jsonify(status="ok")


@bp.route("/readyz")
@public
def readyz():
    """Answer 200 when the database answers, 503 otherwise."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="unavailable", database="unreachable"), 503, {"Retry-After": "5"}
    return jsonify(status="ok", database="ok")


@bp.route("/metrics", endpoint="metrics")
@public
def prometheus_metrics():
    """Prometheus metrics, for a bearer token or an allowed address only."""
    if not metrics.scrape_allowed():
        return "Unauthorized\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'}
    return metrics.render(), 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
