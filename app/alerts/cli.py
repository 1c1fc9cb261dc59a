"""`flask alerts …`: rules and channels from the shell, and the evaluation worker."""

from decimal import Decimal

import click
from flask.cli import AppGroup

from app.admin.audit import CLI_ACTOR, Action, record_event
from app.alerts.delivery import deliver_due
from app.alerts.digest_cli import digest as digest_command
from app.alerts.engine import evaluate_all
from app.alerts.manage_cli import COMMANDS as MANAGE_COMMANDS
from app.alerts.models import (
    ANY,
    Alert,
    AlertRule,
    AlertState,
    Channel,
    ChannelKind,
    RuleKind,
    Severity,
)
from app.alerts.validation import target_problem
from app.alerts.worker import run_worker
from app.extensions import db
from app.user_input import parse_decimal

alerts_cli = AppGroup("alerts", help="Alert rules, channels, silences and the evaluation worker.")
for _command in MANAGE_COMMANDS:
    alerts_cli.add_command(_command)
alerts_cli.add_command(digest_command)


def decimal_option(value: str | None, option: str) -> Decimal | None:
    """A decimal typed as a command option, or click's error naming the option."""
    if value is None:
        return None
    try:
        # Digits 0-9 only, as everywhere: Decimal() alone would read other scripts' digits.
        return parse_decimal(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value[:40]!r} is not a number (a finite decimal in digits 0-9, such as 2.5)",
            param_hint=option,
        ) from None


@alerts_cli.command("add-rule")
@click.argument("name")
@click.option("--kind", type=click.Choice(RuleKind.ALL), required=True)
@click.option("--threshold", required=True, help="Limit; seconds for stale_feed.")
@click.option("--clear-threshold", help="Hysteresis: level the value must cross to clear.")
@click.option("--asset", default=ANY, show_default=True)
@click.option("--account", default=ANY, show_default=True)
@click.option("--window", "window_seconds", type=click.IntRange(1), help="change_over_window.")
@click.option("--percent", is_flag=True, help="change_over_window in percent.")
@click.option("--pending", "pending_seconds", type=click.IntRange(0), default=0)
@click.option("--severity", type=click.Choice(Severity.ALL), default=Severity.WARNING)
@click.option("--channel", "channel_names", multiple=True, help="Notify this channel (repeat).")
def add_rule(
    name,
    kind,
    threshold,
    clear_threshold,
    asset,
    account,
    window_seconds,
    percent,
    pending_seconds,
    severity,
    channel_names,
):
    """Create an alert rule."""
    rule = AlertRule(
        name=name.strip(),
        kind=kind,
        threshold=decimal_option(threshold, "--threshold"),
        clear_threshold=decimal_option(clear_threshold, "--clear-threshold"),
        asset=asset,
        account=account,
        window_seconds=window_seconds,
        change_percent=percent,
        pending_seconds=pending_seconds,
        severity=severity,
    )
    problem = rule_problem(rule)
    if problem:
        raise click.UsageError(problem)
    for name in channel_names:
        channel = db.session.execute(
            db.select(Channel).where(Channel.name == name)
        ).scalar_one_or_none()
        if channel is None:
            raise click.UsageError(f"No channel named {name!r}; see flask alerts add-channel.")
        rule.channels.append(channel)
    db.session.add(rule)
    db.session.flush()
    record_event(
        Action.RULE_CREATE,
        target=f"rule:{rule.id}",
        detail={"name": rule.name, "kind": rule.kind, "enabled": rule.enabled},
        actor=CLI_ACTOR,
    )
    db.session.commit()
    click.echo(f"Created rule #{rule.id} {rule.name!r}.")


def rule_problem(rule: AlertRule) -> str | None:
    """What is wrong with a rule's settings, or None."""
    if not rule.name or len(rule.name) > 120:
        return "The name must be 1 to 120 characters."
    if rule.kind == RuleKind.CHANGE_OVER_WINDOW and not rule.window_seconds:
        return "change_over_window needs --window (seconds)."
    if rule.kind == RuleKind.STALE_FEED and rule.threshold <= 0:
        return "stale_feed needs a positive threshold in seconds."
    if rule.clear_threshold is not None:
        below = rule.kind in RuleKind.BELOW
        if (below and rule.clear_threshold < rule.threshold) or (
            not below and rule.clear_threshold > rule.threshold
        ):
            side = "above" if below else "below"
            return f"The clear threshold must be at or {side} the threshold."
    return None


@alerts_cli.command("add-channel")
@click.argument("name")
@click.option("--kind", type=click.Choice(ChannelKind.ALL), required=True)
@click.option("--target", required=True, help="http(s) URL, or an e-mail address.")
def add_channel(name, kind, target):
    """Create a notification channel."""
    problem = target_problem(kind, target)
    if problem:
        raise click.BadParameter(problem, param_hint="--target")
    if db.session.execute(db.select(Channel.id).where(Channel.name == name)).first():
        raise click.UsageError(f"A channel named {name!r} exists.")
    channel = Channel(name=name, kind=kind, target=target)
    db.session.add(channel)
    db.session.flush()
    # As on the page: the target is left out, webhook URLs often carry a secret.
    record_event(
        Action.CHANNEL_CREATE,
        target=f"channel:{channel.id}",
        detail={"name": channel.name, "kind": channel.kind},
        actor=CLI_ACTOR,
    )
    db.session.commit()
    click.echo(f"Created {kind} channel #{channel.id} {name!r} → {channel.masked_target()}.")


@alerts_cli.command("deliver")
def deliver():
    """Deliver the notifications that are due, once (for cron or a systemd timer)."""
    sent, failed = deliver_due()
    click.echo(f"Sent {sent}, failed {failed} (failed ones are retried with backoff).")


@alerts_cli.command("evaluate")
def evaluate():
    """Run one evaluation pass over every rule (for cron or a systemd timer)."""
    transitions = evaluate_all()
    db.session.commit()
    for t in transitions:
        click.echo(f"rule #{t.rule_id} {t.account}/{t.asset}: {t.from_state} -> {t.to_state}")
    click.echo(f"{len(transitions)} transition(s).")


@alerts_cli.command("run")
@click.option("--interval", type=click.FloatRange(0.1), default=10.0, show_default=True)
@click.option("--passes", type=click.IntRange(1), help="Stop after this many passes.")
def run(interval, passes):
    """Evaluate rules every --interval seconds and deliver each notification as it is queued."""
    run_worker(interval, passes)


@alerts_cli.command("list")
def list_alerts():
    """List alerts that are pending or firing."""
    alerts = (
        db.session.execute(
            db.select(Alert).where(Alert.state.in_(AlertState.ACTIVE)).order_by(Alert.state_since)
        )
        .scalars()
        .all()
    )
    if not alerts:
        click.echo("No pending or firing alerts.")
    for alert in alerts:
        click.echo(
            f"{alert.state:<8} {alert.rule.severity:<8} {alert.rule.name}  "
            f"{alert.account}/{alert.asset} value={alert.value} since {alert.state_since:%F %T}Z"
        )
