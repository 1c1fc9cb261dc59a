"""Prometheus metrics: per-process counters, and gauges read from the database per scrape.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR (set by deploy/gunicorn.conf.py) makes
every worker write its counters to files there, and a scrape adds them up.
"""

import hmac
import ipaddress
import os
import time

from flask import current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY
from sqlalchemy import func, select

from app.alerts.models import (
    Alert,
    AlertRule,
    DeliveryAttempt,
    Notification,
    WorkerHeartbeat,
)
from app.db_types import utcnow
from app.extensions import db
from app.positions.models import LatestPosition

REQUESTS = Counter(
    "tradingmonitor_http_requests_total",
    "HTTP requests answered, by endpoint, method and status.",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "tradingmonitor_http_request_duration_seconds",
    "Time to answer a request, by endpoint.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INGEST_BATCHES = Counter(
    "tradingmonitor_ingest_batches_total",
    "Valid ingest batches, by outcome (stored, conflict); rejected ones are in the "
    "request counter under endpoint api.post_positions.",
    ["outcome"],
)
INGEST_ROWS = Counter(
    "tradingmonitor_ingest_rows_total",
    "Snapshots received over the API, by outcome.",
    ["outcome"],
)


def start_timer() -> None:
    g.request_started = time.perf_counter()


def observe_request(response):
    """Count the request and its latency; unknown URLs share one label."""
    started = g.pop("request_started", None)
    endpoint = request.endpoint or "unmatched"
    REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
    if started is not None:
        LATENCY.labels(endpoint).observe(time.perf_counter() - started)
    return response


def count_ingest(*, inserted=0, duplicates=0, conflicts=0) -> None:
    INGEST_BATCHES.labels("conflict" if conflicts else "stored").inc()
    for outcome, n in (("inserted", inserted), ("duplicate", duplicates), ("conflict", conflicts)):
        if n:
            INGEST_ROWS.labels(outcome).inc(n)


def scrape_allowed() -> bool:
    """A matching bearer token, or a client address in the allow-list."""
    token = current_app.config["METRICS_TOKEN"]
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[7:].encode(), token.encode())
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in current_app.config["METRICS_ALLOWED_NETWORKS"]
    )


def render() -> bytes:
    """The exposition text: process counters first, then the database's gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    database = CollectorRegistry()
    database.register(DatabaseCollector())
    return generate_latest(registry) + generate_latest(database)


class DatabaseCollector:
    """Gauges that are facts of the database, the same whichever worker is asked."""

    def collect(self):
        now = utcnow()
        age = GaugeMetricFamily(
            "tradingmonitor_snapshot_age_seconds",
            "Seconds since the latest snapshot of each position.",
            labels=["account", "asset"],
        )
        for account, asset, at in db.session.execute(
            select(LatestPosition.account, LatestPosition.asset, LatestPosition.timestamp)
        ):
            age.add_metric([account, asset], (now - at).total_seconds())
        yield age

        alerts = GaugeMetricFamily(
            "tradingmonitor_alerts", "Alerts by state and severity.", labels=["state", "severity"]
        )
        for state, severity, n in db.session.execute(
            select(Alert.state, AlertRule.severity, func.count())
            .join(AlertRule, Alert.rule_id == AlertRule.id)
            .group_by(Alert.state, AlertRule.severity)
        ):
            alerts.add_metric([state, severity], n)
        yield alerts

        outbox = GaugeMetricFamily(
            "tradingmonitor_notifications", "Notifications by status.", labels=["status"]
        )
        for status, n in db.session.execute(
            select(Notification.status, func.count()).group_by(Notification.status)
        ):
            outbox.add_metric([status], n)
        yield outbox

        attempts = GaugeMetricFamily(
            "tradingmonitor_delivery_attempts",
            "Notification delivery attempts recorded, by outcome.",
            labels=["outcome"],
        )
        for ok, n in db.session.execute(
            select(DeliveryAttempt.ok, func.count()).group_by(DeliveryAttempt.ok)
        ):
            attempts.add_metric(["delivered" if ok else "failed"], n)
        yield attempts

        last_pass = GaugeMetricFamily(
            "tradingmonitor_alert_worker_last_pass_timestamp_seconds",
            "When each alert worker (host:pid) last finished a pass, Unix time.",
            labels=["worker"],
        )
        for worker, at in db.session.execute(
            select(WorkerHeartbeat.worker, WorkerHeartbeat.last_pass_at)
        ):
            last_pass.add_metric([worker], at.timestamp())
        yield last_pass

        # The outside dead man's switch hears of this too (app.alerts.deadman); here a
        # Prometheus on the same host can see the beats stop or turn to "fail".
        last_beat = GaugeMetricFamily(
            "tradingmonitor_deadman_last_beat_timestamp_seconds",
            "When each alert worker last called the dead man's switch, Unix time, by "
            "the beat's result (ok, fail: it reported trouble, unreachable: no answer).",
            labels=["worker", "status"],
        )
        for worker, at, status in db.session.execute(
            select(
                WorkerHeartbeat.worker, WorkerHeartbeat.deadman_at, WorkerHeartbeat.deadman_status
            ).where(WorkerHeartbeat.deadman_at.is_not(None))
        ):
            last_beat.add_metric([worker, status or ""], at.timestamp())
        yield last_beat
