"""`flask positions partitions | prune | delete`: the history's upkeep and its corrections."""

from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import OperationalError

from app.admin.audit import CLI_ACTOR, Action, record_event
from app.alerts.engine import evaluate_series
from app.extensions import db
from app.positions import partitions
from app.positions.cli_support import AwareDateTime, Moment
from app.positions.ingest import format_timestamp
from app.positions.points import MICROSECOND
from app.positions.retention import (
    count_before,
    delete_series_range,
    prune_before,
    select_series,
)


@click.command("partitions")
@with_appcontext
@click.option(
    "--ahead",
    type=click.IntRange(0, 120),
    help="Periods to create after the current one [POSITION_PARTITIONS_AHEAD].",
)
def position_partitions(ahead):
    """Create the history's partitions ahead (PostgreSQL) and list them with their sizes."""
    if db.session.get_bind().dialect.name != "postgresql":
        click.echo("SQLite keeps the history in one table: there are no partitions.")
        return
    if not partitions.is_partitioned():
        raise click.ClickException("position is not partitioned: run `flask db upgrade` first.")
    config = current_app.config
    try:
        created = partitions.create_ahead(
            datetime.now(UTC),
            ahead=config["POSITION_PARTITIONS_AHEAD"] if ahead is None else ahead,
            interval=config["POSITION_PARTITION_INTERVAL"],
        )
    except OperationalError as exc:
        if not partitions.is_lock_timeout(exc):
            raise
        raise click.ClickException("position stayed locked (a long query?); try again.") from None
    db.session.commit()
    for partition in partitions.list_partitions():
        click.echo(partition.describe())
    click.echo(f"Created {', '.join(created)}." if created else "Created none: all there.")


@click.command("prune")
@with_appcontext
@click.option("--before", required=True, type=Moment(), help="Delete snapshots older than this.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def prune_positions(before: datetime, dry_run: bool, yes: bool):
    """Delete snapshots older than --before (latest positions are kept)."""
    if before > datetime.now(UTC):
        raise click.BadParameter(
            "is in the future; that would delete current data", param_hint="--before"
        )
    counts = count_before(before)
    total = sum(count for _, _, count in counts)
    for account, asset, count in counts:
        click.echo(f"{account}\t{asset}\t{count}")
    click.echo(f"{total} snapshots older than {before.isoformat()}.")
    if dry_run or total == 0:
        click.echo("Dry run: nothing deleted." if dry_run else "Nothing to delete.")
        return
    if not yes:
        click.confirm(f"Delete {total} snapshots?", abort=True)
    try:
        deleted = prune_before(before)
    except OperationalError as exc:
        if not partitions.is_lock_timeout(exc):
            raise
        db.session.rollback()
        raise click.ClickException("position stayed locked (a long query?); try again.") from None
    record_event(
        Action.POSITIONS_PRUNE,
        target="positions:*",
        detail={"before": format_timestamp(before), "deleted": deleted},
        actor=CLI_ACTOR,
    )
    db.session.commit()
    click.echo(f"Deleted {deleted} snapshots.")


@click.command("delete")
@with_appcontext
@click.option("--account", required=True, help="The account of the series.")
@click.option("--asset", required=True, help="The asset of the series.")
@click.option("--at", type=AwareDateTime(), help="The one snapshot at this moment.")
@click.option("--from", "start", type=AwareDateTime(), help="From this moment on (inclusive).")
@click.option("--to", "end", type=AwareDateTime(), help="Up to this moment (exclusive).")
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; delete nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_positions(account, asset, at, start, end, dry_run, yes):
    """Delete one series' snapshots stored by mistake (--at, or --from and --to)."""
    if at is not None and (start is not None or end is not None):
        raise click.UsageError("Give either --at or --from and --to, not both.")
    if at is not None:
        start, end = at, at + MICROSECOND
    elif start is None or end is None:
        raise click.UsageError("Give --at, or both --from and --to.")
    elif start >= end:
        raise click.BadParameter("must be before --to", param_hint="--from")
    found = select_series(account, asset, start, end)
    click.echo(f"{account}\t{asset}\t{found.count}")
    if found.count == 0:
        click.echo("Nothing to delete.")
        return
    click.echo(
        f"{found.count} snapshots from {format_timestamp(found.first)} "
        f"to {format_timestamp(found.last)}; latest position at "
        f"{_moment_text(found.latest_before)} becomes {_moment_text(found.latest_after)}."
    )
    if dry_run:
        click.echo("Dry run: nothing deleted.")
        return
    if not yes:
        click.confirm(f"Delete {found.count} snapshots?", abort=True)
    deleted = delete_series_range(found)
    # The series' value rules see the latest row now; the worker's pass does stale feeds.
    evaluate_series({(account, asset)})
    record_event(
        Action.POSITIONS_DELETE,
        target=f"positions:{account}/{asset}",
        detail={
            "account": account,
            "asset": asset,
            "from": format_timestamp(start),
            "to": format_timestamp(end),
            "deleted": deleted,
            "latest_before": _moment_text(found.latest_before),
            "latest_after": _moment_text(found.latest_after),
        },
        actor=CLI_ACTOR,
    )
    db.session.commit()
    click.echo(f"Deleted {deleted} snapshots.")


def _moment_text(moment: datetime | None) -> str:
    return "none" if moment is None else format_timestamp(moment)


COMMANDS = (position_partitions, prune_positions, delete_positions)
