"""`flask alerts …` changes that the pages also make: each audited the way the page audits it."""

from datetime import timedelta

import click
from flask.cli import with_appcontext

from app.admin.audit import CLI_ACTOR, Action, record_event
from app.alerts.models import ANY, AlertRule, Channel, RuleKind, Silence
from app.alerts.silences import store_silence
from app.db_types import utcnow
from app.extensions import db

# The page's limits for a silence (SilenceForm).
SILENCE_HOURS = click.FloatRange(0.01, 24 * 90)


def _rule(reference: str) -> AlertRule:
    """A rule by number or by name."""
    query = db.select(AlertRule).where(AlertRule.name == reference)
    if reference.isdecimal():
        query = db.select(AlertRule).where(AlertRule.id == int(reference))
    rule = db.session.execute(query).scalar_one_or_none()
    if rule is None:
        raise click.ClickException(f"No rule {reference!r}; see the Rules page.")
    return rule


def _changeable_rule(reference: str) -> AlertRule:
    """A rule that may be changed here: a reconciliation's changes with `flask recon`."""
    rule = _rule(reference)
    if rule.kind == RuleKind.RECON_BREAK:
        raise click.ClickException(
            f"Rule {rule.name!r} belongs to a reconciliation; use flask recon update or delete."
        )
    return rule


def _channel(name: str) -> Channel:
    channel = db.session.execute(
        db.select(Channel).where(Channel.name == name)
    ).scalar_one_or_none()
    if channel is None:
        raise click.ClickException(f"No channel named {name!r}.")
    return channel


def _set_rule_enabled(reference: str, enabled: bool) -> None:
    rule = _changeable_rule(reference)
    if rule.enabled == enabled:
        click.echo(
            f"Rule #{rule.id} {rule.name!r} is already {'enabled' if enabled else 'disabled'}."
        )
        return
    rule.enabled = enabled
    record_event(
        Action.RULE_ENABLE if enabled else Action.RULE_DISABLE,
        target=f"rule:{rule.id}",
        detail={"name": rule.name},
        actor=CLI_ACTOR,
    )
    db.session.commit()
    click.echo(f"Rule #{rule.id} {rule.name!r} {'enabled' if enabled else 'disabled'}.")


@click.command("enable-rule")
@with_appcontext
@click.argument("rule")
def enable_rule(rule):
    """Enable a rule (by number or name)."""
    _set_rule_enabled(rule, True)


@click.command("disable-rule")
@with_appcontext
@click.argument("rule")
def disable_rule(rule):
    """Disable a rule (by number or name): it is no longer evaluated."""
    _set_rule_enabled(rule, False)


@click.command("delete-rule")
@with_appcontext
@click.argument("rule")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_rule(rule, yes):
    """Delete a rule (by number or name) with its alerts and their history."""
    found = _changeable_rule(rule)
    if not yes:
        click.confirm(f"Delete rule #{found.id} {found.name!r} and its alerts?", abort=True)
    rule_id, name = found.id, found.name
    db.session.delete(found)
    record_event(
        Action.RULE_DELETE, target=f"rule:{rule_id}", detail={"name": name}, actor=CLI_ACTOR
    )
    db.session.commit()
    click.echo(f"Deleted rule #{rule_id} {name!r}.")


def _set_channel_enabled(name: str, enabled: bool) -> None:
    channel = _channel(name)
    state = "enabled" if enabled else "disabled"
    if channel.enabled == enabled:
        click.echo(f"Channel {channel.name!r} is already {state}.")
        return
    channel.enabled = enabled
    record_event(
        Action.CHANNEL_UPDATE,
        target=f"channel:{channel.id}",
        detail={"name": channel.name, "enabled": channel.enabled},
        actor=CLI_ACTOR,
    )
    db.session.commit()
    click.echo(f"Channel {channel.name!r} {state}.")


@click.command("enable-channel")
@with_appcontext
@click.argument("name")
def enable_channel(name):
    """Enable a notification channel again."""
    _set_channel_enabled(name, True)


@click.command("disable-channel")
@with_appcontext
@click.argument("name")
def disable_channel(name):
    """Disable a notification channel: nothing new is queued for it."""
    _set_channel_enabled(name, False)


@click.command("delete-channel")
@with_appcontext
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_channel(name, yes):
    """Delete a channel, its queued notifications and its place in every rule."""
    channel = _channel(name)
    if not yes:
        click.confirm(f"Delete channel {channel.name!r}?", abort=True)
    channel_id = channel.id
    db.session.delete(channel)
    record_event(
        Action.CHANNEL_DELETE,
        target=f"channel:{channel_id}",
        detail={"name": name},
        actor=CLI_ACTOR,
    )
    db.session.commit()
    click.echo(f"Deleted channel {name!r}.")


@click.command("add-silence")
@with_appcontext
@click.option("--rule", "rule_reference", help="Only this rule (number or name); default any.")
@click.option("--asset", default=ANY, show_default=True)
@click.option("--account", default=ANY, show_default=True)
@click.option("--hours", type=SILENCE_HOURS, required=True, help="From now, 0.01 to 2160.")
@click.option("--comment", required=True, help="Why (shown beside the silence).")
def add_silence(rule_reference, asset, account, hours, comment):
    """Mute matching alerts from now for --hours; they are still evaluated and shown."""
    comment = comment.strip()
    if not comment or len(comment) > 500:
        raise click.BadParameter("give 1 to 500 characters", param_hint="--comment")
    for value, option in ((asset, "--asset"), (account, "--account")):
        if not value.strip() or len(value.strip()) > 64:
            raise click.BadParameter("give 1 to 64 characters", param_hint=option)
    now = utcnow()
    silence = Silence(
        rule_id=_rule(rule_reference).id if rule_reference else None,
        asset=asset.strip(),
        account=account.strip(),
        starts_at=now,
        ends_at=now + timedelta(hours=hours),
        comment=comment,
    )
    store_silence(silence, hours, actor=CLI_ACTOR)
    db.session.commit()
    click.echo(f"Created silence #{silence.id} until {silence.ends_at:%F %T}Z.")


@click.command("expire-silence")
@with_appcontext
@click.argument("silence_id", type=int)
def expire_silence(silence_id):
    """End a silence now; it stays in the list."""
    silence = db.session.get(Silence, silence_id)
    if silence is None:
        raise click.ClickException(f"No silence #{silence_id}.")
    now = utcnow()
    if silence.ends_at <= now:
        click.echo(f"Silence #{silence_id} has already ended.")
        return
    silence.ends_at = max(now, silence.starts_at)
    record_event(Action.SILENCE_EXPIRE, target=f"silence:{silence.id}", actor=CLI_ACTOR)
    db.session.commit()
    click.echo(f"Silence #{silence_id} ended.")


COMMANDS = (
    enable_rule,
    disable_rule,
    delete_rule,
    enable_channel,
    disable_channel,
    delete_channel,
    add_silence,
    expire_silence,
)
