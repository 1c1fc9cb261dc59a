"""POST /api/v1/positions: batches, exactness, all-or-nothing, every error status."""

import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import event

from app.db_types import utcnow
from app.extensions import db
from app.positions.models import Position
from tests.api.conftest import bearer, row

URL = "/api/v1/positions"


def positions(app):
    with app.app_context():
        return db.session.execute(db.select(Position).order_by(Position.id)).scalars().all()


def post(client, secret, body, **kwargs):
    if isinstance(body, (dict, list)):
        kwargs.setdefault("data", json.dumps(body))
    else:
        kwargs.setdefault("data", body)
    kwargs.setdefault("content_type", "application/json")
    return client.post(URL, headers=bearer(secret), **kwargs)


def test_batch_is_stored_and_counted(any_app, any_tokens):
    secret = any_tokens.create("ingest")
    client = any_app.test_client()
    body = {"positions": [row(), row(timestamp="2026-03-01T12:01:00+02:00", price="100.5")]}
    response = post(client, secret, body)
    assert response.status_code == 200
    assert response.get_json() == {"inserted": 2, "duplicates": 0, "conflicts": 0}
    again = post(client, secret, body)
    assert again.get_json() == {"inserted": 0, "duplicates": 2, "conflicts": 0}
    assert len(positions(any_app)) == 2


def test_numbers_and_strings_are_kept_exact(any_app, any_tokens):
    secret = any_tokens.create("ingest")
    raw = (
        '{"positions": [{"account": "a", "asset": "BTC", "timestamp": "2026-03-01T12:00:00Z",'
        ' "amount": 0.30000000000000004, "price": "0.1"},'
        ' {"account": "a", "asset": "BTC", "timestamp": "2026-03-01T12:00:01Z",'
        ' "amount": "123456789.123456789012345678", "price": 1E-18}]}'
    )
    assert post(any_app.test_client(), secret, raw).status_code == 200
    stored = positions(any_app)
    assert [str(p.amount) for p in stored] == [
        "0.30000000000000004",
        "123456789.123456789012345678",
    ]
    assert str(stored[0].price) == "0.1" and stored[1].price.as_tuple().exponent == -18


def test_conflict_is_409_with_keys_and_stores_nothing(any_app, any_tokens):
    secret = any_tokens.create("ingest")
    client = any_app.test_client()
    post(client, secret, {"positions": [row(amount="1")]})
    response = post(
        client, secret, {"positions": [row(timestamp="2026-03-01T13:00:00Z"), row(amount="2")]}
    )
    assert response.status_code == 409
    assert response.get_json()["conflicts"] == [
        {"account": "main", "asset": "BTC", "timestamp": "2026-03-01T12:00:00Z"}
    ]
    assert [str(p.amount) for p in positions(any_app)] == ["1"]


def test_invalid_rows_are_422_listing_every_error_and_nothing_is_stored(app, tokens, client):
    secret = tokens.create("ingest")
    body = {
        "positions": [
            row(),
            row(timestamp="2026-03-01T12:00:00"),
            row(amount="NaN", extra_field=1),
            row(account="", price=True),
            row(amount=[1]),
        ]
    }
    response = post(client, secret, body)
    assert response.status_code == 422
    errors = {(e["index"], e["field"]) for e in response.get_json()["errors"]}
    assert errors == {
        (1, "timestamp"),
        (2, "amount"),
        (2, "extra_field"),
        (3, "account"),
        (3, "price"),
        (4, "amount"),
    }
    assert positions(app) == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "positions"),
        ({"positions": []}, "positions"),
        ({"positions": "all"}, "positions"),
        ([], "body"),
        ({"positions": [row()], "extra": 1}, "extra"),
        ({"positions": [row(asset="x" * 65)]}, "asset"),
        ({"positions": [row(asset="a" * 1_000_000)]}, "asset"),
        ({"positions": [row(amount="1" * 41)]}, "amount"),
        ({"positions": [row(amount="1e-41")]}, "amount"),
        ({"positions": [row(amount="1e999999")]}, "amount"),
        ({"positions": [row(timestamp=1700000000)]}, "timestamp"),
        ({"positions": [row(timestamp="yesterday")]}, "timestamp"),
        ({"positions": [row(account="line\nbreak")]}, "account"),
        ({"positions": [row(account=" padded")]}, "account"),
    ],
)
def test_wrong_types_unknown_fields_and_huge_values_are_422_naming_the_field(
    app, tokens, client, body, field
):
    response = post(client, tokens.create("ingest"), body)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.get_json()["errors"]}
    assert positions(app) == []


def test_batch_over_10000_rows_is_422(app, tokens, client):
    rows = [row(timestamp=f"2026-03-01T12:00:{i % 60:02d}.{i:06d}Z") for i in range(10_001)]
    response = post(client, tokens.create("ingest"), {"positions": rows})
    assert response.status_code == 422
    assert positions(app) == []


@pytest.mark.parametrize(
    "raw",
    [
        "{",
        '{"positions": [}',
        '{"positions": [{"account": "a", "asset": "B", "timestamp": "2026-03-01T12:00:00Z",'
        ' "amount": NaN}]}',
        '{"positions": [{"amount": Infinity}]}',
        '{"positions": [{"amount": -Infinity}]}',
        '{"positions": [{"amount": ' + "9" * 5000 + "}]}",
        "[" * 100_000 + "]" * 100_000,
        b"\xff\xfe{}",
    ],
    ids=["truncated", "bad-array", "nan", "inf", "-inf", "huge-int", "deep", "not-utf8"],
)
def test_malformed_json_is_400_and_stores_nothing(app, tokens, client, raw):
    response = post(client, tokens.create("ingest"), raw)
    assert response.status_code == 400
    assert response.get_json()["error"] == "malformed"
    assert positions(app) == []


def test_wrong_content_type_is_415(app, tokens, client):
    secret = tokens.create("ingest")
    body = json.dumps({"positions": [row()]})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "text/csv"):
        response = post(client, secret, body, content_type=content_type)
        assert response.status_code == 415 and response.is_json
    assert positions(app) == []


def test_body_over_the_limit_is_413(app, tokens, client):
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    rows = [row(timestamp=f"2026-03-01T12:{i // 60:02d}:{i % 60:02d}Z") for i in range(200)]
    response = post(client, tokens.create("ingest"), {"positions": rows})
    assert response.status_code == 413 and response.is_json
    assert positions(app) == []


def test_no_csrf_needed_with_a_token_but_a_session_cookie_alone_is_refused(app, tokens, logged_in):
    response = logged_in.post(URL, json={"positions": [row()]})
    assert response.status_code == 401
    assert positions(app) == []
    response = logged_in.post(URL, json={"positions": [row()]}, headers=bearer(tokens.create()))
    assert response.status_code == 200


def test_unknown_api_route_and_wrong_method_are_json(client, tokens):
    secret = tokens.create()
    assert client.get("/api/v1/nothing", headers=bearer(secret)).status_code == 404
    response = client.delete(URL, headers=bearer(secret))
    assert response.status_code == 405 and response.get_json()["error"] == "method_not_allowed"


def test_rate_limit_per_token_is_429_with_retry_after(app, tokens, client):
    app.config["API_RATE_LIMIT"] = "3/minute"
    first, second = tokens.create(name="one"), tokens.create(name="two")
    statuses = [client.get("/api/v1/assets", headers=bearer(first)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/v1/assets", headers=bearer(first))
    assert limited.is_json and int(limited.headers["Retry-After"]) > 0
    # Another token has its own budget.
    assert client.get("/api/v1/assets", headers=bearer(second)).status_code == 200


def test_locked_database_is_503_with_retry_after_and_nothing_stored(sqlite_url, app, tokens):
    import sqlite3

    from tests.conftest import build_app

    secret = tokens.create("ingest")
    quick = build_app(sqlite_url, SQLITE_BUSY_TIMEOUT_MS=200)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        response = quick.test_client().post(
            URL, json={"positions": [row()]}, headers=bearer(secret)
        )
    finally:
        holder.rollback()
        holder.close()
    assert response.status_code == 503
    assert response.is_json and response.headers["Retry-After"] == "5"
    assert positions(app) == []


def test_unexpected_error_is_json_500_without_traceback(app, tokens, client, monkeypatch):
    import app.api.routes as routes

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(routes, "record", explode)
    response = post(client, tokens.create("ingest"), {"positions": [row()]})
    assert response.status_code == 500
    body = response.get_json()
    assert body["reference"] and "secret internals" not in response.get_data(as_text=True)


def test_hostile_names_are_stored_as_sent_and_returned_as_json(app, tokens, client):
    name = "<script>alert(1)</script>{{7*7}}'\""
    secret = tokens.create()
    assert post(client, secret, {"positions": [row(asset=name)]}).status_code == 200
    response = client.get(
        "/api/v1/positions", query_string={"asset": name}, headers=bearer(secret)
    )
    assert response.get_json()["positions"][0]["asset"] == name
    # JSON, never sniffed as HTML: the name is data here, not markup.
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_ingest_changes_the_overview(app, tokens, client, logged_in):
    now = utcnow().replace(microsecond=0)
    post(
        client,
        tokens.create("ingest"),
        {"positions": [row(asset="NEWCOIN", timestamp=(now - timedelta(seconds=3)).isoformat())]},
    )
    assert "NEWCOIN" in logged_in.get("/").get_data(as_text=True)


def test_the_whole_batch_is_one_transaction(app, tokens, client):
    secret = tokens.create("ingest")
    commits = []
    with app.app_context():
        event.listen(db.engine, "commit", lambda conn: commits.append(1))
    rows = [row(timestamp=f"2026-03-01T12:{i // 60:02d}:{i % 60:02d}Z") for i in range(1200)]
    assert post(client, secret, {"positions": rows}).status_code == 200
    # One commit for the token's last_used, one for the batch.
    assert len(commits) <= 2
    assert len(positions(app)) == 1200


def test_rate_limit_counters_are_shared_through_redis(sqlite_url, app, tokens):
    import uuid

    import redis

    from tests.conftest import build_app

    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("REQUIRE_POSTGRES") == "1":  # CI has Redis beside PostgreSQL
            pytest.fail("Redis is not reachable on 127.0.0.1:6379")
        pytest.skip("needs Redis on 127.0.0.1:6379")
    secret = tokens.create()
    settings = dict(
        RATELIMIT_STORAGE_URI=url,
        API_RATE_LIMIT="3/minute",
        RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}",
    )
    # Two apps on one database and one Redis stand in for two workers or hosts.
    first, second = build_app(sqlite_url, **settings), build_app(sqlite_url, **settings)
    statuses = [
        worker.test_client().get("/api/v1/assets", headers=bearer(secret)).status_code
        for worker in (first, second, first, second)
    ]
    assert statuses == [200, 200, 200, 429]


def test_snapshot_dated_2100_is_422_naming_the_row_and_nothing_is_stored(any_app, any_tokens):
    secret = any_tokens.create("ingest")
    body = {"positions": [row(), row(timestamp="2100-01-01T00:00:00Z")]}
    response = post(any_app.test_client(), secret, body)
    assert response.status_code == 422
    (error,) = response.get_json()["errors"]
    assert (error["index"], error["field"]) == (1, "timestamp")
    assert "2100-01-01T00:00:00Z is in the future" in error["message"]
    assert positions(any_app) == []


@pytest.mark.parametrize(
    "timestamp, problem",
    [
        ("1969-12-31T23:59:59.999999Z", "before 1970-01-01T00:00:00Z"),
        ("1970-01-01T00:59:59+01:00", "before 1970-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00+00:14", "out of range"),
        ("9999-12-31T23:59:59-01:00", "out of range"),
        ("9999-12-31T23:59:59Z", "in the future"),
        ("\uff12\uff10\uff12\uff16-03-01T12:00:00Z", "not ISO 8601"),  # full-width year
        ("2026-03-01T12:00:00.1234567Z", "more precision than a microsecond"),
    ],
)
def test_implausible_or_unconvertible_times_are_422_not_500(
    app, tokens, client, timestamp, problem
):
    response = post(client, tokens.create("ingest"), {"positions": [row(timestamp=timestamp)]})
    assert response.status_code == 422, response.get_json()
    (error,) = response.get_json()["errors"]
    assert (error["index"], error["field"]) == (0, "timestamp")
    assert problem in error["message"]
    assert positions(app) == []


def test_times_up_to_the_clock_skew_ahead_are_accepted_and_beyond_it_refused(app, tokens, client):
    secret = tokens.create("ingest")
    ahead = (utcnow() + timedelta(minutes=2)).isoformat()
    assert post(client, secret, {"positions": [row(timestamp=ahead)]}).status_code == 200
    app.config["CLOCK_SKEW_SECONDS"] = 60
    later = (utcnow() + timedelta(minutes=2)).isoformat()
    response = post(client, secret, {"positions": [row(timestamp=later, amount="2")]})
    assert response.status_code == 422
    assert "clock skew allowed 60 s" in response.get_json()["errors"][0]["message"]
    assert len(positions(app)) == 1


@pytest.mark.parametrize(
    "field, text",
    [
        ("amount", "\uff11\uff12\uff13"),  # full-width
        ("amount", "\u0661\u0662\u0663"),  # Arabic-Indic
        ("amount", "1.\uff15"),
        ("amount", "1e\uff11"),
        ("price", "\u06f1\u06f2\u06f3"),  # extended Arabic-Indic
        ("price", "\u0967\u0968\u0969"),  # Devanagari
    ],
)
def test_digits_other_than_ascii_are_refused_not_converted(app, tokens, client, field, text):
    response = post(client, tokens.create("ingest"), {"positions": [row(**{field: text})]})
    assert response.status_code == 422
    (error,) = response.get_json()["errors"]
    assert (error["index"], error["field"]) == (0, field)
    assert "digits 0-9" in error["message"]
    assert positions(app) == []
