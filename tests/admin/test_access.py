"""Only admins reach /admin; every change there needs a CSRF token."""

import logging
import re

import pytest

from app.auth.models import Role
from tests.admin.helpers import events, post, user
from tests.conftest import Auth, client_as, make_user


def admin_urls(app) -> list[tuple[str, str]]:
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin."):
            url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", "1", rule.rule)
            urls += [(method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return urls


def test_the_admin_area_has_its_pages(app):
    urls = admin_urls(app)
    assert ("GET", "/admin/users") in urls
    assert ("GET", "/admin/audit") in urls
    assert ("GET", "/admin/audit.csv") in urls
    assert ("POST", "/admin/users/1/disable") in urls


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_viewers_and_operators_get_403_on_every_admin_route(any_app, role):
    make_user(any_app, "root", Role.ADMIN)
    client = client_as(any_app, role)
    # A real CSRF token: the refusal must come from the role, not from the form.
    token = re.search(
        r'name="csrf-token" content="([^"]+)"', client.get("/account").get_data(as_text=True)
    ).group(1)
    for method, url in admin_urls(any_app):
        response = client.open(url, method=method, data={"csrf_token": token, "role": "viewer"})
        assert response.status_code == 403, (method, url)
    assert user(any_app, "root").role == Role.ADMIN and user(any_app, "root").active


def test_anonymous_is_sent_to_login_from_every_admin_page(app, client):
    for method, url in admin_urls(app):
        if method == "GET":
            response = client.get(url, headers={"Accept": "text/html"})
            assert response.status_code == 302, url
            assert response.location.startswith("/login?next=")


def test_admin_post_without_csrf_is_400_and_changes_nothing(any_app, admin):
    target = make_user(any_app, "bob", Role.VIEWER)
    before = len(events(any_app))
    for path, data in [
        (f"/admin/users/{target}/disable", {}),
        (f"/admin/users/{target}/role", {"role": "admin"}),
        (f"/admin/users/{target}/reset-password", {}),
        ("/admin/users", {"username": "mallory", "role": "admin", "password": "x" * 20}),
    ]:
        assert admin.post(path, data=data).status_code == 400, path
    bob = user(any_app, "bob")
    assert bob.active and bob.role == Role.VIEWER and not bob.must_change_password
    assert len(events(any_app)) == before
    assert "mallory" not in admin.get("/admin/users").get_data(as_text=True)


def test_admins_see_the_admin_link_and_others_do_not(any_app, admin):
    assert 'href="/admin/users">Admin<' in admin.get("/").get_data(as_text=True)
    make_user(any_app, "op", Role.OPERATOR)
    other = any_app.test_client()
    Auth(other).login(username="op")
    assert ">Admin<" not in other.get("/").get_data(as_text=True)


def test_a_denied_admin_request_is_403_and_logged_with_user_and_route(app, caplog):
    make_user(app, "root", Role.ADMIN)
    make_user(app, "vic", Role.VIEWER)
    client = app.test_client()
    Auth(client).login(username="vic")
    with caplog.at_level(logging.WARNING):
        assert client.get("/admin/users").status_code == 403
        assert post(client, "/admin/users/1/disable", page="/account").status_code == 403
    denials = [r.getMessage() for r in caplog.records if "route=admin." in r.getMessage()]
    assert len(denials) == 2
    assert all("user=vic" in line for line in denials)
    assert "route=admin.user_list" in denials[0]
    assert "route=admin.disable_user" in denials[1]
    assert user(app, "root").active
