"""`flask seed …` and `flask positions …`: demo data and CSV through the one write path."""

import secrets
import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from app.admin.audit import CLI_ACTOR, Action, record_event, user_target
from app.alerts.demo import add_demo_rules
from app.alerts.engine import evaluate_all
from app.auth.models import Role, User
from app.auth.passwords import hash_password
from app.extensions import db
from app.positions import csv_io, queries
from app.positions.cli_support import (
    BATCH_SIZE,
    AwareDateTime,
    ConflictingLines,
    audit_import,
    bring_rollups_current,
    seed_demo_data,
    store_batch,
    stored_so_far,
    text_lines,
)
from app.positions.ingest import IngestResult, Key, Snapshot
from app.positions.models import Position
from app.positions.retention_cli import COMMANDS as HISTORY_UPKEEP
from app.positions.seed import parse_interval
from app.recon.demo import add_demo_reconciliation

seed_cli = AppGroup("seed", help="Load demo data.")
positions_cli = AppGroup("positions", help="Import, export, prune and delete position snapshots.")


def _split_names(value: str, option: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("give at least one name, comma-separated", param_hint=option)
    for name in names:
        if len(name) > 64 or not name.isprintable():
            raise click.BadParameter(f"{name[:70]!r} is not a valid name", param_hint=option)
    return list(dict.fromkeys(names))


@seed_cli.command("demo")
@click.option("--assets", default="BTC,ETH,SOL", show_default=True, help="Comma-separated.")
@click.option("--accounts", default="main,hedge", show_default=True, help="Comma-separated.")
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True)
@click.option("--interval", default="1m", show_default=True, help="30s, 1m, 5m, 1h …")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True)
def seed_demo(assets, accounts, days, interval, seed_value):
    """Load a deterministic random-walk position history (safe to run twice)."""
    try:
        seconds = parse_interval(interval)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--interval") from None
    result = seed_demo_data(
        assets=_split_names(assets, "--assets"),
        accounts=_split_names(accounts, "--accounts"),
        days=days,
        interval=seconds,
        seed=seed_value,
    )
    bring_rollups_current()
    audit_import("seed:demo", "seed", result, complete=not result.conflicts)
    click.echo(
        f"Inserted {result.inserted}, already present {result.duplicates}, "
        f"conflicting {len(result.conflicts)}."
    )
    _seed_reconciliation()
    if result.conflicts:
        raise click.ClickException(
            f"{len(result.conflicts)} snapshots differ from stored ones and were not "
            "written (another --seed was used before?)."
        )


def _seed_reconciliation() -> None:
    """The demo's reconciled pair (book against venue) with a break in its history."""
    name = add_demo_reconciliation(CLI_ACTOR)
    db.session.commit()
    bring_rollups_current()
    if name is not None:
        click.echo(f"Demo reconciliation: {name} (flask recon status --name {name!r}).")


@seed_cli.command("first-run")
@click.option("--days", type=click.IntRange(1, 3650), default=7, show_default=True)
def first_run(days):
    """On an empty database only: load demo data and create a demo admin."""
    has_users = db.session.execute(db.select(User.id).limit(1)).first() is not None
    has_positions = db.session.execute(db.select(Position.id).limit(1)).first() is not None
    if has_users or has_positions:
        click.echo("Database already has data; nothing seeded.")
        return
    result = seed_demo_data(
        assets=["BTC", "ETH", "SOL"],
        accounts=["main", "hedge"],
        days=days,
        interval=60,
        seed=42,
    )
    bring_rollups_current()
    audit_import("seed:demo", "seed", result, complete=True)
    rules = add_demo_rules(queries.latest_positions())
    password = secrets.token_urlsafe(12)
    admin = User(username="admin", password_hash=hash_password(password), role=Role.ADMIN)
    db.session.add(admin)
    record_event(
        Action.USER_CREATE,
        target=user_target(admin),
        detail={"role": Role.ADMIN, "generated_initial": True, "must_change": False},
        actor=CLI_ACTOR,
    )
    db.session.commit()
    evaluate_all()  # the demo's limits judged on its positions before the first page
    click.echo(f"Demo limit rules: {', '.join(rule.name for rule in rules)}.")
    _seed_reconciliation()
    click.echo("")
    click.echo("Demo admin created. This password is shown once:")
    click.echo("    username: admin")
    click.echo(f"    password: {password}")
    click.echo("Change it on the Account page after logging in.")


@positions_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_positions(file: Path):
    """Store the snapshots of a CSV file (account,asset,timestamp,amount,price)."""
    total = IngestResult()
    batch: list[Snapshot] = []
    lines: dict[Key, list[int]] = {}
    stored_through = 1  # the header
    progress = click.progressbar(
        length=file.stat().st_size,
        label=f"Importing {file.name}",
        file=sys.stderr,  # stdout is for the summary
    )
    try:
        with file.open("rb") as raw, progress as bar:
            for line, snapshot in csv_io.read_snapshots(text_lines(raw, bar)):
                batch.append(snapshot)
                lines.setdefault(snapshot.key, []).append(line)
                if len(batch) == BATCH_SIZE:
                    total.merge(store_batch(batch, lines))
                    batch, lines, stored_through = [], {}, line
            total.merge(store_batch(batch, lines))
    except (csv_io.CsvError, ConflictingLines) as exc:
        db.session.rollback()
        if total.inserted:
            audit_import(f"file:{file.name}", "csv", total, complete=False)
        raise click.ClickException(
            f"{file.name}: {exc} {stored_so_far(total, stored_through)}"
        ) from None
    audit_import(f"file:{file.name}", "csv", total, complete=True)
    click.echo(f"Inserted {total.inserted}, duplicates {total.duplicates}.")


@positions_cli.command("export")
@click.option("--asset", help="Only this asset; by default every asset, in order.")
@click.option("--account", help="Only this account.")
@click.option("--from", "start", type=AwareDateTime(), help="From this moment on (inclusive).")
@click.option("--to", "end", type=AwareDateTime(), help="Up to this moment (exclusive).")
def export_positions(asset, account, start, end):
    """Write snapshots to standard output as CSV, by asset, then time."""
    if start is not None and end is not None and start >= end:
        raise click.BadParameter("must be before --to", param_hint="--from")
    rows = csv_io.export_rows(asset=asset, account=account, start=start, end=end)
    for chunk in csv_io.csv_chunks(rows):
        # As bytes: click.echo strips what looks like terminal codes from text.
        click.echo(chunk.encode(), nl=False)


@positions_cli.command("rollup")
def rollup_positions():
    """Fold every snapshot not yet in the hourly, daily and weekly rollups, as the worker does."""
    folded = bring_rollups_current()
    click.echo(f"Folded {folded} snapshots into the hourly, daily and weekly rollups.")


for _command in HISTORY_UPKEEP:
    positions_cli.add_command(_command)
