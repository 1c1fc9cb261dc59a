"""A readable page of the API document, inside the dashboard."""

from flask import Blueprint, render_template

from app.api.openapi import openapi_document
from app.auth.access import requires_role
from app.auth.models import Role

docs_bp = Blueprint("api_docs", __name__)


@docs_bp.route("/api")
@requires_role(Role.VIEWER)
def api_docs():
    """Show the API's endpoints, parameters and schemas."""
    return render_template("api/docs.html", doc=openapi_document())
