"""Ingest benchmark: POST /api/v1/positions against a plain executemany and a raw COPY.

    .venv/bin/python bench/ingest.py                                  # SQLite only
    .venv/bin/python bench/ingest.py --postgres-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/test             # SQLite and PostgreSQL
    .venv/bin/python bench/ingest.py --batches 20 --batch-size 500    # a quick one
    .venv/bin/python bench/ingest.py --postgres-url ... --sustain 600 # 10 minutes, 2 apps

For each backend (SQLite always; PostgreSQL when --postgres-url or BENCH_POSTGRES_URL
is set), it:

1. creates scratch databases with the real migrations: one for the app, one per
   reference run (SQLite files in a temporary directory; PostgreSQL databases named
   bench_<random>_app / _raw<n>, created through the given URL, dropped at the end);
2. creates a user and an `ingest` token through the app's own code;
3. serves the real app (`wsgi:app`, production config, rate limit raised out of the
   way) with gunicorn --workers sync workers on a free loopback port;
4. posts --batches batches of --batch-size snapshots (10 assets x 2 accounts, 1-second
   spacing, exact decimal strings), JSON bodies serialised before the clock starts,
   from --clients threads, each with its own keep-alive requests.Session (the sync
   workers close the connection after every answer anyway); every answer must be a
   200 with inserted == --batch-size;
5. inserts the same rows into the reference database with the driver's executemany
   (sqlite3 / psycopg 3, which pipelines executemany), one transaction per batch, the
   values as the app stores them, with the app's SQLite settings (WAL,
   synchronous=NORMAL); on PostgreSQL also with a plain COPY FROM STDIN into the
   table; --raw-runs times each, each into its own fresh database, and the fastest
   run counts (it takes a second or two, so one hiccup would swing it);
6. checks every database now holds exactly the same rows, then prints rows/s, the
   ratios app/raw and app/COPY, per-batch latency and PASS/FAIL against the target
   (SQLite: app >= 25% of executemany; PostgreSQL: app >= 50% of COPY).

With --sustain SECONDS (PostgreSQL only) it runs instead two app servers on two
ports, as on two hosts, and the alert worker as deploy/ ships it, with ten value
rules; client threads spread over both servers post new batches for SECONDS; it
prints snapshots/s over the window and per whole minute, PASS when both are at
least 20,000/s, and checks every acknowledged snapshot was stored.

A few warm-up batches (another account, same size) go to both databases untimed, so
the first requests' imports and statement compilation are not measured.

The exit status is 0 when every backend passes, 1 when one fails, 2 on error.
"""

import argparse
import json
import os
import random
import resource
import secrets
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from _common import (
    ASSET_PRICES,
    OTHER_LOAD_WARNING,
    ROOT,
    SQLITE_DATETIME,
    BenchError,
    ScratchDatabases,
    add_ingest_user,
    add_postgres_url,
    app_env,
    check_loopback,
    handle_signals,
    iso_z,
    make_app,
    migrate_database,
    percentile_ms,
    postgres_urls,
)
from _processes import (
    Processes,
    free_port,
    gunicorn_args,
    machine_busy,
    wait_ready,
)

ASSETS = ("BTC", "ETH", "SOL", "ADA", "AVAX", "DOGE", "DOT", "LINK", "LTC", "XRP")
ACCOUNTS = ("main", "hedge")
WARMUP_ACCOUNT = "warmup"
PRICES = ASSET_PRICES
START = datetime(2026, 1, 1, tzinfo=UTC)
INSERT_SQLITE = (
    "INSERT INTO position (account, asset, timestamp, amount, price, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_POSTGRES = (
    "INSERT INTO position (account, asset, timestamp, amount, price, received_at) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
COPY_POSTGRES = "COPY position (account, asset, timestamp, amount, price, received_at) FROM STDIN"
# Text for the decimals, so a lost scale ("1.50" stored as "1.5") shows as a mismatch.
SELECT_SQLITE = (
    "SELECT account, asset, timestamp, amount, price FROM position "
    "ORDER BY account, asset, timestamp"
)
SELECT_POSTGRES = (
    "SELECT account, asset, timestamp, amount::text, price::text FROM position "
    "ORDER BY account, asset, timestamp"
)

MIN_RATIO = 0.25  # app against raw executemany (SQLite)
MIN_COPY_RATIO = 0.50  # app against raw COPY (PostgreSQL), set for 1,000-row batches
SUSTAIN_TARGET = 20_000  # snapshots/s with two app processes and the alert worker
SUSTAIN_APPS = 2  # gunicorn processes on their own ports, as on two hosts
SUSTAIN_DAYS_BACK = 60
MAX_BATCH = 10_000  # app.api.schemas.MAX_BATCH
REQUEST_TIMEOUT = (5, 120)  # connect, read seconds


# --------------------------------------------------------------------------- data

# One snapshot: account, asset, aware UTC timestamp, amount text, price text.
Row = tuple[str, str, datetime, str, str]


def make_rows(accounts, count: int, first: datetime, seed: int) -> list[Row]:
    """`count` snapshots cycling through every series, one second apart per series."""
    rng = random.Random(seed)
    series = [(account, asset) for account in accounts for asset in ASSETS]
    walk = {
        key: [PRICES[key[1]][0] * rng.uniform(0.9, 1.1), rng.uniform(-5_000, 50_000)]
        for key in series
    }
    rows: list[Row] = []
    for n in range(count):
        step, index = divmod(n, len(series))
        account, asset = series[index]
        state = walk[(account, asset)]
        state[0] *= 1 + rng.gauss(0, 0.0005)
        if rng.random() < 0.02:
            state[1] = rng.uniform(-5_000, 50_000)  # a trade; some positions are short
        decimals = PRICES[asset][1]
        rows.append(
            (
                account,
                asset,
                first + timedelta(seconds=step),
                f"{state[1]:.8f}",
                f"{state[0]:.{decimals}f}",
            )
        )
    return rows


def chunks(rows: list[Row], size: int) -> list[list[Row]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def json_body(batch: list[Row]) -> bytes:
    return json.dumps(
        {
            "positions": [
                {"account": a, "asset": s, "timestamp": iso_z(t), "amount": m, "price": p}
                for a, s, t, m, p in batch
            ]
        },
        separators=(",", ":"),
    ).encode()


def sqlite_params(batch: list[Row]) -> list[tuple]:
    """As the app binds them on SQLite: decimals via format(d, "f"), naive UTC text."""
    return [
        (
            a,
            s,
            t.astimezone(UTC).replace(tzinfo=None).strftime(SQLITE_DATETIME),
            format(Decimal(m), "f"),
            format(Decimal(p), "f"),
        )
        for a, s, t, m, p in batch
    ]


def postgres_params(batch: list[Row]) -> list[tuple]:
    """As the app binds them on PostgreSQL: Decimal and aware datetime."""
    return [(a, s, t, Decimal(m), Decimal(p)) for a, s, t, m, p in batch]


def sqlite_now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).strftime(SQLITE_DATETIME)


def postgres_now() -> datetime:
    return datetime.now(UTC)


# -------------------------------------------------------------------- databases


def create_ingest_token(env: dict) -> str:
    """Add a user with an ingest token to the database `env` points at; return its secret."""
    from app.extensions import db

    app = make_app(env)
    with app.app_context():
        try:
            secret = add_ingest_user("bench-ingest", "bench ingest")
            db.session.commit()
            return secret
        finally:
            db.session.remove()
            db.engine.dispose()


# ------------------------------------------------------------------------ servers


def start_app(servers: Processes, name: str, env: dict, workers: int) -> tuple:
    port = free_port()
    args = [*gunicorn_args(workers, port), "--timeout", "120"]
    proc = servers.start(name, args, env)
    wait_ready(servers, name, proc, port)
    return proc, port


def process_cpu(pgids: set[int]) -> tuple[float, float] | None:
    """CPU seconds so far of the live processes in the groups `pgids`, and of PostgreSQL's."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    group = postgres = 0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                comm, rest = f.read().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()  # [2] pgrp, [11] utime, [12] stime
        ticks = int(fields[11]) + int(fields[12])
        if int(fields[2]) in pgids:
            group += ticks
        elif comm.endswith("(postgres"):
            postgres += ticks
    hz = os.sysconf("SC_CLK_TCK")
    return group / hz, postgres / hz


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # the client threads, or the raw loop
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU used during a measurement: by the server, PostgreSQL, us, and everything else.

    "Other" is what the rest of the machine kept busy meanwhile: when it is well
    above zero, someone else's work competed for the CPUs and rows/s is unreliable.
    """

    def __init__(self, *server_pgids: int):
        self.pgids = set(server_pgids)
        self.server_s: float | None = None
        self.postgres_s: float | None = None
        self.other_cpus: float | None = None

    def _sample(self):
        return process_cpu(self.pgids), own_cpu(), machine_busy(), time.monotonic()

    def __enter__(self):
        self.before = self._sample()
        return self

    def __exit__(self, *exc):
        (procs0, own0, busy0, t0), (procs1, own1, busy1, t1) = self.before, self._sample()
        if procs0 is None or procs1 is None or busy0 is None or busy1 is None:
            return
        server, postgres = procs1[0] - procs0[0], procs1[1] - procs0[1]
        self.server_s, self.postgres_s = server, postgres
        accounted = server + postgres + own1 - own0
        self.other_cpus = max(0.0, (busy1 - busy0) - accounted) / max(t1 - t0, 1e-9)


# ------------------------------------------------------------------------- client


@dataclass
class Timing:
    rows: int
    seconds: float
    latencies: list[float]  # per batch, seconds
    server_cpu_s: float | None = None
    other_cpus: float | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[index] * 1000


def post_batches(
    port: int, secret: str, bodies: list[bytes], batch_size: int, clients: int, timeout: float
) -> Timing:
    """POST every body from `clients` threads; each answer must insert the whole batch."""
    import requests

    url = f"http://127.0.0.1:{port}/api/v1/positions"
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    lock = threading.Lock()
    stop = threading.Event()
    pending = list(range(len(bodies)))
    pending.reverse()
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + timeout

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                with lock:
                    if not pending:
                        return
                    index = pending.pop()
                if time.monotonic() > deadline:
                    errors.append(f"not finished within {timeout:.0f} s")
                    stop.set()
                    return
                started = time.perf_counter()
                try:
                    response = session.post(
                        url, data=bodies[index], headers=headers, timeout=REQUEST_TIMEOUT
                    )
                    elapsed = time.perf_counter() - started
                    answer = response.json() if response.status_code == 200 else None
                except (requests.RequestException, ValueError) as exc:
                    errors.append(f"batch {index}: {type(exc).__name__}: {exc}")
                    stop.set()
                    return
                if answer is None or answer.get("inserted") != batch_size:
                    errors.append(
                        f"batch {index}: HTTP {response.status_code} {response.text[:300]!r}"
                    )
                    stop.set()
                    return
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    started = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)
    finally:
        stop.set()
    seconds = time.perf_counter() - started
    if errors:
        raise BenchError("ingest failed: " + "; ".join(errors[:3]))
    return Timing(len(bodies) * batch_size, seconds, latencies)


def run_app(
    servers: Processes, name: str, env: dict, secret: str, bodies, warmup_bodies, args
) -> Timing:
    proc, port = start_app(servers, name, env, args.workers)
    try:
        post_batches(port, secret, warmup_bodies, args.batch_size, args.clients, args.timeout)
        with CpuMeter(proc.pid) as cpu:
            timing = post_batches(
                port, secret, bodies, args.batch_size, args.clients, args.timeout
            )
        timing.server_cpu_s, timing.other_cpus = cpu.server_s, cpu.other_cpus
        if proc.poll() is not None:
            raise BenchError(f"{name} died during the run:\n{servers.log_tail(name)}")
        return timing
    finally:
        servers.stop(proc)


# ---------------------------------------------------------------------- raw runs


def raw_sqlite(path: Path, warmup: list[list[tuple]], batches: list[list[tuple]]) -> Timing:
    """executemany, one transaction per batch, with the app's connection settings."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=15)
    try:
        conn.execute("PRAGMA busy_timeout = 15000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")

        def insert(params: list[tuple]) -> None:
            received_at = sqlite_now()
            conn.execute("BEGIN")
            try:
                conn.executemany(INSERT_SQLITE, [(*row, received_at) for row in params])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        for params in warmup:
            insert(params)
        return timed(insert, batches)
    finally:
        conn.close()


def raw_postgres(conninfo: str, warmup: list[list[tuple]], batches: list[list[tuple]]) -> Timing:
    """psycopg 3 executemany (pipelined), one transaction per batch."""
    import psycopg

    with psycopg.connect(conninfo, connect_timeout=10) as conn, conn.cursor() as cursor:

        def insert(params: list[tuple]) -> None:
            received_at = postgres_now()
            with conn.transaction():
                cursor.executemany(INSERT_POSTGRES, [(*row, received_at) for row in params])

        for params in warmup:
            insert(params)
        return timed(insert, batches)


def raw_postgres_copy(
    conninfo: str, warmup: list[list[tuple]], batches: list[list[tuple]]
) -> Timing:
    """psycopg 3 COPY straight into the table (text format), one transaction per batch."""
    import psycopg

    with psycopg.connect(conninfo, connect_timeout=10) as conn, conn.cursor() as cursor:

        def insert(params: list[tuple]) -> None:
            received_at = postgres_now()
            with conn.transaction(), cursor.copy(COPY_POSTGRES) as copy:
                for row in params:
                    copy.write_row((*row, received_at))

        for params in warmup:
            insert(params)
        return timed(insert, batches)


def timed(insert, batches: list[list[tuple]]) -> Timing:
    latencies = []
    with CpuMeter() as cpu:
        started = time.perf_counter()
        for params in batches:
            begun = time.perf_counter()
            insert(params)
            latencies.append(time.perf_counter() - begun)
        seconds = time.perf_counter() - started
    timing = Timing(sum(len(b) for b in batches), seconds, latencies)
    timing.other_cpus = cpu.other_cpus
    return timing


# ------------------------------------------------------------------ verification


def same_rows(app_rows: list[tuple], raw_rows: list[tuple], expected: int, backend: str) -> None:
    if len(app_rows) != expected or len(raw_rows) != expected:
        raise BenchError(
            f"{backend}: expected {expected:,} rows, app has {len(app_rows):,}, "
            f"raw has {len(raw_rows):,}"
        )
    for app_row, raw_row in zip(app_rows, raw_rows, strict=True):
        if app_row != raw_row:
            raise BenchError(f"{backend}: app stored {app_row!r}, raw stored {raw_row!r}")


def sqlite_rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(SELECT_SQLITE).fetchall()
    finally:
        conn.close()


def postgres_rows(conninfo: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(conninfo, connect_timeout=10) as conn:
        return conn.execute(SELECT_POSTGRES).fetchall()


# ------------------------------------------------------------------------ backends


@dataclass
class Result:
    backend: str
    app: Timing
    raw: Timing
    copy: Timing | None = None  # PostgreSQL: raw COPY, the reference the target uses
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.app.rate / self.raw.rate if self.raw.rate else 0.0

    @property
    def copy_ratio(self) -> float | None:
        if self.copy is None:
            return None
        return self.app.rate / self.copy.rate if self.copy.rate else 0.0

    @property
    def passed(self) -> bool:
        if self.copy_ratio is not None:
            return self.copy_ratio >= MIN_COPY_RATIO
        return self.ratio >= MIN_RATIO


@dataclass
class Workload:
    rows: list[Row]
    warmup_rows: list[Row]
    bodies: list[bytes]
    warmup_bodies: list[bytes]


def build_workload(args) -> Workload:
    rows = make_rows(ACCOUNTS, args.batches * args.batch_size, START, seed=1)
    warmup_rows = make_rows(
        (WARMUP_ACCOUNT,), args.warmup_batches * args.batch_size, START, seed=2
    )
    return Workload(
        rows,
        warmup_rows,
        [json_body(b) for b in chunks(rows, args.batch_size)],
        [json_body(b) for b in chunks(warmup_rows, args.batch_size)],
    )


def best_raw(backend: str, runs: list[Timing], kind: str = "raw") -> Timing:
    """The fastest reference run: the target is then measured against the best case."""
    print(
        f"{backend}: {kind} runs "
        + " / ".join(f"{t.rate:,.0f}" for t in runs)
        + " rows/s, the best one counts"
    )
    return max(runs, key=lambda t: t.rate)


def bench_sqlite(args, work: Workload, workdir: Path, servers: Processes) -> Result:
    secret_key = secrets.token_hex(32)
    app_db = workdir / "app.sqlite3"
    raw_dbs = [workdir / f"raw{n}.sqlite3" for n in range(args.raw_runs)]
    app_environment = app_env(f"sqlite:///{app_db}", secret_key)
    migrate_database(app_environment)
    secret = create_ingest_token(app_environment)
    for raw_db in raw_dbs:
        migrate_database(app_env(f"sqlite:///{raw_db}", secret_key))

    print(f"sqlite: app on {app_db.name}, raw on {', '.join(p.name for p in raw_dbs)}")
    app = run_app(
        servers, "sqlite-app", app_environment, secret, work.bodies, work.warmup_bodies, args
    )
    warmup = [sqlite_params(b) for b in chunks(work.warmup_rows, args.batch_size)]
    batches = [sqlite_params(b) for b in chunks(work.rows, args.batch_size)]
    runs = [raw_sqlite(raw_db, warmup, batches) for raw_db in raw_dbs]
    expected = len(work.rows) + len(work.warmup_rows)
    stored = sqlite_rows(app_db)
    for raw_db in raw_dbs:
        same_rows(stored, sqlite_rows(raw_db), expected, "sqlite")
    return Result("sqlite", app, best_raw("sqlite", runs))


def bench_postgres(args, work: Workload, servers: Processes, scratch: ScratchDatabases) -> Result:
    import psycopg

    base = f"bench_{secrets.token_hex(4)}"
    app_name = f"{base}_app"
    raw_names = [f"{base}_raw{n}" for n in range(args.raw_runs)]
    copy_names = [f"{base}_copy{n}" for n in range(args.raw_runs)]
    secret_key = secrets.token_hex(32)
    scratch.create(app_name)
    app_url, app_conninfo = postgres_urls(args.postgres_url, app_name)
    app_environment = app_env(app_url, secret_key)
    migrate_database(app_environment)
    secret = create_ingest_token(app_environment)
    raw_conninfos = []
    for name in raw_names + copy_names:
        scratch.create(name)
        raw_url, raw_conninfo = postgres_urls(args.postgres_url, name)
        migrate_database(app_env(raw_url, secret_key))
        raw_conninfos.append(raw_conninfo)
    copy_conninfos = raw_conninfos[len(raw_names) :]
    raw_conninfos = raw_conninfos[: len(raw_names)]

    pipelined = psycopg.Pipeline.is_supported()
    print(
        f"postgresql: app on {app_name}, raw on {', '.join(raw_names)}, COPY on "
        f"{', '.join(copy_names)} (libpq {psycopg.pq.version()}, executemany pipelined: "
        f"{pipelined})"
    )
    app = run_app(
        servers, "postgres-app", app_environment, secret, work.bodies, work.warmup_bodies, args
    )
    warmup = [postgres_params(b) for b in chunks(work.warmup_rows, args.batch_size)]
    batches = [postgres_params(b) for b in chunks(work.rows, args.batch_size)]
    # Interleaved, so a spell of load elsewhere does not fall on one kind only.
    runs, copies = [], []
    for raw_conninfo, copy_conninfo in zip(raw_conninfos, copy_conninfos, strict=True):
        runs.append(raw_postgres(raw_conninfo, warmup, batches))
        copies.append(raw_postgres_copy(copy_conninfo, warmup, batches))
    expected = len(work.rows) + len(work.warmup_rows)
    stored = postgres_rows(app_conninfo)
    for conninfo in raw_conninfos + copy_conninfos:
        same_rows(stored, postgres_rows(conninfo), expected, "postgresql")
    return Result(
        "postgresql",
        app,
        best_raw("postgresql", runs),
        best_raw("postgresql", copies, "COPY"),
        "" if pipelined else "no pipeline",
    )


# -------------------------------------------------------------------------- report


def report(results: list[Result], args) -> bool:
    print()
    print(
        f"{args.batches} batches x {args.batch_size:,} snapshots; app: gunicorn -w "
        f"{args.workers} (sync), {args.clients} client thread(s); raw: executemany, "
        f"COPY: COPY FROM STDIN, 1 transaction per batch; {os.cpu_count()} CPUs"
    )
    header = (
        f"{'backend':<11} {'app rows/s':>11} {'raw rows/s':>11} {'app/raw':>8} "
        f"{'COPY rows/s':>11} {'app/COPY':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'raw p50 ms':>10} {'srv CPU ms/batch':>16} "
        f"{'other CPUs app/raw/COPY':>23}  result"
    )
    print(header)
    print("-" * len(header))
    ok = True
    noisy = []
    for r in results:
        cpu = (
            "n/a"
            if r.app.server_cpu_s is None
            else f"{r.app.server_cpu_s * 1000 / max(len(r.app.latencies), 1):.1f}"
        )
        timings = [t for t in (r.app, r.raw, r.copy) if t is not None]
        other = "/".join("n/a" if t.other_cpus is None else f"{t.other_cpus:.2f}" for t in timings)
        if any((t.other_cpus or 0) > OTHER_LOAD_WARNING for t in timings):
            noisy.append(r.backend)
        copy_rate = "-" if r.copy is None else f"{r.copy.rate:,.0f}"
        copy_ratio = "-" if r.copy_ratio is None else f"{r.copy_ratio:.1%}"
        verdict = "PASS" if r.passed else "FAIL"
        print(
            f"{r.backend:<11} {r.app.rate:>11,.0f} {r.raw.rate:>11,.0f} {r.ratio:>8.1%} "
            f"{copy_rate:>11} {copy_ratio:>8} "
            f"{r.app.percentile_ms(0.50):>7.1f} {r.app.percentile_ms(0.99):>7.1f} "
            f"{r.raw.percentile_ms(0.50):>10.1f} {cpu:>16} {other:>23}  {verdict}"
            + (f" ({r.note})" if r.note else "")
        )
        ok = ok and r.passed
    print()
    print(
        "p50/p99: app latency per batch, POST to answer; srv CPU: gunicorn master and\n"
        "workers; other CPUs: cores kept busy by processes other than the server,\n"
        "PostgreSQL and this one (the client threads, or the raw loop)"
    )
    if noisy:
        print(
            f"note: other work competed for the CPUs during {', '.join(noisy)}; "
            "rows/s are then unreliable (srv CPU ms/batch much less so)"
        )
    print(
        f"target: sqlite app rows/s >= {MIN_RATIO:.0%} of raw executemany rows/s; "
        f"postgresql app rows/s >= {MIN_COPY_RATIO:.0%} of raw COPY rows/s"
    )
    if args.batch_size != 1000 and any(r.copy is not None for r in results):
        print("note: the PostgreSQL target is set for --batch-size 1000")
    return ok


# ------------------------------------------------------------------------ sustain


class Feed:
    """Bodies of `batch_size` new snapshots, one after the other, made as they are sent.

    Ten minutes at full speed is tens of millions of rows: too many to serialise
    beforehand. One batch's rows are serialised once with a placeholder for the time;
    batch n puts its own seconds in, so every key is new and every batch inserts fully.
    """

    def __init__(self, batch_size: int, first: datetime):
        series = len(ACCOUNTS) * len(ASSETS)
        self.steps = -(-batch_size // series)  # seconds each batch covers per series
        self.first = first
        template = make_rows(ACCOUNTS, batch_size, START, seed=3)
        self.rows = [
            (
                f'{{"account":"{a}","asset":"{s}","timestamp":"',
                int((t - START).total_seconds()),
                f'","amount":"{m}","price":"{p}"}}',
            )
            for a, s, t, m, p in template
        ]
        self.lock = threading.Lock()
        self.next = 0

    def body(self) -> bytes:
        with self.lock:
            n, self.next = self.next, self.next + 1
        base = self.first + timedelta(seconds=n * self.steps)
        if base + timedelta(seconds=self.steps) > datetime.now(UTC):
            raise BenchError("the feed reached the present: start it further back")
        times = [iso_z(base + timedelta(seconds=k)) for k in range(self.steps)]
        rows = ",".join(head + times[step] + tail for head, step, tail in self.rows)
        return f'{{"positions":[{rows}]}}'.encode()


@dataclass
class Sustained:
    seconds: float
    finished: list[tuple[float, int]]  # (seconds since start, rows) per answered batch
    latencies: list[float]
    cpu: CpuMeter

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.finished)

    def per_minute(self) -> list[float]:
        """Rows/s in each whole minute of the window."""
        minutes = [0] * int(self.seconds // 60)
        for at, rows in self.finished:
            if int(at // 60) < len(minutes):
                minutes[int(at // 60)] += rows
        return [m / 60 for m in minutes]


def post_for(
    ports: list[int], secret: str, feed: Feed, batch_size: int, clients: int, seconds: float
) -> tuple[list[tuple[float, int]], list[float]]:
    """POST new batches from `clients` threads, spread over `ports`, for `seconds`."""
    import requests

    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    lock = threading.Lock()
    stop = threading.Event()
    finished: list[tuple[float, int]] = []
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()

    def client(n: int) -> None:
        url = f"http://127.0.0.1:{ports[n % len(ports)]}/api/v1/positions"
        with requests.Session() as session:
            while not stop.is_set() and time.perf_counter() - started < seconds:
                try:
                    body = feed.body()
                    begun = time.perf_counter()
                    response = session.post(
                        url, data=body, headers=headers, timeout=REQUEST_TIMEOUT
                    )
                    done = time.perf_counter()
                    answer = response.json() if response.status_code == 200 else None
                except (requests.RequestException, ValueError, BenchError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    stop.set()
                    return
                if answer is None or answer.get("inserted") != batch_size:
                    errors.append(f"HTTP {response.status_code} {response.text[:300]!r}")
                    stop.set()
                    return
                with lock:
                    finished.append((done - started, batch_size))
                    latencies.append(done - begun)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)
    finally:
        stop.set()
    if errors:
        raise BenchError("ingest failed: " + "; ".join(errors[:3]))
    return finished, latencies


def add_sustain_rules(env: dict) -> None:
    """A value rule per asset that no row breaks: ingest evaluates them on every batch."""
    from app.alerts.models import AlertRule, RuleKind
    from app.extensions import db

    app = make_app(env)
    with app.app_context():
        try:
            for asset in ASSETS:
                db.session.add(
                    AlertRule(
                        name=f"{asset} too long",
                        kind=RuleKind.POSITION_ABOVE,
                        asset=asset,
                        threshold=Decimal("1000000000"),
                    )
                )
            db.session.commit()
        finally:
            db.session.remove()
            db.engine.dispose()


def shipped_interval() -> str:
    """The --interval of deploy/'s worker unit, as production runs it."""
    unit = ROOT / "deploy" / "tradingmonitor-alerts.service"
    for line in unit.read_text().splitlines():
        if line.startswith("ExecStart=") and " alerts run" in line:
            words = line.split()
            return words[words.index("--interval") + 1] if "--interval" in words else "10"
    raise BenchError(f"no `flask alerts run` ExecStart in {unit}")


def bench_sustain(args, servers: Processes, scratch: ScratchDatabases) -> bool:
    """Two app processes and the alert worker, new batches for args.sustain seconds."""
    import psycopg

    name = f"bench_{secrets.token_hex(4)}_sustain"
    scratch.create(name)
    url, conninfo = postgres_urls(args.postgres_url, name)
    env = app_env(url, secrets.token_hex(32))
    migrate_database(env)
    secret = create_ingest_token(env)
    add_sustain_rules(env)
    apps = [start_app(servers, f"app{n}", env, args.workers) for n in range(SUSTAIN_APPS)]
    ports = [port for _, port in apps]
    interval = shipped_interval()
    flask = Path(sys.executable).parent / "flask"
    worker_env = {**env, "FLASK_APP": "wsgi", "PYTHONUNBUFFERED": "1"}
    worker = servers.start(
        "worker", [str(flask), "alerts", "run", "--interval", interval], worker_env
    )
    # Far enough back that even a fast run never reaches the present.
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(days=SUSTAIN_DAYS_BACK)
    feed = Feed(args.batch_size, first)
    clients = args.clients or 2 * SUSTAIN_APPS * args.workers
    print(
        f"sustain: {SUSTAIN_APPS} x gunicorn -w {args.workers} (sync) on ports "
        f"{', '.join(map(str, ports))}, `flask alerts run --interval {interval}` (deploy/), "
        f"{len(ASSETS)} value rules; {clients} client thread(s) spread over the ports; "
        f"{args.sustain:.0f} s of {args.batch_size:,}-snapshot batches into {name}"
    )
    warm, _ = post_for(ports, secret, feed, args.batch_size, clients, 5.0)
    with CpuMeter(worker.pid, *(proc.pid for proc, _ in apps)) as cpu:
        started = time.perf_counter()
        finished, latencies = post_for(ports, secret, feed, args.batch_size, clients, args.sustain)
        seconds = time.perf_counter() - started
    servers.check_alive()
    run = Sustained(seconds, finished, latencies, cpu)
    with psycopg.connect(conninfo, connect_timeout=10) as conn:
        stored = conn.execute("SELECT count(*) FROM position").fetchone()[0]
    expected = sum(rows for _, rows in warm) + run.rows
    if stored != expected:
        raise BenchError(f"{expected:,} snapshots acknowledged, {stored:,} stored")
    return report_sustain(run, args)


def report_sustain(run: Sustained, args) -> bool:
    rate = run.rows / run.seconds
    minutes = run.per_minute()
    ordered = sorted(run.latencies)
    print()
    print(
        f"sustained: {run.rows:,} snapshots in {run.seconds:.1f} s = {rate:,.0f} snapshots/s; "
        f"batch p50 {percentile_ms(ordered, 0.50):.1f} ms, "
        f"p99 {percentile_ms(ordered, 0.99):.1f} ms"
    )
    if minutes:
        print("per minute: " + " / ".join(f"{m:,.0f}" for m in minutes) + " snapshots/s")
    cpu = run.cpu
    if cpu.server_s is not None:
        print(
            f"CPU: apps and worker {cpu.server_s / run.seconds:.2f}, PostgreSQL "
            f"{cpu.postgres_s / run.seconds:.2f}, other processes {cpu.other_cpus:.2f} "
            f"(of {os.cpu_count()})"
        )
        if cpu.other_cpus > OTHER_LOAD_WARNING:
            print("note: other work competed for the CPUs; snapshots/s are then unreliable")
    lowest = min(minutes, default=rate)
    passed = rate >= SUSTAIN_TARGET and lowest >= SUSTAIN_TARGET
    print(
        f"target: >= {SUSTAIN_TARGET:,} snapshots/s over the window and in every whole "
        f"minute: {'PASS' if passed else 'FAIL'}"
    )
    return passed


# ---------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200, help="timed batches")
    parser.add_argument("--batch-size", type=int, default=1000, help="snapshots per batch")
    add_postgres_url(parser, "scratch databases")
    parser.add_argument(
        "--clients",
        type=int,
        help="concurrent client threads (default 2; with --sustain, 2 per gunicorn worker)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--warmup-batches", type=int, default=4, help="untimed batches first")
    parser.add_argument(
        "--raw-runs",
        type=int,
        default=3,
        help="reference runs, each into a fresh database; the fastest counts",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds allowed for one app run"
    )
    parser.add_argument(
        "--sustain",
        type=float,
        metavar="SECONDS",
        help="instead: two app processes and the alert worker on PostgreSQL, new batches "
        f"for SECONDS (600 for the target: >= {SUSTAIN_TARGET:,} snapshots/s)",
    )
    args = parser.parse_args(argv)
    if args.sustain is not None:
        if not args.postgres_url:
            parser.error("--sustain needs --postgres-url or BENCH_POSTGRES_URL")
        if args.sustain < 10:
            parser.error("--sustain must be at least 10 seconds")
    elif args.clients is None:
        args.clients = 2
    if not 1 <= args.batch_size <= MAX_BATCH:
        parser.error(f"--batch-size must be 1 to {MAX_BATCH:,}")
    if min(args.batches, args.clients or 1, args.workers, args.raw_runs) < 1:
        parser.error("--batches, --clients, --workers and --raw-runs must be >= 1")
    if args.warmup_batches < 0:
        parser.error("--warmup-batches must be >= 0")
    if args.batches * args.batch_size > 10_000_000:
        parser.error("at most 10,000,000 snapshots")
    check_loopback(parser, args.postgres_url)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    handle_signals()
    workdir = Path(tempfile.mkdtemp(prefix="tm-bench-ingest-"))
    servers = Processes(workdir)
    scratch = ScratchDatabases(args.postgres_url) if args.postgres_url else None
    try:
        if args.sustain is not None:
            print(f"postgresql: server {scratch.check()} reachable")
            return 0 if bench_sustain(args, servers, scratch) else 1
        started = time.perf_counter()
        work = build_workload(args)
        print(
            f"workload: {len(work.bodies)} bodies, {sum(map(len, work.bodies)) / 1e6:.1f} MB "
            f"JSON, built in {time.perf_counter() - started:.1f} s (not timed)"
        )
        if scratch is not None:
            print(f"postgresql: server {scratch.check()} reachable")
        results = [bench_sqlite(args, work, workdir, servers)]
        if scratch is not None:
            results.append(bench_postgres(args, work, servers, scratch))
        else:
            print("postgresql: skipped (no --postgres-url or BENCH_POSTGRES_URL)")
        return 0 if report(results, args) else 1
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception:  # exit status 2, not Python's 1, which would read as FAIL
        traceback.print_exc()
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        servers.stop_all()
        if scratch is not None:
            scratch.drop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
