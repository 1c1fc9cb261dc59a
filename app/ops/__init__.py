"""Ops room: health checks, error pages, security headers."""

from flask import Blueprint

bp = Blueprint("ops", __name__)

from app.ops import routes  # noqa: E402,F401  (routes attach themselves to bp)
