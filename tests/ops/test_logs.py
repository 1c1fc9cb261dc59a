"""Log lines: one per event, as text or JSON, tied to the request that caused them."""

import json
import logging
import re

from flask import g

from app.ops.logs import JsonLinesFormatter, RequestContextFilter


def _record(message, *args):
    return logging.LogRecord("app.auth", logging.WARNING, __file__, 1, message, args, None)


def test_request_id_from_nginx_is_echoed(client):
    response = client.get("/healthz", headers={"X-Request-ID": "0123456789abcdef0123456789abcdef"})
    assert response.headers["X-Request-ID"] == "0123456789abcdef0123456789abcdef"


def test_request_id_that_is_not_one_is_replaced(client):
    response = client.get("/healthz", headers={"X-Request-ID": "<script>not an id</script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_every_answer_gets_a_request_id_even_without_nginx(client):
    first = client.get("/login").headers["X-Request-ID"]
    second = client.get("/login").headers["X-Request-ID"]
    assert first != second


def test_json_lines_carry_request_id_user_route_and_address(app):
    formatter = JsonLinesFormatter()
    context_filter = RequestContextFilter()
    with app.test_request_context("/login", environ_base={"REMOTE_ADDR": "192.0.2.4"}):
        app.preprocess_request()
        record = _record("login failed: username=%r", 'eve\n{"level": "INFO"}')
        context_filter.filter(record)
        line = formatter.format(record)
        request_id = g.request_id

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == 'login failed: username=\'eve\\n{"level": "INFO"}\''
    assert entry["level"] == "WARNING"
    assert entry["request_id"] == request_id
    assert entry["route"] == "auth.login"
    assert entry["address"] == "192.0.2.4"
    assert entry["user"] == "-"
    assert entry["time"].endswith("Z")


def test_records_outside_a_request_get_placeholders():
    record = _record("worker pass done")
    RequestContextFilter().filter(record)
    entry = json.loads(JsonLinesFormatter().format(record))
    assert entry["request_id"] == entry["route"] == entry["user"] == "-"
