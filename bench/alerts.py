"""Alert benchmark: latency to firing, latency to delivery, evaluation throughput.

    .venv/bin/python bench/alerts.py            # the full run (50 trials)
    .venv/bin/python bench/alerts.py --quick    # a quick one (12 trials, fewer repeats)

What it does, in a temporary directory that it removes afterwards:

1. creates a SQLite database with the real migrations (`flask_migrate.upgrade` in a
   `create_app()` app context, production config), six hours of history for 50 series
   (25 assets x 2 accounts, one snapshot every 5 minutes) through `ingest.record`, a
   user with an `ingest` token, a webhook channel pointing at a receiver on loopback
   (this process, stdlib ThreadingHTTPServer) and 200 rules with that channel and no
   pending period: per series position_above (1.5 x its base amount), position_below
   (0.5 x), notional_above (3 x its base notional), on 40 series change_over_window
   (|change| over 1 h above 0.3 x), and 10 account- or desk-wide rules that never fire;
2. serves the app with gunicorn (2 sync workers) and runs `flask alerts run
   --interval 0.2` as the worker; then the same trials again with the worker as
   deploy/tradingmonitor-alerts.service ships it (its --interval, 10 s), where
   delivery must not wait for a pass (target p99 < 1 s);
3. per trial, POSTs one snapshot that breaks a known set of rules of one series
   (above: {position_above, change}, below: {position_below, change}, change:
   {change}, notional: {notional}), takes the request's round trip as the latency to
   firing (the ingest evaluates value rules in its own transaction), and checks in
   the database, read-only, right after the answer that exactly that set is firing,
   fired inside the request; then waits for the receiver to get the firing
   notification (latency to delivery: from the start of the request); then posts the
   base snapshot again, checks that nothing fires any more and waits for the resolved
   notifications, so no trial's deliveries overlap the next one's. Trials start at a
   random moment of the worker's cycle;
4. stops the servers and, in-process on a copy of the database, times one worker pass
   (`engine.evaluate_all`, rolled back) with the 200 rules, then with every rule
   disabled; median of several passes each;
5. prints the figures, the targets and PASS/FAIL (firing p99 < 100 ms, delivery p99
   < 2 s), and the CPU other processes used meanwhile.

The exit status is 0 when every target passes, 1 when one fails, 2 on error.
"""

import argparse
import contextlib
import cProfile
import http.client
import io
import json
import math
import os
import pstats
import random
import resource
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import (
    OTHER_LOAD_WARNING,
    BenchError,
    add_ingest_user,
    app_env,
    handle_signals,
    iso_z,
    make_app,
    remove_workdir,
    upgrade_quietly,
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

ASSETS = (
    "BTC", "ETH", "SOL", "ADA", "AVAX", "DOGE", "DOT", "LINK", "LTC", "XRP",
    "BNB", "TRX", "ATOM", "NEAR", "APT", "ARB", "OP", "FIL", "ICP", "ETC",
    "XLM", "UNI", "AAVE", "SUI", "INJ",
)  # fmt: skip
ACCOUNTS = ("main", "hedge")
SERIES = [(account, asset) for account in ACCOUNTS for asset in ASSETS]
# Series with a change_over_window rule; the other 10 have three rules each.
CHANGE_SERIES = 40
HISTORY = timedelta(hours=6)
HISTORY_STEP = timedelta(minutes=5)
WINDOW_SECONDS = 3600
EXPECTED_RULES = 200

# Multiples of a series' base amount (or base notional) for thresholds and triggers.
ABOVE, BELOW, CHANGE, NOTIONAL = "above", "below", "change", "notional"
KINDS = (ABOVE, BELOW, CHANGE, NOTIONAL)
THRESHOLD = {
    ABOVE: Decimal("1.5"),
    BELOW: Decimal("0.5"),
    CHANGE: Decimal("0.3"),
    NOTIONAL: Decimal(3),
}
# History amounts stay within +-5% of the base, so a return to base never breaks the
# change rule; each trigger breaks its own rules by at least 5% of the base.
HISTORY_JITTER = Decimal("0.05")
TRIGGER_AMOUNT = {ABOVE: Decimal("1.6"), BELOW: Decimal("0.4"), CHANGE: Decimal("1.4")}
TRIGGER_PRICE = Decimal(4)  # x base price, base amount: only notional_above breaks

FIRING_TARGET_MS = 100.0
DELIVERY_TARGET_S = 2.0
WORKER_INTERVAL_S = 0.2
# The second run uses what deploy/ ships (the unit's --interval, no other setting):
# delivery must not wait for a pass.
SHIPPED_UNIT = Path(__file__).resolve().parents[1] / "deploy" / "tradingmonitor-alerts.service"
SHIPPED_DELIVERY_TARGET_S = 1.0
GUNICORN_WORKERS = 2
# What `flask alerts run` needs beyond the server's environment, and unbuffered logs.
WORKER_ENV = {"FLASK_APP": "app", "PYTHONUNBUFFERED": "1"}

# Above the app's SQLite busy timeout (15 s), after which it answers 503.
HTTP_TIMEOUT_S = 60.0
# A 503 (database busy) is retried at once, timed from the first try, for this long.
POST_RETRY_S = 120.0
# The trials with the worker stop after this long (the report says so).
PHASE_BUDGET_S = {False: 20 * 60.0, True: 5 * 60.0}  # by --quick
OUTBOX_DRAIN_TIMEOUT_S = 60.0
NOTIFICATION_TIMEOUT_S = 15.0


class LockedOut(Exception):
    """The ingest answered 503 (database busy) for POST_RETRY_S: nothing was stored."""


# ------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Base:
    """A series' steady state: every trial starts from it and returns to it."""

    amount: Decimal
    price: Decimal


def base_positions() -> dict[tuple[str, str], Base]:
    rng = random.Random(20261124)
    bases = {}
    for account, asset in SERIES:
        price = Decimal(f"{rng.uniform(0.5, 60_000):.2f}")
        size = 1 if account == "main" else Decimal("0.5")
        amount = (Decimal(rng.randint(20_000, 200_000)) / price * size).quantize(Decimal("0.0001"))
        bases[(account, asset)] = Base(amount, price)
    return bases


def history(bases, end: datetime):
    """Snapshots every HISTORY_STEP up to `end`, amounts within +-5% of base, ending at base."""
    from app.positions.ingest import Snapshot

    rng = random.Random(7)
    steps = int(HISTORY / HISTORY_STEP)
    for (account, asset), base in bases.items():
        for n in range(steps, 0, -1):
            jitter = HISTORY_JITTER * Decimal(rng.randint(-1000, 1000)) / 1000
            wobble = Decimal(rng.randint(-200, 200)) / 10_000
            yield Snapshot(
                account,
                asset,
                end - n * HISTORY_STEP,
                (base.amount * (1 + jitter)).quantize(Decimal("0.0001")),
                (base.price * (1 + wobble)).quantize(Decimal("0.01")),
            )
        yield Snapshot(account, asset, end, base.amount, base.price)


def rule_specs(bases) -> list[dict]:
    """200 rules: 190 on one series each, 10 account- or desk-wide that never fire."""
    from app.alerts.models import ANY, RuleKind

    specs = []
    for index, ((account, asset), base) in enumerate(bases.items()):
        common = {"account": account, "asset": asset, "series": (account, asset)}
        specs.append(
            common
            | {
                "role": ABOVE,
                "kind": RuleKind.POSITION_ABOVE,
                "threshold": base.amount * THRESHOLD[ABOVE],
            }
        )
        specs.append(
            common
            | {
                "role": BELOW,
                "kind": RuleKind.POSITION_BELOW,
                "threshold": base.amount * THRESHOLD[BELOW],
            }
        )
        specs.append(
            common
            | {
                "role": NOTIONAL,
                "kind": RuleKind.NOTIONAL_ABOVE,
                "threshold": base.amount * base.price * THRESHOLD[NOTIONAL],
            }
        )
        if index % 25 < CHANGE_SERIES // 2:
            specs.append(
                common
                | {
                    "role": CHANGE,
                    "kind": RuleKind.CHANGE_OVER_WINDOW,
                    "threshold": base.amount * THRESHOLD[CHANGE],
                    "window_seconds": WINDOW_SECONDS,
                }
            )
    huge = Decimal("1e12")
    wide = [
        ("main", ANY, RuleKind.POSITION_ABOVE, huge, None, False),
        ("hedge", ANY, RuleKind.POSITION_ABOVE, huge, None, False),
        (ANY, ANY, RuleKind.POSITION_ABOVE, huge, None, False),
        (ANY, ANY, RuleKind.POSITION_BELOW, -huge, None, False),
        ("main", ANY, RuleKind.POSITION_BELOW, -huge, None, False),
        (ANY, ANY, RuleKind.NOTIONAL_ABOVE, Decimal("1e15"), None, False),
        ("hedge", ANY, RuleKind.NOTIONAL_ABOVE, Decimal("1e15"), None, False),
        (ANY, ANY, RuleKind.CHANGE_OVER_WINDOW, Decimal(1000), 7200, True),
        (ANY, ANY, RuleKind.CHANGE_OVER_WINDOW, Decimal(500), WINDOW_SECONDS, True),
        ("main", ANY, RuleKind.CHANGE_OVER_WINDOW, huge, 1800, False),
    ]
    for account, asset, kind, threshold, window, percent in wide:
        specs.append(
            {
                "account": account,
                "asset": asset,
                "series": None,
                "role": None,
                "kind": kind,
                "threshold": threshold,
                "window_seconds": window,
                "change_percent": percent,
            }
        )
    return specs


@dataclass
class Setup:
    bases: dict
    token: str
    # (series, role) -> rule id, and the roles each series has.
    rule_ids: dict = field(default_factory=dict)
    roles: dict = field(default_factory=dict)
    matched_pairs: int = 0


def build_database(env: dict, receiver_url: str) -> Setup:
    from app.alerts.cli import rule_problem
    from app.alerts.models import AlertRule, Channel, ChannelKind, Severity
    from app.alerts.values import rule_values
    from app.db_types import utcnow
    from app.extensions import db
    from app.positions.ingest import record

    started = time.perf_counter()
    app = make_app(env)
    bases = base_positions()
    end = (utcnow() - timedelta(minutes=1)).replace(microsecond=0)
    with app.app_context():
        try:
            upgrade_quietly()
            result = record(history(bases, end))
            db.session.commit()
            snapshots = result.inserted

            token = add_ingest_user("bench-alerts", "bench alerts")
            channel = Channel(name="bench-webhook", kind=ChannelKind.WEBHOOK, target=receiver_url)
            db.session.add(channel)

            setup = Setup(bases=bases, token=token)
            rules = []
            for n, spec in enumerate(rule_specs(bases)):
                rule = AlertRule(
                    name=f"bench {n:03d} {spec['kind']} {spec['account']}/{spec['asset']}",
                    kind=spec["kind"],
                    account=spec["account"],
                    asset=spec["asset"],
                    threshold=spec["threshold"],
                    window_seconds=spec.get("window_seconds"),
                    change_percent=spec.get("change_percent", False),
                    pending_seconds=0,
                    severity=(Severity.WARNING, Severity.CRITICAL)[n % 2],
                    send_resolved=True,
                    enabled=True,
                )
                problem = rule_problem(rule)
                if problem:
                    raise BenchError(f"rule {rule.name}: {problem}")
                rule.channels.append(channel)
                db.session.add(rule)
                rules.append((spec, rule))
            db.session.commit()
            for spec, rule in rules:
                if spec["series"] is not None:
                    setup.rule_ids[(spec["series"], spec["role"])] = rule.id
                    setup.roles.setdefault(spec["series"], []).append(spec["role"])
            now = utcnow()
            setup.matched_pairs = sum(len(rule_values(rule, now)) for _, rule in rules)
            if len(rules) != EXPECTED_RULES:
                raise BenchError(f"made {len(rules)} rules, not {EXPECTED_RULES}")
            alerts = db.session.execute(db.text("SELECT count(*) FROM alert")).scalar_one()
            if alerts:
                raise BenchError(f"{alerts} alert(s) exist before the first trial")
        finally:
            db.session.remove()
            db.engine.dispose()
    print(
        f"database: {snapshots:,} snapshots ({len(SERIES)} series, every "
        f"{HISTORY_STEP.seconds // 60} min for {HISTORY.seconds // 3600} h), "
        f"{len(rules)} rules ({setup.matched_pairs} rule x series pairs match), "
        f"1 webhook channel; built in {time.perf_counter() - started:.1f} s"
    )
    return setup


# -------------------------------------------------------------------- receiver


@dataclass(frozen=True)
class Arrival:
    monotonic: float
    status: str
    kind: str
    rule_id: int
    account: str
    asset: str
    starts_at: datetime | None


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Receiver:
    """Webhook receiver on loopback: records when each notification arrives."""

    def __init__(self):
        self.arrivals: list[Arrival] = []
        self.bad: list[str] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.monotonic()
                try:
                    payload = json.loads(body)
                    alert = payload["alerts"][0]
                    labels = alert["labels"]
                    starts = alert.get("startsAt")
                    item = Arrival(
                        arrived,
                        payload["status"],
                        payload.get("tradingmonitor", {}).get("kind", ""),
                        int(labels["rule_id"]),
                        labels["account"],
                        labels["asset"],
                        parse_iso(starts) if starts else None,
                    )
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    with receiver.cond:
                        receiver.bad.append(f"{exc!r}: {body[:200]!r}")
                else:
                    with receiver.cond:
                        receiver.arrivals.append(item)
                        receiver.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        if self.thread.is_alive():  # shutdown() waits for serve_forever forever otherwise
            self.server.shutdown()
            self.thread.join(5)
        self.server.server_close()

    def count(self) -> int:
        with self.cond:
            return len(self.arrivals)

    def wait_for(self, wanted: dict, timeout: float) -> dict:
        """Wait until each key (status, rule_id, account, asset, starts_at) has arrived."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = {}
                for a in self.arrivals:
                    key = (a.status, a.rule_id, a.account, a.asset, a.starts_at)
                    if key in wanted and key not in found:
                        found[key] = a
                if len(found) == len(wanted):
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [k for k in wanted if k not in found]
                    raise BenchError(
                        f"notification(s) not delivered in {timeout:.0f} s: {missing}"
                    )
                self.cond.wait(left)


# ------------------------------------------------------------------ processes


def http_request(port: int, method: str, path: str, body: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start_gunicorn(procs: Processes, env: dict) -> tuple[int, subprocess.Popen]:
    port = free_port()
    app = procs.start("gunicorn", gunicorn_args(GUNICORN_WORKERS, port), env)
    wait_ready(procs, "gunicorn", app, port)
    return port, app


def start_worker(procs: Processes, env: dict, interval: float, name: str) -> subprocess.Popen:
    flask = Path(sys.executable).parent / "flask"
    return procs.start(name, [str(flask), "alerts", "run", "--interval", f"{interval:g}"], env)


def shipped_interval() -> float:
    """The --interval of deploy/'s worker unit (what production runs)."""
    for line in SHIPPED_UNIT.read_text().splitlines():
        if line.startswith("ExecStart=") and " alerts run" in line:
            words = line.split()
            return float(words[words.index("--interval") + 1]) if "--interval" in words else 10.0
    raise BenchError(f"no `flask alerts run` ExecStart in {SHIPPED_UNIT}")


# ----------------------------------------------------------------- CPU accounting


class CpuMeter:
    """Which CPU our processes used over a phase, and what everything else used."""

    def __init__(self, groups: list[int]):
        self.groups = groups

    def sample(self):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        ours = usage.ru_utime + usage.ru_stime + sum(process_group_cpu(g) for g in self.groups)
        return ours, machine_busy(), time.monotonic()

    def __enter__(self):
        self.start = self.sample()
        return self

    def __exit__(self, *exc):
        self.end = self.sample()

    @property
    def elapsed(self) -> float:
        return self.end[2] - self.start[2]

    @property
    def ours(self) -> float:
        return (self.end[0] - self.start[0]) / self.elapsed

    @property
    def other(self) -> float:
        busy = (self.end[1] - self.start[1]) / self.elapsed
        return max(0.0, busy - self.ours)


# ------------------------------------------------------------------- trials


@dataclass
class Trial:
    series: tuple[str, str]
    role: str
    expected: int  # rules that fire
    firing_ms: float
    delivery_s: float
    resolve_ms: float
    resolved_delivery_s: float
    lost: bool = False  # the trigger never got in: firing and delivery count as infinite
    stuck: bool = False  # the reset never got in: the trials stop there


@dataclass
class Phase:
    """The trials with one worker: its interval, results, CPU and what went wrong."""

    interval: float
    results: list
    cpu: "CpuMeter | None"
    unexpected: int
    busy: int


def sqlite_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Trials:
    def __init__(self, port: int, setup: Setup, receiver: Receiver, db_path: Path, procs):
        self.port = port
        self.setup = setup
        self.receiver = receiver
        self.procs = procs
        self.headers = {
            "Authorization": f"Bearer {setup.token}",
            "Content-Type": "application/json",
        }
        self.ro = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
        self.unexpected = 0
        self.busy = 0  # 503 answers: the database stayed locked for the whole busy timeout

    def close(self):
        self.ro.close()

    def post(self, account: str, asset: str, amount: Decimal, price: Decimal):
        """POST one snapshot stamped now; return (start, end) monotonic and wall times."""
        stamp = datetime.now(UTC)
        body = json.dumps(
            {
                "positions": [
                    {
                        "account": account,
                        "asset": asset,
                        "timestamp": iso_z(stamp),
                        "amount": format(amount, "f"),
                        "price": format(price, "f"),
                    }
                ]
            }
        ).encode()
        wall0, t0 = time.time(), time.monotonic()
        while True:
            status, answer = http_request(
                self.port, "POST", "/api/v1/positions", body, self.headers
            )
            if status != 503 or time.monotonic() - t0 > POST_RETRY_S:
                break
            self.busy += 1
        t1, wall1 = time.monotonic(), time.time()
        if status == 503:
            raise LockedOut(f"503 for {t1 - t0:.0f} s")
        if status != 200 or json.loads(answer).get("inserted") != 1:
            raise BenchError(f"POST /api/v1/positions answered {status}: {answer[:300]!r}")
        return t0, t1, wall0, wall1

    def firing(self) -> dict[int, tuple[str, str, datetime]]:
        rows = self.ro.execute(
            "SELECT rule_id, account, asset, fired_at FROM alert WHERE state = 'firing'"
        ).fetchall()
        return {r: (a, s, sqlite_time(f)) for r, a, s, f in rows}

    def plan(self, n: int) -> tuple[tuple[str, str], str]:
        series = SERIES[n % len(SERIES)]
        roles = [k for k in KINDS if k in self.setup.roles[series]]
        return series, roles[(n + n // len(SERIES)) % len(roles)]

    def expected_rules(self, series, role) -> set[int]:
        ids = self.setup.rule_ids
        rules = {ids[(series, role)]}
        if role in (ABOVE, BELOW) and (series, CHANGE) in ids:
            rules.add(ids[(series, CHANGE)])
        return rules

    def pending_notifications(self) -> int:
        return self.ro.execute(
            "SELECT count(*) FROM notification WHERE status = 'pending'"
        ).fetchone()[0]

    def wait_outbox_drained(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.pending_notifications():
            self.procs.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"the worker did not empty the outbox in {timeout:.0f} s")
            time.sleep(0.1)

    def run(self, n: int, deliveries: bool = True) -> Trial:
        series, role = self.plan(n)
        account, asset = series
        base = self.setup.bases[series]
        expected = self.expected_rules(series, role)
        target = self.setup.rule_ids[(series, role)]
        before = self.receiver.count()

        if role == NOTIONAL:
            amount, price = base.amount, base.price * TRIGGER_PRICE
        else:
            amount, price = base.amount * TRIGGER_AMOUNT[role], base.price
        try:
            t0, t1, wall0, wall1 = self.post(account, asset, amount, price)
        except LockedOut:
            inf = math.inf
            return Trial(series, role, len(expected), inf, inf, math.nan, math.nan, lost=True)
        firing = self.firing()
        if set(firing) != expected:
            raise BenchError(
                f"trial {n} ({account}/{asset} {role}): firing rules {sorted(firing)} "
                f"right after the answer, expected {sorted(expected)}"
            )
        for rule_id, (a, s, fired_at) in firing.items():
            # Committed by this request: fired between its start and its answer.
            if (a, s) != series or not (wall0 - 0.005 <= fired_at.timestamp() <= wall1 + 0.005):
                raise BenchError(f"trial {n}: rule {rule_id} fired at {fired_at}, not in request")
        episodes = {rule_id: fired_at for rule_id, (_, _, fired_at) in firing.items()}
        if not deliveries:  # no worker: back to base, nothing else
            try:
                r0, r1, _, _ = self.post(account, asset, base.amount, base.price)
            except LockedOut:
                return Trial(
                    series, role, len(expected), (t1 - t0) * 1000, 0.0, math.inf, 0.0, stuck=True
                )
            if self.firing():
                raise BenchError(f"trial {n}: still firing after the reset")
            return Trial(series, role, len(expected), (t1 - t0) * 1000, 0.0, (r1 - r0) * 1000, 0.0)
        fired = self.receiver.wait_for(
            {("firing", r, account, asset, episodes[r]): r for r in expected},
            NOTIFICATION_TIMEOUT_S,
        )
        delivery = fired[("firing", target, account, asset, episodes[target])].monotonic - t0

        try:
            r0, r1, _, _ = self.post(account, asset, base.amount, base.price)
        except LockedOut:
            return Trial(
                series,
                role,
                len(expected),
                (t1 - t0) * 1000,
                delivery,
                math.inf,
                math.inf,
                stuck=True,
            )
        still = self.firing()
        if still:
            raise BenchError(f"trial {n}: still firing after the reset: {sorted(still)}")
        resolved = self.receiver.wait_for(
            {("resolved", r, account, asset, episodes[r]): r for r in expected},
            NOTIFICATION_TIMEOUT_S,
        )
        resolved_at = resolved[("resolved", target, account, asset, episodes[target])].monotonic
        # Anything beyond one firing and one resolved per rule (e.g. a duplicate).
        time.sleep(0.01)
        self.unexpected += max(0, self.receiver.count() - before - 2 * len(expected))
        self.procs.check_alive()
        return Trial(
            series,
            role,
            len(expected),
            (t1 - t0) * 1000,
            delivery,
            (r1 - r0) * 1000,
            resolved_at - r0,
        )


# --------------------------------------------------------------- throughput


@dataclass
class Throughput:
    with_rules_s: list[float]
    no_rules_s: list[float]
    transitions: int
    matched_pairs: int
    alerts: dict
    record_ms: list[float]
    statements: int = 0  # SQL statements in one pass
    writes: int = 0  # of which INSERT / UPDATE / DELETE (each needs SQLite's write lock)
    in_sqlite_s: float = 0.0  # of which time inside the driver's execute
    other_cpu: float = 0.0  # CPUs other processes used meanwhile
    profile: str = ""

    @property
    def with_rules(self) -> float:
        return statistics.median(self.with_rules_s)

    @property
    def no_rules(self) -> float:
        return statistics.median(self.no_rules_s)


def copy_database(src: Path, dst: Path) -> None:
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def count_statements(engine, action) -> tuple[int, int, float]:
    """How many SQL statements `action` runs, how many write, and the seconds in execute."""
    from sqlalchemy import event

    count, writes, inside, started = 0, 0, 0.0, []

    def before(*_):
        started.append(time.perf_counter())

    def after(_conn, _cursor, statement, *_):
        nonlocal count, writes, inside
        count += 1
        writes += statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        inside += time.perf_counter() - started.pop()

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return count, writes, inside


def measure_throughput(env: dict, setup: Setup, repeats: int, profile: bool) -> Throughput:
    from app.alerts.engine import evaluate_all
    from app.db_types import utcnow
    from app.extensions import db
    from app.positions.ingest import Snapshot, record

    app = make_app(env)
    with app.app_context():
        try:

            def one_pass() -> tuple[float, int]:
                now = utcnow()
                started = time.perf_counter()
                transitions = evaluate_all(now)
                elapsed = time.perf_counter() - started
                db.session.rollback()
                return elapsed, len(transitions)

            alerts = dict(
                db.session.execute(
                    db.text("SELECT state, count(*) FROM alert GROUP BY state")
                ).all()
            )
            one_pass()  # warm-up: imports, statement compilation
            timed = [one_pass() for _ in range(repeats)]
            statements, writes, in_sqlite = count_statements(db.engine, one_pass)
            text = ""
            if profile:
                profiler = cProfile.Profile()
                profiler.enable()
                one_pass()
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
                text = out.getvalue()

            # Ingest in-process (no HTTP, no gunicorn): one trigger, then back to base.
            series = SERIES[0]
            base = setup.bases[series]
            record_ms = []
            for _ in range(repeats):
                for amount in (base.amount * TRIGGER_AMOUNT[CHANGE], base.amount):
                    started = time.perf_counter()
                    record([Snapshot(*series, utcnow(), amount, base.price)])
                    db.session.commit()
                    record_ms.append((time.perf_counter() - started) * 1000)
                    time.sleep(0.002)

            db.session.execute(db.text("UPDATE alert_rule SET enabled = 0"))
            db.session.commit()
            one_pass()
            disabled = [one_pass()[0] for _ in range(repeats)]
        finally:
            db.session.remove()
            db.engine.dispose()
    return Throughput(
        with_rules_s=[t for t, _ in timed],
        no_rules_s=disabled,
        transitions=max(n for _, n in timed),
        matched_pairs=setup.matched_pairs,
        alerts=alerts,
        record_ms=record_ms,
        statements=statements,
        writes=writes,
        in_sqlite_s=in_sqlite,
        profile=text,
    )


# ------------------------------------------------------------------- report


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 50 samples is the largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def report(
    trials: list[Trial],
    alone: list[Trial],
    throughput: Throughput,
    cpu: CpuMeter,
    unexpected: int,
    busy: tuple[int, int],
    planned: int,
    shipped: Phase,
) -> bool:
    firing = [t.firing_ms for t in trials]
    delivery = [t.delivery_s * 1000 for t in trials]
    resolve = [t.resolve_ms for t in trials]
    resolved_delivery = [t.resolved_delivery_s * 1000 for t in trials]
    pairs = EXPECTED_RULES * len(SERIES)
    rate = pairs / throughput.with_rules
    ratio = throughput.with_rules / throughput.no_rules
    roles = {role: sum(t.role == role for t in trials) for role in KINDS}

    print()
    print(
        f"{len(trials)} of {planned} trials with the worker at --interval {WORKER_INTERVAL_S:g}, "
        f"{len(shipped.results)} at --interval {shipped.interval:g} (as shipped) "
        f"({', '.join(f'{n} {r}' for r, n in roles.items())}), {len(alone)} without; "
        f"each firing verified in the database right after the answer"
    )
    lost = sum(t.lost for t in trials)
    if lost:
        print(
            f"{lost} trigger(s) got 503 (database busy) for {POST_RETRY_S:.0f} s and were never "
            "stored: counted as inf"
        )
    header = f"{'measure':<46} {'p50':>10} {'p99':>10} {'max':>10} {'target':>10}  result"
    print(header)
    print("-" * len(header))

    def row(name, values, unit, target=None):
        values = [v for v in values if not math.isnan(v)]
        if not values:
            print(f"{name:<46} {'no data':>10}  {'FAIL' if target else '(info)'}")
            return target is None
        p50, p99, top = percentile(values, 0.5), percentile(values, 0.99), max(values)
        if target is None:
            verdict, goal = "(info)", ""
        else:
            verdict, goal = ("PASS" if p99 < target else "FAIL"), f"p99 < {target:g}"
        print(
            f"{name:<46} {p50:>7.1f} {unit} {p99:>7.1f} {unit} {top:>7.1f} {unit}"
            f" {goal:>10}  {verdict}"
        )
        return target is None or p99 < target

    ok = row("latency to firing (ingest round trip)", firing, "ms", FIRING_TARGET_MS)
    ok = (
        row(
            f"latency to delivery (--interval {WORKER_INTERVAL_S:g})",
            delivery,
            "ms",
            DELIVERY_TARGET_S * 1000,
        )
        and ok
    )
    row("  reset: latency to resolved (round trip)", resolve, "ms")
    row("  reset: resolved notification received", resolved_delivery, "ms")
    as_shipped = f"as shipped (--interval {shipped.interval:g}): "
    ok = (
        row(
            as_shipped + "delivery",
            [t.delivery_s * 1000 for t in shipped.results],
            "ms",
            SHIPPED_DELIVERY_TARGET_S * 1000,
        )
        and ok
    )
    row(as_shipped + "firing", [t.firing_ms for t in shipped.results], "ms")
    row(
        "  resolved notification received",
        [t.resolved_delivery_s * 1000 for t in shipped.results],
        "ms",
    )
    row("reference, no worker: latency to firing", [t.firing_ms for t in alone], "ms")
    row("reference, no worker: latency to resolved", [t.resolve_ms for t in alone], "ms")
    if any(busy):
        print(
            f"503 'database busy' answers (retried, timed from the first try): {busy[1]} with "
            f"the worker, {busy[0]} without"
        )
    print()
    print(
        f"worker pass ({EXPECTED_RULES} rules x {len(SERIES)} series, in-process, median; "
        f"other processes {throughput.other_cpu:.2f} CPU meanwhile):"
    )
    print(
        f"  with {EXPECTED_RULES} rules enabled     {throughput.with_rules * 1000:>8.1f} ms"
        f"   {rate:>10,.0f} series x rules / s"
        f"   (runs: {', '.join(f'{t * 1000:.0f}' for t in throughput.with_rules_s)} ms)"
    )
    print(
        f"  with every rule disabled     {throughput.no_rules * 1000:>8.2f} ms"
        f"   (runs: {', '.join(f'{t * 1000:.2f}' for t in throughput.no_rules_s)} ms)"
    )
    print(f"  ratio enabled / disabled     {ratio:>8.0f} x")
    print(
        f"  ({throughput.matched_pairs} rule x series pairs actually match: "
        f"{throughput.matched_pairs / throughput.with_rules:,.0f} evaluated pairs / s)"
    )
    print(
        f"  SQL statements in one pass with the rules: {throughput.statements:,} "
        f"({throughput.writes:,} writing), "
        f"{throughput.in_sqlite_s * 1000:.0f} ms of it inside sqlite3's execute"
    )
    if throughput.with_rules >= WORKER_INTERVAL_S:
        print(
            f"  note: a pass takes longer than --interval {WORKER_INTERVAL_S}: the worker never "
            "sleeps, it evaluates back to back (taking SQLite's write lock only for changes)"
        )
    states = ", ".join(f"{n} {s}" for s, n in sorted(throughput.alerts.items())) or "none"
    print(
        f"  alert rows during the passes: {states}; transitions per pass: {throughput.transitions}"
    )
    print(
        "  ingest.record + commit of one snapshot, in-process: "
        f"p50 {percentile(throughput.record_ms, 0.5):.1f} ms, "
        f"max {max(throughput.record_ms):.1f} ms"
    )
    print()
    print(
        f"CPU during the trials: bench + servers + worker {cpu.ours:.2f} CPU, other processes "
        f"{cpu.other:.2f} CPU of {os.cpu_count()}"
        + (" (not quiet: latencies are noisy)" if cpu.other > OTHER_LOAD_WARNING else "")
    )
    if unexpected:
        print(f"  FAIL  {unexpected} unexpected notification(s) at the receiver")
        ok = False
    print(f"overall: {'PASS' if ok else 'FAIL'}")
    return ok


# --------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 trials, 3 timed passes")
    parser.add_argument("--trials", type=int, help="latency trials (default 50, quick 12)")
    parser.add_argument("--repeats", type=int, help="timed passes each (default 7, quick 3)")
    parser.add_argument("--profile", action="store_true", help="cProfile one worker pass")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    args.trials = args.trials or (12 if args.quick else 50)
    args.repeats = args.repeats or (3 if args.quick else 7)
    if not 1 <= args.trials <= 1000 or not 1 <= args.repeats <= 50:
        parser.error("--trials 1..1000, --repeats 1..50")
    return args


def worker_phase(args, trials, procs, env, app_proc, interval: float, name: str, rng) -> Phase:
    """Start a worker with `interval`, drain the outbox, run the trials, stop the worker."""
    worker_proc = start_worker(procs, env, interval, name)
    print(
        f"worker: `flask alerts run --interval {interval:g}`; delivering the "
        f"{trials.pending_notifications()} notifications queued so far",
        flush=True,
    )
    trials.wait_outbox_drained(OUTBOX_DRAIN_TIMEOUT_S)
    # Warm-up: the worker's delivery path, untimed.
    deadline = time.monotonic() + PHASE_BUDGET_S[args.quick]
    warm = [trials.run(len(SERIES) * 7 + n) for n in range(2)]
    stuck = any(t.stuck for t in warm)
    trials.unexpected = trials.busy = 0
    results = []
    with CpuMeter([app_proc.pid, worker_proc.pid]) as cpu:
        for n in range(0 if stuck else args.trials):
            if time.monotonic() > deadline:
                print(
                    f"  stopped after {n} of {args.trials} trials: over the "
                    f"{PHASE_BUDGET_S[args.quick] / 60:.0f}-minute budget",
                    flush=True,
                )
                break
            # Any phase of a pass (at most 1.5 s in: a trial lasts longer than that).
            time.sleep(rng.uniform(0, min(interval * 1.5, 1.5)))
            results.append(trials.run(n))
            if results[-1].stuck:
                break
            if (n + 1) % 10 == 0:
                print(f"  {n + 1}/{args.trials} trials with the worker", flush=True)
    if stuck or (results and results[-1].stuck):
        print(
            f"  stopped after {len(results)} of {args.trials} trials: a reset snapshot "
            f"got 503 (database busy) for {POST_RETRY_S:.0f} s",
            flush=True,
        )
    procs.stop(worker_proc)
    return Phase(interval, results, cpu, trials.unexpected, trials.busy)


def run(args, workdir: Path, procs: Processes, receiver: Receiver) -> bool:
    db_path = workdir / "alerts.sqlite3"
    env = app_env(f"sqlite:///{db_path}", secrets.token_hex(32)) | WORKER_ENV
    receiver.start()
    setup = build_database(env, receiver.url)
    shipped = shipped_interval()

    port, app_proc = start_gunicorn(procs, env)
    busy = busy_cpus()
    print(
        f"servers: gunicorn --workers {GUNICORN_WORKERS} on :{port}, receiver {receiver.url}; "
        f"{os.cpu_count()} CPUs, {busy:.2f} CPU busy before the trials"
        + (" (not quiet)" if busy > OTHER_LOAD_WARNING else "")
    )
    trials = Trials(port, setup, receiver, db_path, procs)
    rng = random.Random(3)
    try:
        # Reference: the same triggers with no worker running (firing only, no delivery).
        for n in range(4):  # warm-up: both gunicorn workers
            trials.run(len(SERIES) * 7 + n, deliveries=False)
        alone = []
        for n in range(args.trials):
            time.sleep(rng.uniform(0, WORKER_INTERVAL_S * 1.5))
            alone.append(trials.run(n, deliveries=False))
            if alone[-1].stuck:
                raise BenchError("without the worker, the ingest was locked out for 2 minutes")
        busy_alone, trials.busy = trials.busy, 0
        print(f"  {args.trials} trials without the worker done", flush=True)

        fast = worker_phase(args, trials, procs, env, app_proc, WORKER_INTERVAL_S, "worker", rng)
        # The settings deploy/ and the README ship: the pass every `shipped` seconds.
        as_shipped = worker_phase(
            args, trials, procs, env, app_proc, shipped, "worker-shipped", rng
        )
    finally:
        trials.close()
    procs.stop_all()
    if receiver.bad:
        raise BenchError(f"receiver got unreadable payloads: {receiver.bad[:3]}")

    copy = workdir / "passes.sqlite3"
    copy_database(db_path, copy)
    with CpuMeter([]) as pass_cpu:
        throughput = measure_throughput(
            env | {"DATABASE_URL": f"sqlite:///{copy}"}, setup, args.repeats, args.profile
        )
    throughput.other_cpu = pass_cpu.other
    if throughput.profile:
        print(throughput.profile)
    return report(
        fast.results,
        alone,
        throughput,
        fast.cpu,
        fast.unexpected + as_shipped.unexpected,
        (busy_alone, fast.busy + as_shipped.busy),
        args.trials,
        as_shipped,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    handle_signals()
    workdir = Path(tempfile.mkdtemp(prefix="tm-bench-alerts-"))
    procs = Processes(workdir)
    receiver = Receiver()
    try:
        return 0 if run(args, workdir, procs, receiver) else 1
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for name in ("gunicorn", "worker"):
            tail = procs.log_tail(name, 15)
            if tail:
                print(f"--- {name} log (tail)\n{tail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        with contextlib.suppress(Exception):
            receiver.stop()
        remove_workdir(workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
