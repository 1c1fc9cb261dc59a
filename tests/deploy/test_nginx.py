"""Through nginx to gunicorn, as deployed: pages, ingest, alerts, addresses, limits."""

import http.client
import json
import re
import sqlite3
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.browser.conftest import CHROMIUM_ARGS, TIMEOUT_MS
from tests.deploy.conftest import METRICS_TOKEN

PASSWORD = "correct horse battery staple"
FORGED_ADDRESS = "203.0.113.7"


def request(url, *, data=None, headers=None, method=None):
    """(status, headers, body) of one request; HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=15) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def ingest(deployment, token, rows):
    body = json.dumps({"positions": rows}).encode()
    return request(
        f"{deployment.url}/api/v1/positions",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


@pytest.fixture(scope="module")
def operator_token(deployment):
    deployment.flask(
        "users", "create", "ops", "--role", "admin", "--password-stdin", stdin=f"{PASSWORD}\n"
    )
    out = deployment.flask("tokens", "create", "ops", "feed", "--scope", "ingest")
    return re.search(r"tm_\S+", out).group(0)


def test_static_files_come_from_nginx_with_a_year_of_cache(deployment):
    status, headers, body = request(f"{deployment.url}/healthz")
    assert status == 200
    page = request(f"{deployment.url}/login")[2].decode()
    css = re.search(r'href="(/static/css/app\.css\?v=[0-9a-f]+)"', page).group(1)

    status, headers, body = request(deployment.url + css)

    assert status == 200
    assert b"{" in body
    assert "immutable" in headers["Cache-Control"]
    assert "max-age=31536000" in headers["Cache-Control"]
    assert "/static/" not in deployment.gunicorn_access_log()


def test_unknown_host_gets_no_answer(deployment):
    parts = urlsplit(deployment.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/login", headers={"Host": "evil.example"})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        conn.getresponse()
    conn.close()

    status, _, _ = request(f"{deployment.url}/login")
    assert status == 200


def test_body_over_the_limit_is_413_at_nginx(deployment, operator_token):
    status, _, _ = request(
        f"{deployment.url}/api/v1/positions",
        data=b"x" * (6 * 1024 * 1024),
        headers={"Authorization": f"Bearer {operator_token}", "Content-Type": "application/json"},
    )
    assert status == 413
    assert "/api/v1/positions" not in deployment.gunicorn_access_log()


def test_every_answer_carries_the_request_id_nginx_made(deployment):
    status, headers, _ = request(f"{deployment.url}/login")
    assert status == 200
    request_id = headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert f"id={request_id}" in deployment.gunicorn_access_log()


def test_ingest_with_a_token_stores_exact_values(deployment, operator_token):
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    row = {"account": "main", "asset": "ETH", "timestamp": now, "amount": "0.10000000000000000001"}

    status, _, body = ingest(deployment, operator_token, [row])

    assert status == 200, body
    assert json.loads(body)["inserted"] == 1
    with sqlite3.connect(deployment.database) as conn:
        stored = conn.execute("SELECT amount FROM position WHERE asset = 'ETH'").fetchall()
    assert stored == [("0.10000000000000000001",)]


def test_browser_logs_in_sees_an_alert_fire_and_keeps_the_real_address(
    deployment, operator_token, chromium_path
):
    from playwright.sync_api import expect, sync_playwright

    deployment.flask(
        "alerts",
        "add-rule",
        "BTC over limit",
        "--kind",
        "position_above",
        "--threshold",
        "10",
        "--asset",
        "BTC",
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            # A client that claims another address: nginx must replace it with its own view.
            context = browser.new_context(extra_http_headers={"X-Forwarded-For": FORGED_ADDRESS})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.goto(f"{deployment.url}/login")
            page.fill("input[name=username]", "ops")
            page.fill("input[name=password]", PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_test_id("current-user")).to_have_text("ops")
            cookie_names = {c["name"] for c in context.cookies()}
            assert "__Host-tm_session" in cookie_names

            now = datetime.now(UTC).replace(microsecond=0).isoformat()
            status, _, body = ingest(
                deployment,
                operator_token,
                [{"account": "main", "asset": "BTC", "timestamp": now, "amount": "12.5"}],
            )
            assert status == 200, body

            page.goto(f"{deployment.url}/alerts/")
            expect(page.locator("#alerts")).to_contain_text("BTC over limit")
            expect(page.locator("#alerts")).to_contain_text("firing")
        finally:
            browser.close()

    with sqlite3.connect(deployment.database) as conn:
        addresses = {row[0] for row in conn.execute("SELECT ip_address FROM user_session")}
    assert addresses == {"127.0.0.1"}


def healthz_count(deployment) -> float:
    status, _, body = request(
        f"{deployment.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert status == 200
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "tradingmonitor_http_requests_total"
                and labels["endpoint"] == "ops.healthz"
                and labels["status"] == "200"
            ):
                return sample.value
    return 0


def test_metrics_through_nginx_add_up_every_worker(deployment):
    assert request(f"{deployment.url}/metrics")[0] == 401
    before = healthz_count(deployment)

    for _ in range(40):
        assert request(f"{deployment.url}/healthz")[0] == 200

    # Whichever worker answers a scrape, it reports every worker's requests.
    assert {healthz_count(deployment) for _ in range(6)} == {before + 40}


def test_readyz_through_nginx_sees_database_migrations_and_worker(deployment):
    deadline = time.monotonic() + 30
    while True:
        status, _, body = request(f"{deployment.url}/readyz")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["migrations"] == "current"
    assert answer["alert_worker"] == "ok"
    assert answer["rate_limits"] == "shared (redis)"
    assert answer["warnings"] == []
