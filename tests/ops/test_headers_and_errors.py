"""Security headers, error pages, safe redirects."""

import logging

import pytest

from app.auth.access import requires_role
from app.auth.models import Role
from app.extensions import db
from tests.conftest import PASSWORD, Auth, build_app, csrf_token_from, make_user


def assert_security_headers(response):
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Server" not in response.headers


@pytest.fixture
def crashing_app(sqlite_url):
    app = build_app(sqlite_url)

    @requires_role(Role.VIEWER)
    def boom():
        raise RuntimeError("database password is hunter2")

    app.add_url_rule("/boom", view_func=boom)
    with app.app_context():
        db.create_all()
    make_user(app, "alice")
    return app


def test_every_kind_of_response_carries_the_security_headers(crashing_app):
    client = crashing_app.test_client()
    responses = [
        client.get("/login"),
        client.get("/healthz"),
        client.get("/no-such-page"),
        client.get("/no-such-page", headers={"Accept": "application/json"}),
        client.post("/login", data={}),
    ]
    Auth(client).login()
    responses += [client.get("/"), client.get("/boom")]
    for response in responses:
        assert_security_headers(response)


def test_hsts_only_in_production(sqlite_url):
    assert (
        "Strict-Transport-Security"
        not in build_app(sqlite_url).test_client().get("/healthz").headers
    )
    prod = build_app(sqlite_url, HSTS_SECONDS=31536000)
    assert (
        prod.test_client()
        .get("/healthz")
        .headers["Strict-Transport-Security"]
        .startswith("max-age=31536000")
    )


def test_unhandled_error_is_a_generic_500_with_reference_and_logged_traceback(
    crashing_app, caplog
):
    client = crashing_app.test_client()
    Auth(client).login()
    with caplog.at_level(logging.ERROR):
        page = client.get("/boom")
        api = client.get("/boom", headers={"Accept": "application/json"})
    assert page.status_code == 500 and api.status_code == 500
    html = page.get_data(as_text=True)
    assert "hunter2" not in html and "Traceback" not in html
    reference = api.get_json()["reference"]
    assert "hunter2" not in api.get_data(as_text=True)
    assert reference in caplog.text and "hunter2" in caplog.text
    assert "Reference:" in html


def test_404_is_a_page_for_browsers_and_json_for_api_clients(client):
    page = client.get("/nowhere")
    assert page.status_code == 404 and "text/html" in page.content_type
    api = client.get("/api/v1/nowhere")
    assert api.status_code == 404 and api.get_json()["error"] == "not_found"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "///evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "%2F%2Fevil.example",
        "http:/evil.example",
        " //evil.example",
        "/\t/evil.example",
        "data:text/html,<script>alert(1)</script>",
    ],
)
def test_next_off_our_host_redirects_to_our_own_page(client, viewer, target):
    token = csrf_token_from(client, "/login")
    response = client.post(
        "/login",
        query_string={"next": target},
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert response.location == "/"


def test_next_on_our_host_is_followed(client, viewer):
    token = csrf_token_from(client, "/login")
    response = client.post(
        "/login?next=/positions/BTC%3Faccount%3Dmain",
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
    )
    assert response.location == "/positions/BTC?account=main"


def test_form_post_without_valid_csrf_changes_nothing(app, client, auth, viewer):
    auth.login()
    for token in (None, "forged-token"):
        data = {"tz-timezone": "Asia/Tokyo"}
        if token:
            data["csrf_token"] = token
        response = client.post("/account/timezone", data=data)
        assert response.status_code == 400
    from app.auth.models import User

    with app.app_context():
        assert db.session.execute(db.select(User.timezone)).scalar_one() == "UTC"


def test_timezone_change_with_csrf_is_saved(app, client, auth, viewer):
    auth.login()
    token = csrf_token_from(client, "/account")
    response = client.post(
        "/account/timezone", data={"csrf_token": token, "tz-timezone": "Europe/London"}
    )
    assert response.status_code == 302
    bad = client.post("/account/timezone", data={"csrf_token": token, "tz-timezone": "Mars/Base"})
    assert bad.status_code == 400
    from app.auth.models import User

    with app.app_context():
        assert db.session.execute(db.select(User.timezone)).scalar_one() == "Europe/London"


def test_readyz_reports_database_state(sqlite_url, tmp_path):
    app = build_app(sqlite_url)
    assert app.test_client().get("/readyz").get_json()["database"] == "ok"
    broken = build_app(f"sqlite:///{tmp_path}/missing-dir/nope.sqlite3")
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503 and response.headers["Retry-After"]


def test_log_lines_escape_newlines_and_terminal_escapes():
    import logging

    from app.ops.logs import SingleLineFormatter

    record = logging.LogRecord(
        "app", logging.WARNING, __file__, 1, "user=%s", ("eve\nFAKE\x1b[31mred",), None
    )
    line = SingleLineFormatter("%(message)s").format(record)
    assert line == "user=eve\\nFAKE\\x1b[31mred"
    assert "\n" not in line and "\x1b" not in line


PROBE_METHODS = ("DELETE", "PATCH", "PUT", "POST", "GET")


def _unused_method_per_path(app) -> dict[str, tuple[str, set[str]]]:
    """Each routed path (placeholders filled in), a method none of its rules take, its methods."""
    adapter = app.url_map.bind("localhost")
    allowed: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        # "1" fits every converter the app uses (string, int, path).
        values = dict.fromkeys(rule.arguments, "1")
        path = adapter.build(rule.endpoint, values, method=next(iter(rule.methods)))
        allowed.setdefault(path, set()).update(rule.methods)
    return {
        path: (next(m for m in PROBE_METHODS if m not in methods), methods)
        for path, methods in allowed.items()
    }


def test_every_405_names_the_allowed_methods(client):
    probes = _unused_method_per_path(client.application)
    assert "/api/v1/positions" in probes and "/login" in probes
    for path, (method, methods) in probes.items():
        response = client.open(path, method=method)
        assert response.status_code == 405, (path, method)
        allow = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
        assert allow == methods, (path, method)
        expected_type = "application/json" if path.startswith("/api/") else "text/html"
        assert response.content_type.startswith(expected_type), path
