"""Every kind of response carries the security headers; every form POST needs CSRF."""

import re

import pytest

from app.auth.access import requires_role
from app.auth.models import Role
from app.extensions import db
from tests.api.conftest import bearer
from tests.conftest import Auth, build_app, client_as, make_user, writes_during
from tests.ops.test_headers_and_errors import assert_security_headers

METRICS_TOKEN = "m" * 40


def _app_with_a_crash(url, **overrides):
    app = build_app(url, METRICS_TOKEN=METRICS_TOKEN, **overrides)

    @requires_role(Role.VIEWER)
    def boom():
        raise RuntimeError("boom")

    app.add_url_rule("/boom", view_func=boom)
    with app.app_context():
        db.create_all()
    make_user(app, "alice", role=Role.ADMIN)
    return app


def _every_kind_of_response(app) -> dict:
    """One response of each kind the app gives: pages, fragments, JSON, errors, static."""
    from tests.api.conftest import Tokens

    secret = Tokens(app).create("read")
    anonymous = app.test_client()
    client = app.test_client()
    Auth(client).login()
    fragment = {"HX-Request": "true"}
    return {
        "login page": anonymous.get("/login"),
        "redirect to login": anonymous.get("/"),
        "401 json": anonymous.get("/", headers={"Accept": "application/json"}),
        "overview": client.get("/"),
        "overview fragment": client.get("/", headers=fragment),
        "alerts fragment": client.get("/alerts/", headers=fragment),
        "badge fragment": client.get("/alerts/badge", headers=fragment),
        "admin page": client.get("/admin/users"),
        "csv": client.get("/positions.csv"),
        "api json": client.get("/api/v1/assets", headers=bearer(secret)),
        "api 401": client.get("/api/v1/assets"),
        "api 405": client.delete("/api/v1/assets", headers=bearer(secret)),
        "html 404": client.get("/no-such-page"),
        "json 404": client.get("/api/v1/no-such-thing"),
        "html 500": client.get("/boom"),
        "json 500": client.get("/boom", headers={"Accept": "application/json"}),
        "csrf 400": client.post("/account/timezone", data={}),
        "static css": anonymous.get("/static/css/app.css"),
        "static js": anonymous.get("/static/js/live.js"),
        "metrics": anonymous.get("/metrics", headers=bearer(METRICS_TOKEN)),
        "metrics 401": anonymous.get("/metrics"),
        "healthz": anonymous.get("/healthz"),
        "readyz": anonymous.get("/readyz"),
    }


def test_every_kind_of_response_carries_the_csp_and_friends(sqlite_url):
    responses = _every_kind_of_response(_app_with_a_crash(sqlite_url))
    assert responses["overview fragment"].status_code == 200
    assert responses["static css"].status_code == 200
    assert responses["metrics"].status_code == 200
    assert responses["html 500"].status_code == 500
    for kind, response in responses.items():
        try:
            assert_security_headers(response)
        except (AssertionError, KeyError) as error:
            raise AssertionError(f"{kind} ({response.status_code}): {error!r}") from error
        assert "Strict-Transport-Security" not in response.headers, kind
        response.close()


def test_every_kind_of_response_carries_hsts_in_production(sqlite_url):
    responses = _every_kind_of_response(_app_with_a_crash(sqlite_url, HSTS_SECONDS=31536000))
    for kind, response in responses.items():
        hsts = response.headers.get("Strict-Transport-Security", "")
        assert hsts.startswith("max-age=31536000"), kind
        response.close()


def concrete_url(rule) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", "1", rule.rule)


def form_posts(app) -> list[str]:
    """Every POST route a browser form can reach (the API is token-only, CSRF-exempt)."""
    urls = sorted(
        concrete_url(rule)
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and not rule.rule.startswith("/api/")
    )
    return urls


@pytest.fixture
def admin_client(app):
    """An admin with a live session (id 1) and a token (id 1), so ids in URLs exist."""
    from tests.api.conftest import Tokens

    client = client_as(app, Role.ADMIN, "root")
    Tokens(app).create("read")
    return client


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_every_form_post_without_a_valid_csrf_token_is_400_and_writes_nothing(
    app, admin_client, token
):
    urls = form_posts(app)
    # The walk must reach the account and admin forms too, not only login and logout.
    assert {"/login", "/logout", "/account/password", "/admin/users"} <= set(urls)
    assert any(u.startswith("/alerts/") for u in urls)
    refused = {}

    def walk():
        for url in urls:
            data = {"role": "admin", "username": "mallory", "tz-timezone": "Asia/Tokyo"}
            if token:
                data["csrf_token"] = token
            response = admin_client.post(url, data=data)
            refused[url] = (response.status_code, response.get_data(as_text=True))

    writes = writes_during(app, walk)
    for url, (status, body) in refused.items():
        assert status == 400, (url, status)
        assert "not sent by this site" in body, url
    assert writes == []
    # Still logged in: the refused logout did not end the session.
    assert admin_client.get("/").status_code == 200
