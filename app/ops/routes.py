"""Health checks for load balancers and orchestration."""

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.auth.access import public
from app.extensions import db
from app.ops.assets import add_static_version

bp = Blueprint("ops", __name__)
bp.app_url_defaults(add_static_version)


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
