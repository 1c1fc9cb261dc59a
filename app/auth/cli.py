"""`flask users …`: create and manage accounts from the shell."""

import sys

import click
from flask.cli import AppGroup

from app.admin import users as admin_users
from app.admin.audit import CLI_ACTOR, Action, record_event, user_target
from app.admin.users import AdminError, set_break_glass
from app.auth import sessions
from app.auth.models import Role, User, UsernameError, normalise_username
from app.auth.passwords import PasswordPolicyError, hash_password
from app.extensions import db

users_cli = AppGroup("users", help="Create and manage user accounts.")


def find_user(username: str) -> User:
    user = db.session.execute(
        db.select(User).where(User.username == username.strip().lower())
    ).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"No user named {username!r}.")
    return user


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("No password on standard input.")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _hash_or_fail(password: str) -> str:
    try:
        return hash_password(password)
    except PasswordPolicyError as exc:
        raise click.ClickException(str(exc)) from None


def validate_username(username: str) -> str:
    """The stored form of a username, or ClickException saying what is wrong."""
    try:
        return normalise_username(username)
    except UsernameError as exc:
        raise click.ClickException(str(exc)) from None


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(Role.ALL), default=Role.VIEWER, show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user(username: str, role: str, password_stdin: bool):
    """Create a user; the password is prompted for unless --password-stdin."""
    name = validate_username(username)
    if db.session.execute(db.select(User.id).where(User.username == name)).first():
        raise click.ClickException(f"User {name!r} already exists.")
    password_hash = _hash_or_fail(_read_password(password_stdin))
    user = User(username=name, password_hash=password_hash, role=role)
    db.session.add(user)
    # The page's detail keys: the CLI always takes a typed password, never forces a change.
    record_event(
        Action.USER_CREATE,
        target=user_target(user),
        detail={"role": role, "generated_initial": False, "must_change": False},
        actor=CLI_ACTOR,
    )
    db.session.commit()
    click.echo(f"Created {role} {name!r}.")


@users_cli.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def set_password(username: str, password_stdin: bool):
    """Set a user's password and sign out all their sessions."""
    user = find_user(username)
    user.password_hash = _hash_or_fail(_read_password(password_stdin))
    ended = sessions.revoke_all(user, "password_reset")
    record_event(
        Action.PASSWORD_RESET,
        target=user_target(user),
        detail={"sessions_ended": ended},
        actor=CLI_ACTOR,
    )
    db.session.commit()
    click.echo(f"Password set for {user.username!r}; {ended} session(s) signed out.")


@users_cli.command("disable")
@click.argument("username")
def disable_user(username: str):
    """Disable a user: no more logins, live sessions end now."""
    user = find_user(username)
    user.active = False
    ended = sessions.revoke_all(user, "user_disabled")
    record_event(
        Action.USER_DISABLE,
        target=user_target(user),
        detail={"sessions_ended": ended},
        actor=CLI_ACTOR,
    )
    db.session.commit()
    click.echo(f"Disabled {user.username!r}; {ended} session(s) signed out.")


@users_cli.command("enable")
@click.argument("username")
def enable_user(username: str):
    """Let a disabled user log in again."""
    user = find_user(username)
    user.active = True
    record_event(Action.USER_ENABLE, target=user_target(user), actor=CLI_ACTOR)
    db.session.commit()
    click.echo(f"Enabled {user.username!r}.")


@users_cli.command("reset-2fa")
@click.argument("username")
def reset_second_factor(username: str):
    """Remove a user's second factor (a lost device) and sign out all their sessions."""
    user = find_user(username)
    try:
        ended = admin_users.reset_second_factor(user, actor=CLI_ACTOR)
    except admin_users.AdminError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(
        f"Second factor of {user.username!r} removed; {ended} session(s) signed out. "
        "They sign in with their password alone and can set it up again."
    )


@users_cli.command("break-glass")
@click.argument("username")
@click.option("--on/--off", "on", required=True, help="Mark or unmark the admin.")
def break_glass(username: str, on: bool):
    """Mark an admin who may still sign in with a local password when they are switched off."""
    user = find_user(username)
    try:
        changed = set_break_glass(user, on, actor=CLI_ACTOR)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    state = "a break-glass admin" if on else "not a break-glass admin"
    click.echo(f"{user.username!r} is {'now ' if changed else 'already '}{state}.")


@users_cli.command("list")
def list_users():
    """List users with their role and status."""
    users = db.session.execute(db.select(User).order_by(User.username)).scalars().all()
    if not users:
        click.echo("No users. Create one with: flask users create NAME --role admin")
        return
    width = max(len(u.username) for u in users)
    for user in users:
        status = "active" if user.active else "disabled"
        notes = []
        if user.oidc_subject is not None:
            notes.append("company sign-in")
        if user.break_glass:
            notes.append("break-glass")
        extra = f"  ({', '.join(notes)})" if notes else ""
        click.echo(f"{user.username:<{width}}  {user.role:<8}  {status:<8}{extra}".rstrip())
