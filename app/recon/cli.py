"""`flask recon …`: define reconciliations and check their state."""

import json
import sys
from datetime import timedelta
from decimal import Decimal

import click
from flask.cli import AppGroup

from app.admin.audit import CLI_ACTOR
from app.alerts.cli import decimal_option
from app.alerts.models import Channel, Severity
from app.db_types import format_decimal, utcnow
from app.extensions import db
from app.recon import queries
from app.recon.define import (
    AssetSpec,
    DefinitionError,
    ReconSpec,
    delete_reconciliation,
    describe,
    save_reconciliation,
)
from app.recon.models import DEFAULT_MAX_AGE_SECONDS, ReconState
from app.recon.preview import preview_reconciliation

recon_cli = AppGroup("recon", help="Reconcile two sources of the same positions.")

ASSET_HELP = (
    "An asset to reconcile (repeat): LEFT[=RIGHT][,multiplier=M][,abs=A][,rel=P], e.g. "
    "XBT=BTC or XBTUSD=XBTUSD,multiplier=0.0001,abs=0.5 (right x multiplier is compared "
    "with left; abs in the left asset, rel in percent of the left amount)."
)


def parse_asset(text: str) -> AssetSpec:
    """LEFT[=RIGHT][,multiplier=M][,abs=A][,rel=P] as an AssetSpec."""
    head, *options = [part.strip() for part in text.split(",")]
    left, _, right = (name.strip() for name in head.partition("="))
    settings: dict[str, Decimal | None] = {}
    for option in options:
        key, _, value = option.partition("=")
        key = key.strip()
        if key not in ("multiplier", "abs", "rel") or not value:
            raise click.BadParameter(f"{option!r}: use multiplier=, abs= or rel=", "--asset")
        settings[key] = decimal_option(value, "--asset")
    if not left:
        raise click.BadParameter(f"{text!r} names no asset", param_hint="--asset")
    return AssetSpec(
        left_asset=left,
        right_asset=right or None,
        multiplier=settings.get("multiplier", Decimal(1)),
        abs_tolerance=settings.get("abs"),
        rel_tolerance_percent=settings.get("rel"),
    )


def _channel_ids(names: tuple[str, ...]) -> tuple[int, ...]:
    ids = []
    for name in names:
        channel = db.session.execute(
            db.select(Channel).where(Channel.name == name)
        ).scalar_one_or_none()
        if channel is None:
            raise click.ClickException(f"No channel named {name!r}.")
        ids.append(channel.id)
    return tuple(ids)


def _definition_options(command):
    """The options add and update share (update changes only those given)."""
    options = [
        click.option("--left", "left_account", help="Left account, e.g. main (the book)."),
        click.option("--right", "right_account", help="Right account, e.g. main@binance."),
        click.option("--left-label", help="What the left side is [book]."),
        click.option("--right-label", help="What the right side is [venue]."),
        click.option("--asset", "assets", multiple=True, help=ASSET_HELP),
        click.option("--abs-tolerance", help="Default absolute tolerance, in the asset."),
        click.option("--rel-tolerance", help="Default relative tolerance, percent of left."),
        click.option("--grace", "grace_seconds", type=click.IntRange(0), help="Seconds [0]."),
        click.option("--left-max-age", type=click.IntRange(1), help="Seconds [600]."),
        click.option("--right-max-age", type=click.IntRange(1), help="Seconds [600]."),
        click.option("--severity", type=click.Choice(Severity.ALL), help="[critical]"),
        click.option("--enabled/--disabled", default=None, help="Evaluate it [enabled]."),
        click.option("--channel", "channels", multiple=True, help="Notify (repeat)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _spec(name: str, given: dict, base: dict) -> ReconSpec:
    """Merge the options given over `base` (the stored definition, or the defaults)."""
    values = dict(base)
    for key, value in given.items():
        if value not in (None, ()):
            values[key] = value
    return ReconSpec(
        name=name,
        left_account=values["left_account"] or "",
        right_account=values["right_account"] or "",
        left_label=values["left_label"],
        right_label=values["right_label"],
        assets=tuple(values["assets"]),
        abs_tolerance=values["abs_tolerance"],
        rel_tolerance_percent=values["rel_tolerance_percent"],
        grace_seconds=values["grace_seconds"],
        left_max_age_seconds=values["left_max_age"],
        right_max_age_seconds=values["right_max_age"],
        enabled=values["enabled"],
        severity=values["severity"],
        channel_ids=values.get("channel_ids"),
    )


def _given(options: dict) -> dict:
    return {
        "left_account": options["left_account"],
        "right_account": options["right_account"],
        "left_label": options["left_label"],
        "right_label": options["right_label"],
        "assets": tuple(parse_asset(text) for text in options["assets"]),
        "abs_tolerance": decimal_option(options["abs_tolerance"], "--abs-tolerance"),
        "rel_tolerance_percent": decimal_option(options["rel_tolerance"], "--rel-tolerance"),
        "grace_seconds": options["grace_seconds"],
        "left_max_age": options["left_max_age"],
        "right_max_age": options["right_max_age"],
        "severity": options["severity"],
        "enabled": options["enabled"],
        "channel_ids": _channel_ids(options["channels"]) if options["channels"] else None,
    }


def _save(spec: ReconSpec, existing=None):
    try:
        recon = save_reconciliation(spec, existing, actor=CLI_ACTOR)
    except DefinitionError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    db.session.commit()
    return recon


@recon_cli.command("add")
@click.argument("name")
@_definition_options
def add(name, **options):
    """Define a reconciliation: two accounts and the assets to compare."""
    if queries.reconciliation_by_name(name) is not None:
        raise click.ClickException(f"A reconciliation named {name!r} exists; use update.")
    base = {
        "left_label": "book",
        "right_label": "venue",
        "abs_tolerance": None,
        "rel_tolerance_percent": None,
        "grace_seconds": 0,
        "left_max_age": DEFAULT_MAX_AGE_SECONDS,
        "right_max_age": DEFAULT_MAX_AGE_SECONDS,
        "enabled": True,
        "severity": Severity.CRITICAL,
    }
    recon = _save(_spec(name, _given(options), base))
    click.echo(f"Added reconciliation {recon.name!r} with {len(recon.assets)} asset(s).")
    _print_status(queries.recon_rows(recon.name))


@recon_cli.command("update")
@click.argument("name")
@click.option("--rename", help="A new name.")
@_definition_options
def update(name, rename, **options):
    """Change a reconciliation; --asset given replaces the whole asset list."""
    recon = _existing(name)
    stored = describe(recon)
    base = {
        "left_account": recon.left_account,
        "right_account": recon.right_account,
        "left_label": recon.left_label,
        "right_label": recon.right_label,
        "assets": [
            AssetSpec(
                a.left_asset, a.right_asset, a.multiplier, a.abs_tolerance, a.rel_tolerance_percent
            )
            for a in recon.assets
        ],
        "abs_tolerance": recon.abs_tolerance,
        "rel_tolerance_percent": recon.rel_tolerance_percent,
        "grace_seconds": recon.grace_seconds,
        "left_max_age": recon.left_max_age_seconds,
        "right_max_age": recon.right_max_age_seconds,
        "enabled": recon.enabled,
        "severity": recon.severity,
    }
    recon = _save(_spec(rename or name, _given(options), base), recon)
    if describe(recon) == stored:
        click.echo(f"Reconciliation {recon.name!r} unchanged.")
    else:
        click.echo(f"Updated reconciliation {recon.name!r}.")


@recon_cli.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(name, yes):
    """Delete a reconciliation with its history, alert rule and alerts."""
    recon = _existing(name)
    if not yes:
        click.confirm(f"Delete reconciliation {name!r}, its history and its alerts?", abort=True)
    delete_reconciliation(recon, actor=CLI_ACTOR)
    db.session.commit()
    click.echo(f"Deleted reconciliation {name!r}.")


@recon_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the definitions as JSON.")
def list_reconciliations(as_json):
    """List reconciliations with their assets, tolerances and ages."""
    found = queries.reconciliations()
    if as_json:
        click.echo(json.dumps([describe(recon) for recon in found], indent=2))
        return
    if not found:
        click.echo("No reconciliations; add one with flask recon add.")
    for recon in found:
        d = describe(recon)
        click.echo(
            f"{d['name']}: {d['left_account']} ({d['left_label']}) vs {d['right_account']} "
            f"({d['right_label']}), tolerance abs {d['abs_tolerance'] or '-'} "
            f"rel {d['rel_tolerance_percent'] or '-'} %, grace {d['grace_seconds']} s, "
            f"max age {d['left_max_age_seconds']}/{d['right_max_age_seconds']} s, "
            f"{d['severity']}{'' if d['enabled'] else ', disabled'}"
        )
        for a in d["assets"]:
            extra = "".join(
                f", {key} {a[key]}" for key in ("abs_tolerance", "rel_tolerance_percent") if a[key]
            )
            multiplier = "" if a["multiplier"] == "1" else f" x {a['multiplier']}"
            click.echo(f"  {a['left_asset']} = {a['right_asset']}{multiplier}{extra}")


def _text(value) -> str:
    return "-" if value is None else format_decimal(value)


def _print_status(rows) -> None:
    for row in rows:
        percent = "" if row.difference_percent is None else f" ({_text(row.difference_percent)} %)"
        as_of = "-" if row.as_of is None else row.as_of.isoformat().replace("+00:00", "Z")
        click.echo(
            f"{row.state.upper():8} {row.name} {row.left_asset}: "
            f"{row.left_label} {_text(row.left_amount)} vs {row.right_label} "
            f"{_text(row.right_compared)}, difference {_text(row.difference)}{percent}, "
            f"as of {as_of}, since {row.state_since.isoformat().replace('+00:00', 'Z')}"
        )


@recon_cli.command("status")
@click.option("--name", help="Only this reconciliation.")
@click.option("--all", "show_all", is_flag=True, help="Print matched assets too.")
def status(name, show_all):
    """Print breaks and unknowns; exit 1 while any asset is in break or unknown."""
    if name is not None and queries.reconciliation_by_name(name) is None:
        raise click.ClickException(f"No reconciliation named {name!r}.")
    rows = [row for row in queries.recon_rows(name) if row.enabled]
    failing = [row for row in rows if row.state in ReconState.FAILING]
    shown = rows if show_all else [row for row in rows if row.state != ReconState.MATCHED]
    _print_status(shown)
    counts = {state: sum(row.state == state for row in rows) for state in ReconState.ORDER}
    click.echo(", ".join(f"{count} {state}" for state, count in counts.items()) + ".")
    if failing:
        sys.exit(1)


@recon_cli.command("preview")
@click.argument("name")
@click.option("--days", type=click.FloatRange(0.01, 366), default=7, show_default=True)
def preview(name, days):
    """Replay a reconciliation over stored history: the changes of state it would record."""
    recon = _existing(name)
    end = utcnow()
    changes = preview_reconciliation(recon, end - timedelta(days=days), end)
    for change in changes:
        c = change.comparison
        as_of = "-" if c.as_of is None else _iso(c.as_of)
        click.echo(
            f"{_iso(change.at)} {change.asset}: {change.from_state} -> {change.to_state}, "
            f"{recon.left_label} {_text(c.left_amount)} vs {recon.right_label} "
            f"{_text(c.right_amount)}, difference {_text(c.difference)}, as of {as_of}"
        )
    breaks = sum(change.to_state == ReconState.BREAK for change in changes)
    click.echo(f"{len(changes)} change(s) of state, {breaks} break(s), over {days:g} day(s).")


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _existing(name: str):
    recon = queries.reconciliation_by_name(name)
    if recon is None:
        raise click.ClickException(f"No reconciliation named {name!r}.")
    return recon
