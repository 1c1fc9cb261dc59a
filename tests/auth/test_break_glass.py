"""Local passwords switched off: only break-glass admins may still use theirs."""

import pytest

from app.admin.audit import Action
from app.auth.models import AuthPolicy, Role, User
from app.extensions import db
from tests.admin.helpers import events
from tests.conftest import Auth, client_as, csrf_token_from, make_user


def switch_local_passwords(app, on: bool):
    with app.app_context():
        policy = db.session.get(AuthPolicy, 1) or AuthPolicy(id=1)
        policy.local_passwords = on
        db.session.add(policy)
        db.session.commit()


def mark(app, username, **values):
    with app.app_context():
        user = db.session.execute(db.select(User).where(User.username == username)).scalar_one()
        for name, value in values.items():
            setattr(user, name, value)
        db.session.commit()


def flag(app, username) -> bool:
    with app.app_context():
        return db.session.execute(
            db.select(User.break_glass).where(User.username == username)
        ).scalar_one()


@pytest.fixture
def passwords_off(app):
    make_user(app, "root", role=Role.ADMIN)
    mark(app, "root", break_glass=True)
    switch_local_passwords(app, False)
    return app


def test_a_break_glass_admin_still_signs_in_with_the_password(passwords_off, client):
    assert Auth(client).login(username="root").location == "/"
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("role", [Role.ADMIN, Role.VIEWER])
def test_everyone_else_is_told_to_use_the_provider(passwords_off, client, role):
    make_user(passwords_off, "kim", role=role)
    response = Auth(client).login(username="kim")
    assert response.status_code == 200
    assert "Local passwords are switched off" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    refused = events(passwords_off, Action.LOGIN_REFUSED)[0]
    assert refused.detail == {"reason": "local_password_not_allowed", "method": "password"}
    assert refused.target == "user:kim"


def test_a_break_glass_flag_on_a_non_admin_gives_nothing(passwords_off, client):
    make_user(passwords_off, "vic", role=Role.VIEWER)
    mark(passwords_off, "vic", break_glass=True)
    assert Auth(client).login(username="vic").status_code == 200
    assert client.get("/").status_code == 302


def test_a_wrong_password_does_not_reveal_who_is_break_glass(passwords_off, client):
    make_user(passwords_off, "kim", role=Role.ADMIN)
    for name in ("root", "kim"):
        page = Auth(client).login(username=name, password="wrong password here")
        assert "Invalid username or password" in page.get_data(as_text=True)
        assert "switched off" not in page.get_data(as_text=True)


def test_with_local_passwords_on_everyone_signs_in(app, client):
    make_user(app, "kim", role=Role.VIEWER)
    assert Auth(client).login(username="kim").location == "/"


def test_the_cli_marks_and_unmarks_a_break_glass_admin(app, runner):
    make_user(app, "ada", role=Role.ADMIN)
    result = runner.invoke(args=["users", "break-glass", "ADA", "--on"])
    assert result.exit_code == 0, result.output
    assert "now a break-glass admin" in result.output
    assert "ada  admin     active    (break-glass)" in runner.invoke(args=["users", "list"]).output
    assert flag(app, "ada") is True
    result = runner.invoke(args=["users", "break-glass", "ada", "--off"])
    assert result.exit_code == 0, result.output
    assert flag(app, "ada") is False
    listed = runner.invoke(args=["users", "list"]).output
    assert "ada  admin     active" in listed and "break-glass" not in listed
    audited = events(app, Action.USER_BREAK_GLASS)
    assert [(e.actor_name, e.detail["on"]) for e in audited] == [("cli", True), ("cli", False)]


def test_only_an_admin_with_a_local_password_can_be_break_glass(app, runner):
    make_user(app, "vic", role=Role.VIEWER)
    make_user(app, "sso", role=Role.ADMIN)
    mark(app, "sso", oidc_issuer="https://id.example.com", oidc_subject="42")
    for name, message in (("vic", "Only an admin"), ("sso", "company's provider")):
        result = runner.invoke(args=["users", "break-glass", name, "--on"])
        assert result.exit_code != 0
        assert message in result.output
        assert flag(app, name) is False
    assert events(app, Action.USER_BREAK_GLASS) == []


def test_the_last_break_glass_admin_stays_while_passwords_are_off(passwords_off, runner):
    result = runner.invoke(args=["users", "break-glass", "root", "--off"])
    assert result.exit_code != 0
    assert "last break-glass admin" in result.output
    assert flag(passwords_off, "root") is True


def test_the_admin_page_marks_a_break_glass_admin(app):
    admin = client_as(app, Role.ADMIN, "boss")
    make_user(app, "ada", role=Role.ADMIN)
    with app.app_context():
        ada = db.session.execute(db.select(User.id).where(User.username == "ada")).scalar_one()
    page = admin.get(f"/admin/users/{ada}").get_data(as_text=True)
    assert "Mark break-glass" in page
    token = csrf_token_from(admin, f"/admin/users/{ada}")
    assert f'action="/admin/users/{ada}/break-glass/on"' in page
    response = admin.post(f"/admin/users/{ada}/break-glass/on", data={"csrf_token": token})
    assert response.status_code == 302
    assert flag(app, "ada") is True
    assert "Unmark break-glass" in admin.get(f"/admin/users/{ada}").get_data(as_text=True)
    event = events(app, Action.USER_BREAK_GLASS)[0]
    assert (event.actor_name, event.target, event.detail) == ("boss", "user:ada", {"on": True})


def test_the_login_page_puts_the_provider_first_when_passwords_are_off(passwords_off):
    page = passwords_off.test_client().get("/login").get_data(as_text=True)
    assert "Break-glass admin sign-in" in page
