"""`flask alerts digest`: show a user's daily digest as it would be now, or send it now."""

import click
from flask.cli import with_appcontext

from app.alerts.delivery import DeliveryError, send_email
from app.alerts.digest import preview, scheduled_at, user_zone
from app.auth.cli import find_user
from app.db_types import utcnow


@click.command("digest")
@click.option("--user", "username", required=True, help="Whose digest (username).")
@click.option("--send", is_flag=True, help="Send it to the user's address now.")
@with_appcontext
def digest(username, send):
    """Print a user's daily digest as it would be now; --send mails it now as well."""
    user = find_user(username)
    now = utcnow()
    message = preview(user, now)
    click.echo(message.get_body(("plain",)).get_content())
    if not user.digest_enabled:
        click.echo(f"{user.username} has the daily digest off.")
    else:
        today = now.astimezone(user_zone(user)).date()
        click.echo(
            f"{user.username} gets it daily at {user.digest_at.strftime('%H:%M')} "
            f"{user.timezone} (today: {scheduled_at(user, today):%Y-%m-%d %H:%M} UTC)."
        )
    if not send:
        return
    if not user.email:
        raise click.ClickException(f"{user.username} has no e-mail address (Account page).")
    try:
        click.echo(f"Sent to {user.email}: {send_email(message)}.")
    except DeliveryError as exc:
        raise click.ClickException(str(exc)) from None
