"""Real `flask alerts run` processes: two at once, after an outage, one killed mid-send."""

import os
import signal
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from app.alerts.models import AlertRule, Channel, Notification, RuleKind
from app.db_types import utcnow
from app.extensions import db
from tests.alerts.helpers import wait_for
from tests.alerts.receivers import WebhookReceiver
from tests.positions.helpers import snap, store

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).with_name("flask"))


def worker(log_path, url, *args, **env):
    environment = {
        **os.environ,
        "FLASK_APP": "app",
        "DATABASE_URL": url,
        "SECRET_KEY": "worker-test-secret-key-0123456789abcdef",
        "TRADINGMONITOR_CONFIG": "development",
        **env,
    }
    with open(log_path, "a") as log:
        return subprocess.Popen(
            [FLASK, "alerts", "run", *args],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def fire_alerts(app, receiver_url, count):
    with app.app_context():
        db.session.add(
            AlertRule(
                name="cap",
                kind=RuleKind.POSITION_ABOVE,
                threshold=Decimal("1"),
                channels=[Channel(name="hook", kind="webhook", target=receiver_url)],
            )
        )
        db.session.commit()
    store(app, [snap(account=f"acct{i}", at=utcnow(), amount="5") for i in range(count)])


def sent_rows(app):
    with app.app_context():
        return db.session.execute(db.select(Notification.status, Notification.attempts)).all()


def test_two_workers_deliver_each_notification_exactly_once(any_app, tmp_path):
    log = tmp_path / "workers.log"
    url = any_app.config["SQLALCHEMY_DATABASE_URI"]
    with WebhookReceiver() as receiver:
        fire_alerts(any_app, receiver.url, 30)
        workers = [worker(log, url, "--interval", "0.1", "--passes", "30") for _ in range(2)]
        try:
            assert wait_for(lambda: len(receiver.received) >= 30)
            for process in workers:
                process.wait(timeout=60)
                assert process.returncode == 0, log.read_text()
        finally:
            for process in workers:
                process.kill()
    ids = [body["tradingmonitor"]["alert_id"] for body in receiver.received]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert sent_rows(any_app) == [("sent", 1)] * 30


def test_worker_killed_mid_delivery_loses_nothing(app, tmp_path):
    log = tmp_path / "workers.log"
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with WebhookReceiver() as receiver:
        fire_alerts(app, receiver.url, 5)
        receiver.delay = 3.0  # the first worker dies while the receiver holds a request
        first = worker(log, url, "--interval", "0.1", TRADINGMONITOR_NOTIFY_LEASE_SECONDS="2")
        try:
            assert wait_for(lambda: receiver.requests >= 1, timeout=30)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            first.kill()
        receiver.delay = 0
        second = worker(
            log,
            url,
            "--interval",
            "0.2",
            "--passes",
            "40",
            TRADINGMONITOR_NOTIFY_LEASE_SECONDS="2",
        )
        try:
            second.wait(timeout=90)
            assert second.returncode == 0, log.read_text()
        finally:
            second.kill()
    # Every notification delivered and marked sent once; the one interrupted mid-send
    # may reach the receiver twice, as the same message with the same key to drop it by.
    assert [status for status, _ in sent_rows(app)] == ["sent"] * 5
    by_key = {}
    for headers, body in receiver.attempts:
        assert headers["Idempotency-Key"] == body["idempotencyKey"]
        by_key.setdefault(body["idempotencyKey"], []).append(body)
    assert set(by_key) == set(stored_keys(app))
    assert len(receiver.attempts) <= 6
    assert all(copy == copies[0] for copies in by_key.values() for copy in copies)


def stored_keys(app):
    with app.app_context():
        return db.session.execute(db.select(Notification.idempotency_key)).scalars().all()


def test_two_workers_deliver_firing_before_resolved_after_an_outage(any_app, tmp_path):
    log = tmp_path / "workers.log"
    url = any_app.config["SQLALCHEMY_DATABASE_URI"]
    backoff = {"TRADINGMONITOR_NOTIFY_RETRY_BASE_SECONDS": "3"}
    with WebhookReceiver() as receiver:
        receiver.status = 500
        fire_alerts(any_app, receiver.url, 10)
        workers = [worker(log, url, "--interval", "0.1", **backoff) for _ in range(2)]
        try:
            # Every firing has failed once and waits for its retry...
            assert wait_for(lambda: receiver.requests >= 10)
            receiver.status = 200
            # ...when the positions come back: the resolved are due before the firings.
            at = utcnow() + timedelta(seconds=1)
            store(any_app, [snap(account=f"acct{i}", at=at, amount="0") for i in range(10)])
            assert wait_for(lambda: len(receiver.received) >= 20)
        finally:
            for process in workers:
                process.kill()
                process.wait(10)
    arrivals = {}
    for body in receiver.received:
        arrivals.setdefault(body["tradingmonitor"]["alert_id"], []).append(body["status"])
    assert len(arrivals) == 10
    assert all(order == ["firing", "resolved"] for order in arrivals.values()), arrivals
    assert len({body["idempotencyKey"] for body in receiver.received}) == 20
