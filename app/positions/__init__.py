"""Positions room: snapshots, latest positions, overview and history pages."""

from flask import Blueprint

bp = Blueprint("positions", __name__)

from app.positions import routes  # noqa: E402,F401  (routes attach themselves to bp)
