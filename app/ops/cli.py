"""`flask db backup`: a consistent copy of the SQLite database, taken while the app runs."""

import os
import sqlite3
from pathlib import Path

import click
from flask.cli import with_appcontext

from app.extensions import db

# Pages copied per step: the source is locked only while a step runs, so ingest
# goes on between steps.
PAGES_PER_STEP = 1024


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Say what would be copied; copy nothing.")
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
@with_appcontext
def backup_command(path: Path, dry_run: bool, force: bool):
    """Copy the SQLite database to PATH online (PostgreSQL: use pg_dump)."""
    url = db.engine.url
    if url.get_backend_name() != "sqlite":
        raise click.ClickException(
            "The database is PostgreSQL: back it up with pg_dump, for example\n"
            "  pg_dump --format=custom --file=tradingmonitor.dump 'postgresql://…'"
        )
    source = Path(url.database or "")
    if not url.database or url.database == ":memory:" or not source.exists():
        raise click.ClickException(f"No SQLite database file at {url.database!r}.")
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to replace it.")
    if not path.parent.is_dir():
        raise click.ClickException(f"{path.parent} is not a directory.")
    if path.resolve() == source.resolve():
        raise click.ClickException("PATH is the database itself.")
    size = source.stat().st_size
    if dry_run:
        click.echo(f"Would copy {source} ({size:,} bytes) to {path}. Dry run: nothing copied.")
        return

    # Copy to a side file and rename: PATH is either the old file or a whole backup.
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    raw = db.engine.raw_connection()
    try:
        target = sqlite3.connect(partial)
        try:
            raw.driver_connection.backup(target, pages=PAGES_PER_STEP)
            (check,) = target.execute("PRAGMA integrity_check").fetchone()
        finally:
            target.close()
    finally:
        raw.close()
    if check != "ok":
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"The copy failed its integrity check: {check}")
    os.replace(partial, path)
    click.echo(f"Copied {source} to {path} ({path.stat().st_size:,} bytes, integrity ok).")
