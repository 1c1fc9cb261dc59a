"""The dead man's switch: beats while all is well, failures and silence when not."""

import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.alerts.deadman import BeatStatus, DeadMansSwitch, last_beat
from app.alerts.heartbeat import beat
from app.alerts.models import Alert, AlertRule, AlertState, RuleKind
from app.auth.models import Role
from app.db_types import utcnow
from app.extensions import db
from tests.alerts.helpers import wait_for
from tests.alerts.test_workers import worker
from tests.conftest import (
    ParsedPage,
    build_app,
    client_as,
    create_scratch_database,
    drop_scratch_database,
    postgres_admin_url,
)


class BeatReceiver:
    """A healthchecks-style endpoint on loopback: records (path, body) of every POST."""

    def __init__(self):
        self.beats: list[tuple[str, str]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.beats.append((self.path, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/ping/tm"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def paths(self) -> list[str]:
        return [path for path, _ in self.beats]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def switch_after_a_pass(url: str) -> DeadMansSwitch:
    switch = DeadMansSwitch(url, "host:1", pass_interval=10)
    beat("host:1", interval=10, started_at=utcnow(), passes=1)
    db.session.commit()
    switch.pass_succeeded()
    return switch


def test_a_healthy_worker_beats_and_the_beat_is_on_readyz(app):
    with BeatReceiver() as receiver, app.app_context():
        status, detail = switch_after_a_pass(receiver.url).beat()
    assert (status, detail) == (BeatStatus.OK, "ok (HTTP 200)")
    assert receiver.beats == [("/ping/tm", "ok")]
    body = app.test_client().get("/readyz").get_json()
    assert body["dead_man_switch"]["status"] == "ok"
    assert body["dead_man_switch"]["detail"] == "ok (HTTP 200)"
    assert body["dead_man_switch"]["last_beat_at"]


def test_the_channels_page_shows_the_last_beat_or_how_to_switch_it_on(app):
    admin = client_as(app, Role.ADMIN)
    off = ParsedPage(admin.get("/alerts/channels").get_data(as_text=True))
    assert off.shows_as_text("Off: set ") and off.shows_as_text("TRADINGMONITOR_DEADMAN_URL")
    with BeatReceiver() as receiver, app.app_context():
        receiver.status = 404
        switch_after_a_pass(receiver.url).beat()
    page = ParsedPage(admin.get("/alerts/channels").get_data(as_text=True))
    assert page.shows_as_text("unreachable") and page.shows_as_text(" — ok (HTTP 404).")
    assert not page.shows_as_text("Off: set ")


def test_the_last_beat_outlives_the_worker_s_next_passes(app):
    with BeatReceiver() as receiver, app.app_context():
        switch_after_a_pass(receiver.url).beat()
        beat("host:1", interval=10, started_at=utcnow(), passes=2)
        db.session.commit()
        assert last_beat().status == BeatStatus.OK


def test_a_stale_feed_turns_beats_into_failures_naming_it(app):
    with app.app_context():
        rule = AlertRule(name="feed", kind=RuleKind.STALE_FEED, threshold=Decimal(60))
        db.session.add(rule)
        db.session.flush()
        db.session.add(
            Alert(rule_id=rule.id, account="main", asset="BTC", state=AlertState.FIRING)
        )
        db.session.commit()
    with BeatReceiver() as receiver, app.app_context():
        status, _ = switch_after_a_pass(receiver.url).beat()
    assert status == BeatStatus.FAIL
    assert receiver.beats == [("/ping/tm/fail", "stale feed(s): main/BTC")]


def test_a_failed_pass_turns_beats_into_failures(app):
    with BeatReceiver() as receiver, app.app_context():
        switch = switch_after_a_pass(receiver.url)
        switch.pass_failed("connection refused")
        switch.beat()
    assert receiver.beats == [("/ping/tm/fail", "worker pass failing: connection refused")]


def test_a_switch_that_does_not_answer_is_recorded_as_unreachable(app):
    with BeatReceiver() as receiver, app.app_context():
        receiver.status = 503
        status, detail = switch_after_a_pass(receiver.url).beat()
    assert (status, detail) == (BeatStatus.UNREACHABLE, "ok (HTTP 503)")
    assert app.test_client().get("/readyz").get_json()["dead_man_switch"]["status"] == (
        "unreachable"
    )


@pytest.fixture
def scratch_postgres():
    """A PostgreSQL database of its own, which the test may close to connections."""
    admin_url = postgres_admin_url()
    url = create_scratch_database(admin_url)
    app = build_app(url)
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    yield admin_url, url
    drop_scratch_database(admin_url, url)


def set_connections(admin_url: str, url: str, allowed: bool) -> None:
    """Open or close a database to connections; closing also ends the ones it has."""
    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
    engine.dispose()


def test_beats_stop_while_the_database_is_away_and_resume_after(scratch_postgres, tmp_path):
    admin_url, url = scratch_postgres
    log = tmp_path / "worker.log"
    with BeatReceiver() as receiver:
        process = worker(
            log,
            url,
            "--interval",
            "0.5",
            TRADINGMONITOR_DEADMAN_URL=receiver.url,
            TRADINGMONITOR_DEADMAN_INTERVAL_SECONDS="0.5",
        )
        try:
            assert wait_for(lambda: "/ping/tm" in receiver.paths(), timeout=30), log.read_text()
            set_connections(admin_url, url, allowed=False)
            assert wait_for(lambda: "/ping/tm/fail" in receiver.paths(), timeout=30)
            away = len(receiver.beats)
            time.sleep(3)  # several beat intervals with the database away
            during = receiver.paths()[away:]
            set_connections(admin_url, url, allowed=True)
            assert wait_for(lambda: receiver.paths()[-1] == "/ping/tm", timeout=60)
        finally:
            process.terminate()
            process.wait(30)
    first_fail = receiver.paths().index("/ping/tm/fail")
    assert all(path == "/ping/tm" for path in receiver.paths()[:first_fail])
    assert during and all(path == "/ping/tm/fail" for path in during)
    reasons = {body for path, body in receiver.beats if path.endswith("/fail")}
    assert all(
        reason.startswith(("worker pass failing", "database unreachable")) for reason in reasons
    ), reasons
