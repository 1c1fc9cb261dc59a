"""Scale benchmark: PostgreSQL at 100,000,000 snapshots against the same run at 1,000,000.

    .venv/bin/python bench/scale.py --postgres-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/test            # 100M against 1M
    .venv/bin/python bench/scale.py --postgres-url ... \\
        --rows 2000000 --small-rows 200000 --duration 3               # a quick one

The shape, and why the comparison is fair: both databases hold the desk of
bench/pages.py, 20 series (10 assets x 2 accounts), one snapshot a minute each,
ending at the same minute. The small one is pages.py's 1,000,000 snapshots (50,000
minutes, about 35 days); the big one goes 100x further back (5,000,000 minutes,
about 9.5 years, one partition a month). Every request asks the same of both and
the newest rows are identical: only the history beneath them differs, which is
what time does to a desk's data. (More series instead would change the overview's
answer, one row per series by design, not how history scales.) Per series and in
partitions it is also where a 200-series desk stands at 1,000,000,000 snapshots
after ten years; only its partitions would be ten times larger.

What it does:

1. creates two scratch databases (bench_<random>_small / _big, dropped at the end
   unless --keep) with the real migrations (`flask db upgrade`); a partitioned
   snapshot table gets the partitions the migration makes for history this old (one
   a month from the oldest snapshot's on), named and bounded by
   app.positions.partitions;
2. loads each with the snapshots as exact NUMERIC: the table's indexes and
   constraints are taken off, the rows inserted with `INSERT ... SELECT FROM
   generate_series` in chunks on --load-jobs connections, the indexes and
   constraints put back exactly as the migrations made them, then VACUUM ANALYZE;
   the hourly rollups are built by one `INSERT ... SELECT ... GROUP BY` per range of
   whole hours, the daily ones from them by one per range of whole days, the
   weekly ones from the days by one more, the watermark set past them; the newest
   snapshot of every series then goes through `ingest.record` (so the latest-position
   rows are the app's own) and the app's `rollup.catch_up` folds it in;
3. on the small database, checks the SQL-built rollups against the app's own fold:
   the hourly, daily and weekly rollups are emptied, `catch_up` folds every snapshot
   again, and the tables must be equal as before, as text (every digit and scale);
   prints how fast each was;
4. serves the app on each database (`wsgi:app`, production config, gunicorn
   --workers sync workers), logs in through the real form and loads, with wrk as
   bench/pages.py does: the overview `/`, the history page of BTC (first page, and a
   keyset page half way back in time), the value-over-time page (24 hours and 30
   days: every series now and at the changes' moments) and its chart's series
   (every series at each moment of the range's grid), the chart series of BTC
   for each range the chart offers (1h, 24h, 7d, 30d, all), and the 30-day and
   whole-history charts again with a snapshot of each series waiting above the
   rollups' watermark (as on a live desk between two passes of the worker, which
   the benchmark does not run); then downloads the CSV
   export of one series over the last 30 days (the same 43,201 rows from both; less if
   the small database holds less) 10 times in turn, and posts --ingest-batches batches of 1,000
   snapshots to /api/v1/positions, one after the other (p50/p99, rows/s), and takes
   them out again (so a database kept with --keep is measured as loaded by --reuse);
5. prints each figure for both databases and the ratio big/small, the sizes of the
   tables and indexes per million snapshots and the load rates (for extrapolating),
   the CPU per request of gunicorn and of the database's own backends (steadier than
   latency on a shared machine), and PASS/FAIL: pages (overview, history, value, chart)
   p99 < 50 ms and big p99 <= 2x small p99; export and ingest: big p99 <= 2x small
   p99 and big rows/s >= half.

The exit status is 0 when every target passes, 1 when one fails, 2 on error.
"""

import argparse
import http.client
import itertools
import json
import os
import resource
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from _common import (
    ASSET_PRICES,
    OTHER_LOAD_WARNING,
    BenchError,
    ScratchDatabases,
    add_ingest_user,
    add_postgres_url,
    app_env,
    bench_settings,
    check_loopback,
    handle_signals,
    iso_z,
    migrate_database,
    percentile_ms,
    postgres_urls,
    remove_workdir,
)
from _processes import (
    Processes,
    busy_cpus,
    free_port,
    gunicorn_args,
    machine_busy,
    process_group_cpu,
    wait_ready,
)
from pages import PASSWORD, USERNAME, check_page, log_in, run_python, run_wrk

# The desk of bench/pages.py: 10 assets x 2 accounts.
ACCOUNTS = ("main", "hedge")
ASSETS = ASSET_PRICES
SERIES = len(ACCOUNTS) * len(ASSETS)
HISTORY_ASSET = "BTC"
EXPORT_ACCOUNT = "main"
EXPORT_SPAN = timedelta(days=30)  # or the small database's history, if shorter
EXPORT_DOWNLOADS = 10
CHART_RANGES = (
    ("1h", timedelta(hours=1)),
    ("24h", timedelta(days=1)),
    ("7d", timedelta(days=7)),
    ("30d", timedelta(days=30)),
    ("all", None),
)
# Measured again with snapshots waiting above the watermark (add_waiting).
WAITING_CHARTS = ("chart 30d", "chart all")
INGEST_BATCH = 1_000
INGEST_STEP = timedelta(milliseconds=10)  # between one series' ingested snapshots
# Rows per INSERT ... SELECT of the load, and per rollup statement (whole hours).
LOAD_CHUNK_ROWS = 1_000_000
ROLLUP_CHUNK_ROWS = 2_000_000
NEVER_REACHED = Decimal("1000000000000")

MAX_PAGE_P99_MS = 50.0
MAX_GROWTH = 2.0


# --------------------------------------------------------------------------- data


@dataclass
class Shape:
    """Where the snapshots of a database lie: minute m of series s has id m * SERIES + s + 1."""

    minutes: int  # per series, the newest one (ingested by the app) included
    end: datetime  # the newest minute

    @property
    def first(self) -> datetime:
        return self.end - timedelta(minutes=self.minutes - 1)

    @property
    def bulk_rows(self) -> int:
        return (self.minutes - 1) * SERIES

    @property
    def rows(self) -> int:
        return self.minutes * SERIES


# One SQL expression per column, from i (0-based row number): s = i % SERIES is the
# series (account = s % 10, asset = s / 10), m = i / SERIES the minute. Amounts change
# every 7 minutes and repeat within an hour (ties for the rollups' extremes); some
# positions are short. Every value is an exact NUMERIC rounded to its decimals.
SNAPSHOT_VALUES = """
       i + 1 AS id,
       (%(accounts)s::text[])[i %% {series} %% {accounts} + 1] AS account,
       (%(assets)s::text[])[i %% {series} / {accounts} + 1] AS asset,
       %(first)s::timestamptz + (i / {series}) * interval '1 minute' AS timestamp,
       round((%(base_amounts)s::numeric[])[i %% {series} + 1]
             * (4000 + ((i / {series} / 7) * 7919 + (i %% {series}) * 104729) %% 2001)
             / 5000, 4) AS amount,
       round(((%(prices)s::numeric[])[i %% {series} / {accounts} + 1]
              * (1 + 0.1 * sin((i / {series}) / 5000.0 + i %% {series} / {accounts})
                 + ((i / {series}) * 104729 %% 1001 - 500) / 500000.0))::numeric,
             (%(decimals)s::int[])[i %% {series} / {accounts} + 1]) AS price
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i
""".format(series=SERIES, accounts=len(ACCOUNTS))
INSERT_SNAPSHOTS = (
    "INSERT INTO position (id, account, asset, timestamp, amount, price, received_at)\n"
    "{overriding}\n"
    "SELECT id, account, asset, timestamp, amount, price, %(received)s::timestamptz\n"
    "FROM (SELECT" + SNAPSHOT_VALUES.replace("{", "{{").replace("}", "}}") + ") AS s"
)

# Each hour's first, last, lowest and highest snapshot, as rollup.fold picks them:
# first/last by time; lowest by (amount, time); highest by (amount desc, time). Each
# pick is the min or max of an array led by its sort key, the snapshot's id, time (as
# epoch microseconds), amount and price after it; a series has one snapshot a moment,
# so the key never ties and the price (maybe NULL) is never compared.
INSERT_ROLLUPS = """
INSERT INTO position_rollup (
    asset, account, hour_start, rows,
    first_id, first_at, first_amount, first_price,
    last_id, last_at, last_amount, last_price,
    low_id, low_at, low_amount, low_price, low_rank,
    high_id, high_at, high_amount, high_price, high_rank)
SELECT asset, account, hour_start, n,
       f[2]::bigint, timestamptz 'epoch' + f[1]::bigint * interval '1 microsecond', f[3], f[4],
       l[2]::bigint, timestamptz 'epoch' + l[1]::bigint * interval '1 microsecond', l[3], l[4],
       lo[3]::bigint, timestamptz 'epoch' + lo[2]::bigint * interval '1 microsecond', lo[1],
       lo[4], lo[1]::float8,
       hi[3]::bigint, timestamptz 'epoch' - hi[2]::bigint * interval '1 microsecond', hi[1],
       hi[4], hi[1]::float8
FROM (
    SELECT asset, account, date_trunc('hour', timestamp) AS hour_start, count(*) AS n,
           min(ARRAY[us, id, amount, price]) AS f,
           max(ARRAY[us, id, amount, price]) AS l,
           min(ARRAY[amount, us, id, price]) AS lo,
           max(ARRAY[amount, -us, id, price]) AS hi
    FROM (
        SELECT asset, account, timestamp, id, amount, price,
               (extract(epoch FROM timestamp) * 1000000)::numeric AS us
        FROM position
        WHERE id >= %(lo)s AND id < %(hi)s
          AND timestamp >= %(t_lo)s AND timestamp < %(t_hi)s
    ) AS p
    GROUP BY 1, 2, 3
) AS g
"""


# Each day's picks among its hours' picks, the same way (the hours' are exact copies).
INSERT_DAYS = """
INSERT INTO position_daily_rollup (
    asset, account, day_start, rows,
    first_id, first_at, first_amount, first_price,
    last_id, last_at, last_amount, last_price,
    low_id, low_at, low_amount, low_price, low_rank,
    high_id, high_at, high_amount, high_price, high_rank)
SELECT asset, account, day_start, n,
       f[2]::bigint, timestamptz 'epoch' + f[1]::bigint * interval '1 microsecond', f[3], f[4],
       l[2]::bigint, timestamptz 'epoch' + l[1]::bigint * interval '1 microsecond', l[3], l[4],
       lo[3]::bigint, timestamptz 'epoch' + lo[2]::bigint * interval '1 microsecond', lo[1],
       lo[4], lo[1]::float8,
       hi[3]::bigint, timestamptz 'epoch' - hi[2]::bigint * interval '1 microsecond', hi[1],
       hi[4], hi[1]::float8
FROM (
    SELECT asset, account, date_trunc('day', hour_start) AS day_start, sum(rows) AS n,
           min(ARRAY[first_us, first_id, first_amount, first_price]) AS f,
           max(ARRAY[last_us, last_id, last_amount, last_price]) AS l,
           min(ARRAY[low_amount, low_us, low_id, low_price]) AS lo,
           max(ARRAY[high_amount, -high_us, high_id, high_price]) AS hi
    FROM (
        SELECT r.*, (extract(epoch FROM first_at) * 1000000)::numeric AS first_us,
               (extract(epoch FROM last_at) * 1000000)::numeric AS last_us,
               (extract(epoch FROM low_at) * 1000000)::numeric AS low_us,
               (extract(epoch FROM high_at) * 1000000)::numeric AS high_us
        FROM position_rollup AS r
        WHERE hour_start >= %(t_lo)s AND hour_start < %(t_hi)s
    ) AS r
    GROUP BY 1, 2, 3
) AS g
"""


# Each ISO week's picks among its days' picks, the same way again, in one statement: a
# week is never split between two.
INSERT_WEEKS = (
    INSERT_DAYS.replace("position_daily_rollup", "position_weekly_rollup")
    .replace("position_rollup", "position_daily_rollup")
    .replace("day_start", "week_start")
    .replace(
        "date_trunc('day', hour_start)",
        "date_trunc('week', day_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    )
    .replace("WHERE hour_start >= %(t_lo)s AND hour_start < %(t_hi)s", "")
)


def series_values() -> dict:
    """The arrays the load statement indexes into, as parameters."""
    base_amounts = []
    for s in range(SERIES):
        price = Decimal(str(ASSETS[list(ASSETS)[s // len(ACCOUNTS)]][0]))
        sign = -1 if s % 7 == 3 else 1  # a few short positions
        base_amounts.append((Decimal(50_000 + 1_000 * (s % 13)) / price).quantize(Decimal("1")))
        base_amounts[-1] *= sign
    return {
        "accounts": list(ACCOUNTS),
        "assets": list(ASSETS),
        "base_amounts": base_amounts,
        "prices": [Decimal(str(price)) for price, _ in ASSETS.values()],
        "decimals": [decimals for _, decimals in ASSETS.values()],
    }


def connect(conninfo: str, **kwargs):
    import psycopg

    conn = psycopg.connect(conninfo, connect_timeout=10, **kwargs)
    # date_trunc('hour') must cut UTC hours, as rollup.hour_floor does.
    conn.execute("SET timezone = 'UTC'")
    return conn


def in_parallel(conninfo: str, jobs: int, tasks: list, run_one, progress: str = "") -> None:
    """Run `run_one(conn, task)` for every task on `jobs` connections, each task committed."""
    pending = list(reversed(tasks))
    lock = threading.Lock()
    errors: list[BaseException] = []
    done = [0]
    began = time.perf_counter()

    def worker():
        with connect(conninfo) as conn:
            conn.execute("SET synchronous_commit = off")  # the load only: a crash reloads
            while not errors:
                with lock:
                    if not pending:
                        return
                    task = pending.pop()
                try:
                    with conn.transaction():
                        run_one(conn, task)
                except BaseException as exc:  # stop the others, re-raised below
                    errors.append(exc)
                    return
                with lock:
                    done[0] += 1
                    tenth = max(1, len(tasks) // 10)
                    if progress and (done[0] % tenth == 0) and len(tasks) >= 20:
                        elapsed = time.perf_counter() - began
                        print(f"    {progress}: {done[0]}/{len(tasks)} in {elapsed:.0f} s")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)
    if errors:
        raise errors[0]


@dataclass
class Load:
    """What loading one database took, for the report."""

    rows: int = 0
    steps: list[tuple[str, float]] = field(default_factory=list)
    partitions: int = 0

    def step(self, name: str, began: float) -> float:
        now = time.perf_counter()
        self.steps.append((name, now - began))
        print(f"  {name}: {now - began:.1f} s")
        return now

    def seconds(self, name: str) -> float:
        return sum(s for n, s in self.steps if n.startswith(name))


def table_definitions(conn, table: str) -> tuple[list[str], list[str], list[str]]:
    """(drop statements, add statements, names) of the table's indexes and constraints."""
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY contype, conname",
        (table,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s::regclass"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
        " ORDER BY c.relname",
        (table,),
    ).fetchall()
    drops = [f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"' for name, _ in constraints]
    drops += [f'DROP INDEX "{name}"' for name, _ in indexes]
    adds = [f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {d}' for name, d in constraints]
    # On a partitioned table "ON ONLY" would build the parent's index alone, invalid.
    adds += [d.replace(" ON ONLY ", " ON ") for _, d in indexes]
    return drops, adds, [name for name, _ in constraints + indexes]


def create_partitions(app, shape: Shape) -> int:
    """Lay out the history's partitions as the migration does for data this old; how many.

    On a database whose oldest snapshot is `shape.first`, the migration makes one
    partition per period from that one's on, below them `position_before`. Migrated
    empty, the database starts at the current period, so the (still empty) catch-all
    below is replaced by the loaded periods' partitions, named and bounded by the
    app's own functions, and a new catch-all below them. None on an unpartitioned table.
    """
    try:
        from app.positions import partitions as parts
    except ImportError:  # the snapshot table is not partitioned in this version
        return 0
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        if not parts.is_partitioned():
            return 0
        interval = app.config["POSITION_PARTITION_INTERVAL"]
        lowest = parts.period_start(shape.first, interval)
        before = parts.list_partitions(sizes=False)[0]
        if before.lower is None and before.upper is not None and before.upper > lowest:
            parent = parts.PARENT
            db.session.execute(text(f'ALTER TABLE "{parent}" DETACH PARTITION "{before.name}"'))
            # The name is the catalog's, never input.
            empty = text(f'SELECT 1 FROM "{before.name}" LIMIT 1')  # noqa: S608
            if db.session.execute(empty).first():
                raise BenchError(f"{before.name} is not empty: not a freshly migrated database")
            db.session.execute(text(f'DROP TABLE "{before.name}"'))
            period = lowest
            while period < before.upper:
                upper = parts.next_period(period, interval)
                name = parts.partition_name(period, interval)
                bounds = parts._range(period, upper)
                db.session.execute(text(f'CREATE TABLE "{name}" PARTITION OF "{parent}" {bounds}'))
                period = upper
            bounds = parts._range(None, lowest)
            db.session.execute(
                text(f'CREATE TABLE "{before.name}" PARTITION OF "{parent}" {bounds}')
            )
            db.session.commit()
        count = len(parts.list_partitions(sizes=False))
        db.session.remove()
        db.engine.dispose()
        return count


def load_snapshots(conninfo: str, shape: Shape, jobs: int, load: Load) -> None:
    """Bulk rows without indexes, indexes and constraints back, VACUUM ANALYZE."""
    with connect(conninfo, autocommit=True) as conn:
        drops, adds, names = table_definitions(conn, "position")
        identity = conn.execute(
            "SELECT attidentity FROM pg_attribute WHERE attrelid = 'position'::regclass"
            " AND attname = 'id'"
        ).fetchone()[0]
        for statement in drops:
            conn.execute(statement)
    overriding = "OVERRIDING SYSTEM VALUE" if identity == "a" else ""
    statement = INSERT_SNAPSHOTS.format(overriding=overriding)
    values = series_values()
    values.update(first=shape.first, received=datetime.now(UTC))
    chunks = [
        (lo, min(lo + LOAD_CHUNK_ROWS, shape.bulk_rows))
        for lo in range(0, shape.bulk_rows, LOAD_CHUNK_ROWS)
    ]

    def insert(conn, chunk):
        conn.execute(statement, {**values, "lo": chunk[0], "hi": chunk[1]})

    began = time.perf_counter()
    in_parallel(conninfo, jobs, chunks, insert, "insert chunks")
    load.rows = shape.bulk_rows
    began = load.step(
        f"insert {shape.bulk_rows:,} rows, no index "
        f"({shape.bulk_rows / max(time.perf_counter() - began, 1e-9):,.0f} rows/s)",
        began,
    )
    with connect(conninfo, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        for name, add in zip(names, adds, strict=True):
            conn.execute(add)
            began = load.step(f"index {name}", began)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('position', 'id'), %s)", (shape.bulk_rows,)
        )
        conn.execute("VACUUM ANALYZE position")
        load.step("vacuum analyze", began)


def hour_chunks(shape: Shape) -> list[tuple[int, int]]:
    """Minute ranges [lo, hi) of the bulk rows, cut on whole UTC hours."""
    per_chunk = max(60, ROLLUP_CHUNK_ROWS // SERIES // 60 * 60)
    offset = (60 - shape.first.minute) % 60  # minutes to the first whole hour
    edges = sorted({0, *range(offset, shape.minutes - 1, per_chunk), shape.minutes - 1})
    return list(itertools.pairwise(edges))


def day_chunks(shape: Shape) -> list[tuple[datetime, datetime]]:
    """Time ranges [lo, hi) of whole UTC days, about a year each, covering every bulk row."""
    first = shape.first.replace(hour=0, minute=0, second=0, microsecond=0)
    edges = [first + timedelta(days=d) for d in range(0, (shape.end - first).days + 2, 365)]
    return list(itertools.pairwise([*edges, shape.end + timedelta(days=1)]))


def build_rollups(conninfo: str, shape: Shape, jobs: int, load: Load) -> None:
    """The rollups of every bulk row by SQL, and the watermark just past them."""

    def insert(conn, minutes):
        lo, hi = minutes
        conn.execute(
            INSERT_ROLLUPS,
            {
                "lo": lo * SERIES + 1,
                "hi": hi * SERIES + 1,
                "t_lo": shape.first + timedelta(minutes=lo),
                "t_hi": shape.first + timedelta(minutes=hi),
            },
        )

    def insert_days(conn, span):
        conn.execute(INSERT_DAYS, {"t_lo": span[0], "t_hi": span[1]})

    began = time.perf_counter()
    in_parallel(conninfo, jobs, hour_chunks(shape), insert, "rollup chunks")
    with connect(conninfo, autocommit=True) as conn:
        conn.execute("ANALYZE position_rollup")
    in_parallel(conninfo, jobs, day_chunks(shape), insert_days, "daily rollup chunks")
    with connect(conninfo, autocommit=True) as conn:
        conn.execute("ANALYZE position_daily_rollup")
        conn.execute(INSERT_WEEKS)
        conn.execute(
            "INSERT INTO rollup_watermark (id, folded_id) VALUES (1, %s)"
            " ON CONFLICT (id) DO UPDATE SET folded_id = excluded.folded_id,"
            " pending_id = NULL, pending_writers = NULL",
            (shape.bulk_rows,),
        )
        conn.execute("VACUUM ANALYZE position_rollup")
        conn.execute("VACUUM ANALYZE position_daily_rollup")
        conn.execute("VACUUM ANALYZE position_weekly_rollup")
    load.step(
        f"rollups by SQL ({shape.bulk_rows / max(time.perf_counter() - began, 1e-9):,.0f} "
        "snapshots/s)",
        began,
    )


def add_rules_and_users() -> str:
    """Rules that ingest evaluates (never reached), a viewer, an ingest token's secret."""
    from app.alerts.models import AlertRule, RuleKind
    from app.auth.models import Role, User
    from app.auth.passwords import hash_password
    from app.extensions import db

    for asset in ASSETS:
        db.session.add(
            AlertRule(
                name=f"{asset} held",
                kind=RuleKind.POSITION_ABOVE,
                threshold=NEVER_REACHED,
                asset=asset,
                severity="warning",
            )
        )
    db.session.add(
        AlertRule(
            name="Desk gross exposure",
            kind=RuleKind.GROSS_EXPOSURE_ABOVE,
            threshold=NEVER_REACHED,
            severity="critical",
        )
    )
    db.session.add(
        User(username=USERNAME, password_hash=hash_password(PASSWORD), role=Role.VIEWER)
    )
    secret = add_ingest_user("bench-ingest", "bench ingest")
    db.session.commit()
    return secret


def newest_minute(conninfo: str, shape: Shape) -> list:
    """The newest snapshot of every series, from the load's own expressions."""
    from app.positions.ingest import Snapshot

    values = {**series_values(), "first": shape.first}
    values.update(lo=shape.bulk_rows, hi=shape.rows)
    with connect(conninfo) as conn:
        rows = conn.execute("SELECT" + SNAPSHOT_VALUES, values).fetchall()
    return [Snapshot(a, s, t, amount, price) for _, a, s, t, amount, price in rows]


# ----------------------------------------------------------------------- building


@dataclass
class Database:
    """One scratch database, what it holds and what building it took."""

    label: str
    name: str
    url: str
    conninfo: str
    shape: Shape
    secret_key: str
    token: str = ""
    load: Load = field(default_factory=Load)
    sizes: dict = field(default_factory=dict)


def build_database(db: Database, args) -> None:
    """Schema by migration, snapshots and rollups by SQL, the newest minute by the app."""
    from app import create_app
    from app.extensions import db as sa
    from app.positions import queries
    from app.positions.ingest import record
    from app.positions.rollup import catch_up

    print(
        f"\n== {db.label}: {db.shape.rows:,} snapshots ({SERIES} series x "
        f"{db.shape.minutes:,} minutes, {db.shape.first:%Y-%m-%d %H:%M} to "
        f"{db.shape.end:%Y-%m-%d %H:%M} UTC) into {db.name}",
        flush=True,
    )
    began = time.perf_counter()
    migrate_database(app_env(db.url, db.secret_key))
    app = create_app(bench_settings(db.url, db.secret_key))
    db.load.partitions = create_partitions(app, db.shape)
    began = db.load.step(
        "migrations" + (f", {db.load.partitions} partitions" if db.load.partitions else ""),
        began,
    )
    load_snapshots(db.conninfo, db.shape, args.load_jobs, db.load)
    build_rollups(db.conninfo, db.shape, args.load_jobs, db.load)
    began = time.perf_counter()
    with app.app_context():
        db.token = add_rules_and_users()
        result = record(newest_minute(db.conninfo, db.shape))
        sa.session.commit()
        if result.inserted != SERIES:
            raise BenchError(f"ingest.record inserted {result.inserted} of {SERIES} snapshots")
        folded = catch_up()
        if folded != SERIES:
            raise BenchError(f"catch_up folded {folded} snapshots, not {SERIES}")
        # Read back through the ORM: the bulk rows must read like the app's own.
        latest = queries.latest_positions()
        page = queries.history_page(HISTORY_ASSET, limit=3)
        if len(latest) != SERIES or [p.timestamp for p in page.rows][:1] != [db.shape.end]:
            raise BenchError(f"{db.label}: the loaded data does not read back as expected")
        sa.session.remove()
        sa.engine.dispose()
    db.load.step("newest minute by ingest.record, folded by catch_up, users", began)
    if args.verify_rollups and db.label == "small":
        verify_rollups(db, app)
    db.sizes = table_sizes(db.conninfo)
    print(f"  {db.label}: loaded in {db.load.seconds(''):.0f} s", flush=True)


# Every row as text: numerics keep their scale (1.50 is not 1.5 on a page), doubles
# their shortest exact form.
ROLLUP_DIFFERENCE = """
SELECT 'sql only', d.t FROM (
    SELECT r::text AS t FROM bench_rollup_sql AS r
    EXCEPT ALL SELECT r::text FROM position_rollup AS r) AS d
UNION ALL
SELECT 'app only', d.t FROM (
    SELECT r::text AS t FROM position_rollup AS r
    EXCEPT ALL SELECT r::text FROM bench_rollup_sql AS r) AS d
"""


def verify_rollups(db: Database, app) -> None:
    """Fold every snapshot again with the app's own code; the tables must be equal."""
    from app.extensions import db as sa
    from app.positions.rollup import catch_up

    with connect(db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_rollup_sql AS SELECT * FROM position_rollup")
        conn.execute("CREATE TABLE bench_daily_sql AS SELECT * FROM position_daily_rollup")
        conn.execute("CREATE TABLE bench_weekly_sql AS SELECT * FROM position_weekly_rollup")
        conn.execute("DELETE FROM position_rollup")
        conn.execute("DELETE FROM position_daily_rollup")
        conn.execute("DELETE FROM position_weekly_rollup")
        conn.execute(
            "UPDATE rollup_watermark SET folded_id = 0, pending_id = NULL, pending_writers = NULL"
        )
    began = time.perf_counter()
    with app.app_context():
        folded = catch_up()
        sa.session.remove()
        sa.engine.dispose()
    seconds = time.perf_counter() - began
    with connect(db.conninfo, autocommit=True) as conn:
        differences = conn.execute(ROLLUP_DIFFERENCE).fetchall()
        daily = ROLLUP_DIFFERENCE.replace("bench_rollup_sql", "bench_daily_sql")
        differences += conn.execute(daily.replace("position_rollup", "position_daily_rollup"))
        weekly = ROLLUP_DIFFERENCE.replace("bench_rollup_sql", "bench_weekly_sql")
        differences += conn.execute(weekly.replace("position_rollup", "position_weekly_rollup"))
        hours = conn.execute("SELECT count(*) FROM position_rollup").fetchone()[0]
        days = conn.execute("SELECT count(*) FROM position_daily_rollup").fetchone()[0]
        weeks = conn.execute("SELECT count(*) FROM position_weekly_rollup").fetchone()[0]
        conn.execute("DROP TABLE bench_rollup_sql")
        conn.execute("DROP TABLE bench_daily_sql")
        conn.execute("DROP TABLE bench_weekly_sql")
        conn.execute("VACUUM ANALYZE position_rollup")
        conn.execute("VACUUM ANALYZE position_daily_rollup")
        conn.execute("VACUUM ANALYZE position_weekly_rollup")
    if folded != db.shape.rows or differences:
        shown = "\n".join(f"    {side}: {row}" for side, row in differences[:6])
        raise BenchError(
            f"the SQL rollups differ from the app's fold ({folded:,} snapshots folded, "
            f"{len(differences)} rows differ):\n{shown}"
        )
    print(
        f"  rollups checked: the app's own fold (rollup.catch_up) of all {folded:,} snapshots "
        f"gives the same {hours:,} hours, {days:,} days and {weeks:,} weeks, every column "
        "equal as text; it "
        f"took {seconds:.1f} s "
        f"({folded / seconds:,.0f} snapshots/s) against the SQL build's "
        f"{db.load.seconds('rollups'):.1f} s",
        flush=True,
    )


def table_sizes(conninfo: str) -> dict:
    """Bytes of the snapshot table and of each of its indexes, partitions summed; rollups."""
    with connect(conninfo) as conn:

        def leaves(relation: str) -> int:
            return conn.execute(
                "SELECT coalesce(sum(pg_relation_size(relid, 'main') + pg_relation_size(relid,"
                " 'fsm') + pg_relation_size(relid, 'vm')), 0)"
                " FROM pg_partition_tree(%s::regclass) WHERE isleaf",
                (relation,),
            ).fetchone()[0]

        sizes = {"position (table)": leaves("position")}
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = 'position'::regclass ORDER BY c.relname"
        ).fetchall():
            sizes[f"  {name}"] = leaves(name)
        for table in ("position_rollup", "position_daily_rollup", "position_weekly_rollup"):
            sizes[f"{table} (table + indexes)"] = conn.execute(
                "SELECT pg_total_relation_size(%s::regclass)", (table,)
            ).fetchone()[0]
        sizes["database"] = conn.execute("SELECT pg_database_size(current_database())").fetchone()[
            0
        ]
        return {name: int(size) for name, size in sizes.items()}


def check_disk(small: Database, big_rows: int) -> None:
    """Refuse a big load that would not fit, judged from the small database's size."""
    with connect(small.conninfo) as conn:
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
    # Only the server's own host can be checked; we run on loopback, so it is ours,
    # unless the data directory is not ours to look at.
    path = data_dir if os.access(data_dir, os.F_OK) else "/"
    free = shutil.disk_usage(path).free
    estimate = small.sizes["database"] * big_rows / small.shape.rows
    wal_room = 4 * 1024**3
    print(
        f"\ndisk: the big database should take about {estimate / 1e9:,.1f} GB "
        f"({small.sizes['database'] / 1e6 / (small.shape.rows / 1e6):,.0f} MB per million "
        f"snapshots on the small one); {free / 1e9:,.1f} GB free on {path}",
        flush=True,
    )
    if estimate + wal_room > free:
        raise BenchError(
            f"not enough disk for {big_rows:,} snapshots: about {estimate / 1e9:.0f} GB "
            f"plus WAL, {free / 1e9:.0f} GB free; try --rows "
            f"{int((free - wal_room) / estimate * big_rows * 0.8):,}"
        )


# ----------------------------------------------------------------------- measuring


@dataclass
class Figure:
    """One measure on one database: latency percentiles and a rate."""

    p50_ms: float
    p99_ms: float
    rate: float  # req/s for a page, rows/s for the export and ingest
    cpu_ms: float | None = None  # server + PostgreSQL CPU per request
    other_cpus: float | None = None


@dataclass
class Endpoint:
    name: str
    kind: str  # "page", "export" or "ingest": what the targets are
    path: str = ""
    mark: str = ""


def backend_cpu(database: str) -> float:
    """CPU seconds so far of the PostgreSQL backends connected to `database` (Linux).

    Only ours: other people's backends on the same server come and go, and counting
    every postgres process would add their work, or subtract it when they exit.
    """
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read()
            with open(f"/proc/{entry}/stat") as f:
                comm, rest = f.read().rsplit(")", 1)
        except OSError:
            continue
        # A backend's title: "postgres: 15/main: <user> <database> <client> <state>".
        if comm.endswith("(postgres") and f" {database} ".encode() in title:
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU per request of the server and its database's backends, and what other
    processes kept busy meanwhile."""

    def __init__(self, server, database: str):
        self.server = server
        self.database = database

    def _sample(self):
        # The client: wrk is a reaped child, the downloads and batches are this process.
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (
            process_group_cpu(self.server.pid),
            backend_cpu(self.database),
            own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
            machine_busy(),
            time.monotonic(),
        )

    def __enter__(self):
        self.before = self._sample()
        return self

    def __exit__(self, *exc):
        self.after = self._sample()

    def apply(self, figure: "Figure", requests: int) -> "Figure":
        if any(x is None for x in (*self.before, *self.after)):
            return figure
        deltas = (b - a for a, b in zip(self.before, self.after, strict=True))
        server, db, own, busy, elapsed = deltas
        figure.cpu_ms = (server + db) / max(requests, 1) * 1000
        figure.other_cpus = max(0.0, busy - server - db - own) / max(elapsed, 1e-9)
        return figure


def load_endpoint(e, db: Database, server, port, cookie, args, workdir, servers) -> "Figure":
    """As bench/pages.py loads a page: a warm-up, then one measured run."""
    run = run_wrk if args.generator == "wrk" else run_python
    if args.warmup > 0:
        run(e.name, port, e.path, cookie, args.warmup, args, workdir, servers)
    with CpuMeter(server, db.name) as cpu:
        r = run(e.name, port, e.path, cookie, args.duration, args, workdir, servers)
    if r.not_ok or r.errors:
        raise BenchError(f"{e.name}: {r.not_ok} answers not 200, {r.errors} socket errors")
    print(f"  {e.name:<22} {r.requests:>8,} requests in {r.seconds:.1f} s", flush=True)
    return cpu.apply(Figure(r.p50_ms, r.p99_ms, r.rps), r.requests)


def deep_cursor(db: Database) -> str:
    """The keyset cursor of the history page half way back in time."""
    from app.positions.queries import Cursor

    middle = db.shape.first + (db.shape.end - db.shape.first) / 2
    with connect(db.conninfo) as conn:
        moment, row_id = conn.execute(
            "SELECT timestamp, id FROM position WHERE asset = %s AND timestamp <= %s"
            " ORDER BY timestamp DESC, id DESC LIMIT 1",
            (HISTORY_ASSET, middle),
        ).fetchone()
    return Cursor(moment, row_id).encode()


def endpoints(db: Database) -> list[Endpoint]:
    """The GET endpoints measured, each asking both databases for the same thing."""
    end = db.shape.end
    found = [
        Endpoint("/", "page", "/", 'id="overview"'),
        Endpoint("history, first page", "page", f"/positions/{HISTORY_ASSET}", 'id="history"'),
        Endpoint(
            "history, page half way",
            "page",
            f"/positions/{HISTORY_ASSET}?cursor={deep_cursor(db)}",
            'id="history"',
        ),
        Endpoint("value over time, 24h", "page", "/value", 'id="value-label"'),
        Endpoint("value over time, 30d", "page", "/value?range=30d", 'id="value-label"'),
        Endpoint("value series, 24h", "page", "/value/series", '"desk"'),
        Endpoint("value series, 30d", "page", "/value/series?range=30d", '"desk"'),
    ]
    for name, span in CHART_RANGES:
        query = "" if span is None else f"?from={int((end - span).timestamp())}"
        found.append(
            Endpoint(
                f"chart {name}",
                "page",
                f"/positions/{HISTORY_ASSET}/series{query}",
                '"point_count"',
            )
        )
    return found


def download(port: int, path: str, cookie: str) -> tuple[int, float]:
    """GET a CSV export to the end; (data rows, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        began = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie})
        response = conn.getresponse()
        lines = 0
        while chunk := response.read(1 << 20):
            lines += chunk.count(b"\n")
        seconds = time.perf_counter() - began
        if response.status != 200:
            raise BenchError(f"GET {path} answered {response.status}")
        return lines - 1, seconds
    finally:
        conn.close()


def export_series(db: Database, span: timedelta, server, port: int, cookie: str) -> Figure:
    """Download one series' CSV over the `span` up to the newest minute, EXPORT_DOWNLOADS
    times in turn; p50/p99 per download, rows/s of the median one."""
    end = db.shape.end
    # The newest minute included, as on a page: `to` is exclusive.
    path = (
        f"/positions.csv?asset={HISTORY_ASSET}&account={EXPORT_ACCOUNT}"
        f"&from={iso_z(end - span)}&to={iso_z(end + timedelta(minutes=1))}"
    )
    with connect(db.conninfo) as conn:
        expected = conn.execute(
            "SELECT count(*) FROM position WHERE asset = %s AND account = %s"
            " AND timestamp >= %s AND timestamp < %s",
            (HISTORY_ASSET, EXPORT_ACCOUNT, end - span, end + timedelta(minutes=1)),
        ).fetchone()[0]
    timings = []
    with CpuMeter(server, db.name) as cpu:
        for _ in range(EXPORT_DOWNLOADS):
            rows, seconds = download(port, path, cookie)
            if rows != expected:
                raise BenchError(f"the export gave {rows:,} rows, not {expected:,}")
            timings.append(seconds)
    median = sorted(timings)[len(timings) // 2]
    print(
        f"  {'export':<22} {EXPORT_DOWNLOADS} downloads of {rows:,} rows, median {median:.2f} s",
        flush=True,
    )
    figure = Figure(percentile_ms(timings, 0.5), percentile_ms(timings, 0.99), rows / median)
    return cpu.apply(figure, len(timings))


def ingest_bodies(start: datetime, batches: int) -> list[bytes]:
    """Batches of 1,000 snapshots, each series' INGEST_STEP apart after `start`."""
    per_series = INGEST_BATCH // SERIES
    bodies = []
    for b in range(batches):
        positions = []
        for j in range(per_series):
            step = b * per_series + j + 1
            moment = iso_z(start + step * INGEST_STEP)
            for s in range(SERIES):
                asset = list(ASSETS)[s // len(ACCOUNTS)]
                decimals = ASSETS[asset][1]
                positions.append(
                    {
                        "account": ACCOUNTS[s % len(ACCOUNTS)],
                        "asset": asset,
                        "timestamp": moment,
                        "amount": f"{1_000 + (step * 7919 + s) % 2001}.{s % 10_000:04d}",
                        "price": f"{ASSETS[asset][0] * (1 + step % 11 / 1000):.{decimals}f}",
                    }
                )
        bodies.append(json.dumps({"positions": positions}, separators=(",", ":")).encode())
    return bodies


def post_ingest(port: int, token: str, bodies: list[bytes]) -> list[float]:
    """POST each body in turn on one connection; seconds per batch."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    timings = []
    for body in bodies:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            began = time.perf_counter()
            conn.request("POST", "/api/v1/positions", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            timings.append(time.perf_counter() - began)
        finally:
            conn.close()
        if response.status != 200 or json.loads(answer).get("inserted") != INGEST_BATCH:
            raise BenchError(f"ingest answered {response.status}: {answer[:300]!r}")
    return timings


def ingest(db: Database, server, port: int, args) -> Figure:
    with connect(db.conninfo) as conn:
        start = conn.execute("SELECT max(timestamp) FROM latest_position").fetchone()[0]
    bodies = ingest_bodies(start, args.ingest_warmup + args.ingest_batches)
    post_ingest(port, db.token, bodies[: args.ingest_warmup])
    with CpuMeter(server, db.name) as cpu:
        timings = post_ingest(port, db.token, bodies[args.ingest_warmup :])
    print(
        f"  {'ingest':<22} {len(timings)} batches of {INGEST_BATCH:,} in {sum(timings):.1f} s",
        flush=True,
    )
    figure = Figure(
        percentile_ms(timings, 0.5),
        percentile_ms(timings, 0.99),
        INGEST_BATCH * len(timings) / sum(timings),
    )
    return cpu.apply(figure, len(timings))


def add_waiting(db: Database) -> None:
    """A snapshot of each series 30 s after the end, not folded into the rollups: what a
    chart finds between two passes of the worker while the trading system reports."""
    with connect(db.conninfo) as conn:
        conn.execute(
            "INSERT INTO position (account, asset, timestamp, amount, price, received_at)"
            " SELECT account, asset, timestamp + interval '30 seconds', amount, price, now()"
            " FROM latest_position"
        )
        conn.commit()


def remove_waiting(db: Database) -> None:
    with connect(db.conninfo) as conn:
        conn.execute("DELETE FROM position WHERE timestamp > %s", (db.shape.end,))
        conn.commit()


def restore_loaded(db: Database) -> None:
    """Take the ingested batches out again, so that a kept database holds what was loaded.

    Else they would be the newest rows of the next run's pages and short ranges. The
    rollups of their hours and days are rebuilt by the app's own refold, after a
    catch-up, and the id sequence goes back to the loaded rows' newest id.
    """
    from app import create_app
    from app.extensions import db as sa
    from app.positions.refold import refold_hours
    from app.positions.rollup import HOUR, catch_up, hour_floor

    end = db.shape.end
    with connect(db.conninfo) as conn:
        conn.execute("DELETE FROM position WHERE timestamp > %s", (end,))
        # And their ids: the chart then knows that none waits above the watermark.
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('position', 'id'), max(id)) FROM position"
        )
        conn.execute(
            "UPDATE latest_position AS l SET timestamp = p.timestamp, amount = p.amount,"
            " price = p.price FROM position AS p WHERE p.account = l.account"
            " AND p.asset = l.asset AND p.timestamp = %s",
            (end,),
        )
        conn.commit()
    app = create_app(bench_settings(db.url, db.secret_key))
    with app.app_context():
        catch_up()
        refold_hours(hour_floor(end), hour_floor(end) + HOUR)
        sa.session.commit()
        sa.session.remove()
        sa.engine.dispose()


def measure_database(
    db: Database, export_span: timedelta, args, workdir: Path, servers: Processes
) -> dict:
    """Serve the database and measure every endpoint; {name: (kind, Figure)}."""
    port = free_port()
    name = f"app-{db.label}"
    proc = servers.start(
        name,
        [*gunicorn_args(args.workers, port), "--timeout", "300"],
        app_env(db.url, db.secret_key),
    )
    figures = {}
    try:
        wait_ready(servers, name, proc, port)
        cookie = log_in(port)
        found = endpoints(db)
        sizes = {e.name: check_page(port, e.path, cookie, e.mark) for e in found}
        print(
            f"\n{db.label}: gunicorn --workers {args.workers} (sync) on :{port}, "
            f"{os.cpu_count()} CPUs{other_load()}; answers: "
            + ", ".join(f"{n} {size:,} B" for n, size in sizes.items()),
            flush=True,
        )
        for e in found:
            figure = load_endpoint(e, db, proc, port, cookie, args, workdir, servers)
            figures[e.name] = (e.kind, figure)
        # As on a live desk between two passes of the worker: the long charts again, with
        # a snapshot of each series waiting above the rollups' watermark.
        add_waiting(db)
        for e in found:
            if e.name in WAITING_CHARTS:
                waiting = Endpoint(f"{e.name}, 20 waiting", e.kind, e.path, e.mark)
                figure = load_endpoint(waiting, db, proc, port, cookie, args, workdir, servers)
                figures[waiting.name] = (e.kind, figure)
        remove_waiting(db)
        # Still signed in, or we measured redirects to /login.
        for e in found:
            check_page(port, e.path, cookie, e.mark)
        export = f"export {export_span // timedelta(hours=1):,} h of one series"
        figures[export] = ("export", export_series(db, export_span, proc, port, cookie))
        figures["ingest 1,000-row batch"] = ("ingest", ingest(db, proc, port, args))
    finally:
        servers.stop(proc)
    restore_loaded(db)
    return figures


def other_load() -> str:
    busy = busy_cpus(1.0)
    if busy is None:
        return ""
    note = " (not quiet: results will be noisy)" if busy > OTHER_LOAD_WARNING else ""
    return f", {busy:.2f} CPU busy before the runs{note}"


# -------------------------------------------------------------------------- report


def verdict(kind: str, small: Figure, big: Figure) -> list[tuple[str, bool]]:
    growth = big.p99_ms / small.p99_ms if small.p99_ms else float("inf")
    checks = [(f"p99 {growth:.2f}x small <= {MAX_GROWTH:g}x", growth <= MAX_GROWTH)]
    if kind == "page":
        checks.insert(0, (f"p99 {big.p99_ms:.1f} ms < {MAX_PAGE_P99_MS:g} ms",
                          big.p99_ms < MAX_PAGE_P99_MS))  # fmt: skip
    else:
        share = big.rate / small.rate if small.rate else 0.0
        checks.append((f"rows/s {share:.0%} of small >= 50%", share >= 1 / MAX_GROWTH))
    return checks


def report(small: Database, big: Database, measured: dict[str, dict]) -> bool:
    print(f"\n== results: {big.shape.rows:,} snapshots (big) against {small.shape.rows:,} (small)")
    header = (
        f"{'measure':<30} {'small p50':>9} {'p99':>7} {'big p50':>9} {'p99':>7} {'p99 x':>6}"
        f" {'small rate':>14} {'big rate':>14} {'CPU ms s/b':>11} {'CPU x':>6} {'other CPU':>9}"
        "  result"
    )
    print(header)
    print("-" * len(header))
    ok = True
    noisy = []
    for name, (kind, s) in measured["small"].items():
        b = measured["big"][name][1]
        unit = "req/s" if kind == "page" else "rows/s"
        checks = verdict(kind, s, b)
        passed = all(p for _, p in checks)
        ok = ok and passed
        cpu = cpu_growth = "n/a"
        if s.cpu_ms and b.cpu_ms:
            cpu, cpu_growth = f"{s.cpu_ms:.1f}/{b.cpu_ms:.1f}", f"{b.cpu_ms / s.cpu_ms:.2f}"
        others = [x for x in (s.other_cpus, b.other_cpus) if x is not None]
        other = f"{max(others):.2f}" if others else "n/a"
        if others and max(others) > OTHER_LOAD_WARNING:
            noisy.append(name)
        growth = b.p99_ms / s.p99_ms if s.p99_ms else float("inf")
        print(
            f"{name:<30} {s.p50_ms:>9.1f} {s.p99_ms:>7.1f} {b.p50_ms:>9.1f} {b.p99_ms:>7.1f}"
            f" {growth:>6.2f} {f'{s.rate:,.0f} {unit}':>14} {f'{b.rate:,.0f} {unit}':>14}"
            f" {cpu:>11} {cpu_growth:>6} {other:>9}  {'PASS' if passed else 'FAIL'}"
        )
    print(
        "\np50/p99 in ms; p99 x: big p99 / small p99. rate: req/s under load for pages"
        f" (wrk), rows/s for the export (median of {EXPORT_DOWNLOADS} downloads) and for"
        " ingest (one client, batch after batch). CPU ms s/b: gunicorn + PostgreSQL CPU per"
        " request (per download, per batch), small/big; CPU x: big / small, steadier than"
        " latency on a shared machine. other CPU: cores that other"
        " processes kept busy meanwhile (the larger of the two runs)."
    )
    if noisy:
        print(
            f"note: other processes competed for the CPUs during {', '.join(noisy)}; "
            "latencies there are unreliable (CPU ms per request much less so)"
        )
    print(
        f"targets: pages p99 < {MAX_PAGE_P99_MS:g} ms and big p99 <= {MAX_GROWTH:g}x small; "
        f"export and ingest: big p99 <= {MAX_GROWTH:g}x small, big rows/s >= half of small"
    )
    for name, (kind, s) in measured["small"].items():
        for text, passed in verdict(kind, s, measured["big"][name][1]):
            print(f"  {'PASS' if passed else 'FAIL'}  {name:<30} {text}")
    return ok


def report_sizes(small: Database, big: Database) -> None:
    print(f"\n== sizes and load: MB per million snapshots (small {small.shape.rows:,}, big "
          f"{big.shape.rows:,})")  # fmt: skip
    header = f"{'relation':<42} {'small MB':>10} {'per M':>7} {'big MB':>10} {'per M':>7}"
    print(header)
    print("-" * len(header))
    for name, size in big.sizes.items():
        s = small.sizes.get(name, 0)
        print(
            f"{name:<42} {s / 1e6:>10,.1f} {s / 1e6 / (small.shape.rows / 1e6):>7.1f}"
            f" {size / 1e6:>10,.1f} {size / 1e6 / (big.shape.rows / 1e6):>7.1f}"
        )
    print()
    for db in (small, big):
        steps = "; ".join(f"{name} {seconds:.1f} s" for name, seconds in db.load.steps)
        print(f"{db.label} load ({db.load.seconds(''):.0f} s in all): {steps}")


# ---------------------------------------------------------------------------- main


def reused_database(label: str, name: str, args) -> Database:
    """A database kept by an earlier run (--keep): its shape read back from its rows."""
    url, conninfo = postgres_urls(args.postgres_url, name)
    with connect(conninfo) as conn:
        first, minutes = conn.execute(
            "SELECT min(timestamp), count(*) FILTER (WHERE extract(second FROM timestamp) = 0)"
            " FROM position WHERE account = %s AND asset = %s",
            (EXPORT_ACCOUNT, HISTORY_ASSET),
        ).fetchone()
        token = conn.execute("SELECT 1 FROM api_token LIMIT 1").fetchone()
    if not minutes or token is None:
        raise BenchError(f"{name} does not look like a database this benchmark built")
    shape = Shape(minutes, first + timedelta(minutes=minutes - 1))
    db = Database(label, name, url, conninfo, shape, args.secret_key)
    # The ingest token's secret is shown once: a reused database gets a new one.
    from app import create_app
    from app.auth.models import User
    from app.auth.passwords import hash_password
    from app.extensions import db as sa

    app = create_app(bench_settings(url, args.secret_key))
    with app.app_context():
        db.token = add_ingest_user(f"bench-ingest-{secrets.token_hex(3)}", "bench ingest")
        # The viewer's password is this run's: each run draws its own.
        viewer = sa.session.execute(sa.select(User).filter_by(username=USERNAME)).scalar_one()
        viewer.password_hash = hash_password(PASSWORD)
        sa.session.commit()
        sa.session.remove()
        sa.engine.dispose()
    restore_loaded(db)
    db.sizes = table_sizes(conninfo)
    print(f"{label}: reusing {name}, {shape.rows:,} snapshots up to {shape.end:%Y-%m-%d %H:%M}")
    return db


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000_000, help="snapshots, big database")
    parser.add_argument(
        "--small-rows", type=int, default=1_000_000, help="snapshots, the reference database"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--load-jobs", type=int, default=2, help="connections loading at once")
    parser.add_argument("--ingest-batches", type=int, default=100, help="timed ingest batches")
    parser.add_argument("--ingest-warmup", type=int, default=5, help="untimed batches first")
    parser.add_argument(
        "--no-verify-rollups",
        dest="verify_rollups",
        action="store_false",
        help="skip checking the SQL rollups against the app's fold on the small database",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep both databases (and the temporary directory)"
    )
    parser.add_argument(
        "--reuse",
        nargs=2,
        metavar=("SMALL", "BIG"),
        help="measure two databases kept by an earlier run instead of loading new ones",
    )
    parser.add_argument("--secret-key", default=secrets.token_hex(32), help=argparse.SUPPRESS)
    add_postgres_url(parser, "the two scratch databases")
    args = parser.parse_args(argv)
    if not args.postgres_url:
        parser.error("--postgres-url (or BENCH_POSTGRES_URL) is required")
    check_loopback(parser, args.postgres_url)
    if not SERIES * 120 <= args.small_rows <= args.rows:
        parser.error(f"--small-rows at least {SERIES * 120:,} (2 hours) and <= --rows")
    if min(args.workers, args.connections, args.load_jobs, args.ingest_batches) < 1:
        parser.error("--workers, --connections, --load-jobs, --ingest-batches must be >= 1")
    args.generator = "wrk" if shutil.which("wrk") else "python"
    args.wrk = shutil.which("wrk")
    return args


def run(args, workdir: Path, servers: Processes, scratch: ScratchDatabases) -> bool:
    if args.reuse:
        small = reused_database("small", args.reuse[0], args)
        big = reused_database("big", args.reuse[1], args)
    else:
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        base = f"bench_{secrets.token_hex(4)}_scale"
        made = []
        for label, rows in (("small", args.small_rows), ("big", args.rows)):
            name = f"{base}_{label}"
            url, conninfo = postgres_urls(args.postgres_url, name)
            shape = Shape(rows // SERIES, end)
            made.append(Database(label, name, url, conninfo, shape, args.secret_key))
        small, big = made
        scratch.create(small.name)
        build_database(small, args)
        check_disk(small, big.shape.rows)
        scratch.create(big.name)
        build_database(big, args)
    if args.keep:
        print(f"\nkept: --reuse {small.name} {big.name}")
        scratch.names.clear()  # not dropped at the end
    # The bounded export asks both for the same rows: within the small one's history.
    hours = (small.shape.end - small.shape.first) // timedelta(hours=1)
    export_span = min(EXPORT_SPAN, timedelta(hours=hours))
    measured = {
        db.label: measure_database(db, export_span, args, workdir, servers) for db in (small, big)
    }
    report_sizes(small, big)
    return report(small, big, measured)


def main(argv=None) -> int:
    args = parse_args(argv)
    handle_signals()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows in a log as it happens
    workdir = Path(tempfile.mkdtemp(prefix="tm-bench-scale-"))
    servers = Processes(workdir)
    scratch = ScratchDatabases(args.postgres_url)
    try:
        print(
            f"PostgreSQL {scratch.check()}; {os.cpu_count()} CPUs{other_load()}; "
            f"load: {args.generator}, {args.connections} connections, {args.warmup:g} s "
            f"warm-up then {args.duration:g} s per endpoint"
        )
        return 0 if run(args, workdir, servers, scratch) else 1
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        servers.stop_all()
        scratch.drop_all()
        remove_workdir(workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
