"""One rule for usernames, whether the CLI or the admin page creates the user."""

import pytest

from app.auth.models import Role, UsernameError, normalise_username
from tests.conftest import client_as, csrf_token_from


def test_username_is_stored_trimmed_and_lower_case():
    assert normalise_username("  Alice.Trader ") == "alice.trader"


@pytest.mark.parametrize(
    "raw, message",
    [
        ("", "1 to 64 characters"),
        ("   ", "1 to 64 characters"),
        ("a" * 65, "1 to 64 characters"),
        ("bob smith", "spaces or control characters"),
        ("bob\x1b[31m", "spaces or control characters"),
        ("bob\nroot", "spaces or control characters"),
    ],
)
def test_unusable_username_is_refused_with_the_reason(raw, message):
    with pytest.raises(UsernameError, match=message):
        normalise_username(raw)


def test_cli_and_admin_page_refuse_the_same_username_the_same_way(app, runner):
    result = runner.invoke(args=["users", "create", "bob smith", "--password-stdin"], input="x\n")
    assert result.exit_code != 0 and "spaces or control characters" in result.output
    admin = client_as(app, Role.ADMIN)
    response = admin.post(
        "/admin/users",
        data={
            "csrf_token": csrf_token_from(admin, "/admin/users"),
            "username": "bob smith",
            "role": "viewer",
        },
    )
    assert response.status_code == 400
    assert "spaces or control characters" in response.get_data(as_text=True)
