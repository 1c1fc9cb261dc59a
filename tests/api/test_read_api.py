"""GET /api/v1/positions and /api/v1/assets."""

from datetime import timedelta

import pytest

from app.db_types import utcnow
from tests.api.conftest import bearer
from tests.positions.helpers import snap, store


@pytest.fixture
def reader(any_app, any_tokens):
    client = any_app.test_client()
    secret = any_tokens.create("read")
    return lambda path, **params: client.get(path, query_string=params, headers=bearer(secret))


def test_history_is_newest_first_with_exact_strings_and_a_cursor(any_app, reader):
    store(
        any_app,
        [
            snap(account=a, minutes=m, amount=f"{m}.{a[-1]}")
            for a in ("x1", "x2")
            for m in range(3)
        ],
    )
    first = reader("/api/v1/positions", asset="BTC", limit=4).get_json()
    assert [p["amount"] for p in first["positions"]] == ["2.2", "2.1", "1.2", "1.1"]
    assert first["positions"][0]["timestamp"] == "2026-03-01T12:02:00Z"
    second = reader(
        "/api/v1/positions", asset="BTC", limit=4, cursor=first["next_cursor"]
    ).get_json()
    assert [p["amount"] for p in second["positions"]] == ["0.2", "0.1"]
    assert second["next_cursor"] is None


def test_history_filters_by_account_and_time(any_app, reader):
    store(any_app, [snap(account=a, minutes=m) for a in ("a", "b") for m in range(10)])
    body = reader(
        "/api/v1/positions",
        asset="BTC",
        account="b",
        **{"from": "2026-03-01T12:03:00Z", "to": "2026-03-01T14:06:00+02:00"},
    ).get_json()
    times = [p["timestamp"][11:16] for p in body["positions"]]
    assert times == ["12:05", "12:04", "12:03"]
    assert {p["account"] for p in body["positions"]} == {"b"}


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "asset"),
        ({"asset": "BTC", "limit": "0"}, "limit"),
        ({"asset": "BTC", "limit": "1001"}, "limit"),
        ({"asset": "BTC", "limit": "ten"}, "limit"),
        ({"asset": "BTC", "from": "2026-03-01T12:00:00"}, "from"),
        ({"asset": "BTC", "bogus": "1"}, "bogus"),
        ({"asset": "BTC", "limit": "\uff15"}, "limit"),  # a full-width 5
        ({"asset": "BTC", "from": "9999-12-31T23:59:59-01:00"}, "from"),
        ({"asset": "BTC", "to": "9999-12-31T23:59:59-01:00"}, "to"),
        ({"asset": "BTC", "from": "0001-01-01T00:00:00+00:14"}, "from"),
    ],
)
def test_bad_query_parameters_are_422_naming_them(any_app, reader, params, field):
    response = reader("/api/v1/positions", **params)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.get_json()["errors"]}


def test_moments_outside_utc_are_422_saying_so(any_app, reader):
    store(any_app, [snap()])
    response = reader("/api/v1/positions", asset="BTC", to="9999-12-31T23:59:59-01:00")
    assert response.status_code == 422
    (error,) = response.get_json()["errors"]
    assert error["field"] == "to" and "out of range" in error["message"]
    # The last moment UTC has is a bound like any other.
    response = reader("/api/v1/positions", asset="BTC", to="9999-12-31T23:59:59.999999Z")
    assert response.status_code == 200 and len(response.get_json()["positions"]) == 1


def test_bad_cursor_is_400(any_app, reader):
    response = reader("/api/v1/positions", asset="BTC", cursor="garbage")
    assert response.status_code == 400 and response.get_json()["error"] == "bad_cursor"


def test_assets_lists_latest_positions_with_age(any_app, reader):
    now = utcnow()
    store(
        any_app,
        [
            snap(at=now - timedelta(seconds=90), amount="2", price="0.5"),
            snap(asset="ETH", at=now - timedelta(hours=1), amount="-1", price=None),
        ],
    )
    assets = reader("/api/v1/assets").get_json()["assets"]
    by_asset = {a["asset"]: a for a in assets}
    assert by_asset["BTC"]["notional"] == "1.0" and by_asset["BTC"]["amount"] == "2"
    assert 89 <= by_asset["BTC"]["age_seconds"] < 120
    assert by_asset["ETH"]["price"] is None and by_asset["ETH"]["notional"] is None
    assert 3599 <= by_asset["ETH"]["age_seconds"] < 3700


def test_read_scope_cannot_ingest_and_ingest_scope_cannot_read(app, tokens, client):
    read_only, ingest_only = tokens.create("read"), tokens.create("ingest")
    body = {
        "positions": [
            {"account": "a", "asset": "B", "timestamp": "2026-01-01T00:00:00Z", "amount": "1"}
        ]
    }
    response = client.post("/api/v1/positions", json=body, headers=bearer(read_only))
    assert response.status_code == 403 and "ingest" in response.get_json()["message"]
    assert client.get("/api/v1/assets", headers=bearer(ingest_only)).status_code == 403
    assert client.get("/api/v1/assets", headers=bearer(read_only)).status_code == 200


def test_openapi_document_is_3_1_and_lists_every_route(client, tokens):
    doc = client.get("/api/v1/openapi.json", headers=bearer(tokens.create("read"))).get_json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/positions", "/assets", "/recon"}
    assert set(doc["paths"]["/positions"]) == {"get", "post"}
    batch = doc["components"]["schemas"]["PositionBatch"]
    assert batch["properties"]["positions"]["maxItems"] == 10_000
    assert doc["components"]["schemas"]["PositionIn"]["additionalProperties"] is False


def test_api_docs_page_is_readable_by_logged_in_users(logged_in, client):
    html = logged_in.get("/docs/api").get_data(as_text=True)
    assert "POST /api/v1/positions" in html and "PositionBatch" in html
    assert client.application.test_client().get("/docs/api").status_code == 302
