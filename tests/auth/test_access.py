"""Access control: every route declares who may use it; everything else is denied."""

import logging
import re

import pytest
from flask import Blueprint

from app.auth.access import PUBLIC, TOKEN, public, requires_role
from app.auth.models import Role
from app.extensions import db
from tests.conftest import Auth, build_app, make_user

# ops.metrics needs no login but its own token or address: tests/ops/test_metrics.py.
PUBLIC_ENDPOINTS = {
    "auth.login",
    "auth.logout",
    # Company sign-in: its start and the provider's return (tests/auth/test_oidc.py).
    "auth.oidc_login",
    "auth.oidc_callback",
    "ops.healthz",
    "ops.readyz",
    "ops.metrics",
    "static",
}


def concrete_url(rule) -> str:
    """Fill every converter of a rule with a plausible value."""
    return re.sub(
        r"<(?:[^:>]+:)?([^>]+)>", lambda m: "1" if "id" in m.group(1) else "X", rule.rule
    )


def test_every_view_declares_its_access(app):
    for endpoint, view in app.view_functions.items():
        if endpoint == "static":
            continue
        assert getattr(view, "access", None) in (PUBLIC, TOKEN, *Role.ALL), endpoint


def test_anonymous_walk_of_the_url_map_never_gets_a_200(app, client):
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = concrete_url(rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            html = client.open(url, method=method, headers={"Accept": "text/html"})
            json = client.open(url, method=method, headers={"Accept": "application/json"})
            if url.startswith("/api/"):
                # Token-only: never a login page, never CSRF, always 401 JSON.
                assert html.status_code == json.status_code == 401, (method, url)
                assert html.is_json and json.is_json
            elif method == "GET":
                assert html.status_code == 302, (method, url)
                assert html.location.startswith("/login?next=")
                assert json.status_code == 401, (method, url)
            else:
                # State-changing requests without CSRF stop at 400 before anything else.
                assert html.status_code in (302, 400, 401), (method, url)
                assert json.status_code in (400, 401), (method, url)
            checked += 1
    assert checked >= 6


def test_public_endpoints_answer_anonymously(client):
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.fixture
def role_app(sqlite_url):
    """An app with one extra route per role, to check each role gets exactly its rights."""
    app = build_app(sqlite_url)
    extra = Blueprint("extra", __name__)

    for role in Role.ALL:

        def view(role=role):
            return f"{role} ok"

        view.__name__ = f"{role}_only"
        extra.add_url_rule(f"/extra/{role}", view_func=requires_role(role)(view))

    def undeclared():
        return "should never be served"

    extra.add_url_rule("/extra/undeclared", view_func=undeclared)
    extra.add_url_rule("/extra/public", view_func=public(lambda: "hi"), endpoint="open")
    app.register_blueprint(extra)
    with app.app_context():
        db.create_all()
    for role in Role.ALL:
        make_user(app, role, role=role)
    return app


RIGHTS = {
    Role.VIEWER: {Role.VIEWER},
    Role.OPERATOR: {Role.VIEWER, Role.OPERATOR},
    Role.ADMIN: {Role.VIEWER, Role.OPERATOR, Role.ADMIN},
}


@pytest.mark.parametrize("user_role", Role.ALL)
def test_each_role_gets_exactly_its_rights(role_app, user_role, caplog):
    client = role_app.test_client()
    Auth(client).login(username=user_role)
    for route_role in Role.ALL:
        with caplog.at_level(logging.WARNING):
            response = client.get(f"/extra/{route_role}")
        if route_role in RIGHTS[user_role]:
            assert response.status_code == 200
        else:
            assert response.status_code == 403
            assert f"user={user_role}" in caplog.text
            assert f"route=extra.{route_role}_only" in caplog.text


def test_undeclared_route_is_denied_even_to_admins(role_app):
    client = role_app.test_client()
    Auth(client).login(username="admin")
    assert client.get("/extra/undeclared").status_code == 403
    assert client.get("/extra/public").status_code == 200


def test_requires_role_refuses_unknown_roles():
    with pytest.raises(ValueError, match="superuser"):
        requires_role("superuser")
