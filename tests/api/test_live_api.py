"""The API over a real socket: concurrent identical batches, exact round trips, fuzzing."""

import os
import re
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.extensions import db
from app.positions.models import LatestPosition, Position
from tests.api.conftest import bearer, row
from tests.conftest import serve


def test_same_batch_from_two_threads_at_once_is_stored_once(any_app, any_tokens):
    secret = any_tokens.create("ingest")
    batch = {
        "positions": [
            row(timestamp=f"2026-03-01T12:{i // 60:02d}:{i % 60:02d}Z", amount=str(i))
            for i in range(500)
        ]
    }
    barrier = threading.Barrier(2)
    results = []

    def push(url):
        with requests.Session() as session:
            barrier.wait()
            response = session.post(url, json=batch, headers=bearer(secret), timeout=60)
            results.append((response.status_code, response.json()))

    with serve(any_app) as server:
        threads = [
            threading.Thread(target=push, args=(f"{server.url}/api/v1/positions",))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
    assert sorted(status for status, _ in results) == [200, 200]
    assert sum(body["inserted"] for _, body in results) == 500
    assert sum(body["duplicates"] for _, body in results) == 500
    with any_app.app_context():
        assert db.session.execute(db.select(db.func.count(Position.id))).scalar_one() == 500


# Decimals the API promises to keep: up to 40 significant digits, exponent within ±40.
exact_decimals = st.decimals(
    min_value=Decimal("-1e20"), max_value=Decimal("1e20"), allow_nan=False, places=18
) | st.decimals(
    allow_nan=False, allow_infinity=False, places=0, max_value=10**30, min_value=-(10**30)
)
moments = st.datetimes(
    # Up to a past moment: later ones are refused once they are in the future.
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2026, 1, 1),
    timezones=st.just(UTC),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    amount=exact_decimals,
    price=st.none() | exact_decimals,
    moment=moments,
    as_number=st.booleans(),
)
def test_any_valid_decimal_and_time_round_trip_exactly_through_post_and_get(
    app, tokens, amount, price, moment, as_number
):
    with app.app_context():
        db.session.execute(db.delete(Position))
        db.session.execute(db.delete(LatestPosition))
        db.session.commit()
    secret = tokens.create()
    client = app.test_client()
    text = format(amount, "f")
    # Built by hand: a JSON number must reach the server digit for digit.
    amount_json = text if as_number else f'"{text}"'
    price_json = "null" if price is None else f'"{format(price, "f")}"'
    body = (
        f'{{"positions": [{{"account": "a", "asset": "P", "timestamp": "{moment.isoformat()}",'
        f' "amount": {amount_json}, "price": {price_json}}}]}}'
    )
    response = client.post(
        "/api/v1/positions", data=body, content_type="application/json", headers=bearer(secret)
    )
    assert response.status_code == 200, response.get_json()
    got = client.get(
        "/api/v1/positions", query_string={"asset": "P"}, headers=bearer(secret)
    ).get_json()["positions"][0]
    assert Decimal(got["amount"]) == amount and got["amount"] == format(Decimal(text), "f")
    assert (got["price"] is None) == (price is None)
    if price is not None:
        assert Decimal(got["price"]) == price
    assert datetime.fromisoformat(got["timestamp"]) == moment


def schemathesis_binary() -> str:
    found = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not Path(found).exists():
        pytest.skip("schemathesis is not installed (make install)")
    return found


def test_schemathesis_finds_no_server_errors_or_schema_violations(app, tokens, tmp_path):
    binary = schemathesis_binary()
    secret = tokens.create()
    with serve(app) as server:
        result = subprocess.run(
            [
                binary,
                "run",
                f"{server.url}/api/v1/openapi.json",
                "--url",
                f"{server.url}/api/v1",
                "-H",
                f"Authorization: Bearer {secret}",
                "--checks",
                "not_a_server_error,response_schema_conformance,"
                "status_code_conformance,content_type_conformance",
                "--max-examples",
                os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "40"),
                "--seed",
                "1",
                "--request-timeout",
                "30",
                "--suppress-health-check",
                "all",
                "--generation-database",
                "none",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-8000:]
    # A run that tested nothing must not pass for one that found nothing.
    assert re.search(r"\b[1-9]\d* passed", report), report[-3000:]
    print(report[-3000:])
