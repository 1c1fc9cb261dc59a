"""Error pages and JSON errors: no tracebacks to clients, a reference id in the log."""

import logging
import secrets

from flask import Flask, jsonify, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.auth.redirects import wants_json
from app.extensions import db

log = logging.getLogger(__name__)


def _respond(status: int, title: str, message: str, reference: str | None = None):
    if wants_json():
        body = {"error": title.lower().replace(" ", "_"), "message": message}
        if reference:
            body["reference"] = reference
        return jsonify(body), status
    return (
        render_template(
            "errors/error.html",
            status=status,
            title=title,
            message=message,
            reference=reference,
        ),
        status,
    )


def handle_http_error(error: HTTPException):
    response = _respond(error.code or 500, error.name, error.description or "")
    if error.code == 429 and error.response is not None:
        retry = error.response.headers.get("Retry-After")
        if retry:
            body, status = response
            return body, status, {"Retry-After": retry}
    return response


def handle_csrf_error(error: CSRFError):
    return _respond(
        400,
        "Bad Request",
        "The form was out of date or not sent by this site. Reload the page and try again.",
    )


def handle_unexpected_error(error: Exception):
    if isinstance(error, HTTPException) and not isinstance(error, InternalServerError):
        return handle_http_error(error)
    reference = secrets.token_hex(6)
    original = getattr(error, "original_exception", None) or error
    log.error("unhandled error, reference %s", reference, exc_info=original)
    db.session.rollback()
    return _respond(
        500,
        "Internal Server Error",
        "Something went wrong on our side. Quote the reference if you report it.",
        reference,
    )


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_unexpected_error)
    app.register_error_handler(Exception, handle_unexpected_error)
