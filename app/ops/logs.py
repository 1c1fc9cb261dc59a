"""Logging: one line per event, whatever the input contained, tied to its request."""

import json
import logging
import random
import re
import time

from flask import Flask, g, has_request_context, request

# Newlines would let input forge extra log lines; escapes would drive the terminal.
_ESCAPES = {i: f"\\x{i:02x}" for i in (*range(0, 32), 127)}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})

# What we accept as a request id from nginx (its $request_id is 32 hex digits).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class SingleLineFormatter(logging.Formatter):
    """Escape control characters in the message; keep tracebacks as they are."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).translate(_ESCAPES)


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request, user, route."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "user": getattr(record, "user", "-"),
            "route": getattr(record, "route", "-"),
            "address": getattr(record, "address", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # json.dumps escapes every control character: still one line.
        return json.dumps(entry, ensure_ascii=False)


class RequestContextFilter(logging.Filter):
    """Stamp each record with the request id, user, route and client address."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = g.get("request_id", "-")
            record.route = request.endpoint or "-"
            record.address = request.remote_addr or "-"
            user = g.get("_login_user")
            record.user = getattr(user, "username", None) or "-"
        else:
            record.request_id = record.route = record.address = record.user = "-"
        return True


def assign_request_id() -> None:
    """Use nginx's X-Request-ID when it looks like one, else make one."""
    given = request.headers.get("X-Request-ID", "")
    # Unique, not secret: the random module is reseeded in every forked worker.
    g.request_id = given if _REQUEST_ID.fullmatch(given) else f"{random.getrandbits(128):032x}"


def echo_request_id(response):
    request_id = g.get("request_id")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    return response


def configure_logging(app: Flask) -> None:
    """Send the app's logs to stderr as single lines (or JSON lines), unless the host did."""
    app.before_request(assign_request_id)
    app.after_request(echo_request_id)
    package_logger = logging.getLogger("app")
    if package_logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    if app.config.get("LOG_FORMAT") == "json":
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(SingleLineFormatter(TEXT_FORMAT))
    handler.addFilter(RequestContextFilter())
    package_logger.addHandler(handler)
    package_logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))
