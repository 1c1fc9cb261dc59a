"""The one write path for position snapshots: API, CSV import and the seeder use it."""

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import attrgetter

from flask import current_app
from sqlalchemy import tuple_
from sqlalchemy.dialects import sqlite

from app.alerts.engine import evaluate_series
from app.db_types import (
    driver_utc,
    format_decimal,
    sqlite_datetime_text,
    utcnow,
)
from app.extensions import db
from app.positions.ingest_pg import store_batch
from app.positions.models import LatestPosition, Position
from app.positions.points import EPOCH
from app.user_input import in_utc

# Rows per INSERT statement: well under SQLite's bound-parameter limit.
CHUNK_SIZE = 500

Key = tuple[str, str, datetime]


class ImplausibleTimestamp(ValueError):
    """A snapshot time in the future beyond the clock skew, or before 1970."""


def check_timestamp(moment: datetime, now: datetime | None = None) -> datetime:
    """Return `moment` if a snapshot may carry it, else raise ImplausibleTimestamp.

    The one rule for every way in (API, CSV import, seeder, record() itself): one row
    from the future would stay the latest position forever, age below zero, and blind
    the stale-feed rule. CLOCK_SKEW_SECONDS allows for a sender's clock running ahead.
    """
    # The API checks every row of a batch here: what is cheap to skip is skipped (a
    # moment already in UTC, a second look at the app's config).
    if moment.tzinfo is not UTC:
        moment = in_utc(moment)
    # Before the epoch a time is a feed's bug (a zero, a unit mix-up); refusing it keeps
    # every stored moment convertible and plottable.
    if moment < EPOCH:
        raise ImplausibleTimestamp(f"{format_timestamp(moment)} is before 1970-01-01T00:00:00Z")
    now = now or utcnow()
    if moment <= now:
        return moment
    skew = timedelta(seconds=current_app.config["CLOCK_SKEW_SECONDS"])
    if moment > now + skew:
        raise ImplausibleTimestamp(
            f"{format_timestamp(moment)} is in the future (now is {format_timestamp(now)}, "
            f"clock skew allowed {int(skew.total_seconds())} s)"
        )
    return moment


def format_timestamp(moment: datetime) -> str:
    """UTC ISO 8601 with a Z, microseconds only when there are some."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


@dataclass(frozen=True)
class Snapshot:
    """One position snapshot as the trading system sent it."""

    account: str
    asset: str
    timestamp: datetime
    amount: Decimal
    price: Decimal | None = None

    def __post_init__(self):
        # Spelled out rather than looped: every snapshot of every batch comes through.
        timestamp = self.timestamp
        if timestamp.tzinfo is not UTC:
            if timestamp.tzinfo is None or timestamp.utcoffset() is None:
                raise ValueError("timestamp must carry a timezone")
            object.__setattr__(self, "timestamp", in_utc(timestamp))
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise ValueError("amount must be a finite Decimal")
        price = self.price
        if price is not None and (not isinstance(price, Decimal) or not price.is_finite()):
            raise ValueError("price must be a finite Decimal")
        if not self.account or not self.asset:
            raise ValueError("account and asset must not be empty")

    @property
    def key(self) -> Key:
        return (self.account, self.asset, self.timestamp)


@dataclass
class IngestResult:
    """What record() did with a batch."""

    inserted: int = 0
    duplicates: int = 0
    conflicts: list[Key] = field(default_factory=list)
    # (account, asset) pairs that received new snapshots, for alert evaluation.
    changed_series: set[tuple[str, str]] = field(default_factory=set)
    # Alert state changes the new snapshots caused.
    transitions: list = field(default_factory=list)

    def merge(self, other: "IngestResult") -> None:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.conflicts.extend(other.conflicts)
        self.changed_series |= other.changed_series
        self.transitions.extend(other.transitions)


def record(snapshots: Iterable[Snapshot]) -> IngestResult:
    """Store new snapshots and keep the latest positions current; the caller commits.

    Resending a snapshot is a duplicate and changes nothing. The same key with a
    different amount or price is a conflict: reported, never overwritten. A snapshot
    with an implausible time raises ImplausibleTimestamp before anything is written.
    """
    result = IngestResult()
    unique: dict[Key, Snapshot] = {}
    for snapshot in snapshots:
        # The key spelled out, not the property: this loop sees every row of a batch.
        key = (snapshot.account, snapshot.asset, snapshot.timestamp)
        seen = unique.setdefault(key, snapshot)
        if seen is snapshot:
            continue
        if _same_values(seen, snapshot):
            result.duplicates += 1
        else:
            result.conflicts.append(key)

    rows = list(unique.values())
    if rows:
        # Every key is in `rows`, and the batch's earliest and latest times bound the rest.
        check_timestamp(min(s.timestamp for s in rows))
        check_timestamp(max(s.timestamp for s in rows))
    if not rows:
        inserted = []
    elif _dialect() == "postgresql":
        skipped = store_batch(rows, utcnow())
        inserted = [s for index, s in enumerate(rows) if index not in skipped]
        for index, same in sorted(skipped.items()):  # conflicts in the batch's order
            if same:
                result.duplicates += 1
            else:
                result.conflicts.append(rows[index].key)
    else:
        inserted = _store_sqlite(rows, result)

    result.inserted = len(inserted)
    result.changed_series = {(s.account, s.asset) for s in inserted}
    # Same transaction: an alert with no pending period fires before the caller commits.
    result.transitions = evaluate_series(result.changed_series)
    return result


def _store_sqlite(rows: list[Snapshot], result: IngestResult) -> list[Snapshot]:
    """Insert the new snapshots chunk by chunk, classify the rest; return those inserted."""
    # By key, as on PostgreSQL: ids follow the insert, so the snapshots of one moment
    # list by account and asset in pages and exports on both backends.
    by_key = sorted(rows, key=attrgetter("account", "asset", "timestamp"))
    inserted_keys: set[Key] = set()
    for start in range(0, len(by_key), CHUNK_SIZE):
        inserted_keys |= _insert_new(by_key[start : start + CHUNK_SIZE])
    # Conflicts are reported in the batch's order.
    skipped = [s for s in rows if s.key not in inserted_keys]
    for start in range(0, len(skipped), CHUNK_SIZE):
        _classify_existing(skipped[start : start + CHUNK_SIZE], result)
    inserted = [s for s in by_key if s.key in inserted_keys]
    _update_latest(inserted)
    return inserted


def _same_values(a: Snapshot, b) -> bool:
    return a.amount == b.amount and a.price == b.price


def _dialect() -> str:
    dialect = db.session.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise RuntimeError(f"ingest supports SQLite and PostgreSQL, not {dialect}")
    return dialect


@functools.cache
def _sqlite_insert_sql(rows: int) -> str:
    # Only placeholders are interpolated; every value travels as a parameter.
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    head = "INSERT INTO position (account, asset, timestamp, amount, price, received_at) VALUES "
    tail = (
        " ON CONFLICT (account, asset, timestamp) DO NOTHING RETURNING account, asset, timestamp"
    )
    return head + values + tail


def _insert_new(chunk: list[Snapshot]) -> set[Key]:
    """Insert the chunk, skipping keys already stored; return the keys inserted.

    Values go in their stored text form: SQLAlchemy's per-value processing was most
    of an ingest request's time on SQLite. The text forms come from app.db_types,
    where the column types define them.
    """
    if not chunk:
        return set()
    received = sqlite_datetime_text(utcnow())
    params = []
    for s in chunk:
        params.extend(
            (
                s.account,
                s.asset,
                sqlite_datetime_text(s.timestamp),
                format_decimal(s.amount),
                None if s.price is None else format_decimal(s.price),
                received,
            )
        )
    connection = db.session.connection()
    rows = connection.exec_driver_sql(_sqlite_insert_sql(len(chunk)), tuple(params))
    return {(account, asset, driver_utc(at)) for account, asset, at in rows}


def _classify_existing(skipped: list[Snapshot], result: IngestResult) -> None:
    """Sort snapshots whose key was already stored into duplicates and conflicts."""
    if not skipped:
        return
    stored = {
        (p.account, p.asset, p.timestamp): p
        for p in db.session.execute(
            db.select(Position).where(
                tuple_(Position.account, Position.asset, Position.timestamp).in_(
                    [s.key for s in skipped]
                )
            )
        ).scalars()
    }
    for snapshot in skipped:
        existing = stored.get(snapshot.key)
        if existing is not None and _same_values(snapshot, existing):
            result.duplicates += 1
        else:
            result.conflicts.append(snapshot.key)


def _update_latest(inserted: list[Snapshot]) -> None:
    """Move each series' latest row forward to its newest inserted snapshot."""
    newest: dict[tuple[str, str], Snapshot] = {}
    for s in inserted:
        current = newest.get((s.account, s.asset))
        if current is None or s.timestamp > current.timestamp:
            newest[(s.account, s.asset)] = s
    if not newest:
        return
    table = LatestPosition.__table__
    stmt = sqlite.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["account", "asset"],
        set_={
            "timestamp": stmt.excluded.timestamp,
            "amount": stmt.excluded.amount,
            "price": stmt.excluded.price,
            "updated_at": stmt.excluded.updated_at,
        },
        # An older snapshot arriving late never moves the latest row backwards.
        where=stmt.excluded.timestamp > table.c.timestamp,
    )
    now = utcnow()
    db.session.execute(
        stmt,
        [
            {
                "account": s.account,
                "asset": s.asset,
                "timestamp": s.timestamp,
                "amount": s.amount,
                "price": s.price,
                "updated_at": now,
            }
            for s in newest.values()
        ],
    )
