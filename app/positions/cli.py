"""`flask seed …`: demo data through the one write path."""

import secrets

import click
from flask.cli import AppGroup

from app.auth.models import Role, User
from app.auth.passwords import hash_password
from app.extensions import db
from app.positions.ingest import IngestResult, record
from app.positions.models import Position
from app.positions.seed import demo_snapshots, parse_interval, snapshot_count

seed_cli = AppGroup("seed", help="Load demo data.")

BATCH_SIZE = 5_000


def _split_names(value: str, option: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("give at least one name, comma-separated", param_hint=option)
    for name in names:
        if len(name) > 64 or not name.isprintable():
            raise click.BadParameter(f"{name[:70]!r} is not a valid name", param_hint=option)
    return list(dict.fromkeys(names))


def seed_demo_data(*, assets, accounts, days, interval, seed) -> IngestResult:
    """Write demo history in committed batches, with a progress bar."""
    total = IngestResult()
    batch = []
    expected = snapshot_count(assets=assets, accounts=accounts, days=days, interval=interval)
    snapshots = demo_snapshots(
        assets=assets, accounts=accounts, days=days, interval=interval, seed=seed
    )
    with click.progressbar(length=expected, label="Seeding snapshots") as bar:
        for snapshot in snapshots:
            batch.append(snapshot)
            if len(batch) == BATCH_SIZE:
                total.merge(record(batch))
                db.session.commit()
                bar.update(len(batch))
                batch = []
        if batch:
            total.merge(record(batch))
            db.session.commit()
            bar.update(len(batch))
    return total


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
    click.echo(
        f"Inserted {result.inserted}, already present {result.duplicates}, "
        f"conflicting {len(result.conflicts)}."
    )
    if result.conflicts:
        raise click.ClickException(
            f"{len(result.conflicts)} snapshots differ from stored ones and were not "
            "written (another --seed was used before?)."
        )


@seed_cli.command("first-run")
@click.option("--days", type=click.IntRange(1, 3650), default=7, show_default=True)
def first_run(days):
    """On an empty database only: load demo data and create a demo admin."""
    has_users = db.session.execute(db.select(User.id).limit(1)).first() is not None
    has_positions = db.session.execute(db.select(Position.id).limit(1)).first() is not None
    if has_users or has_positions:
        click.echo("Database already has data; nothing seeded.")
        return
    seed_demo_data(
        assets=["BTC", "ETH", "SOL"],
        accounts=["main", "hedge"],
        days=days,
        interval=60,
        seed=42,
    )
    password = secrets.token_urlsafe(12)
    db.session.add(User(username="admin", password_hash=hash_password(password), role=Role.ADMIN))
    db.session.commit()
    click.echo("")
    click.echo("Demo admin created. This password is shown once:")
    click.echo("    username: admin")
    click.echo(f"    password: {password}")
    click.echo("Change it on the Account page after logging in.")
