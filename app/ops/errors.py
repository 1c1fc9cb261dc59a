"""Error pages and JSON errors: no tracebacks to clients, a reference id in the log."""

import logging
import secrets
import time

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from app.auth.redirects import wants_json
from app.extensions import db, limiter

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
    body, status = _respond(error.code or 500, error.name, error.description or "")
    # The exception's own headers say what to do next (Allow on a 405, WWW-Authenticate,
    # Retry-After); only its HTML Content-Type gives way to the body we made.
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    if error.code == 429:
        headers = [(k, v) for k, v in headers if k.lower() != "retry-after"]
        headers.append(("Retry-After", str(_rate_limit_retry_after())))
    return body, status, headers


def _rate_limit_retry_after() -> int:
    """Seconds until the breached rate-limit window resets."""
    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, int(current.reset_at - time.time()) + 1)


def refuse_oversized_body() -> None:
    """before_request: a body over MAX_CONTENT_LENGTH is a 413, sized or chunked, any route."""
    limit = request.max_content_length
    if limit is None:
        return
    if request.content_length is not None:
        if request.content_length > limit:
            raise RequestEntityTooLarge()
        return
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not chunked or "wsgi.input_terminated" not in request.environ:
        return
    # Without a Content-Length, werkzeug reads the body up to the limit and quietly
    # stops there, so a parser would see a truncated body. Read it once (the form and
    # JSON parsers reuse it) and look for one byte beyond the limit.
    request.get_data()
    if request.stream.is_exhausted and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def handle_csrf_error(error: CSRFError):
    return _respond(
        400,
        "Bad Request",
        "The form was out of date or not sent by this site. Reload the page and try again.",
    )


def is_database_unavailable(error: BaseException) -> bool:
    """A lock, a refused or lost connection, an exhausted pool: a wait, not a bug."""
    if isinstance(error, OperationalError | PoolTimeoutError):
        return True
    # psycopg reports some disconnects under other classes (an idle-in-transaction
    # timeout is an InternalError); SQLAlchemy marks every one it recognises.
    return isinstance(error, DBAPIError) and error.connection_invalidated


def handle_database_unavailable(error: Exception):
    """A locked SQLite file or an unreachable PostgreSQL: try again shortly, not a 500."""
    detail = str(getattr(error, "orig", None) or error).splitlines() or [type(error).__name__]
    log.warning("database unavailable: %s", detail[0][:200])
    db.session.rollback()
    message = "The database is busy or unreachable. Nothing was changed; try again shortly."
    headers = {"Retry-After": str(current_app.config["DATABASE_RETRY_AFTER_SECONDS"])}
    if wants_json():
        return jsonify(error="service_unavailable", message=message), 503, headers
    return render_template("errors/unavailable.html", message=message), 503, headers


def handle_unexpected_error(error: Exception):
    if isinstance(error, HTTPException) and not isinstance(error, InternalServerError):
        return handle_http_error(error)
    original = getattr(error, "original_exception", None) or error
    if is_database_unavailable(original):
        return handle_database_unavailable(original)
    reference = secrets.token_hex(6)
    log.error("unhandled error, reference %s", reference, exc_info=original)
    db.session.rollback()
    return _respond(
        500,
        "Internal Server Error",
        "Something went wrong on our side. Quote the reference if you report it.",
        reference,
    )


def register_error_handlers(app: Flask) -> None:
    # First of the app's hooks: before a token is checked or a form is read.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_oversized_body)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(PoolTimeoutError, handle_database_unavailable)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_unexpected_error)
    app.register_error_handler(Exception, handle_unexpected_error)
