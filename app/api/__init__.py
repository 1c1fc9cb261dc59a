"""API room: /api/v1 JSON routes for the trading system and other tools."""

from flask import Blueprint

bp = Blueprint("api", __name__)
docs_bp = Blueprint("api_docs", __name__)

from app.api import docs, routes  # noqa: E402,F401  (routes attach themselves to bp)
