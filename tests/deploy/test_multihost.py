"""Two app hosts behind nginx, two alert workers, one PostgreSQL and one Redis
(deploy/multihost/): a host and a worker killed mid-stream lose nothing acknowledged
and send nothing twice but under its idempotency key."""

import os
import re
import signal
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select

from app.alerts.models import Alert, AlertState, Notification, NotificationStatus
from app.auth.models import Role, Scope, User
from app.auth.tokens import create_token
from app.extensions import db
from app.positions.models import Position
from tests.alerts.receivers import WebhookReceiver
from tests.conftest import (
    build_app,
    create_scratch_database,
    drop_scratch_database,
    make_user,
    postgres_admin_url,
)
from tests.deploy.conftest import (
    Deployment,
    free_port,
    render_multihost_site,
    start_nginx,
    stop_processes,
    wait_for_port,
)
from tests.deploy.multihost import (
    WRITERS,
    Host,
    Stream,
    host_env,
    log_in,
    tcp_connections,
)
from tests.faults.conftest import Service, unique_prefix, wait_until

pytestmark = pytest.mark.faults

# Over the threshold an alert fires, back under it resolves.
THRESHOLD = Decimal(7)
# The API limit the shared count is checked against; writers change tokens before it.
API_LIMIT, TOKENS_PER_WRITER = 60, 60
WAIT_SECONDS = 90


@pytest.fixture
def database_url():
    """A scratch database on the suite's PostgreSQL, or skip (fail when REQUIRE_POSTGRES=1)."""
    admin = postgres_admin_url()
    url = create_scratch_database(admin)
    yield url
    drop_scratch_database(admin, url)


@dataclass
class Cluster:
    web: str
    hosts: list[Host]
    app: object
    receiver: WebhookReceiver
    feeds: list[list[Service]]
    read_token: str


@pytest.fixture
def cluster(database_url, nginx_path, redis_url, tmp_path):
    """Two hosts (gunicorn + alert worker each) behind nginx; a webhook receiving alerts."""
    web_port, ports = free_port(), [free_port(), free_port()]
    web = f"http://127.0.0.1:{web_port}"
    places = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": os.urandom(32).hex(),
        "TRADINGMONITOR_RATELIMIT_STORAGE_URI": redis_url,
        "TRADINGMONITOR_RATELIMIT_KEY_PREFIX": unique_prefix("tm-multihost"),
        "TRADINGMONITOR_PUBLIC_URL": web,
        # Two cores shared by everything here: two workers a host, not 2 x cores + 1.
        "GUNICORN_WORKERS": "2",
        "TRADINGMONITOR_API_RATE_LIMIT": f"{API_LIMIT}/hour",
        # The lease a killed worker's claim runs out after: a minute shipped, less here.
        "TRADINGMONITOR_NOTIFY_LEASE_SECONDS": "20",
    }
    hosts = []
    for name, port in zip("ab", ports, strict=True):
        (tmp := tmp_path / f"host-{name}").mkdir()
        bind = {"GUNICORN_BIND": f"127.0.0.1:{port}"}
        hosts.append(Host(name, port, host_env(name, tmp, {**places, **bind}), tmp))
    Deployment(web, hosts[0].env, hosts[0].tmp, None).flask("db", "upgrade")

    app = build_app(database_url)
    make_user(app, "ops", Role.ADMIN)
    with app.app_context():
        user = db.session.execute(select(User).filter_by(username="ops")).scalar_one()
        secrets_of = [
            [create_token(user, f"f{w}-{n}", [Scope.INGEST])[1] for n in range(TOKENS_PER_WRITER)]
            for w in range(WRITERS)
        ]
        read_token = create_token(user, "reader", [Scope.READ])[1]
        db.session.commit()
    feeds = [[Service(web, {}, tmp_path, None, token=s) for s in writer] for writer in secrets_of]

    nginx = None
    with WebhookReceiver() as receiver:
        runner = app.test_cli_runner()
        for args in (
            ["add-channel", "hook", "--kind", "webhook", "--target", receiver.url],
            ["add-rule", "over", "--kind", "position_above", "--threshold", str(THRESHOLD),
             "--channel", "hook"],
        ):  # fmt: skip
            result = runner.invoke(args=["alerts", *args])
            assert result.exit_code == 0, result.output
        try:
            for host in hosts:
                host.start_app()
                host.start_worker()
            site = render_multihost_site(ports, web_port, "127.0.0.1")
            nginx = start_nginx(nginx_path, tmp_path, site, hosts[0].env)
            wait_for_port(web_port, nginx)
            # Ready once a worker has beaten: then the stream may start.
            wait_until(lambda: ready(web), WAIT_SECONDS, "/readyz through nginx says ready")
            yield Cluster(web, hosts, app, receiver, feeds, read_token)
        finally:
            procs = [p for h in hosts for p in (h.worker, h.gunicorn) if p and p.poll() is None]
            stop_processes(*procs, *([nginx] if nginx else []))
            with app.app_context():
                db.engine.dispose()


def ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=(2, 10)).status_code == 200
    except requests.RequestException:
        return False


def kill_a_worker_mid_delivery(cluster: Cluster) -> Host:
    """Hold the receiver's answers; SIGKILL a worker whose message arrived and waits."""
    receiver, port = cluster.receiver, int(cluster.receiver.url.split(":")[2].split("/")[0])
    before, gate = receiver.requests, threading.Event()
    receiver.gate = gate

    def senders() -> list[Host]:
        return [
            h for h in cluster.hosts if any(r == port for _, r in tcp_connections(h.worker.pid))
        ]

    # Every worker holding a connection has had its message read: it waits for the answer.
    wait_until(
        lambda: receiver.requests > before and len(senders()) == receiver.requests - before,
        WAIT_SECONDS,
        "an alert worker in the middle of a delivery",
    )
    victim = senders()[0]
    victim.worker.send_signal(signal.SIGKILL)
    victim.worker.wait(30)
    gate.set()
    return victim


def test_a_host_and_a_worker_killed_mid_stream_lose_and_double_nothing(cluster):
    a, b = cluster.hosts
    prefix = unique_prefix("M")
    with Stream(cluster.web, prefix, cluster.feeds, log_in(cluster.web), cluster.hosts) as stream:
        wait_until(
            lambda: stream.acknowledged_since(0) >= 20 and stream.seen_since(0) >= 6,
            WAIT_SECONDS,
            "20 batches, 6 pages and 6 probes of each host answered",
        )
        wait_until(a.busy, WAIT_SECONDS, "host a in the middle of a request")
        killed_at = time.monotonic()
        a.kill_app()
        a_down = time.monotonic()
        wait_until(
            lambda: stream.acknowledged_since(a_down) >= 10 and stream.seen_since(a_down) >= 5,
            WAIT_SECONDS,
            "10 batches, 5 pages and 5 probes of each host answered with host a down",
        )
        victim = kill_a_worker_mid_delivery(cluster)
        restarting = time.monotonic()
        served_before = a.access_log().count("POST /api/v1/positions")
        a.start_app()
        wait_until(
            lambda: a.access_log().count("POST /api/v1/positions") > served_before + 5,
            WAIT_SECONDS,
            "nginx sends batches to host a again",
        )
        victim.start_worker()
        restarted = time.monotonic()
        wait_until(lambda: stream.acknowledged_since(restarted) >= 5, WAIT_SECONDS, "5 more")
    batches = stream.batches

    # Every batch was acknowledged in the end; a failed try is a POST cut off by the kill.
    assert all(tries[-1].ok for tries in batches), [t[-1].describe() for t in batches]
    failed = [o for tries in batches for o in tries if not o.ok]
    assert all(o.status == 502 for o in failed), [o.describe() for o in failed]
    for tries in batches:
        answer, rows = tries[-1].json(), len(tries[-1].rows)
        # A resend after a cut is stored whole or found whole, never half.
        expected = [rows] if len(tries) == 1 else [0, rows]
        assert answer["inserted"] in expected and answer["inserted"] + answer["duplicates"] == rows

    # GETs that met the dead host went to the live one; the cookie holds on both hosts.
    assert stream.pages and all(seen == 200 for _, _, seen in stream.pages), stream.pages
    assert sum(1 for started, _, _ in stream.pages if a_down < started < restarting) >= 5
    page = re.compile(r'"GET /(alerts/|positions/\S+|) HTTP')
    assert page.search(a.access_log()) and page.search(b.access_log())

    # Each /readyz told the truth: host a unreachable while down, host b ready throughout.
    probes_of = defaultdict(list)
    for name, started, finished, status, body in stream.probes:
        probes_of[name].append((started, finished, status, body))
    assert all(status == 200 for _, f, status, _ in probes_of["a"] if f < killed_at)
    while_down = [s for started, f, s, _ in probes_of["a"] if a_down < started and f < restarting]
    assert len(while_down) >= 5 and set(while_down) == {"refused"}, while_down
    assert any(status == 200 for started, _, status, _ in probes_of["a"] if started > restarting)
    live = [(status, body) for _, _, status, body in probes_of["b"]]
    assert len(live) >= 10
    for status, body in live:
        assert status == 200, body
        assert (body["database"], body["alert_worker"]) == ("ok", "ok")
        assert body["rate_limits"] == "shared (redis)"

    sent_rows = [row for tries in batches for row in tries[-1].rows]
    wait_for_the_outbox(cluster)
    with cluster.app.app_context():
        check_snapshots(prefix, sent_rows)
        check_alerts_and_notifications(prefix, sent_rows, cluster.receiver)
    check_rate_limit_is_one_count(cluster)


def wait_for_the_outbox(cluster: Cluster) -> None:
    def delivered() -> bool:
        with cluster.app.app_context():
            pending = db.session.scalar(
                select(func.count()).where(Notification.status != NotificationStatus.SENT)
            )
            db.session.rollback()
        return pending == 0

    # Up to a lease of the killed worker's claim, then its resend.
    wait_until(delivered, WAIT_SECONDS, "every notification delivered")


def check_snapshots(prefix: str, sent_rows: list[dict]) -> None:
    """Every acknowledged snapshot stored exactly once, with what was sent."""
    stored = db.session.execute(
        select(Position.asset, Position.timestamp, Position.amount, func.count())
        .where(Position.asset.startswith(prefix))
        .group_by(Position.asset, Position.timestamp, Position.amount)
    ).all()
    assert all(count == 1 for *_, count in stored), [r for r in stored if r[-1] != 1]
    as_sent = {(r["asset"], r["timestamp"], Decimal(r["amount"])) for r in sent_rows}
    assert len(as_sent) == len(sent_rows)
    assert {(asset, at.isoformat(), amount) for asset, at, amount, _ in stored} == as_sent


def replay(amounts: list[Decimal]) -> list[tuple[str, str, Decimal]]:
    """The transitions a run of values implies: over the threshold fires, back under resolves."""
    state, transitions = AlertState.NORMAL, []
    for amount in amounts:
        if amount > THRESHOLD and state != AlertState.FIRING:
            transitions.append((state, AlertState.FIRING, amount))
            state = AlertState.FIRING
        elif amount <= THRESHOLD and state == AlertState.FIRING:
            transitions.append((state, AlertState.RESOLVED, amount))
            state = AlertState.RESOLVED
    return transitions


def check_alerts_and_notifications(prefix, sent_rows, receiver) -> None:
    """Each transition the values imply recorded once; each message sent, repeats by key only."""
    amounts = defaultdict(list)
    for row in sorted(sent_rows, key=lambda r: r["timestamp"]):
        amounts[row["asset"]].append(Decimal(row["amount"]))
    alerts = {
        a.asset: a for a in db.session.scalars(select(Alert).where(Alert.asset.startswith(prefix)))
    }
    assert alerts.keys() == amounts.keys()
    outbox = {}
    for asset, alert in alerts.items():
        recorded = [(t.from_state, t.to_state, t.value) for t in alert.transitions]
        assert recorded == replay(amounts[asset]), asset
        messages = db.session.scalars(
            select(Notification).filter_by(alert_id=alert.id).order_by(Notification.id)
        ).all()
        assert [m.kind for m in messages] == [to for _, to, _ in recorded], asset
        outbox.update({m.idempotency_key: (alert.id, m.id) for m in messages})

    # Nothing but the outbox, all of it: a repeat under a key of its own would show here.
    received = list(receiver.received)
    assert {body["idempotencyKey"] for body in received} == outbox.keys()
    by_key = defaultdict(list)
    for body in received:
        by_key[body["idempotencyKey"]].append(body)
    assert all(b == bodies[0] for bodies in by_key.values() for b in bodies)
    # The killed worker's message was received, then sent again by another worker.
    assert max(Counter(b["idempotencyKey"] for b in received).values()) >= 2
    # First arrivals keep each alert's order: resolved never overtakes its firing.
    firsts = defaultdict(list)
    for key in dict.fromkeys(b["idempotencyKey"] for b in received):
        alert_id, message_id = outbox[key]
        firsts[alert_id].append(message_id)
    assert all(ids == sorted(ids) for ids in firsts.values())


def check_rate_limit_is_one_count(cluster: Cluster) -> None:
    """A token's requests to both hosts, alternately, count against one limit."""
    headers = {"Authorization": f"Bearer {cluster.read_token}"}
    statuses = [
        (host.name, requests.get(f"{host.url}/api/v1/assets", headers=headers, timeout=10))
        for _ in range(API_LIMIT)
        for host in cluster.hosts
    ]
    seen = [(name, answer.status_code) for name, answer in statuses]
    half = API_LIMIT // 2
    assert seen == [("a", 200), ("b", 200)] * half + [("a", 429), ("b", 429)] * half, seen
