"""Who watches the monitor: beats to an outside dead man's switch while all is well.

If the host dies, nothing on it can say so; an outside service that expects a beat
every DEADMAN_INTERVAL_SECONDS can. The worker beats (POST DEADMAN_URL) only while
it is healthy, which means all of:

- the worker's last evaluation pass succeeded, within 3 of its intervals;
- the database answers now;
- no stale-feed alert is firing (an ingest feed that went silent; with no stale-feed
  rule, feeds are not judged).

Otherwise it POSTs to DEADMAN_URL + "/fail" with the reason as a plain-text body —
healthchecks.io's convention, which a receiver that knows only the plain URL sees as
beats that stopped. A worker whose host or process is gone sends nothing, which the
switch notices by itself. The last beat is written to the worker's heartbeat row for
/readyz; with the database away it is only logged.
"""

import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select, text, update
from sqlalchemy.exc import SQLAlchemyError

from app.alerts.models import Alert, AlertRule, AlertState, RuleKind, WorkerHeartbeat
from app.db_types import utcnow
from app.extensions import db

log = logging.getLogger(__name__)

# A pass later than this many intervals means the worker is stuck.
LATE_AFTER_INTERVALS = 3
FEEDS_NAMED = 5


class BeatStatus:
    OK = "ok"  # healthy, and the switch took the beat
    FAIL = "fail"  # unhealthy, and the switch took the failure
    UNREACHABLE = "unreachable"  # the switch did not answer 2xx


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str


def stale_feeds() -> list[str]:
    """account/asset of every firing stale-feed alert."""
    query = (
        select(Alert.account, Alert.asset)
        .join(AlertRule, Alert.rule_id == AlertRule.id)
        .where(
            AlertRule.kind == RuleKind.STALE_FEED,
            AlertRule.enabled.is_(True),
            Alert.state == AlertState.FIRING,
        )
        .order_by(Alert.account, Alert.asset)
    )
    return [f"{account}/{asset}" for account, asset in db.session.execute(query)]


def _post(url: str, body: str) -> str:
    request = urllib.request.Request(  # noqa: S310 (an operator's setting, http(s))
        url, data=body.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    timeout = current_app.config["NOTIFY_TIMEOUT_SECONDS"]
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return f"HTTP {response.status}"


class DeadMansSwitch:
    """The worker's side of the switch: judges health, sends the beat, records it."""

    def __init__(self, url: str, worker: str, pass_interval: float):
        self.url = url.rstrip("/")
        self.worker = worker
        self.pass_interval = pass_interval
        self.last_pass_ok: float | None = None
        self.failure: str | None = None

    def pass_succeeded(self) -> None:
        self.last_pass_ok, self.failure = time.monotonic(), None

    def pass_failed(self, reason: str) -> None:
        self.failure = reason

    def health(self) -> Health:
        """Healthy, or the first reason it is not (see the module's docstring)."""
        if self.failure:
            return Health(False, f"worker pass failing: {self.failure}")
        late = LATE_AFTER_INTERVALS * self.pass_interval
        if self.last_pass_ok is None or time.monotonic() - self.last_pass_ok > late:
            return Health(False, f"no successful worker pass in {late:g} s")
        try:
            db.session.execute(text("SELECT 1"))
            stale = stale_feeds()
            db.session.commit()
        except SQLAlchemyError as exc:
            db.session.rollback()
            return Health(False, f"database unreachable: {type(exc).__name__}")
        if stale:
            named = ", ".join(stale[:FEEDS_NAMED]) + (" …" if len(stale) > FEEDS_NAMED else "")
            return Health(False, f"stale feed(s): {named}")
        return Health(True, "ok")

    def beat(self) -> tuple[str, str]:
        """Judge health, tell the switch, record the outcome; return (status, detail)."""
        health = self.health()
        url = self.url if health.ok else self.url + "/fail"
        try:
            answer = _post(url, health.reason)
            status = BeatStatus.OK if health.ok else BeatStatus.FAIL
            detail = f"{health.reason} ({answer})"
        except urllib.error.HTTPError as exc:
            status, detail = BeatStatus.UNREACHABLE, f"{health.reason} (HTTP {exc.code})"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            status, detail = BeatStatus.UNREACHABLE, f"{health.reason} (unreachable: {reason})"
        if status != BeatStatus.OK:
            log.warning("dead man's switch: %s: %s", status, detail)
        self._record(status, detail)
        return status, detail

    def _record(self, status: str, detail: str) -> None:
        try:
            db.session.execute(
                update(WorkerHeartbeat)
                .where(WorkerHeartbeat.worker == self.worker)
                .values(deadman_at=utcnow(), deadman_status=status, deadman_detail=detail[:200])
            )
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()  # the database is away: the log line above is the record


@dataclass(frozen=True)
class LastBeat:
    at: object
    status: str
    detail: str


def last_beat() -> LastBeat | None:
    """The most recent beat any worker sent, for /readyz; None if none ever did."""
    row = db.session.execute(
        select(
            WorkerHeartbeat.deadman_at,
            WorkerHeartbeat.deadman_status,
            WorkerHeartbeat.deadman_detail,
        )
        .where(WorkerHeartbeat.deadman_at.is_not(None))
        .order_by(WorkerHeartbeat.deadman_at.desc())
        .limit(1)
    ).first()
    return LastBeat(*row) if row else None
