"""The API answers to its own OpenAPI document: schemathesis drives the served app."""

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from app.api.openapi import openapi_document
from app.auth.models import Role, User
from app.auth.tokens import create_token
from app.extensions import db
from tests.conftest import build_app, make_user, serve

# Fixed seed and a bounded number of examples per operation: the same cases every run.
SEED = 160_008
MAX_EXAMPLES = 40

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
        # Valid data is stored, or refused only as a conflict with a stored snapshot.
        "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "409"]}},
    }
)
# Every response, to valid and invalid requests alike. Not negative_data_rejection: the
# document promises a plain subset of what the server reads (names, decimal notation),
# and the server accepting more is by design.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    positive_data_acceptance,
    missing_required_header,
    ignored_auth,
    unsupported_method,  # a 405 to an undocumented method, with Allow
    allow_header_conformance,  # OPTIONS names the documented methods
]
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)


@st.composite
def plausible_moments(draw) -> str:
    """Snapshot times the document describes: from 1970 on and not in the future, any offset."""
    moment = draw(
        st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2025, 12, 31))
    ).replace(tzinfo=UTC)
    offset = timezone(timedelta(minutes=draw(st.integers(-14 * 60, 14 * 60))))
    return moment.astimezone(offset).isoformat()


# JSON Schema cannot say "not after now"; the document says it in words, and generated
# valid data keeps to it, as a client reading the document would.
schemathesis.openapi.format("date-time", plausible_moments())


@pytest.fixture(scope="module")
def contract_app(tmp_path_factory):
    """An app whose rate limit is out of the way: limits are another test's subject."""
    path = tmp_path_factory.mktemp("contract") / "test.sqlite3"
    app = build_app(f"sqlite:///{path}", API_RATE_LIMIT="1000000/minute")
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def admin_headers(contract_app):
    """A real token with both scopes, owned by an admin, so no valid request lacks rights."""
    user_id = make_user(contract_app, "desk-admin", role=Role.ADMIN)
    with contract_app.app_context():
        _, secret = create_token(db.session.get(User, user_id), "contract", ["ingest", "read"])
        db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_the_served_document_is_the_one_tested(contract_app, admin_headers):
    response = contract_app.test_client().get("/api/v1/openapi.json", headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json() == openapi_document()


@pytest.fixture(scope="module")
def issued_cursor(contract_app, admin_headers):
    """A page link the server made: the only kind of cursor a valid request carries."""
    client = contract_app.test_client()
    rows = [
        {"account": "main", "asset": "PAGED", "timestamp": moment, "amount": "1"}
        for moment in ("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
    ]
    stored = client.post("/api/v1/positions", json={"positions": rows}, headers=admin_headers)
    assert stored.status_code == 200, stored.get_json()
    page = client.get("/api/v1/positions?asset=PAGED&limit=1", headers=admin_headers)
    return page.get_json()["next_cursor"]


@pytest.fixture(scope="module")
def api_url(contract_app):
    """The app on a real socket: generated requests and the checks' own probes go there."""
    with serve(contract_app) as server:
        yield f"{server.url}/api/v1"


@schema.parametrize()
def test_api_answers_to_its_openapi_document(case, api_url, admin_headers, issued_cursor):
    # The document calls a cursor opaque, to be copied from `next_cursor`; a valid request
    # carries one the server issued, any other string is refused (400) like a negative case.
    if case.meta.generation.mode.is_positive and case.query and "cursor" in case.query:
        case.query["cursor"] = issued_cursor
    case.call_and_validate(base_url=api_url, headers=admin_headers, checks=CHECKS)


# Statuses the generated cases never meet (the limit and the database stay out of their
# way): provoke each for real and hold the answer to the document.
DOCUMENT_CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ROW = {"account": "main", "asset": "BTC", "timestamp": "2025-01-01T00:00:00Z", "amount": "1"}


def test_rate_limited_answers_match_the_document(sqlite_url):
    app = build_app(sqlite_url, API_RATE_LIMIT="1/minute")
    with app.app_context():
        db.create_all()
    client = app.test_client()
    client.get("/api/v1/assets")
    response = client.get("/api/v1/assets")
    assert response.status_code == 429
    schema["/assets"]["GET"].Case().validate_response(response, checks=DOCUMENT_CHECKS)


def test_oversized_and_database_busy_answers_match_the_document(tmp_path):
    database = tmp_path / "busy.sqlite3"
    app = build_app(f"sqlite:///{database}", MAX_CONTENT_LENGTH=2048, SQLITE_BUSY_TIMEOUT_MS=50)
    with app.app_context():
        db.create_all()
    user_id = make_user(app, "desk-admin", role=Role.ADMIN)
    with app.app_context():
        _, secret = create_token(db.session.get(User, user_id), "busy", ["ingest"])
        db.session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    operation = schema["/positions"]["POST"]
    client = app.test_client()

    oversized = client.post("/api/v1/positions", json={"positions": [ROW] * 40}, headers=headers)
    assert oversized.status_code == 413
    operation.Case(body={"positions": [ROW]}).validate_response(oversized, checks=DOCUMENT_CHECKS)

    holder = sqlite3.connect(database)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        busy = client.post("/api/v1/positions", json={"positions": [ROW]}, headers=headers)
    finally:
        holder.rollback()
        holder.close()
    assert busy.status_code == 503
    operation.Case(body={"positions": [ROW]}).validate_response(busy, checks=DOCUMENT_CHECKS)
