"""The daily digest settings on the account page: my own, validated, behind CSRF."""

import re
from datetime import time

import pytest

from app.auth.models import Role, User
from app.extensions import db
from tests.conftest import client_as, csrf_token_from

SETTINGS = "/account/digest"


def settings_of(app, username="alice") -> tuple[bool, str | None, time]:
    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(username=username)).scalar_one()
        return user.digest_enabled, user.email, user.digest_at


def save(client, token=None, **fields):
    data = {"dg-csrf_token": token or csrf_token_from(client, "/account"), **fields}
    return client.post(SETTINGS, data=data)


def test_a_new_user_has_the_digest_off_at_eight(app, logged_in):
    page = logged_in.get("/account").get_data(as_text=True)

    assert settings_of(app) == (False, None, time(8, 0))
    assert 'data-testid="digest-state">Off.' in page
    assert 'name="dg-send_at"' in page and 'value="08:00"' in page
    # Typed as 24-hour hh:mm, not through a picker that shows 08:00 AM.
    assert re.search(r'<input[^>]*name="dg-send_at"[^>]*type="text"', page)


def test_i_switch_my_digest_on_with_an_address_and_a_time(app, logged_in):
    response = save(
        logged_in,
        **{"dg-enabled": "y", "dg-email": " alice@example.com ", "dg-send_at": "07:30"},
    )

    assert response.status_code == 302
    assert settings_of(app) == (True, "alice@example.com", time(7, 30))
    page = logged_in.get("/account").get_data(as_text=True)
    assert "On: an e-mail to alice@example.com every day at 07:30 your time (UTC)" in page

    save(logged_in, **{"dg-email": "alice@example.com", "dg-send_at": "07:30"})
    assert settings_of(app) == (False, "alice@example.com", time(7, 30))


@pytest.mark.parametrize(
    "fields",
    [
        {"dg-enabled": "y", "dg-email": "", "dg-send_at": "08:00"},
        {"dg-enabled": "y", "dg-email": "not an address", "dg-send_at": "08:00"},
        {
            "dg-enabled": "y",
            "dg-email": "a@b.example\r\nBcc: x@evil.example",
            "dg-send_at": "08:00",
        },
        {"dg-enabled": "y", "dg-email": "x" * 250 + "@b.example", "dg-send_at": "08:00"},
        {"dg-enabled": "y", "dg-email": "a@b.example", "dg-send_at": "25:00"},
        {"dg-enabled": "y", "dg-email": "a@b.example", "dg-send_at": ""},
    ],
    ids=["no-address", "not-an-address", "header-injection", "too-long", "bad-time", "no-time"],
)
def test_bad_settings_are_refused_and_nothing_changes(app, logged_in, fields):
    response = save(logged_in, **fields)

    assert response.status_code == 400
    assert 'class="error"' in response.get_data(as_text=True)
    assert settings_of(app) == (False, None, time(8, 0))


def test_the_settings_need_the_csrf_token(app, logged_in):
    response = save(logged_in, token="forged", **{"dg-enabled": "y", "dg-email": "a@b.example"})

    assert response.status_code == 400
    assert settings_of(app) == (False, None, time(8, 0))


def test_anonymous_visitors_cannot_change_digest_settings(app, client, viewer):
    token = csrf_token_from(client, "/login")
    response = save(client, token=token, **{"dg-enabled": "y", "dg-email": "a@b.example"})

    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
    assert settings_of(app) == (False, None, time(8, 0))


def test_a_user_changes_only_their_own_digest(app, logged_in):
    bob = client_as(app, Role.ADMIN, "bob")

    response = save(
        bob,
        **{
            "dg-enabled": "y",
            "dg-email": "bob@example.com",
            "dg-send_at": "06:00",
            # Naming another user changes nothing: the route takes no user from the request.
            "user_id": "1",
            "username": "alice",
        },
    )

    assert response.status_code == 302
    assert settings_of(app, "bob") == (True, "bob@example.com", time(6, 0))
    assert settings_of(app, "alice") == (False, None, time(8, 0))
