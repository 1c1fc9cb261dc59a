"""What the positions commands share: option types for moments, batched writes with progress."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

import click

from app.admin.audit import CLI_ACTOR, Action, record_event
from app.extensions import db
from app.positions import csv_io
from app.positions.ingest import IngestResult, Key, Snapshot, record
from app.positions.rollup import catch_up, unfolded_count
from app.positions.seed import demo_snapshots, snapshot_count
from app.user_input import parse_moment

# Snapshots per transaction, for the seeder and CSV import alike.
BATCH_SIZE = 5_000
# Conflicting keys named in an import error before "and N more".
CONFLICTS_SHOWN = 10


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
    """Fold every snapshot not yet in the rollups, chunk by chunk, with a progress bar."""
    folded = 0
    with click.progressbar(length=unfolded_count(), label="Folding rollups") as bar:
        while done := catch_up(max_rows=BATCH_SIZE):
            folded += done
            bar.update(done)
    return folded


class ConflictingLines(Exception):
    """A batch of the import holds snapshots that differ from stored ones."""


def audit_import(target: str, source: str, result: IngestResult, *, complete: bool) -> None:
    """Record and commit one audit entry for a whole bulk write (its batches are committed)."""
    record_event(
        Action.POSITIONS_IMPORT,
        target=target,
        detail={
            "source": source,
            "inserted": result.inserted,
            "duplicates": result.duplicates,
            "complete": complete,
        },
        actor=CLI_ACTOR,
    )
    db.session.commit()


def text_lines(raw: BinaryIO, bar) -> Iterator[str]:
    """Decode the file line by line as it is read, advancing the progress bar by bytes."""
    for number, data in enumerate(raw, start=1):
        bar.update(len(data))
        try:
            # A spreadsheet's UTF-8 export may start with a byte-order mark.
            yield data.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise csv_io.CsvError(number, None, "not UTF-8 text") from None


def store_batch(batch: list[Snapshot], lines: dict[Key, list[int]]) -> IngestResult:
    """Record one batch and commit it, or raise ConflictingLines with none of it kept."""
    if not batch:
        return IngestResult()
    result = record(batch)
    if result.conflicts:
        db.session.rollback()
        shown = csv_io.describe_keys(result.conflicts[:CONFLICTS_SHOWN], lines)
        more = len(result.conflicts) - CONFLICTS_SHOWN
        raise ConflictingLines(
            f"{len(result.conflicts)} snapshots differ from a stored one or from another line "
            f"with the same account, asset and timestamp: {shown}"
            + (f"; and {more} more" if more > 0 else "")
            + "."
        )
    db.session.commit()
    return result


def stored_so_far(total: IngestResult, stored_through: int) -> str:
    if stored_through <= 1:
        return "Nothing was stored."
    return (
        f"Lines up to {stored_through} were stored (inserted {total.inserted}, duplicates "
        f"{total.duplicates}), nothing after them. Once the file is fixed, importing it "
        "again skips the stored lines as duplicates."
    )
