"""A body over MAX_CONTENT_LENGTH is a 413 whether it is sized or chunked; nothing is stored."""

import io
import json
import re
import socket
import urllib.request

import pytest

from app.auth.models import Role, User
from app.auth.tokens import create_token
from app.extensions import db
from app.positions.models import Position
from config import Config
from tests.conftest import build_app, csrf_token_from, make_user
from tests.deploy.conftest import (
    Deployment,
    free_port,
    production_env,
    start_gunicorn,
    stop_processes,
    wait_for_port,
)

LIMIT = 4096
PASSWORD = "correct horse battery staple"


def padded_batch(asset: str, size: int) -> bytes:
    """A valid one-row batch padded with JSON whitespace to exactly `size` bytes.

    Cut anywhere in the padding it is still a valid batch, so a body silently truncated
    at the limit would be stored: only a 413 keeps it out.
    """
    row = {"account": "main", "asset": asset, "timestamp": "2025-06-01T00:00:00Z", "amount": "1"}
    body = json.dumps({"positions": [row]}).encode()
    assert len(body) < size
    return body + b" " * (size - len(body))


@pytest.fixture
def limited_app(sqlite_url):
    app = build_app(sqlite_url, MAX_CONTENT_LENGTH=LIMIT)
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture
def ingest_headers(limited_app):
    user_id = make_user(limited_app, "feeder", role=Role.ADMIN)
    with limited_app.app_context():
        _, secret = create_token(db.session.get(User, user_id), "feed", ["ingest"])
        db.session.commit()
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def post_chunked(client, path: str, body: bytes, headers: dict):
    """POST without Content-Length, as a server that decodes chunked bodies hands it over."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked"},
        # gunicorn and werkzeug's server set this for a chunked body they have decoded.
        environ_overrides={"wsgi.input_terminated": True},
    )


def stored_assets(app) -> list[str]:
    with app.app_context():
        return list(db.session.execute(db.select(Position.asset)).scalars())


def test_chunked_api_body_over_the_limit_is_413_and_stores_nothing(limited_app, ingest_headers):
    client = limited_app.test_client()
    chunked = post_chunked(
        client, "/api/v1/positions", padded_batch("CHUNKED", LIMIT + 1), ingest_headers
    )
    sized = client.post(
        "/api/v1/positions", data=padded_batch("SIZED", LIMIT + 1), headers=ingest_headers
    )
    for response in (chunked, sized):
        assert response.status_code == 413
        assert response.get_json()["error"] == "request_entity_too_large"
    assert stored_assets(limited_app) == []


def test_chunked_api_body_at_the_limit_is_stored(limited_app, ingest_headers):
    client = limited_app.test_client()
    response = post_chunked(
        client, "/api/v1/positions", padded_batch("EXACT", LIMIT), ingest_headers
    )
    assert response.status_code == 200, response.get_json()
    assert stored_assets(limited_app) == ["EXACT"]


def test_form_over_the_limit_is_413_sized_or_chunked(limited_app):
    client = limited_app.test_client()
    token = csrf_token_from(client, "/login")
    form = f"csrf_token={token}&username=nobody&password=x".encode()
    body = form + b"&pad=" + b"x" * (LIMIT - len(form))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    chunked = post_chunked(client, "/login", body, headers)
    sized = client.post("/login", data=body, headers=headers)
    for response in (chunked, sized):
        assert response.status_code == 413
        assert "text/html" in response.content_type


def test_any_route_refuses_a_body_over_the_limit_before_the_token(limited_app):
    """The size is checked first: no token is looked up for a body that is refused anyway."""
    client = limited_app.test_client()
    body = b"x" * (LIMIT + 1)
    chunked = client.get(
        "/api/v1/assets",
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    sized = client.get("/api/v1/assets", data=body)
    small = client.get("/api/v1/assets", data=b"x" * LIMIT)
    assert chunked.status_code == 413 and sized.status_code == 413
    assert small.status_code == 401


def chunked_request(port: int, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    """Send body in 64 KiB chunks over a raw socket; return the status and response body."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(head + encoded)
        received = b""
        while data := conn.recv(65536):
            received += data
    status = int(re.match(rb"HTTP/1\.[01] (\d{3}) ", received).group(1))
    return status, received.split(b"\r\n\r\n", 1)[1]


def test_gunicorn_answers_413_to_a_chunked_body_over_the_limit(tmp_path):
    database = tmp_path / "tradingmonitor.sqlite3"
    port = free_port()
    env = production_env(tmp_path, f"sqlite:///{database}", port, workers=1)
    service = Deployment(f"http://127.0.0.1:{port}", env, tmp_path, database)
    service.flask("db", "upgrade")
    service.flask("users", "create", "feed", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    out = service.flask("tokens", "create", "feed", "feed", "--scope", "ingest", "--scope", "read")
    token = re.search(r"tm_\S+", out).group(0)
    limit = Config.MAX_CONTENT_LENGTH  # the shipped default
    gunicorn = start_gunicorn(env)
    try:
        wait_for_port(port, gunicorn, seconds=90)
        path = "/api/v1/positions"
        over = chunked_request(port, path, token, padded_batch("OVER", limit + 1000))
        under = chunked_request(port, path, token, padded_batch("UNDER", 4096))
        request = urllib.request.Request(
            f"{service.url}/api/v1/positions?asset=OVER",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            stored_over = json.load(response)["positions"]
    finally:
        stop_processes(gunicorn)
    assert over[0] == 413, over
    assert json.loads(over[1])["error"] == "request_entity_too_large"
    assert under[0] == 200, under
    assert json.loads(under[1])["inserted"] == 1
    assert stored_over == []
