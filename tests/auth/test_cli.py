"""`flask users …` through Flask's CLI runner."""

import pytest

from app.auth.models import User, UserSession
from app.extensions import db
from tests.conftest import PASSWORD, Auth


def user(app, name):
    with app.app_context():
        return db.session.execute(db.select(User).filter_by(username=name)).scalar_one_or_none()


def test_create_admin_with_password_on_stdin(app, runner):
    result = runner.invoke(
        args=["users", "create", "Root", "--role", "admin", "--password-stdin"],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created admin 'root'" in result.output
    created = user(app, "root")
    assert created.role == "admin" and created.password_hash.startswith("$argon2id$")
    assert "a long enough password" not in created.password_hash


def test_create_prompts_for_password_twice(app, runner):
    result = runner.invoke(
        args=["users", "create", "bob"], input="a long enough password\na long enough password\n"
    )
    assert result.exit_code == 0, result.output
    assert user(app, "bob").role == "viewer"


def test_create_refuses_short_password_duplicate_and_bad_names(app, runner, viewer):
    short = runner.invoke(args=["users", "create", "bob", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    assert user(app, "bob") is None
    dup = runner.invoke(
        args=["users", "create", "ALICE", "--password-stdin"], input="a long enough password\n"
    )
    assert dup.exit_code != 0 and "already exists" in dup.output
    for bad in ("has space", "tab\there", "x" * 65, ""):
        result = runner.invoke(
            args=["users", "create", bad, "--password-stdin"], input="a long enough password\n"
        )
        assert result.exit_code != 0, bad
    role = runner.invoke(args=["users", "create", "eve", "--role", "root", "--password-stdin"])
    assert role.exit_code == 2 and "root" in role.output
    empty = runner.invoke(args=["users", "create", "eve", "--password-stdin"], input="\n")
    assert empty.exit_code != 0 and "No password" in empty.output


def test_set_password_changes_it_and_signs_out_sessions(app, runner, client, viewer):
    Auth(client).login()
    result = runner.invoke(
        args=["users", "set-password", "alice", "--password-stdin"],
        input="another fine password\n",
    )
    assert result.exit_code == 0, result.output
    assert "1 session(s) signed out" in result.output
    assert client.get("/").status_code == 302
    assert Auth(client).login(password=PASSWORD).status_code == 200
    assert Auth(client).login(password="another fine password").status_code == 302


def test_set_password_for_unknown_user_fails(runner):
    result = runner.invoke(
        args=["users", "set-password", "ghost", "--password-stdin"], input="whatever password\n"
    )
    assert result.exit_code == 1 and "No user named 'ghost'" in result.output


def test_disable_and_enable(app, runner, viewer):
    assert runner.invoke(args=["users", "disable", "alice"]).exit_code == 0
    assert user(app, "alice").active is False
    assert Auth(app.test_client()).login().status_code == 200
    assert runner.invoke(args=["users", "enable", "alice"]).exit_code == 0
    assert Auth(app.test_client()).login().status_code == 302
    assert runner.invoke(args=["users", "disable", "ghost"]).exit_code == 1


def test_list_shows_users_roles_and_status(app, runner, viewer):
    runner.invoke(args=["users", "disable", "alice"])
    output = runner.invoke(args=["users", "list"]).output
    assert "alice" in output and "viewer" in output and "disabled" in output


def test_list_on_empty_database_says_how_to_start(runner):
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0 and "flask users create" in result.output


@pytest.mark.parametrize("command", ["create", "set-password", "disable", "enable", "list"])
def test_every_users_command_has_help(runner, command):
    result = runner.invoke(args=["users", command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    assert len(result.output.splitlines()) > 3


def test_no_session_rows_for_cli_work(app, runner):
    runner.invoke(args=["users", "create", "x1", "--password-stdin"], input="long password 123\n")
    with app.app_context():
        assert db.session.execute(db.select(UserSession)).first() is None
