"""Health checks for load balancers and orchestration."""

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.alerts.deadman import last_beat
from app.alerts.heartbeat import worker_status
from app.auth.access import public
from app.extensions import db
from app.ops import metrics, rate_limits, readiness
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
    """Answer 200 when the database answers at the current migration and the worker beats.

    Shared rate limits are reported, not required: without them the API still serves.
    """
    retry = {"Retry-After": str(current_app.config["DATABASE_RETRY_AFTER_SECONDS"])}
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="unavailable", database="unreachable"), 503, retry
    try:
        if current_app.config["READYZ_CHECK_MIGRATIONS"]:
            at, expected = readiness.database_migration_heads(), readiness.code_migration_heads()
            if at != expected:
                db.session.rollback()
                return (
                    jsonify(
                        status="unavailable",
                        database="ok",
                        migrations=f"database at {sorted(at)}, code expects {sorted(expected)}: "
                        "run flask db upgrade",
                    ),
                    503,
                    retry,
                )
        worker = worker_status()
        beat = last_beat()
    except SQLAlchemyError:
        db.session.rollback()
        return (
            jsonify(
                status="unavailable",
                database="ok",
                migrations="schema missing: run flask db upgrade",
            ),
            503,
            retry,
        )
    limits_ok, limits = rate_limits.status(current_app)
    body = {
        "database": "ok",
        "migrations": "current" if current_app.config["READYZ_CHECK_MIGRATIONS"] else "unchecked",
        "alert_worker": worker.reason,
        "alert_worker_last_pass": worker.last_pass_at.isoformat() if worker.last_pass_at else None,
        # Reported, not required: the outside switch is what raises that alarm.
        "dead_man_switch": (
            {"last_beat_at": beat.at.isoformat(), "status": beat.status, "detail": beat.detail}
            if beat
            else None
        ),
        "rate_limits": limits,
        # Serving works, but something promised does not hold as configured.
        "warnings": [] if limits_ok else [limits],
    }
    if not worker.healthy:
        return jsonify(status="unavailable", **body), 503, retry
    return jsonify(status="ok", **body)


@bp.route("/metrics", endpoint="metrics")
@public
def prometheus_metrics():
    """Prometheus metrics, for a bearer token or an allowed address only."""
    if not metrics.scrape_allowed():
        return "Unauthorized\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'}
    return metrics.render(), 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
