"""Time partitions of the snapshot history on PostgreSQL: create ahead, list, detach old.

The migration makes `position` a table partitioned by range of `timestamp`: one
partition per UTC month (or ISO week, POSITION_PARTITION_INTERVAL), between two
catch-alls, `position_before` (MINVALUE up to the oldest period) and `position_after`
(the newest period's end up to MAXVALUE), so no snapshot is ever refused for want of
a partition. They are ranges rather than a DEFAULT partition because PostgreSQL scans
range partitions in order only while no DEFAULT partition takes part: with them, a
newest-first history page reads the newest partitions and stops, where a DEFAULT
partition would make it open every partition's index and merge.

A new period is cut from the front of `position_after`, taking the rows it already
holds; retention detaches whole periods and moves the end of `position_before` up.
Both take a short exclusive lock on `position`, waiting at most LOCK_TIMEOUT for it.
SQLite keeps one table and every function here does nothing there.
"""

import logging
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.extensions import db

log = logging.getLogger(__name__)

PARENT = "position"
BEFORE = "position_before"
AFTER = "position_after"
INTERVALS = ("month", "week")
# How long DDL on the history waits for its lock: while it waits, every query on the
# table queues behind it, so it gives up early and tries again later instead.
LOCK_TIMEOUT = "2s"
# The worker looks at the partitions this often (per process and database).
UPKEEP_SECONDS = 3600
# Serialises the commands and workers that change partitions (any constant key).
ADVISORY_KEY = 7_304_115_021
COLUMNS = '"id", "account", "asset", "timestamp", "amount", "price", "received_at"'
BOUND = re.compile(r"FROM \((.+)\) TO \((.+)\)")
# When this process next looks at each database's partitions (keep_ahead).
_next_look: dict[str, float] = {}


@dataclass(frozen=True)
class Partition:
    """One partition of the history: [lower, upper), None for MINVALUE / MAXVALUE."""

    name: str
    lower: datetime | None
    upper: datetime | None
    # An estimate without a scan: the larger of the statistics' live rows, counted at
    # commits but reported a few seconds late, and the last ANALYZE's count.
    rows: int | None = None
    size: str = ""  # table, indexes and TOAST, human readable

    def describe(self) -> str:
        """name, from, to, row estimate and size, tab-separated."""
        rows = "? rows" if self.rows is None else f"~{self.rows:,} rows"
        lower, upper = _text(self.lower, "-infinity"), _text(self.upper, "infinity")
        return "\t".join((self.name, lower, upper, rows, self.size))


def _text(moment: datetime | None, unbounded: str) -> str:
    return unbounded if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def is_partitioned() -> bool:
    """Whether `position` is a partitioned table (PostgreSQL after the migration)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return False
    kind = db.session.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)"), {"name": PARENT}
    ).scalar()
    return kind == "p"


def partition_table_names(connection) -> set[str]:
    """The tables that are partitions of another (PostgreSQL), which migrations skip."""
    if connection.dialect.name != "postgresql":
        return set()
    rows = connection.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relispartition AND n.nspname = current_schema()"
        )
    )
    return {name for (name,) in rows}


def skip_partitions(connection):
    """An `include_name` hook for Alembic that leaves partition tables out of comparisons."""
    # Read at the first table compared, inside Alembic's transaction: a query before
    # it would begin one that Alembic then leaves uncommitted.
    partitions = []

    def include_name(name, type_, parent_names):
        if type_ != "table":
            return True
        if not partitions:
            partitions.append(partition_table_names(connection))
        return name not in partitions[0]

    return include_name


def period_start(moment: datetime, interval: str) -> datetime:
    """The start of the UTC month, or ISO week (Monday), holding `moment`."""
    moment = moment.astimezone(UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "month":
        return day.replace(day=1)
    if interval == "week":
        return day - timedelta(days=day.weekday())
    raise ValueError(f"partition interval must be one of {', '.join(INTERVALS)}, not {interval!r}")


def next_period(start: datetime, interval: str) -> datetime:
    """The start of the period after the one starting at `start`."""
    if interval == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def partition_name(lower: datetime, interval: str) -> str:
    """position_p2026_12 for a month, position_p2026_12_07 for a week (by its first day)."""
    if interval == "month" and lower.day == 1:
        return f"{PARENT}_p{lower:%Y_%m}"
    return f"{PARENT}_p{lower:%Y_%m_%d}"


def _bound(value: str) -> datetime | None:
    if value in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(value.strip("'")).astimezone(UTC)


def list_partitions(*, sizes: bool = True) -> list[Partition]:
    """Every partition of the history, oldest first, with row estimates and sizes."""
    if not is_partitioned():
        return []
    size = "pg_size_pretty(pg_total_relation_size(c.oid))" if sizes else "''"
    rows = db.session.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid),"  # noqa: S608
            " GREATEST(s.n_live_tup, c.reltuples::bigint), "
            f"{size} FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
            " WHERE i.inhparent = to_regclass(:name)"
        ),
        {"name": PARENT},
    )
    found = []
    for name, bound, live, pretty in rows:
        lower, upper = BOUND.search(bound).groups()
        found.append(Partition(name, _bound(lower), _bound(upper), live, pretty))
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda p: (p.lower is not None, p.lower or oldest))


def _literal(moment: datetime) -> str:
    return f"'{moment.astimezone(UTC).isoformat()}'"


def _range(lower: datetime | None, upper: datetime | None) -> str:
    low = "MINVALUE" if lower is None else _literal(lower)
    high = "MAXVALUE" if upper is None else _literal(upper)
    return f"FOR VALUES FROM ({low}) TO ({high})"


def _execute(statement: str) -> None:
    # Every name and bound in the DDL here is ours (constants, catalog names, UTC
    # period starts), never input: hence the f-strings (`noqa: S608`).
    db.session.execute(text(statement))


@contextmanager
def _changing_partitions():
    """Take the partition-changing turn, waiting for locks at most LOCK_TIMEOUT."""
    _execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    _execute(f"SELECT pg_advisory_xact_lock({ADVISORY_KEY})")
    yield
    _execute("SET LOCAL lock_timeout TO DEFAULT")


def _cut_from_after(after: Partition | None, lower: datetime, upper: datetime, name: str):
    """Create partition [lower, upper), moving the rows `position_after` holds in it."""
    if after is not None:
        _execute(f'ALTER TABLE "{PARENT}" DETACH PARTITION "{after.name}"')
    _execute(f'CREATE TABLE "{name}" PARTITION OF "{PARENT}" {_range(lower, upper)}')
    if after is None:
        return
    within = f'"timestamp" >= {_literal(lower)} AND "timestamp" < {_literal(upper)}'
    _execute(
        f'WITH moved AS (DELETE FROM "{after.name}" WHERE {within} RETURNING {COLUMNS})'  # noqa: S608
        f' INSERT INTO "{PARENT}" ({COLUMNS}) SELECT {COLUMNS} FROM moved'
    )
    _execute(f'ALTER TABLE "{PARENT}" ATTACH PARTITION "{after.name}" {_range(upper, None)}')


def create_ahead(now: datetime, *, ahead: int, interval: str) -> list[str]:
    """Create the partitions of `now`'s period and the `ahead` after it that are missing;
    return their names. The caller commits."""
    if not is_partitioned():
        return []
    start = period_start(now, interval)
    created = []
    with _changing_partitions():
        partitions = list_partitions(sizes=False)
        after = next((p for p in partitions if p.upper is None), None)
        if after is not None:
            covered = after.lower
        else:
            covered = max((p.upper for p in partitions if p.upper is not None), default=None)
        lower = start
        for _ in range(ahead + 1):
            upper = next_period(lower, interval)
            if covered is None or upper > covered:
                piece = lower if covered is None else max(lower, covered)
                name = partition_name(piece, interval)
                _cut_from_after(after, piece, upper, name)
                after = None if after is None else Partition(after.name, upper, None)
                covered = upper
                created.append(name)
            lower = upper
        if after is None and covered is not None:
            _execute(f'CREATE TABLE "{AFTER}" PARTITION OF "{PARENT}" {_range(covered, None)}')
    return created


def is_lock_timeout(error: OperationalError) -> bool:
    """Whether the lock on the history was not granted within LOCK_TIMEOUT."""
    return getattr(error.orig, "sqlstate", None) == "55P03"  # lock_not_available


def keep_ahead(now: datetime) -> list[str]:
    """The worker's upkeep: at most once an hour, create the partitions missing ahead.

    A lock not granted in time (a long query on the history) is logged and tried
    again at the next look; the periods ahead leave months to succeed.
    """
    url = db.engine.url.render_as_string()
    if time.monotonic() < _next_look.get(url, 0):
        return []
    _next_look[url] = time.monotonic() + UPKEEP_SECONDS
    if not is_partitioned():
        return []
    config = current_app.config
    try:
        with db.session.begin_nested():
            created = create_ahead(
                now,
                ahead=config["POSITION_PARTITIONS_AHEAD"],
                interval=config["POSITION_PARTITION_INTERVAL"],
            )
    except OperationalError as exc:
        if not is_lock_timeout(exc):
            raise
        log.warning("history partitions not created: the table stayed locked (%s)", LOCK_TIMEOUT)
        return []
    if created:
        log.info("created history partitions %s", ", ".join(created))
    return created


def detach_before(before: datetime) -> list[str]:
    """Detach the partitions wholly older than `before` and move `position_before`'s end
    up to the oldest one left; return the detached tables. The caller commits, then
    drops them (drop_detached), outside the lock on `position`."""
    if not is_partitioned():
        return []
    with _changing_partitions():
        # A prune stopped between its detach and its drop left these behind.
        leftovers = _detached_leftovers()
        partitions = list_partitions(sizes=False)
        old = [p for p in partitions if p.lower is not None and p.upper and p.upper <= before]
        if not old:
            return leftovers
        for partition in old:
            _execute(f'ALTER TABLE "{PARENT}" DETACH PARTITION "{partition.name}"')
        end = max(p.upper for p in old)
        first = partitions[0]
        if first.lower is None:
            _execute(f'ALTER TABLE "{PARENT}" DETACH PARTITION "{first.name}"')
            _execute(f'ALTER TABLE "{PARENT}" ATTACH PARTITION "{first.name}" {_range(None, end)}')
        else:
            _execute(f'CREATE TABLE "{BEFORE}" PARTITION OF "{PARENT}" {_range(None, end)}')
    return leftovers + [p.name for p in old]


def _detached_leftovers() -> list[str]:
    """Tables named as our periods that are no partition of the history any more."""
    rows = db.session.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r' AND NOT c.relispartition"
            " AND c.relname ~ :pattern ORDER BY c.relname"
        ),
        {"pattern": rf"^{PARENT}_p\d{{4}}_\d{{2}}(_\d{{2}})?$"},
    )
    return [name for (name,) in rows]


def drop_detached(name: str) -> int:
    """Drop a table detach_before returned; return the snapshots it held."""
    rows = db.session.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()  # noqa: S608
    _execute(f'DROP TABLE "{name}"')
    return rows
