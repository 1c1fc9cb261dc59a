"""Series benchmark: the chart endpoint on 1,000,000 snapshots of one asset.

    .venv/bin/python bench/series.py                                 # SQLite only
    .venv/bin/python bench/series.py --postgres-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/test            # SQLite and PostgreSQL
    .venv/bin/python bench/series.py --rows 100000 --requests 10     # a quick one

For each backend (SQLite always; PostgreSQL when --postgres-url or BENCH_POSTGRES_URL
is set), it:

1. creates a scratch database with the real migrations (a SQLite file in a temporary
   directory; a PostgreSQL database bench_<random>_series, dropped at the end);
2. bulk-loads --rows snapshots of one asset, two accounts, one a minute each, ending
   now (sqlite3 executemany / psycopg COPY, in the app's storage format); the newest
   snapshot of each account goes through `ingest.record`, so the latest-position rows
   come from the app's own write path; adds a viewer; folds every snapshot into the
   hourly rollups (as `flask alerts run` keeps them current in production) and prints
   how long that took, wall and CPU, and its rows/s;
3. logs in through the real login form with Flask's test client (production config);
4. for the 1 h, 24 h, 30 d and all-time ranges: --requests timed GETs of
   /positions/BTC/series after --warmup untimed ones, and in the same run the same
   number of plain fetches of that range's rows with the driver (the reference);
5. prints p50/p99 of both, their ratio, the rows in the range and the points
   returned, and PASS/FAIL per range on SQLite: p99 < 100 ms with <= 2,000 points.

The exit status is 0 when every SQLite range passes, 1 when one fails, 2 on error.
"""

import argparse
import contextlib
import gc
import secrets
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

from _common import (
    OTHER_LOAD_WARNING,
    SQLITE_DATETIME,
    BenchError,
    ScratchDatabases,
    add_postgres_url,
    app_env,
    bench_settings,
    check_loopback,
    handle_signals,
    migrate_database,
    percentile_ms,
    postgres_urls,
    remove_workdir,
)
from _processes import (
    machine_busy,
)

ASSET = "BTC"
ACCOUNTS = ("main", "hedge")
USERNAME = "bench"
PASSWORD = "bench-password-" + secrets.token_hex(8)
BASE_URL = "https://localhost"  # the production cookie is Secure
RANGES = (
    ("1 h", timedelta(hours=1)),
    ("24 h", timedelta(days=1)),
    ("30 d", timedelta(days=30)),
    ("all", None),
)
MAX_P99_MS = 100.0
MAX_POINTS = 2_000


@dataclass
class Measured:
    name: str
    p50_ms: float
    p99_ms: float
    raw_p50_ms: float
    raw_p99_ms: float
    rows: int
    points: int
    downsampled: bool
    cpu_ms: float


# --------------------------------------------------------------------------- data


def snapshots(rows_per_account: int, end: datetime):
    """(account, moment, amount, price) of every bulk row: all but the newest per account."""
    for n, account in enumerate(ACCOUNTS):
        amount, price = 1_000 + 100 * n, 62_000.0
        for i in range(rows_per_account - 1, 0, -1):
            # A trade about once an hour, and a one-minute spike every 1,000 rows.
            if i % 60 == 0:
                amount += (i * 7919 % 201) - 100
            spike = 5_000 if i % 1_000 == 0 else 0
            price += ((i * 104729) % 2001 - 1000) / 100
            yield account, end - timedelta(minutes=i), f"{amount + spike:.4f}", f"{price:.2f}"


def load_sqlite(path: Path, rows_per_account: int, end: datetime) -> None:
    received = end.strftime(SQLITE_DATETIME)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        with conn:
            conn.executemany(
                "INSERT INTO position (account, asset, timestamp, amount, price, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (account, ASSET, moment.strftime(SQLITE_DATETIME), amount, price, received)
                    for account, moment, amount, price in snapshots(rows_per_account, end)
                ),
            )
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def load_postgres(conninfo: str, rows_per_account: int, end: datetime) -> None:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        with conn.cursor() as cur:
            columns = "account, asset, timestamp, amount, price, received_at"
            with cur.copy(f"COPY position ({columns}) FROM STDIN") as copy:
                for account, moment, amount, price in snapshots(rows_per_account, end):
                    copy.write_row((account, ASSET, moment, amount, price, end))
        conn.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE position")


def finish_database(app, end: datetime) -> int:
    """The newest snapshots through ingest.record, a viewer; the row count."""
    from app.auth.models import Role, User
    from app.auth.passwords import hash_password
    from app.extensions import db
    from app.positions.ingest import Snapshot, record
    from app.positions.models import Position

    with app.app_context():
        newest = [
            Snapshot(account, ASSET, end, Decimal("1000.0000"), Decimal("62000.00"))
            for account in ACCOUNTS
        ]
        if record(newest).inserted != len(ACCOUNTS):
            raise BenchError("ingest.record did not store the newest snapshots")
        db.session.add(
            User(username=USERNAME, password_hash=hash_password(PASSWORD), role=Role.VIEWER)
        )
        db.session.commit()
        return db.session.execute(db.select(db.func.count()).select_from(Position)).scalar_one()


@dataclass
class CatchUp:
    rows: int
    wall_s: float
    cpu_s: float

    def line(self) -> str:
        rate = self.rows / self.wall_s if self.wall_s else float("inf")
        return (
            f"{self.rows:,} snapshots folded into hourly rollups in {self.wall_s:.1f} s wall, "
            f"{self.cpu_s:.1f} s CPU of this process ({rate:,.0f} rows/s)"
        )


def bring_rollups_current(app) -> CatchUp:
    """Fold every loaded snapshot into the hourly rollups, as `flask alerts run` keeps them."""
    from app.positions.rollup import catch_up

    with app.app_context():
        began, began_cpu = time.perf_counter(), time.process_time()
        rows = catch_up()
        return CatchUp(rows, time.perf_counter() - began, time.process_time() - began_cpu)


# ------------------------------------------------------------------------ measure


def log_in(app):
    """A test client logged in through the real form, over the Secure cookie's https."""
    import re

    client = app.test_client()
    page = client.get(f"{BASE_URL}/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page)
    if not token:
        raise BenchError("no CSRF token on the login page")
    response = client.post(
        f"{BASE_URL}/login",
        data={"csrf_token": token.group(1), "username": USERNAME, "password": PASSWORD},
        headers={"Referer": f"{BASE_URL}/login"},
    )
    if response.status_code != 302 or "/login" in (response.location or ""):
        raise BenchError(f"login failed: {response.status_code}")
    return client


# The reference: the range's rows, fetched with the driver and nothing else. All time
# is "from the epoch on", so one statement serves every range.
RAW_SQLITE = (
    "SELECT account, timestamp, amount, price FROM position "
    "WHERE asset = ? AND timestamp >= ? ORDER BY timestamp"
)
RAW_POSTGRES = (
    "SELECT account, timestamp, amount, price FROM position "
    "WHERE asset = %s AND timestamp >= %s ORDER BY timestamp"
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def raw_fetcher(backend: str, url: str, conninfo: str | None):
    """A function fetching a range's rows with the driver, and one closing it."""
    if backend == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))

        def fetch(start):
            moment = (start or EPOCH).strftime(SQLITE_DATETIME)
            return conn.execute(RAW_SQLITE, (ASSET, moment)).fetchall()

        return fetch, conn.close
    import psycopg

    conn = psycopg.connect(conninfo, autocommit=True)

    def fetch(start):
        return conn.execute(RAW_POSTGRES, (ASSET, start or EPOCH)).fetchall()

    return fetch, conn.close


def measure_ranges(backend, app, end, args, url, conninfo=None) -> list[Measured]:
    client = log_in(app)
    # As wsgi.py does in production: what is loaded by now (here: the million rows
    # just written) is frozen out of the collector's full passes.
    gc.collect()
    gc.freeze()
    fetch, close = raw_fetcher(backend, url, conninfo)
    results = []
    try:
        for name, span in RANGES:
            start = None if span is None else end - span
            path = f"{BASE_URL}/positions/{ASSET}/series"
            query = {} if start is None else {"from": start.isoformat()}
            body = None
            timings, cpu = [], 0.0
            for i in range(args.warmup + args.requests):
                began, began_cpu = time.perf_counter(), time.process_time()
                response = client.get(path, query_string=query)
                elapsed = time.perf_counter() - began
                if response.status_code != 200:
                    raise BenchError(f"{name}: {response.status_code} from {path}")
                if i >= args.warmup:
                    timings.append(elapsed)
                    cpu += time.process_time() - began_cpu
                body = response.get_json()
            raw_timings, rows = [], 0
            for i in range(args.warmup + args.requests):
                began = time.perf_counter()
                rows = len(fetch(start))
                if i >= args.warmup:
                    raw_timings.append(time.perf_counter() - began)
            results.append(
                Measured(
                    name,
                    percentile_ms(timings, 0.5),
                    percentile_ms(timings, 0.99),
                    percentile_ms(raw_timings, 0.5),
                    percentile_ms(raw_timings, 0.99),
                    rows,
                    body["point_count"],
                    body["downsampled"],
                    cpu / args.requests * 1000,
                )
            )
            print(f"  {name:<5} measured: {body['point_count']:,} points from {rows:,} rows")
    finally:
        close()
    return results


# ------------------------------------------------------------------------ backends


@contextlib.contextmanager
def loaded_app(backend: str, url: str, load, rows_per_account: int, end: datetime, note=""):
    """The app on the migrated database `url` after `load`, its rollups current; then disposed."""
    from app import create_app
    from app.extensions import db

    secret_key = secrets.token_hex(32)
    migrate_database(app_env(url, secret_key))
    began = time.perf_counter()
    load(rows_per_account, end)
    app = create_app(bench_settings(url, secret_key))
    total = finish_database(app, end)
    print(f"{backend}: {total:,} snapshots loaded in {time.perf_counter() - began:.1f} s")
    print(f"{backend}: {bring_rollups_current(app).line()}{note}")
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()


def bench_sqlite(args, workdir: Path, end: datetime) -> tuple[list[Measured], float | None]:
    path = workdir / "series.sqlite3"
    url = f"sqlite:///{path}"
    load = partial(load_sqlite, path)
    with loaded_app("sqlite", url, load, args.rows // len(ACCOUNTS), end) as app:
        # CPU the rest of the machine used meanwhile: SQLite runs inside this process.
        busy_before, cpu_before, began = machine_busy(), time.process_time(), time.monotonic()
        measured = measure_ranges("sqlite", app, end, args, url)
        busy_after, own = machine_busy(), time.process_time() - cpu_before
        other_load = None
        if busy_before is not None and busy_after is not None:
            other_load = max(0.0, busy_after - busy_before - own) / (time.monotonic() - began)
        return measured, other_load


def bench_postgres(args, scratch: ScratchDatabases, end: datetime) -> list[Measured]:
    name = f"bench_{secrets.token_hex(4)}_series"
    scratch.create(name)
    url, conninfo = postgres_urls(args.postgres_url, name)
    load = partial(load_postgres, conninfo)
    note = "; the server's CPU not counted"
    with loaded_app("postgresql", url, load, args.rows // len(ACCOUNTS), end, note) as app:
        return measure_ranges("postgresql", app, end, args, url, conninfo)


# -------------------------------------------------------------------------- report


def report(results: dict[str, list[Measured]], other_load: float | None) -> bool:
    print()
    header = (
        f"{'backend':<11} {'range':<5} {'rows':>9} {'points':>7} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'CPU ms':>7} {'raw p50':>8} {'raw p99':>8} {'p50/raw':>8}  result"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for backend, measured in results.items():
        for m in measured:
            ratio = m.p50_ms / m.raw_p50_ms if m.raw_p50_ms else float("inf")
            result = ""
            if backend == "sqlite":
                passed = m.p99_ms < MAX_P99_MS and m.points <= MAX_POINTS
                ok = ok and passed
                result = "PASS" if passed else "FAIL"
            print(
                f"{backend:<11} {m.name:<5} {m.rows:>9,} {m.points:>7,} {m.p50_ms:>8.1f}"
                f" {m.p99_ms:>8.1f} {m.cpu_ms:>7.1f} {m.raw_p50_ms:>8.1f} {m.raw_p99_ms:>8.1f}"
                f" {ratio:>7.2f}x  {result}"
            )
    print()
    print(f"target (SQLite): every range p99 < {MAX_P99_MS:.0f} ms with <= {MAX_POINTS:,} points")
    if other_load is not None and other_load > OTHER_LOAD_WARNING:
        print(
            f"note: other processes kept {other_load:.2f} CPU busy during the SQLite run; "
            "wall times are unreliable (CPU ms, the app's own CPU per request, much less so)."
        )
    return ok


# ---------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="snapshots to load")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per range")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first")
    add_postgres_url(parser, "a scratch database")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if not 1_000 <= args.rows <= 20_000_000 or args.requests < 1 or args.warmup < 0:
        parser.error("--rows 1,000 to 20,000,000, --requests >= 1, --warmup >= 0")
    check_loopback(parser, args.postgres_url)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    handle_signals()
    workdir = Path(tempfile.mkdtemp(prefix="tm-bench-series-"))
    scratch = ScratchDatabases(args.postgres_url) if args.postgres_url else None
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        if scratch:
            print(f"postgresql: server {scratch.check()}")
        sqlite_results, other_load = bench_sqlite(args, workdir, end)
        results = {"sqlite": sqlite_results}
        if scratch:
            results["postgresql"] = bench_postgres(args, scratch, end)
        return 0 if report(results, other_load) else 1
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if scratch:
            scratch.drop_all()
        remove_workdir(workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
