"""The alert worker's heartbeat: written every pass, read by /readyz and the page banner."""

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from app.alerts.models import WorkerHeartbeat
from app.db_types import utcnow
from app.extensions import db

# A worker is late after missing this many passes (plus the grace below).
MISSED_PASSES = 3
# Rows of workers gone this long are removed by the next worker that beats.
FORGET_AFTER = timedelta(days=1)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


def beat(worker: str, *, interval: float, started_at: datetime, passes: int) -> None:
    """Record a finished pass (the caller commits)."""
    now = utcnow()
    db.session.merge(
        WorkerHeartbeat(
            worker=worker,
            started_at=started_at,
            last_pass_at=now,
            interval_seconds=interval,
            passes=passes,
        )
    )
    db.session.execute(
        delete(WorkerHeartbeat).where(WorkerHeartbeat.last_pass_at < now - FORGET_AFTER)
    )


@dataclass(frozen=True)
class WorkerStatus:
    healthy: bool
    last_pass_at: datetime | None
    reason: str


def worker_status(now: datetime | None = None) -> WorkerStatus:
    """Healthy when some worker finished a pass recently enough for its own interval."""
    now = now or utcnow()
    grace = timedelta(seconds=current_app.config["ALERT_WORKER_GRACE_SECONDS"])
    rows = db.session.execute(
        select(WorkerHeartbeat.last_pass_at, WorkerHeartbeat.interval_seconds)
    ).all()
    if not rows:
        if current_app.config["ALERT_WORKER_REQUIRED"]:
            return WorkerStatus(False, None, "no alert worker has ever run")
        return WorkerStatus(True, None, "no alert worker required")
    last = max(at for at, _ in rows)
    for at, interval in rows:
        if now - at <= timedelta(seconds=MISSED_PASSES * interval) + grace:
            return WorkerStatus(True, last, "ok")
    return WorkerStatus(False, last, f"last pass {int((now - last).total_seconds())} s ago")
