"""Page benchmark: the overview, a history page, /limits and /alerts on 1,000,000 snapshots.

    .venv/bin/python bench/pages.py                          # the full run, SQLite
    .venv/bin/python bench/pages.py --postgres-url \
        postgresql+psycopg://postgres@127.0.0.1:5432/test    # SQLite, then PostgreSQL
    .venv/bin/python bench/pages.py --rows 100000 --duration 3   # a quick one
    .venv/bin/python bench/pages.py --profile 300                # where the time goes

What it does for each backend (SQLite in a temporary directory that it removes
afterwards; PostgreSQL in a scratch database it creates through --postgres-url and
drops at the end):

1. creates the schema with the real migrations (`flask db upgrade`), adds limit
   rules (ten of them fire on the newest snapshots) and bulk-loads --rows snapshots
   (10 assets x 2 accounts, 1-minute spacing ending now: `executemany` on SQLite,
   COPY on PostgreSQL); the newest snapshot of every series goes through
   `ingest.record`, so the latest-position rows and the alerts are written by the
   app's own write path;
2. creates a viewer through the app's User model and password hashing;
3. serves the real app (`wsgi:app`, production config, with the two reference pages
   of bench/floor_app.py beside its own) and bench/bare_app.py, each
   with gunicorn and --workers sync workers on loopback;
4. logs in through the real login form, then loads each endpoint for --duration
   seconds after a --warmup, with wrk when it is installed (else Python threads),
   the same way for every endpoint, the bare one first;
5. prints req/s, p50 and p99 latency, the ratio to the bare endpoint, and
   PASS/FAIL against the targets (req/s >= 20% of bare, p99 < 50 ms).

The exit status is 0 when every target passes, 1 when one fails, 2 on error.
"""

import argparse
import http.client
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.cookies import SimpleCookie
from pathlib import Path

from _common import (
    OTHER_LOAD_WARNING,
    ROOT,
    SQLITE_DATETIME,
    TEST_CLIENT_BASE,
    BenchError,
    ScratchDatabases,
    add_postgres_url,
    app_env,
    bench_settings,
    check_loopback,
    cpu_per_request,
    csrf_value,
    handle_signals,
    log_in_test_client,
    percentile_ms,
    postgres_urls,
    remove_workdir,
    upgrade_quietly,
)
from _processes import (
    Processes,
    busy_cpus,
    free_port,
    gunicorn_args,
    machine_busy,
    postgres_cpu,
    process_group_cpu,
    wait_ready,
)

ASSETS = ("BTC", "ETH", "SOL", "ADA", "AVAX", "DOGE", "DOT", "LINK", "LTC", "XRP")
ACCOUNTS = ("main", "hedge")
# Starting price, its tick and the amount lot: decimals stored as their text.
PRICES = {
    "BTC": 62_000.0,
    "ETH": 3_100.0,
    "SOL": 150.0,
    "ADA": 0.45,
    "AVAX": 35.0,
    "DOGE": 0.12,
    "DOT": 7.0,
    "LINK": 14.0,
    "LTC": 80.0,
    "XRP": 0.55,
}
USERNAME = "bench"
PASSWORD = "bench-password-" + secrets.token_hex(8)
HISTORY_ASSET = "BTC"

MIN_RATIO = 0.20
MAX_P99_MS = 50.0
# Hard bounds on any one measurement, whatever --duration says.
MAX_REQUESTS_PER_RUN = 2_000_000
RUN_TIMEOUT_EXTRA_S = 30

# (name, path, what the page must contain): the endpoints measured.
PAGES = (
    ("/", "/", 'id="overview"'),
    (f"/positions/{HISTORY_ASSET}", f"/positions/{HISTORY_ASSET}", 'id="history"'),
    ("/limits", "/limits", 'id="limits"'),
    ("/alerts/", "/alerts/", 'id="alerts"'),
)
# What no page can go below (bench/floor_app.py): shown beside the pages, not judged.
FLOOR_PAGES = (
    ("floor: signed in", "/bench/signed-in", "signed in"),
    ("floor: layout", "/bench/layout", 'id="layout-only"'),
)
# Limit rules per asset: the position rule on the main account fires on the newest
# snapshots (the alerts page lists ten alerts), the notional one never does.
FIRING_THRESHOLD = Decimal("0")
NOTIONAL_LIMIT = Decimal("10000000")
DESK_GROSS_LIMIT = Decimal("100000000")
# How many functions of each page's profile --profile prints.
PROFILE_LINES = 30

# Writes one JSON line at the end of a wrk run; counts answers that are not 200,
# since wrk itself counts a 302 to the login page as a success.
WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) not_ok = 0 end
function response(status, headers, body)
  if status ~= 200 then not_ok = not_ok + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("not_ok") end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"not_ok": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad, e.connect + e.read + e.write + e.timeout))
end
"""


# --------------------------------------------------------------------------- data


def series_rows(account, asset, moments, rng, last: dict):
    """(account, asset, moment, amount, price) of one series, decimals as text; the
    series' last amount and price are left in `last`."""
    price = PRICES[asset]
    decimals = 2 if price >= 1 else 5
    base = 50_000 / price
    amount = base * rng.uniform(0.3, 1.5)
    for i, moment in enumerate(moments):
        price *= 1 + rng.gauss(0, 0.0007)
        if i % 60 == 0:  # the desk trades about once an hour
            # Kept within 0.2x..3x of the start: an unbounded walk drifts to zero over
            # a long history, and the limit rules must fire at any --rows.
            amount = min(max(amount * rng.gauss(1, 0.2), base * 0.2), base * 3)
        last[account, asset] = (f"{amount:.4f}", f"{price:.{decimals}f}")
        yield (account, asset, moment, *last[account, asset])


def every_series_rows(moments, last: dict):
    rng = random.Random(42)
    for account in ACCOUNTS:
        for asset in ASSETS:
            yield from series_rows(account, asset, moments, rng, last)


def load_sqlite(db_path: Path, moments, last: dict) -> None:
    """Bulk-insert with executemany in the app's storage format, in one transaction."""
    received_at = datetime.now(UTC).strftime(SQLITE_DATETIME)
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB
        with conn:
            conn.executemany(
                "INSERT INTO position (account, asset, timestamp, amount, price, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (account, asset, moment.strftime(SQLITE_DATETIME), amount, price, received_at)
                    for account, asset, moment, amount, price in every_series_rows(moments, last)
                ),
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def load_postgres(conninfo: str, moments, last: dict) -> None:
    """COPY the rows in, then VACUUM ANALYZE so the planner knows the table's size."""
    import psycopg

    received_at = datetime.now(UTC)
    statement = "COPY position (account, asset, timestamp, amount, price, received_at) FROM STDIN"
    with psycopg.connect(conninfo) as conn, conn.cursor().copy(statement) as copy:
        for row in every_series_rows(moments, last):
            copy.write_row((*row, received_at))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def newest_snapshots(end: datetime, last: dict):
    """The newest snapshot of every series, continuing the bulk-loaded walk."""
    from app.positions.ingest import Snapshot

    for account in ACCOUNTS:
        for asset in ASSETS:
            amount, price = last.get((account, asset), ("1.0000", f"{PRICES[asset]:.2f}"))
            yield Snapshot(account, asset, end, Decimal(amount), Decimal(price))


def add_limit_rules() -> None:
    """The rules the limits and alerts pages show, in the current app context."""
    from app.alerts.models import AlertRule, RuleKind
    from app.extensions import db

    for asset in ASSETS:
        db.session.add(
            AlertRule(
                name=f"{asset} held on main",
                kind=RuleKind.POSITION_ABOVE,
                threshold=FIRING_THRESHOLD,
                asset=asset,
                account="main",
                severity="warning",
            )
        )
        db.session.add(
            AlertRule(
                name=f"{asset} notional",
                kind=RuleKind.NOTIONAL_ABOVE,
                threshold=NOTIONAL_LIMIT,
                asset=asset,
                severity="critical",
            )
        )
    db.session.add(
        AlertRule(
            name="Desk gross exposure",
            kind=RuleKind.GROSS_EXPOSURE_ABOVE,
            threshold=DESK_GROSS_LIMIT,
            severity="critical",
        )
    )
    db.session.commit()


def build_database(database_url: str, rows: int, secret_key: str, bulk_load) -> None:
    """Schema by migration, rules, bulk snapshots (`bulk_load(moments, last)`), the
    newest ones through ingest.record, a user."""
    from app import create_app
    from app.alerts.models import Alert, AlertState
    from app.auth.models import Role, User
    from app.auth.passwords import hash_password
    from app.extensions import db
    from app.positions import queries
    from app.positions.ingest import record
    from app.positions.models import Position

    series = len(ACCOUNTS) * len(ASSETS)
    rows_per_series = max(2, rows // series)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    moments = [end - timedelta(minutes=n) for n in range(rows_per_series - 1, 0, -1)]
    app = create_app(bench_settings(database_url, secret_key))

    started = time.perf_counter()
    with app.app_context():
        upgrade_quietly()
        add_limit_rules()
        db.session.remove()
        db.engine.dispose()
    migrated = time.perf_counter()
    last: dict = {}
    bulk_load(moments, last)
    bulk = len(moments) * series
    loaded = time.perf_counter()
    with app.app_context():
        result = record(newest_snapshots(end, last))
        db.session.commit()
        if result.inserted != series:
            raise BenchError(f"ingest.record inserted {result.inserted} of {series} snapshots")
        # Read back through the ORM: proves the bulk rows read like the app's own.
        latest = queries.latest_positions()
        page = queries.history_page(HISTORY_ASSET, limit=3)
        if len(latest) != series or [p.timestamp for p in page.rows][:1] != [end]:
            raise BenchError("the loaded data does not read back as expected")
        firing = db.session.scalar(
            db.select(db.func.count()).select_from(Alert).where(Alert.state == AlertState.FIRING)
        )
        if firing != len(ASSETS):
            raise BenchError(f"{firing} alerts fire, not {len(ASSETS)}")
        total = db.session.execute(db.select(db.func.count()).select_from(Position))
        total = total.scalar_one()
        db.session.add(
            User(
                username=USERNAME,
                password_hash=hash_password(PASSWORD),
                role=Role.VIEWER,
            )
        )
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    done = time.perf_counter()
    print(
        f"database: {total:,} snapshots ({series} series x {rows_per_series:,}, 1-minute "
        f"spacing ending {end:%Y-%m-%d %H:%M} UTC), {firing} alerts firing"
    )
    print(
        f"  migrate + rules {migrated - started:.1f} s, bulk load of {bulk:,} rows "
        f"{loaded - migrated:.1f} s ({bulk / max(loaded - migrated, 1e-9):,.0f} rows/s), "
        f"ingest.record + user {done - loaded:.1f} s; total {done - started:.1f} s"
    )


# ------------------------------------------------------------------------- client


def http_request(port, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, response.msg, data.decode("utf-8", "replace")
    finally:
        conn.close()


def http_get(port, path, cookie=None):
    return http_request(port, "GET", path, {"Cookie": cookie} if cookie else None)


def cookies_from(message, jar: dict) -> dict:
    """Keep every Set-Cookie, Secure or not: we are the browser behind the proxy."""
    for header in message.get_all("Set-Cookie") or []:
        parsed = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            jar[name] = morsel.value
    return jar


def cookie_header(jar: dict) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def log_in(port: int) -> str:
    """Log in through the real form; return the Cookie header of the session."""
    status, message, body = http_get(port, "/login")
    if status != 200:
        raise BenchError(f"GET /login answered {status}")
    jar = cookies_from(message, {})
    form = urllib.parse.urlencode(
        {"username": USERNAME, "password": PASSWORD, "csrf_token": csrf_value(body)}
    )
    status, message, body = http_request(
        port,
        "POST",
        "/login",
        {"Cookie": cookie_header(jar), "Content-Type": "application/x-www-form-urlencoded"},
        form,
    )
    if status != 302:
        raise BenchError(f"POST /login answered {status}, not a redirect: {body[:300]!r}")
    return cookie_header(cookies_from(message, jar))


def check_page(port: int, path: str, cookie: str | None, must_contain: str) -> int:
    """GET the page once; fail unless it is a 200 with the expected content."""
    status, _, body = http_get(port, path, cookie)
    if status != 200 or must_contain not in body:
        raise BenchError(f"GET {path} answered {status} without {must_contain!r}")
    return len(body.encode())


# ------------------------------------------------------------------------ profile


def profile_pages(database_url: str, secret_key: str, requests: int) -> None:
    """Serve each page `requests` times through Flask's test client and profile it.

    No server and no network: the app's own work per request, comparable from run
    to run on a busy machine (CPU time, calls per request), with the bare app's as
    the reference.
    """
    import cProfile
    import pstats

    import bare_app
    from floor_app import add_floor_pages

    from app import create_app

    base = TEST_CLIENT_BASE
    app = add_floor_pages(create_app(bench_settings(database_url, secret_key)))
    client = app.test_client()
    log_in_test_client(client, USERNAME, PASSWORD)

    bare = bare_app.app.test_client()
    bare.get("/")
    bare_ms = cpu_per_request(bare, "/", requests, base)
    print(f"profile: {requests} requests per page, in-process (Flask test client)")
    print(f"  bare /: {bare_ms:.3f} CPU ms/request")
    for name, path, mark in PAGES + FLOOR_PAGES:
        response = client.get(path, base_url=base)
        if response.status_code != 200 or mark not in response.get_data(as_text=True):
            raise BenchError(f"GET {path} answered {response.status_code} without {mark!r}")
        ms = cpu_per_request(client, path, requests, base)
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for _ in range(requests):
            client.get(path, base_url=base)
        profiler.disable()
        stats = pstats.Stats(profiler)
        print(
            f"\n{name}: {ms:.3f} CPU ms/request ({ms / bare_ms:.1f}x bare), "
            f"{stats.total_calls / requests:,.0f} function calls/request"
        )
        stats.sort_stats("cumulative").print_stats(PROFILE_LINES)


# ---------------------------------------------------------------------- load runs


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    not_ok: int
    errors: int
    # CPU seconds per request of the server's processes; cores that processes
    # other than the server and the load generator kept busy meanwhile.
    server_cpu_ms: float | None = None
    other_cores: float | None = None
    # PostgreSQL's processes (every backend on the machine's server) per request.
    db_cpu_ms: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(name, port, path, cookie, seconds, args, workdir: Path, procs: Processes):
    script = workdir / "report.lua"
    script.write_text(WRK_SCRIPT)
    command = [
        args.wrk,
        f"--threads={args.threads}",
        f"--connections={args.connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=5s",
        f"--script={script}",
    ]
    if cookie:
        command += ["--header", f"Cookie: {cookie}"]
    command.append(f"http://127.0.0.1:{port}{path}")
    proc = procs.start("wrk", command, os.environ.copy(), str(workdir))
    try:
        proc.wait(timeout=seconds + RUN_TIMEOUT_EXTRA_S)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk on {path} did not finish in time") from None
    finally:
        procs.procs.remove(("wrk", proc))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = (workdir / "wrk.log").read_text(errors="replace")
    match = re.search(r"^WRK_JSON (\{.*\})$", output, re.MULTILINE)
    if proc.returncode != 0 or match is None:
        raise BenchError(f"wrk failed on {path} ({proc.returncode}):\n{output[-2000:]}")
    data = json.loads(match.group(1))
    return Result(
        name,
        data["requests"],
        data["duration_us"] / 1e6,
        data["p50_us"] / 1000,
        data["p99_us"] / 1000,
        data["not_ok"],
        data["errors"],
    )


def run_python(name, port, path, cookie, seconds, args, workdir=None, procs=None):
    """The fallback load generator: one keep-alive-capable connection per thread."""
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = []
    counters = {"not_ok": 0, "errors": 0}
    lock = threading.Lock()
    headers = {"Cookie": cookie} if cookie else {}
    per_thread_cap = MAX_REQUESTS_PER_RUN // args.connections

    def worker():
        mine: list[float] = []
        not_ok = errors = 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while len(mine) < per_thread_cap:
            start = time.perf_counter()
            if start >= deadline:
                break
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    not_ok += 1
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                continue
            mine.append(time.perf_counter() - start)
        conn.close()
        with lock:
            latencies.append(mine)
            counters["not_ok"] += not_ok
            counters["errors"] += errors

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + RUN_TIMEOUT_EXTRA_S)
    elapsed = time.perf_counter() - started
    every = [x for chunk in latencies for x in chunk]
    if not every:
        raise BenchError(f"no request to {path} completed")
    return Result(
        name,
        len(every),
        elapsed,
        percentile_ms(every, 0.50),
        percentile_ms(every, 0.99),
        counters["not_ok"],
        counters["errors"],
    )


def measure(name, server, port, path, cookie, args, workdir, procs) -> Result:
    """Warm up, then one measured run, with the CPU the server, PostgreSQL and the rest used."""
    run = run_wrk if args.generator == "wrk" else run_python
    if args.warmup > 0:
        run(name, port, path, cookie, args.warmup, args, workdir, procs)
    before = cpu_snapshot(server, args.generator)
    result = run(name, port, path, cookie, args.duration, args, workdir, procs)
    used = cpu_used(before, cpu_snapshot(server, args.generator))
    if used is not None:
        server_s, client_s, db_s, busy_s, elapsed = used
        result.server_cpu_ms = server_s / max(result.requests, 1) * 1000
        result.db_cpu_ms = db_s / max(result.requests, 1) * 1000
        result.other_cores = max(0.0, busy_s - server_s - client_s - db_s) / elapsed
    print(
        f"  {name:<22} {result.requests:>8,} requests in {result.seconds:.1f} s"
        + (f", {result.not_ok} not 200" if result.not_ok else "")
        + (f", {result.errors} socket errors" if result.errors else "")
    )
    return result


# ----------------------------------------------------------------- CPU accounting


def client_cpu(generator: str) -> float:
    """CPU seconds of the load generator: wrk is a reaped child, Python threads are us."""
    who = resource.RUSAGE_CHILDREN if generator == "wrk" else resource.RUSAGE_SELF
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def idle_check(seconds: float = 1.0) -> str:
    """How busy the machine is before we load it: other work skews every number."""
    busy = busy_cpus(seconds)
    if busy is None:
        return ""
    warning = " (not quiet: results will be noisy)" if busy > OTHER_LOAD_WARNING else ""
    return f", {busy:.2f} CPU busy before the runs{warning}"


def cpu_snapshot(server, generator):
    return (
        process_group_cpu(server.pid),
        client_cpu(generator),
        postgres_cpu(),
        machine_busy(),
        time.monotonic(),
    )


def cpu_used(before, after):
    if any(x is None for x in (*before, *after)):
        return None
    return tuple(b - a for a, b in zip(before, after, strict=True))


# -------------------------------------------------------------------------- report


def report(backend: str, results: list[Result], bare: Result, floor: list[Result]) -> bool:
    """Print the table and the targets; whether every target passed. The floor rows
    (bench/floor_app.py) are shown for reading the pages against, not judged."""
    with_db = backend == "postgresql"
    print()
    header = (
        f"{backend + ' endpoint':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8}"
        f" {'server CPU ms/req':>18}"
        + (f" {'db CPU ms/req':>14}" if with_db else "")
        + f" {'other load':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in [bare, *results, *floor]:
        ratio = r.rps / bare.rps if bare.rps else 0.0
        cpu = "n/a" if r.server_cpu_ms is None else f"{r.server_cpu_ms:.2f}"
        db_cpu = "n/a" if r.db_cpu_ms is None else f"{r.db_cpu_ms:.2f}"
        other = "n/a" if r.other_cores is None else f"{r.other_cores:.2f} CPU"
        print(
            f"{r.name:<28} {r.rps:>9,.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {ratio:>8.0%}"
            f" {cpu:>18}" + (f" {db_cpu:>14}" if with_db else "") + f" {other:>11}"
        )
    busy = [r for r in [bare, *results, *floor] if (r.other_cores or 0) > OTHER_LOAD_WARNING]
    if busy:
        print(
            "note: other processes on this machine kept up to "
            f"{max(r.other_cores for r in busy):.2f} CPU busy during "
            + ", ".join(r.name for r in busy)
            + "; req/s and latency are then unreliable (server CPU ms/req much less so)."
        )
    print()
    print(
        f"{backend} targets: every page >= {MIN_RATIO:.0%} of the bare req/s, "
        f"p99 < {MAX_P99_MS:.0f} ms"
    )
    ok = True
    for r in results:
        ratio = r.rps / bare.rps if bare.rps else 0.0
        clean = r.not_ok == 0 and r.errors == 0
        checks = [
            (f"req/s {ratio:.0%} of bare >= {MIN_RATIO:.0%}", ratio >= MIN_RATIO),
            (f"p99 {r.p99_ms:.1f} ms < {MAX_P99_MS:.0f} ms", r.p99_ms < MAX_P99_MS),
        ]
        if not clean:
            checks.append((f"{r.not_ok} non-200 answers, {r.errors} socket errors", False))
        for text, passed in checks:
            print(f"  {'PASS' if passed else 'FAIL'}  {r.name:<22} {text}")
            ok = ok and passed
    if bare.not_ok or bare.errors:
        print(f"  FAIL  bare reference had {bare.not_ok} non-200, {bare.errors} socket errors")
        ok = False
    return ok


# ---------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="snapshots to load")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk if installed (auto), or Python threads",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="instead of serving: N requests per page in-process, CPU per request and a cProfile",
    )
    add_postgres_url(parser, "a scratch database")
    args = parser.parse_args(argv)
    check_loopback(parser, args.postgres_url)
    if args.rows < 40 or args.duration <= 0 or args.connections < 1 or args.workers < 1:
        parser.error("--rows >= 40, --duration > 0, --connections >= 1, --workers >= 1")
    args.duration = min(args.duration, 300.0)
    args.wrk = shutil.which("wrk")
    if args.generator == "auto":
        args.generator = "wrk" if args.wrk else "python"
    if args.generator == "wrk" and not args.wrk:
        parser.error("wrk is not installed (apt-get install wrk), use --generator python")
    return args


def run_backend(backend: str, database_url: str, bulk_load, args, workdir, servers) -> bool:
    """Build the database, serve it and the bare app, measure every page; whether all pass."""
    print(f"\n== {backend}")
    secret_key = secrets.token_hex(32)
    build_database(database_url, args.rows, secret_key, bulk_load)
    if args.profile:
        profile_pages(database_url, secret_key, args.profile)
        return True

    app_port, bare_port = free_port(), free_port()
    app_proc = servers.start(
        f"app-{backend}",
        gunicorn_args(args.workers, app_port, "bench.floor_app:wsgi_app_with_floor()"),
        app_env(database_url, secret_key),
        str(ROOT),
    )
    bare_proc = servers.start(
        f"bare-{backend}",
        gunicorn_args(args.workers, bare_port, "bare_app:app"),
        app_env(database_url, secret_key),
        str(ROOT / "bench"),
    )
    try:
        wait_ready(servers, f"app-{backend}", app_proc, app_port, "/healthz")
        wait_ready(servers, f"bare-{backend}", bare_proc, bare_port, "/")

        cookie = log_in(app_port)
        sizes = {
            name: check_page(app_port, path, cookie, mark)
            for name, path, mark in PAGES + FLOOR_PAGES
        }
        sizes["bare /"] = check_page(bare_port, "/", None, "bare reference")
        print(
            f"servers: gunicorn --workers {args.workers} (sync), app on :{app_port} "
            f"(production config), bare on :{bare_port}; {os.cpu_count()} CPUs" + idle_check()
        )
        print("pages: " + ", ".join(f"{name} {size:,} B" for name, size in sizes.items()))
        print(
            f"load: {args.generator}, {args.connections} connections"
            + (f", {args.threads} thread(s)" if args.generator == "wrk" else "")
            + f", {args.warmup:g} s warm-up then {args.duration:g} s per endpoint"
        )

        bare = measure("bare /", bare_proc, bare_port, "/", None, args, workdir, servers)
        results = [
            measure(name, app_proc, app_port, path, cookie, args, workdir, servers)
            for name, path, _ in PAGES
        ]
        # The session must still be live, or we measured redirects to /login.
        floor = [
            measure(name, app_proc, app_port, path, cookie, args, workdir, servers)
            for name, path, _ in FLOOR_PAGES
        ]
        for _, path, mark in PAGES + FLOOR_PAGES:
            check_page(app_port, path, cookie, mark)
    finally:
        servers.stop(app_proc)
        servers.stop(bare_proc)
    return report(backend, results, bare, floor)


def run(args, workdir: Path, servers: Processes, scratch: ScratchDatabases | None) -> bool:
    db_path = workdir / "bench.sqlite3"
    ok = run_backend(
        "sqlite",
        f"sqlite:///{db_path}",
        lambda moments, last: load_sqlite(db_path, moments, last),
        args,
        workdir,
        servers,
    )
    if scratch is not None:
        name = f"bench_{secrets.token_hex(4)}_pages"
        scratch.create(name)
        app_url, conninfo = postgres_urls(args.postgres_url, name)
        ok = (
            run_backend(
                "postgresql",
                app_url,
                lambda moments, last: load_postgres(conninfo, moments, last),
                args,
                workdir,
                servers,
            )
            and ok
        )
    return ok


def main(argv=None) -> int:
    args = parse_args(argv)
    handle_signals()
    workdir = Path(tempfile.mkdtemp(prefix="tm-bench-"))
    servers = Processes(workdir)
    scratch = ScratchDatabases(args.postgres_url) if args.postgres_url else None
    try:
        if scratch is not None:
            print(f"PostgreSQL {scratch.check()}")
        return 0 if run(args, workdir, servers, scratch) else 1
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        servers.stop_all()
        if scratch is not None:
            scratch.drop_all()
        remove_workdir(workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
