"""What the positions commands share: option types for moments, batched writes with progress."""

from datetime import UTC, datetime

import click

from app.extensions import db
from app.positions.ingest import IngestResult, record
from app.positions.rollup import catch_up, unfolded_count
from app.positions.seed import demo_snapshots, snapshot_count
from app.user_input import parse_moment

# Snapshots per transaction, for the seeder and CSV import alike.
BATCH_SIZE = 5_000


class AwareDateTime(click.ParamType):
    """An ISO 8601 moment with a timezone (2026-03-01T12:00Z); naive times are refused."""

    name = "ISO-8601"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_moment(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Moment(AwareDateTime):
    """A date (midnight UTC) or an ISO 8601 moment with a timezone."""

    name = "DATE"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, str) and len(value) == 10:
            try:
                return parse_moment(value, zone=UTC)
            except ValueError:
                self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)
        return super().convert(value, param, ctx)


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


def bring_rollups_current() -> int:
    """Fold every snapshot not yet in the hourly rollups, chunk by chunk, with a progress bar."""
    folded = 0
    with click.progressbar(length=unfolded_count(), label="Folding hourly rollups") as bar:
        while done := catch_up(max_rows=BATCH_SIZE):
            folded += done
            bar.update(done)
    return folded
