"""`flask tokens …`: API tokens from the shell."""

from datetime import UTC, datetime

import click
from flask.cli import AppGroup

from app.admin import users
from app.admin.audit import CLI_ACTOR, Action, record_event
from app.auth.cli import find_user
from app.auth.models import ApiToken, Scope
from app.auth.tokens import ScopeNotAllowed, create_token, record_refusal
from app.extensions import db
from app.user_input import parse_moment

tokens_cli = AppGroup("tokens", help="Create, list and revoke API tokens.")


def _parse_expiry(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_moment(value, zone=UTC)
    except ValueError as exc:
        raise click.BadParameter(
            f"use ISO 8601, e.g. 2027-01-31 or 2027-01-31T12:00Z ({exc})", param_hint="--expires"
        ) from None


@tokens_cli.command("create")
@click.argument("username")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(Scope.ALL),
    help="Repeat for several: --scope ingest --scope read. Only admins may hold ingest.",
)
@click.option("--account", "accounts", multiple=True, help="Only these accounts (repeatable).")
@click.option("--expires", help="Expiry, ISO 8601 (UTC if no offset).")
def create(username, name, scopes, accounts, expires):
    """Create a token for USERNAME and print its secret once."""
    user = find_user(username)
    try:
        token, secret = create_token(
            user, name, list(scopes), accounts=list(accounts), expires_at=_parse_expiry(expires)
        )
    except ScopeNotAllowed as exc:
        record_refusal(user, name, list(scopes), actor=CLI_ACTOR)
        db.session.commit()
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.flush()
    record_event(
        Action.TOKEN_CREATE,
        target=f"token:{token.id}",
        detail={"name": token.name, "owner": user.username, "scopes": token.scopes},
        actor=CLI_ACTOR,
    )
    db.session.commit()
    click.echo(
        f"Created token #{token.id} {name!r} for {user.username} ({', '.join(scopes)}).", err=True
    )
    click.echo("The secret is shown once; store it now:", err=True)
    click.echo(secret)


@tokens_cli.command("list")
@click.option("--user", "username", help="Only this user's tokens.")
def list_tokens(username):
    """List tokens (never their secrets)."""
    query = db.select(ApiToken).order_by(ApiToken.id)
    if username:
        query = query.where(ApiToken.user_id == find_user(username).id)
    tokens = db.session.execute(query).scalars().all()
    if not tokens:
        click.echo("No tokens.")
        return
    for token in tokens:
        status = "revoked" if token.revoked_at else "active"
        if token.expires_at and not token.revoked_at:
            status += f", expires {token.expires_at:%Y-%m-%d %H:%M}Z"
        accounts = ",".join(token.accounts) if token.accounts else "all accounts"
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}Z" if token.last_used_at else "never"
        click.echo(
            f"#{token.id:<4} {token.prefix}…  {token.user.username:<12} {token.name:<20} "
            f"{','.join(token.scopes):<12} {accounts:<16} last used {used}  {status}"
        )


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def revoke(token_id):
    """Revoke a token by its number; the next request with it is refused."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise click.ClickException(f"No token #{token_id}.")
    if token.revoked_at is not None:
        raise click.ClickException(f"Token #{token_id} is already revoked.")
    users.revoke_token(token, actor=CLI_ACTOR)
    db.session.commit()
    click.echo(f"Revoked token #{token_id} {token.name!r}.")
