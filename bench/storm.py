"""Alert storm benchmark: 500 alerts firing at once across 50 groups.

    .venv/bin/python bench/storm.py                   # group wait as channels ship (30 s)
    .venv/bin/python bench/storm.py --group-wait 5    # a shorter wait, a shorter run
    .venv/bin/python bench/storm.py --ungrouped       # reference: one message per alert

What it does, in a temporary directory that it removes afterwards:

1. creates a SQLite database with the real migrations (production config), a user
   with an `ingest` token, one webhook channel pointing at a receiver on loopback (this
   process) grouped by rule with the given group wait, and 50 rules on that channel,
   one per account (`storm-00` … `storm-49`), any asset, firing above 10;
2. serves the app with gunicorn (2 sync workers) and runs the worker as deploy/ ships
   it (`flask alerts run --interval 10`, read from the unit file);
3. POSTs 500 snapshots (50 accounts x 10 assets, amount 11) as 10 concurrent requests
   of 50, sent at once (SQLite commits them one writer at a time: about 2 s here,
   bench/README.md): 500 alerts fire, 10 in each of 50 groups;
4. waits until the receiver has 50 messages (or group wait + 30 s), then 5 s more for
   any extra message, and reads each alert's firing time from the database;
5. prints messages received, alerts listed, per group the delay from its first alert
   firing to its message, the time from the storm's first POST to the last message,
   and PASS/FAIL: exactly one message per group, each within group wait + 1 s.

The exit status is 0 when the target holds, 1 when it does not, 2 on error.
"""

import argparse
import json
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import (
    ROOT,
    BenchError,
    add_ingest_user,
    app_env,
    handle_signals,
    iso_z,
    make_app,
    remove_workdir,
    upgrade_quietly,
)
from _processes import Processes, free_port, gunicorn_args, wait_ready

GROUPS = 50
ASSETS = ("BTC", "ETH", "SOL", "ADA", "AVAX", "DOGE", "DOT", "LINK", "LTC", "XRP")
ALERTS = GROUPS * len(ASSETS)
REQUESTS = 10
SHIPPED_UNIT = ROOT / "deploy" / "tradingmonitor-alerts.service"
EXTRA_WAIT_S = 5.0
SLACK_S = 1.0


class Receiver:
    """A webhook receiver on loopback: every body with the wall time it arrived."""

    def __init__(self):
        self.bodies: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.bodies.append((time.time(), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.bodies)


def shipped_interval() -> str:
    for line in SHIPPED_UNIT.read_text().splitlines():
        if line.startswith("ExecStart=") and " alerts run" in line:
            return line.split("--interval", 1)[1].split()[0] if "--interval" in line else "10"
    raise BenchError(f"no `flask alerts run` ExecStart in {SHIPPED_UNIT}")


def build_database(env: dict, receiver_url: str, group_wait: int, grouped: bool) -> str:
    """Schema, token, one grouped channel and the 50 rules; the token's secret."""
    from app.alerts.models import AlertRule, Channel, ChannelKind, RuleKind
    from app.extensions import db

    app = make_app(env)
    with app.app_context():
        try:
            upgrade_quietly()
            token = add_ingest_user("bench-storm", "bench storm")
            channel = Channel(
                name="storm-desk",
                kind=ChannelKind.WEBHOOK,
                target=receiver_url,
                group_by="rule" if grouped else "",
                group_wait_seconds=group_wait,
            )
            for n in range(GROUPS):
                rule = AlertRule(
                    name=f"storm {n:02d}",
                    kind=RuleKind.POSITION_ABOVE,
                    account=f"storm-{n:02d}",
                    asset="*",
                    threshold=Decimal(10),
                )
                rule.channels.append(channel)
                db.session.add(rule)
            db.session.commit()
            return token
        finally:
            db.session.remove()
            db.engine.dispose()


def post(port: int, token: str, positions: list[dict]) -> float:
    """POST one batch; the wall time it was answered."""
    import http.client

    body = json.dumps({"positions": positions}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/api/v1/positions", body, headers)
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise BenchError(f"POST answered {response.status}: {answer[:300]!r}")
    return time.time()


def storm(port: int, token: str) -> tuple[float, float]:
    """Fire the 500 alerts; (wall time of the first POST, of the last answer)."""
    stamp = iso_z(datetime.now(UTC))
    positions = [
        {"account": f"storm-{n:02d}", "asset": a, "timestamp": stamp, "amount": "11"}
        for n in range(GROUPS)
        for a in ASSETS
    ]
    batches = [positions[i::REQUESTS] for i in range(REQUESTS)]
    started = time.time()
    with ThreadPoolExecutor(REQUESTS) as pool:
        answered = list(pool.map(lambda batch: post(port, token, batch), batches))
    return started, max(answered)


def first_firing_by_rule(db_path: Path) -> dict[str, float]:
    """Per rule name, the wall time its first alert fired (from the database)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT r.name, min(a.fired_at) FROM alert a JOIN alert_rule r ON r.id = a.rule_id "
            "WHERE a.state = 'firing' GROUP BY r.name"
        ).fetchall()
    return {name: datetime.fromisoformat(at).replace(tzinfo=UTC).timestamp() for name, at in rows}


def run(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="tm-bench-storm-"))
    procs = Processes(workdir)
    db_path = workdir / "storm.sqlite3"
    env = app_env(f"sqlite:///{db_path}", secrets.token_urlsafe(48))
    receiver = Receiver()
    try:
        token = build_database(env, receiver.url, args.group_wait, not args.ungrouped)
        port = free_port()
        server = procs.start("gunicorn", gunicorn_args(2, port), env)
        wait_ready(procs, "gunicorn", server, port)
        interval = shipped_interval()
        flask = Path(sys.executable).parent / "flask"
        worker_env = {**env, "FLASK_APP": "app", "PYTHONUNBUFFERED": "1"}
        procs.start("worker", [str(flask), "alerts", "run", "--interval", interval], worker_env)
        time.sleep(2)  # the worker's first pass and its listener
        procs.check_alive()
        started, fired = storm(port, token)
        deadline = time.time() + args.group_wait + 30
        expected = ALERTS if args.ungrouped else GROUPS
        while receiver.count() < expected and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(EXTRA_WAIT_S)
        procs.check_alive()
        return report(args, interval, receiver, db_path, started, fired)
    finally:
        procs.stop_all()
        receiver.server.shutdown()
        remove_workdir(workdir, args.keep)


def report(args, interval, receiver, db_path, started, fired) -> int:
    firing = first_firing_by_rule(db_path)
    with receiver.lock:
        bodies = list(receiver.bodies)
    per_group: dict[str, list[float]] = {}
    listed = 0
    for at, body in bodies:
        per_group.setdefault(body["groupLabels"].get("alertname", "?"), []).append(at)
        listed += len(body["alerts"])
    delays = sorted(min(ats) - firing[name] for name, ats in per_group.items() if name in firing)
    limit = args.group_wait + SLACK_S
    last = max((at for at, _ in bodies), default=float("nan"))
    grouping = "not grouped (reference)" if args.ungrouped else "grouped by rule"
    print(f"worker: `flask alerts run --interval {interval}` (deploy/); channel {grouping}")
    print(
        f"storm: {ALERTS} alerts ({len(firing)} groups firing) in {REQUESTS} POSTs, "
        f"answered {fired - started:.2f} s after the first"
    )
    print(
        f"messages: {len(bodies)} for {GROUPS} groups, listing {listed} alerts; "
        f"groups with more than one message: {sum(len(a) > 1 for a in per_group.values())}"
    )
    if delays:
        print(
            f"first alert firing -> group's message: min {delays[0]:.2f} s, "
            f"median {delays[len(delays) // 2]:.2f} s, max {delays[-1]:.2f} s "
            f"(target <= group wait {args.group_wait} s + {SLACK_S:g} s)"
        )
    print(f"first POST -> last message: {last - started:.2f} s")
    ok = (
        len(bodies) == GROUPS
        and len(per_group) == GROUPS
        and listed == ALERTS
        and bool(delays)
        and delays[-1] <= limit
    )
    if args.ungrouped:
        return 0  # a reference: what the same storm sends without grouping
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group-wait", type=int, default=30, help="seconds (default: 30)")
    parser.add_argument(
        "--ungrouped", action="store_true", help="reference run: the channel does not group"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    handle_signals()
    try:
        return run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
