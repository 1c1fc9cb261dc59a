"""/metrics: Prometheus text for a token or an allowed address, 401 for anyone else."""

from datetime import timedelta
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.alerts.models import Alert, AlertRule, AlertState, WorkerHeartbeat
from app.db_types import utcnow
from app.extensions import db
from tests.conftest import build_app
from tests.positions.helpers import snap, store

TOKEN = "metrics-token-0123456789abcdef"


def samples(body: str) -> dict:
    """{(name, frozenset(labels)): value} of an exposition text."""
    found = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


@pytest.fixture
def metrics_app(sqlite_url):
    app = build_app(sqlite_url, METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS=["10.1.0.0/16"])
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


def test_metrics_refuse_anonymous_wrong_token_and_other_addresses(metrics_app):
    client = metrics_app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    outside = client.get("/metrics", environ_overrides={"REMOTE_ADDR": "10.2.0.9"})
    assert outside.status_code == 401
    assert b"tradingmonitor" not in outside.data


def test_metrics_answer_a_token_and_an_allowed_address(metrics_app):
    client = metrics_app.test_client()
    by_token = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    by_address = client.get("/metrics", environ_overrides={"REMOTE_ADDR": "10.1.3.4"})
    assert by_token.status_code == by_address.status_code == 200
    assert by_token.content_type.startswith("text/plain; version=0.0.4")


def test_metrics_are_off_when_nothing_is_configured(app):
    response = app.test_client().get("/metrics", environ_overrides={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 401


def test_metrics_count_requests_by_endpoint_and_status(metrics_app):
    client = metrics_app.test_client()
    key = (
        "tradingmonitor_http_requests_total",
        frozenset({"endpoint": "ops.healthz", "method": "GET", "status": "200"}.items()),
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = samples(client.get("/metrics", headers=auth).get_data(as_text=True)).get(key, 0)

    for _ in range(3):
        client.get("/healthz")
    client.get("/no/such/page")

    after = samples(client.get("/metrics", headers=auth).get_data(as_text=True))
    assert after[key] == before + 3
    assert any(
        name == "tradingmonitor_http_requests_total"
        and dict(labels).get("endpoint") == "unmatched"
        for name, labels in after
    )
    assert any(name == "tradingmonitor_http_request_duration_seconds_bucket" for name, _ in after)


def test_metrics_report_snapshot_age_and_alerts_by_state(metrics_app):
    now = utcnow().replace(microsecond=0)
    store(metrics_app, [snap(asset="BTC", at=now - timedelta(minutes=10))])
    with metrics_app.app_context():
        rule = AlertRule(
            name="big", kind="position_above", threshold=Decimal(1), severity="critical"
        )
        db.session.add(rule)
        db.session.flush()
        db.session.add(
            Alert(rule_id=rule.id, account="main", asset="BTC", state=AlertState.FIRING)
        )
        db.session.commit()

    body = (
        metrics_app.test_client()
        .get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        .get_data(as_text=True)
    )

    found = samples(body)
    age = found[
        (
            "tradingmonitor_snapshot_age_seconds",
            frozenset({"account": "main", "asset": "BTC"}.items()),
        )
    ]
    assert 600 <= age < 700
    assert (
        found[
            (
                "tradingmonitor_alerts",
                frozenset({"state": "firing", "severity": "critical"}.items()),
            )
        ]
        == 1
    )


def test_metrics_report_each_alert_workers_last_pass(metrics_app):
    result = metrics_app.test_cli_runner().invoke(
        args=["alerts", "run", "--passes", "1", "--interval", "10"]
    )
    assert result.exit_code == 0, result.output

    body = (
        metrics_app.test_client()
        .get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        .get_data(as_text=True)
    )

    passes = {
        labels: value
        for (name, labels), value in samples(body).items()
        if name == "tradingmonitor_alert_worker_last_pass_timestamp_seconds"
    }
    assert len(passes) == 1
    assert abs(next(iter(passes.values())) - utcnow().timestamp()) < 60


def test_metrics_report_each_workers_last_dead_mans_switch_beat(metrics_app):
    beat_at = utcnow().replace(microsecond=0) - timedelta(seconds=30)
    with metrics_app.app_context():
        db.session.add_all(
            [
                WorkerHeartbeat(
                    worker="host-a:1",
                    started_at=beat_at,
                    last_pass_at=beat_at,
                    interval_seconds=10,
                    passes=3,
                    deadman_at=beat_at,
                    deadman_status="fail",
                    deadman_detail="stale feed(s): main/BTC",
                ),
                # A worker with no switch configured has no beat to report.
                WorkerHeartbeat(
                    worker="host-b:2",
                    started_at=beat_at,
                    last_pass_at=beat_at,
                    interval_seconds=10,
                    passes=3,
                ),
            ]
        )
        db.session.commit()

    body = (
        metrics_app.test_client()
        .get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        .get_data(as_text=True)
    )

    beats = {
        labels: value
        for (name, labels), value in samples(body).items()
        if name == "tradingmonitor_deadman_last_beat_timestamp_seconds"
    }
    assert beats == {
        frozenset({"worker": "host-a:1", "status": "fail"}.items()): beat_at.timestamp()
    }
