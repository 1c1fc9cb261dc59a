"""New notifications are delivered at once, not at the worker's next evaluation pass."""

import time
from decimal import Decimal

import pytest

from app.alerts.models import AlertRule, Channel, Notification, RuleKind, WorkerHeartbeat
from app.alerts.wakeup import Listener, announce, outbox_due, wait_readable
from app.db_types import utcnow
from app.extensions import db
from tests.alerts.helpers import wait_for
from tests.alerts.receivers import WebhookReceiver
from tests.alerts.test_workers import worker
from tests.positions.helpers import snap, store

# Far longer than any delivery may take: a message that waited for a pass would miss it.
INTERVAL = 60


def heartbeat(app):
    with app.app_context():
        return db.session.execute(db.select(WorkerHeartbeat.passes)).scalars().all()


def test_worker_delivers_a_new_firing_long_before_its_next_pass(any_app, tmp_path):
    log = tmp_path / "worker.log"
    url = any_app.config["SQLALCHEMY_DATABASE_URI"]
    with WebhookReceiver() as receiver:
        with any_app.app_context():
            db.session.add(
                AlertRule(
                    name="cap",
                    kind=RuleKind.POSITION_ABOVE,
                    asset="BTC",
                    threshold=Decimal("1"),
                    channels=[Channel(name="hook", kind="webhook", target=receiver.url)],
                )
            )
            db.session.commit()
        process = worker(log, url, "--interval", str(INTERVAL))
        try:
            # The first pass is done; the next one is a minute away.
            assert wait_for(lambda: heartbeat(any_app) == [1], timeout=30), log.read_text()
            started = time.monotonic()
            store(any_app, [snap(at=utcnow(), amount="5")])
            assert wait_for(lambda: receiver.received, timeout=10), log.read_text()
            took = time.monotonic() - started
            # Delivered between passes: the worker is still on its first.
            assert heartbeat(any_app) == [1]
        finally:
            process.terminate()
            process.wait(30)
    assert [body["status"] for body in receiver.received] == ["firing"]
    assert took < INTERVAL / 6


@pytest.mark.parametrize("status", ["pending", "sent"])
def test_outbox_due_sees_only_pending_due_rows(app, status):
    with app.app_context():
        channel = Channel(name="hook", kind="webhook", target="http://127.0.0.1:9/hook")
        db.session.add(channel)
        db.session.flush()
        db.session.add(
            Notification(
                channel_id=channel.id,
                kind="test",
                dedupe_key="k",
                payload={},
                status=status,
                next_attempt_at=utcnow(),
            )
        )
        db.session.commit()
        assert outbox_due() is (status == "pending")


def test_outbox_due_waits_for_a_retry_s_backoff(app):
    with app.app_context():
        channel = Channel(name="hook", kind="webhook", target="http://127.0.0.1:9/hook")
        db.session.add(channel)
        db.session.flush()
        later = utcnow().replace(year=utcnow().year + 1)
        db.session.add(
            Notification(
                channel_id=channel.id,
                kind="test",
                dedupe_key="k",
                payload={},
                next_attempt_at=later,
            )
        )
        db.session.commit()
        assert outbox_due() is False
        assert outbox_due(later) is True


@pytest.fixture
def pg_app(postgres_url):
    from tests.conftest import build_app

    app = build_app(postgres_url)
    yield app
    with app.app_context():
        db.engine.dispose()


def _wait(listener, timeout):
    started = time.monotonic()
    listener.wait(timeout, lambda seconds, fileno=None: wait_readable(fileno, seconds))
    return time.monotonic() - started


def test_listener_wakes_on_the_commit_of_an_announcement(pg_app):
    with pg_app.app_context():
        listener = Listener(sqlite_poll_seconds=0.25)
        try:
            assert listener.fileno() is not None  # LISTEN is in place
            announce()
            db.session.commit()
            assert _wait(listener, 30) < 5
        finally:
            listener.close()


def test_listener_hears_nothing_of_a_rolled_back_announcement(pg_app):
    with pg_app.app_context():
        listener = Listener(sqlite_poll_seconds=0.25)
        try:
            assert listener.fileno() is not None
            announce()
            db.session.rollback()
            assert _wait(listener, 1.5) >= 1.4
        finally:
            listener.close()
